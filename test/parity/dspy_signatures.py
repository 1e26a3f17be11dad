"""What real DSPy makes of a corpus from test/parity/signature-parity.test.ts.

Reads one JSON document on stdin, writes one JSON document on stdout:

- ``signatures``: ``dspy.Signature(text[, instructions])`` -> fields (name, side, type normalised to the wire
  type-expression format, desc, prefix) and instructions, or the exception class and message;
- ``builds``: the same for ``build_signature(wire)`` (workers/dspex_worker/signatures.py), from the wire
  signatures the TypeScript parser produced;
- ``coerce``: DSPy's ``parse_value(value, annotation)`` for a type expression and a value;
- ``wires``: ``check_signature(wire)`` -> the ``field`` path of the ValidationError, or ok;
- ``inputs``: ``validate_inputs(wire, inputs)`` -> the coerced inputs, or the problems' codes and paths;
- ``schemas``: JSON Schema (jsonschema, draft 2020-12) checks of the TypeScript schemas.

Non-finite floats travel as {"$float": "nan" | "inf" | "-inf"}.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import types
import typing
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workers"))

import dspy
import jsonschema
from dspex_worker.protocol.errors import ValidationError
from dspex_worker.signatures import (
    build_signature,
    check_signature,
    type_from_expr,
    validate_inputs,
)
from dspy.adapters.utils import parse_value

logging.getLogger("dspy").setLevel(logging.ERROR)
warnings.simplefilter("ignore")


def norm_type(t: Any) -> dict[str, Any]:
    if t is str:
        return {"kind": "str"}
    if t is int:
        return {"kind": "int"}
    if t is float:
        return {"kind": "float"}
    if t is bool:
        return {"kind": "bool"}
    if t is typing.Any:
        return {"kind": "any"}
    for name in ("History", "Image", "Audio"):  # DSPy's own input types
        if t is getattr(dspy, name):
            return {"kind": name.lower()}
    if t is list:
        return {"kind": "list", "items": {"kind": "any"}}
    if t is dict:
        return {"kind": "dict", "keys": {"kind": "any"}, "values": {"kind": "any"}}
    origin = typing.get_origin(t)
    args = typing.get_args(t)
    if origin is list and len(args) == 1:
        return {"kind": "list", "items": norm_type(args[0])}
    if origin is dict and len(args) == 2:
        return {
            "kind": "dict",
            "keys": norm_type(args[0]),
            "values": norm_type(args[1]),
        }
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        inner = (
            norm_type(rest[0])
            if len(rest) == 1
            else {"kind": "union", "members": [norm_type(a) for a in rest]}
        )
        return {"kind": "optional", "inner": inner} if len(rest) < len(args) else inner
    if origin is typing.Literal and all(
        isinstance(a, str | int | float | bool) for a in args
    ):
        return {"kind": "literal", "values": list(args)}
    return {"kind": "unsupported", "repr": repr(t)}


def describe(sig: Any) -> dict[str, Any]:
    def fields(items: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "type": norm_type(f.annotation),
                "desc": f.json_schema_extra.get("desc"),
                "prefix": f.json_schema_extra.get("prefix"),
                "constraints": f.json_schema_extra.get("constraints"),
            }
            for name, f in items.items()
        ]

    return {
        "ok": True,
        "instructions": sig.instructions,
        "inputs": fields(sig.input_fields),
        "outputs": fields(sig.output_fields),
    }


def failure(exc: BaseException) -> dict[str, Any]:
    return {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}


def encode(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {
            "$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        }
    if isinstance(value, list | tuple | set):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {
            str(k) if not isinstance(k, bool) else json.dumps(k): encode(v)
            for k, v in value.items()
        }
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$float"}:
            return float(value["$float"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def main() -> None:
    request = json.load(sys.stdin)
    out: dict[str, list[Any]] = {
        "signatures": [],
        "builds": [],
        "coerce": [],
        "wires": [],
        "schemas": [],
        "inputs": [],
    }
    for item in request.get("signatures", []):
        try:
            if item.get("instructions") is None:
                sig = dspy.Signature(item["text"])
            else:
                sig = dspy.Signature(item["text"], item["instructions"])
            out["signatures"].append(describe(sig))
        except Exception as exc:  # noqa: BLE001 - any rejection by DSPy counts
            out["signatures"].append(failure(exc))
    for wire in request.get("builds", []):
        try:
            out["builds"].append(describe(build_signature(wire)))
        except Exception as exc:  # noqa: BLE001
            out["builds"].append(failure(exc))
    for item in request.get("coerce", []):
        try:
            value = parse_value(decode(item["value"]), type_from_expr(item["type"]))
            out["coerce"].append({"ok": True, "value": encode(value)})
        except Exception as exc:  # noqa: BLE001
            out["coerce"].append(failure(exc))
    for wire in request.get("wires", []):
        try:
            check_signature(wire)
            out["wires"].append({"ok": True})
        except ValidationError as exc:
            out["wires"].append({"ok": False, "field": exc.field, "error": exc.message})
    for item in request.get("inputs", []):
        try:
            value = validate_inputs(item["signature"], decode(item["inputs"]))
            out["inputs"].append({"ok": True, "value": encode(value)})
        except ValidationError as exc:
            problems = (exc.details or {}).get("problems", [])
            out["inputs"].append(
                {"ok": False, "problems": [[p["code"], p["path"]] for p in problems]}
            )
    for item in request.get("schemas", []):
        validator = jsonschema.Draft202012Validator(item["schema"])
        try:
            jsonschema.Draft202012Validator.check_schema(item["schema"])
            schema_ok = True
        except jsonschema.SchemaError:
            schema_ok = False
        out["schemas"].append(
            {
                "schema_ok": schema_ok,
                "valid": [validator.is_valid(v) for v in item.get("valid", [])],
                "invalid": [validator.is_valid(v) for v in item.get("invalid", [])],
            }
        )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
