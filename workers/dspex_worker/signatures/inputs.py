"""Input validation: the inputs of a request checked and coerced against its signature, the way the TypeScript
side checks them before publishing (services/shared/src/signature/validate.ts)."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import pydantic
from dspy.adapters.utils import parse_value

from ..protocol.errors import ValidationError
from .check import check_signature, format_type, inner_kind, signature_key, type_from_expr
from .media import to_media


@dataclass(frozen=True, slots=True)
class _FieldCheck:
    name: str
    expr: dict[str, Any]
    annotation: Any
    required: bool
    nullable: bool
    pass_through: bool
    constraints: dict[str, int | float] | None
    # parse_value validates non-string values with TypeAdapter(annotation); this is that adapter, built once.
    adapter: pydantic.TypeAdapter[Any]
    is_literal: bool

    def coerce(self, value: object) -> Any:
        """DSPy's ``parse_value(value, annotation)``, with the adapter reused for non-string values."""
        if not isinstance(value, str) and not self.is_literal:
            return self.adapter.validate_python(value)
        return parse_value(value, self.annotation)


_VALIDATORS: OrderedDict[str, tuple[_FieldCheck, ...]] = OrderedDict()
_VALIDATORS_MAX: Final = 512
_VALIDATORS_LOCK: Final = threading.Lock()


def _field_check(f: Mapping[str, Any]) -> _FieldCheck:
    annotation = type_from_expr(f["type"])
    return _FieldCheck(
        name=f["name"],
        expr=f["type"],
        annotation=annotation,
        required=f["type"]["kind"] != "optional",
        nullable=f["type"]["kind"] in ("optional", "any"),
        pass_through=inner_kind(f["type"]) == "str",
        constraints=f.get("constraints"),
        adapter=pydantic.TypeAdapter(annotation),
        is_literal=f["type"]["kind"] == "literal",
    )


def prime(key: str, checked: Mapping[str, Any]) -> tuple[_FieldCheck, ...]:
    """Compiles the input checks of a checked signature (SignatureCache does it when it builds the class, so a
    signature is checked once)."""
    compiled = tuple(_field_check(f) for f in checked["inputs"])
    with _VALIDATORS_LOCK:
        _VALIDATORS[key] = compiled
        while len(_VALIDATORS) > _VALIDATORS_MAX:
            _VALIDATORS.popitem(last=False)
    return compiled


def _compile_inputs(sig: Mapping[str, Any], key: str | None = None) -> tuple[_FieldCheck, ...]:
    if key is None:
        key = signature_key(sig)
    with _VALIDATORS_LOCK:
        found = _VALIDATORS.get(key)
        if found is not None:
            _VALIDATORS.move_to_end(key)
            return found
    return prime(key, check_signature(sig))


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {json.dumps(shown, ensure_ascii=False)}"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, list | tuple):
        return f"array of {len(value)}"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _path(name: str, loc: tuple[int | str, ...]) -> str:
    out = name
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _union_loc(expr: Mapping[str, Any], loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """pydantic's error location cut where it enters a union: the part after it names the member tried (``int``,
    ``list[int]``), which the TypeScript side does not report; the problem is the union's, at its path."""
    out: list[int | str] = []
    i = 0
    while i < len(loc):
        while expr["kind"] == "optional":
            expr = expr["inner"]
        kind = expr["kind"]
        if kind == "union":
            break
        if kind == "list":
            out.append(loc[i])
            expr = expr["items"]
            i += 1
        elif kind == "dict":
            out.append(loc[i])
            i += 1
            if i < len(loc) and loc[i] == "[key]":
                out.append(loc[i])
                expr = expr["keys"]
                i += 1
            else:
                expr = expr["values"]
        else:
            out.extend(loc[i:])
            break
    return tuple(out)


def _constraint_problems(check: _FieldCheck, value: object) -> list[dict[str, Any]]:
    c = check.constraints
    if not c or value is None:
        return []
    problems: list[dict[str, Any]] = []

    def add(expected: str, text: str, got: str) -> None:
        problems.append(
            {
                "field": check.name,
                "path": check.name,
                "code": "constraint",
                "expected": expected,
                "got": got,
                "message": f"input '{check.name}': {text}",
            }
        )

    if isinstance(value, int | float) and not isinstance(value, bool):
        tests: list[tuple[str, str, bool]] = []
        if "gt" in c:
            tests.append((f"> {c['gt']}", f"must be greater than {c['gt']}", value > c["gt"]))
        if "ge" in c:
            tests.append((f">= {c['ge']}", f"must be greater than or equal to {c['ge']}", value >= c["ge"]))
        if "lt" in c:
            tests.append((f"< {c['lt']}", f"must be less than {c['lt']}", value < c["lt"]))
        if "le" in c:
            tests.append((f"<= {c['le']}", f"must be less than or equal to {c['le']}", value <= c["le"]))
        for expected, text, ok in tests:
            if not ok:
                add(expected, f"{text}, got {value}", _describe(value))
    if isinstance(value, str | list | tuple | Mapping):
        n = len(value)
        unit = "character" if isinstance(value, str) else "item" if isinstance(value, list | tuple) else "entry"
        if "min_length" in c and n < c["min_length"]:
            add(f"min_length {c['min_length']}", f"must have at least {c['min_length']} {unit}(s), got {n}", f"{n}")
        if "max_length" in c and n > c["max_length"]:
            add(f"max_length {c['max_length']}", f"must have at most {c['max_length']} {unit}(s), got {n}", f"{n}")
    return problems


def validate_inputs(
    sig_json: Mapping[str, Any], inputs: Mapping[str, Any], *, key: str | None = None
) -> dict[str, Any]:
    """Checks and coerces the inputs of a request against its signature, the way the TypeScript side does before
    publishing: missing inputs (a field whose type is optional may be omitted), unexpected inputs, values of
    the wrong type (coerced with DSPy's ``parse_value``: ``"3"`` -> 3 for an int, JSON text for a list), and
    constraints. Inputs typed ``str`` take any non-null value unchanged (DSPy formats it). Raises
    ValidationError with ``field`` set and every problem in ``details["problems"]``.

    Validators are compiled once per signature; pass ``key`` (from `SignatureCache.get_or_build`) to skip
    hashing the signature again."""
    checks = _compile_inputs(sig_json, key)
    if not isinstance(inputs, Mapping):
        raise ValidationError(
            f"inputs: must be an object mapping field names to values, got {_describe(inputs)}", field="inputs"
        )
    problems: list[dict[str, Any]] = []
    out: dict[str, Any] = {}
    for check in checks:
        if check.name not in inputs:
            if check.required:
                problems.append(
                    {
                        "field": check.name,
                        "path": check.name,
                        "code": "missing",
                        "expected": format_type(check.expr),
                        "message": f"missing input '{check.name}' ({format_type(check.expr)})",
                    }
                )
            continue
        value = inputs[check.name]
        if value is None:
            if check.nullable:
                out[check.name] = None
            else:
                problems.append(
                    {
                        "field": check.name,
                        "path": check.name,
                        "code": "type",
                        "expected": format_type(check.expr),
                        "got": "null",
                        "message": f"input '{check.name}': expected {format_type(check.expr)}, got null",
                    }
                )
            continue
        if check.pass_through:
            out[check.name] = value
            continue
        if check.expr["kind"] in ("image", "audio"):
            out[check.name] = to_media(check.expr["kind"], value, check.name)  # typed errors naming the field
            continue
        try:
            coerced = check.coerce(value)
        except pydantic.ValidationError as exc:
            seen: set[str] = set()
            for err in exc.errors():
                path = _path(check.name, _union_loc(check.expr, tuple(err["loc"])))
                if path in seen:  # one problem per union: pydantic reports one per member tried
                    continue
                seen.add(path)
                problems.append(
                    {
                        "field": check.name,
                        "path": path,
                        "code": "type",
                        "expected": format_type(check.expr) if path == check.name else None,
                        "got": _describe(err["input"]),
                        "message": f"input '{path}': {err['msg']}",
                    }
                )
            continue
        except (ValueError, TypeError) as exc:
            problems.append(
                {
                    "field": check.name,
                    "path": check.name,
                    "code": "type",
                    "expected": format_type(check.expr),
                    "got": _describe(value),
                    "message": f"input '{check.name}': expected {format_type(check.expr)}, got {_describe(value)} "
                    f"({exc})",
                }
            )
            continue
        constraint_problems = _constraint_problems(check, coerced)
        if constraint_problems:
            problems.extend(constraint_problems)
            continue
        out[check.name] = coerced
    names = [c.name for c in checks]
    for key in inputs:
        if key not in names:
            problems.append(
                {
                    "field": key,
                    "path": key,
                    "code": "unexpected",
                    "message": f"unexpected input '{key}'; the signature's inputs are {', '.join(names)}",
                }
            )
    if problems:
        for p in problems:
            if p.get("expected") is None:
                p.pop("expected", None)
        message = (
            problems[0]["message"]
            if len(problems) == 1
            else f"{len(problems)} problems with the inputs: " + "; ".join(p["message"] for p in problems)
        )
        raise ValidationError(message, field=str(problems[0]["field"]), details={"side": "input", "problems": problems})
    return out
