"""Tools defined in TypeScript, called by agents running here (docs/dspy-surface.md, "Tools").

A `react` request lists its tools in `module.tools`: `{name, description?, parameters?, subject?, timeout_ms?}`,
with `parameters` the JSON Schema of the arguments (`{type: "object", properties: {...}, required: [...]}`).
Each becomes a `dspy.Tool` whose function calls the tool over NATS (`program_bus.call_tool`: the protocol, and
`ToolCallError`, which dspy.ReAct records as the step's observation — "Execution error in <tool>: …" — so the
agent sees the failure and carries on; the request does not fail).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import dspy
from nats.aio.client import Client

from ..program_bus import DEFAULT_TOOL_TIMEOUT_MS, ToolCallError, call_tool
from ..protocol.errors import ValidationError
from ..protocol.generated.bus import tool_subject
from ..protocol.generated.types import ToolSpec
from ..protocol.subjects import is_publish_subject

RESERVED = {"finish"}


def check_tool_specs(tools: list[ToolSpec], field: str = "module.tools") -> list[dict[str, Any]]:
    """The tool list (shape checked by the schema, modules.schema.json#/definitions/toolSpec) with what a schema
    cannot say: at least one tool, names unique and not ReAct's own `finish`, subjects without wildcards,
    `required` arguments among the `properties`. Defaults filled in."""
    if not tools:
        raise ValidationError(f"{field}: must be a non-empty list of tools", field=field)
    specs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, spec in enumerate(tools):
        where = f"{field}[{i}]"
        name = spec["name"]
        if name in RESERVED:
            raise ValidationError(f"{where}.name: {name!r} is reserved by dspy.ReAct", field=f"{where}.name")
        if name in seen:
            raise ValidationError(f"{where}.name: duplicate tool {name!r}", field=f"{where}.name")
        seen.add(name)
        parameters = spec.get("parameters") or {"type": "object", "properties": {}}
        properties = parameters.get("properties") or {}
        if not isinstance(properties, dict) or not all(isinstance(v, dict) for v in properties.values()):
            where_props = f"{where}.parameters.properties"
            raise ValidationError(f"{where_props}: must map argument names to JSON Schemas", field=where_props)
        required = parameters.get("required") or []
        if not isinstance(required, list) or not all(isinstance(r, str) and r in properties for r in required):
            where_req = f"{where}.parameters.required"
            raise ValidationError(f"{where_req}: must list argument names from `properties`", field=where_req)
        subject = spec.get("subject") or tool_subject(name)
        if not is_publish_subject(subject):
            raise ValidationError(
                f"{where}.subject: must be a NATS subject without wildcards", field=f"{where}.subject"
            )
        specs.append(
            {
                "name": name,
                "description": spec.get("description", ""),
                "properties": properties,
                "required": required,
                "subject": subject,
                "timeout_ms": spec.get("timeout_ms", DEFAULT_TOOL_TIMEOUT_MS),
            }
        )
    return specs


def _tool_function(nc: Client, spec: dict[str, Any], request_id: str) -> Callable[..., Awaitable[Any]]:
    name: str = spec["name"]
    required: list[str] = spec["required"]

    async def call(**kwargs: Any) -> Any:
        missing = [r for r in required if r not in kwargs]
        if missing:
            raise ToolCallError(f"missing argument(s) {', '.join(missing)} for tool {name}")
        return await call_tool(nc, spec["subject"], name, kwargs, request_id, spec["timeout_ms"])

    call.__name__ = name
    return call


def build_tools(nc: Client, tools: list[ToolSpec], request_id: str) -> list[Any]:
    """`dspy.Tool`s calling back into the tool servers named in the request."""
    specs = check_tool_specs(tools)
    return [
        dspy.Tool(
            _tool_function(nc, spec, request_id),
            name=spec["name"],
            desc=spec["description"] or f"the {spec['name']} tool",
            args=spec["properties"],
            arg_types={},
        )
        for spec in specs
    ]
