"""Tools defined in TypeScript, called by agents running here (docs/dspy-surface.md, "Tools").

A `react` request lists its tools in `module.tools`: `{name, description?, parameters?, subject?, timeout_ms?}`,
with `parameters` the JSON Schema of the arguments (`{type: "object", properties: {...}, required: [...]}`).
Each becomes a `dspy.Tool` whose function sends a NATS request to the tool's subject (default
`dspex.tool.<name>`), msgpack body `{v: 1, tool, args, request}`, and returns the `result` of the reply
`{ok: true, result}`. An error reply `{ok: false, error: {type, message}}`, no responder, or no answer within
the tool's timeout raise `ToolCallError`, which dspy.ReAct records as the step's observation
("Execution error in <tool>: …"): the agent sees the failure and carries on; the request does not fail.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import dspy
import nats.errors
from nats.aio.client import Client

from .errors import ValidationError
from .wire import decode, encode

TOOL_SUBJECT_PREFIX = "dspex.tool"
TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
SUBJECT = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")
TOOL_KEYS = {"name", "description", "parameters", "subject", "timeout_ms"}
DEFAULT_TIMEOUT_MS = 30_000
RESERVED = {"finish"}


class ToolCallError(Exception):
    """A tool call that failed: becomes the agent's observation, not a failed request."""


def tool_subject(name: str) -> str:
    return f"{TOOL_SUBJECT_PREFIX}.{name}"


def check_tool_specs(raw: Any, field: str = "module.tools") -> list[dict[str, Any]]:
    """Checks the tool list of a request; ValidationError naming the field of the first problem."""
    if not isinstance(raw, list) or not raw:
        raise ValidationError(f"`{field}` must be a non-empty list of tools", field=field)
    specs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, spec in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(spec, dict):
            raise ValidationError(f"`{where}` must be a map {{name, description, parameters}}", field=where)
        unknown = sorted(set(spec) - TOOL_KEYS)
        if unknown:
            raise ValidationError(f"unknown tool option(s): {', '.join(unknown)}", field=f"{where}.{unknown[0]}")
        name = spec.get("name")
        if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
            raise ValidationError(
                f"`{where}.name` must be an identifier of at most 64 characters (got {name!r})", field=f"{where}.name"
            )
        if name in RESERVED:
            raise ValidationError(f"tool name {name!r} is reserved by dspy.ReAct", field=f"{where}.name")
        if name in seen:
            raise ValidationError(f"duplicate tool {name!r}", field=f"{where}.name")
        seen.add(name)
        description = spec.get("description", "")
        if not isinstance(description, str):
            raise ValidationError(f"`{where}.description` must be a string", field=f"{where}.description")
        parameters = spec.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            raise ValidationError(f"`{where}.parameters` must be a JSON Schema object", field=f"{where}.parameters")
        properties = parameters.get("properties") or {}
        if not isinstance(properties, dict) or not all(isinstance(v, dict) for v in properties.values()):
            raise ValidationError(
                f"`{where}.parameters.properties` must map argument names to JSON Schemas",
                field=f"{where}.parameters.properties",
            )
        required = parameters.get("required") or []
        if not isinstance(required, list) or not all(isinstance(r, str) and r in properties for r in required):
            raise ValidationError(
                f"`{where}.parameters.required` must list argument names from `properties`",
                field=f"{where}.parameters.required",
            )
        subject = spec.get("subject", tool_subject(name))
        if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
            raise ValidationError(
                f"`{where}.subject` must be a NATS subject without wildcards", field=f"{where}.subject"
            )
        timeout_ms = spec.get("timeout_ms", DEFAULT_TIMEOUT_MS)
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or not 1 <= timeout_ms <= 600_000:
            raise ValidationError(
                f"`{where}.timeout_ms` must be an integer from 1 to 600000", field=f"{where}.timeout_ms"
            )
        specs.append(
            {
                "name": name,
                "description": description,
                "properties": properties,
                "required": required,
                "subject": subject,
                "timeout_ms": timeout_ms,
            }
        )
    return specs


def _tool_function(nc: Client, spec: dict[str, Any], request_id: str) -> Callable[..., Awaitable[Any]]:
    name: str = spec["name"]
    subject: str = spec["subject"]
    timeout_s = spec["timeout_ms"] / 1000
    required: list[str] = spec["required"]

    async def call(**kwargs: Any) -> Any:
        missing = [r for r in required if r not in kwargs]
        if missing:
            raise ToolCallError(f"missing argument(s) {', '.join(missing)} for tool {name}")
        body = encode({"v": 1, "tool": name, "args": kwargs, "request": request_id})
        try:
            msg = await nc.request(subject, body, timeout=timeout_s)
        except nats.errors.NoRespondersError:
            raise ToolCallError(f"tool {name} is not being served (no responder on {subject})") from None
        except nats.errors.TimeoutError:
            raise ToolCallError(f"tool {name} did not answer within {spec['timeout_ms']} ms") from None
        try:
            reply = decode(msg.data)
        except Exception as exc:
            raise ToolCallError(f"tool {name} sent a reply that is not msgpack: {exc}") from None
        if not isinstance(reply, dict):
            raise ToolCallError(f"tool {name} sent a reply that is not a map")
        if reply.get("ok") is True:
            return reply.get("result")
        raw_error = reply.get("error")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        raise ToolCallError(f"{error.get('type', 'ToolError')}: {error.get('message', 'the tool failed')}")

    call.__name__ = name
    return call


def build_tools(nc: Client | None, raw: Any, request_id: str) -> list[Any]:
    """`dspy.Tool`s calling back into the tool servers named in the request."""
    specs = check_tool_specs(raw)
    if nc is None:
        raise ValidationError("tools need the worker's NATS connection", field="module.tools")
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
