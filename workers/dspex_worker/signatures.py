"""Signature classes from the wire format, and input validation.

A signature arrives as data (schemas/signature.schema.json): ``{instructions?, inputs: [Field], outputs: [Field]}``
with ``Field = {name, type, desc?, prefix?, constraints?}`` and ``type`` a type expression such as
``{"kind": "list", "items": {"kind": "str"}}``. `build_signature` turns it into a real ``dspy.Signature`` class
through the dict form of ``make_signature`` with real Python types (``list[str]``, ``typing.Literal[...]``,
``typing.Optional[...]``) -- never string evaluation or DSPy's stack-frame type resolution.

The rules here mirror services/shared/src/signature (wire.ts, validate.ts) so that the TypeScript side rejects
before publishing what the worker would reject.
"""

from __future__ import annotations

import hashlib
import json
import keyword
import math
import re
import threading
import types
import typing
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import dspy  # type: ignore[import-untyped,unused-ignore]
import pydantic
from dspy.adapters.utils import parse_value  # type: ignore[import-untyped,unused-ignore]
from dspy.signatures.signature import make_signature  # type: ignore[import-untyped,unused-ignore]
from dspy.utils.constants import IS_TYPE_UNDEFINED  # type: ignore[import-untyped,unused-ignore]

from .errors import ValidationError

__all__ = [
    "CONSTRAINT_KEYS",
    "RESERVED_FIELD_NAMES",
    "SignatureCache",
    "build_signature",
    "check_signature",
    "format_type",
    "signature_key",
    "type_from_expr",
    "validate_inputs",
]

# Constraint keys in the order DSPy lists them (dspy/signatures/field.py PYDANTIC_CONSTRAINT_MAP).
CONSTRAINT_KEYS: Final = ("gt", "ge", "lt", "le", "min_length", "max_length")
_RANGE_KEYS: Final = frozenset({"gt", "ge", "lt", "le"})

# Names DSPy 3.4 / pydantic 2 fail on as field names (checked against real DSPy).
RESERVED_FIELD_NAMES: Final = frozenset(
    {
        "fields",
        "input_fields",
        "output_fields",
        "instructions",
        "signature",
        "model_config",
        "model_dump",
        "model_dump_json",
        "model_validate",
        "model_validate_json",
        "model_validate_strings",
    }
)

_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TYPE_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "str": (),
    "int": (),
    "float": (),
    "bool": (),
    "any": (),
    "list": ("items",),
    "dict": ("keys", "values"),
    "optional": ("inner",),
    "literal": ("values",),
}
_DICT_KEY_KINDS: Final = frozenset({"str", "int", "float", "bool", "literal", "any"})
_FIELD_KEYS: Final = frozenset({"name", "type", "desc", "prefix", "constraints"})
_SIGNATURE_KEYS: Final = frozenset({"instructions", "inputs", "outputs"})
_SCALARS: Final[dict[str, Any]] = {"str": str, "int": int, "float": float, "bool": bool, "any": Any}

# typing special forms subscripted with run-time values (typed Any so that mypy accepts the subscription).
_LITERAL: Final[Any] = Literal
_OPTIONAL: Final[Any] = typing.Optional


def _kind_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _fail(path: str, message: str) -> typing.NoReturn:
    raise ValidationError(f"{path}: {message}", field=path)


def field_name_problem(name: str) -> str | None:
    """Why `name` cannot be a signature field name, or None when it can."""
    if not name:
        return "a field name must not be empty"
    if not _NAME_RE.fullmatch(name):
        return f"'{name}' is not a valid field name (names are ASCII identifiers: letters, digits and '_')"
    if keyword.iskeyword(name):
        return f"'{name}' is a Python keyword and cannot be a field name"
    if name.startswith("_"):
        return f"field name '{name}' starts with an underscore, which pydantic does not allow"
    if name in RESERVED_FIELD_NAMES:
        return f"'{name}' is reserved by DSPy and cannot be a field name"
    return None


def format_type(expr: Mapping[str, Any]) -> str:
    """A (checked) type expression in DSPy/Python notation: ``list[str]``, ``Optional[int]``."""
    kind = expr["kind"]
    if kind == "any":
        return "Any"
    if kind == "list":
        return f"list[{format_type(expr['items'])}]"
    if kind == "dict":
        return f"dict[{format_type(expr['keys'])}, {format_type(expr['values'])}]"
    if kind == "optional":
        return f"Optional[{format_type(expr['inner'])}]"
    if kind == "literal":
        return f"Literal[{', '.join(repr(v) for v in expr['values'])}]"
    return str(kind)


def _check_type(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        _fail(path, f"expected a type expression object, got {_kind_of(value)}")
    kind = value.get("kind")
    if not isinstance(kind, str) or kind not in _TYPE_KEYS:
        _fail(
            f"{path}.kind",
            f"unknown type kind {json.dumps(kind, default=repr)}; expected one of {', '.join(_TYPE_KEYS)}",
        )
    allowed = _TYPE_KEYS[kind]
    for key in value:
        if key != "kind" and key not in allowed:
            _fail(f"{path}.{key}", f"unexpected key for a '{kind}' type")
    if kind == "list":
        return {"kind": kind, "items": _check_type(value.get("items"), f"{path}.items")}
    if kind == "dict":
        keys = _check_type(value.get("keys"), f"{path}.keys")
        if keys["kind"] not in _DICT_KEY_KINDS:
            _fail(f"{path}.keys", f"dict keys must be str, int, float, bool, any or literal, not {format_type(keys)}")
        return {"kind": kind, "keys": keys, "values": _check_type(value.get("values"), f"{path}.values")}
    if kind == "optional":
        return {"kind": kind, "inner": _check_type(value.get("inner"), f"{path}.inner")}
    if kind == "literal":
        values = value.get("values")
        if not isinstance(values, list | tuple) or not values:
            _fail(f"{path}.values", "a literal type needs a non-empty array of values")
        out: list[str | int | float | bool] = []
        for i, v in enumerate(values):
            ok = isinstance(v, str | bool | int) or (isinstance(v, float) and math.isfinite(v))
            if not ok:
                _fail(
                    f"{path}.values[{i}]",
                    f"literal values must be strings, finite numbers or booleans, got {_kind_of(v)}",
                )
            if not any(type(x) is type(v) and x == v for x in out):
                out.append(v)
        return {"kind": kind, "values": out}
    return {"kind": kind}


def _inner_kind(expr: Mapping[str, Any]) -> str:
    while expr["kind"] == "optional":
        expr = expr["inner"]
    return str(expr["kind"])


def _check_constraints(value: object, type_: Mapping[str, Any], path: str) -> dict[str, int | float] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        _fail(path, f"expected an object, got {_kind_of(value)}")
    for key in value:
        if key not in CONSTRAINT_KEYS:
            _fail(f"{path}.{key}", f"unknown constraint; expected one of {', '.join(CONSTRAINT_KEYS)}")
    kind = _inner_kind(type_)
    numeric = kind in ("int", "float")
    sized = kind in ("str", "list", "dict")
    out: dict[str, int | float] = {}
    for key in CONSTRAINT_KEYS:
        if key not in value:
            continue
        v = value[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            _fail(f"{path}.{key}", f"expected a finite number, got {_kind_of(v)}")
        if key in _RANGE_KEYS:
            if not numeric:
                _fail(f"{path}.{key}", f"range constraints apply to int and float fields, not {format_type(type_)}")
            out[key] = v
        else:
            if (isinstance(v, float) and not v.is_integer()) or v < 0:
                _fail(f"{path}.{key}", "a length must be a non-negative integer")
            if not sized:
                _fail(
                    f"{path}.{key}",
                    f"length constraints apply to str, list and dict fields, not {format_type(type_)}",
                )
            out[key] = int(v)
    inf = math.inf
    lower = max(out.get("ge", -inf), out.get("gt", -inf))
    upper = min(out.get("le", inf), out.get("lt", inf))
    lower_exclusive = "gt" in out and out["gt"] >= out.get("ge", -inf)
    upper_exclusive = "lt" in out and out["lt"] <= out.get("le", inf)
    if lower > upper or (lower == upper and (lower_exclusive or upper_exclusive)):
        _fail(path, "no value satisfies these range constraints")
    if "min_length" in out and "max_length" in out and out["min_length"] > out["max_length"]:
        _fail(path, "min_length is greater than max_length")
    return out or None


def _check_field(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        _fail(path, f"expected a field object, got {_kind_of(value)}")
    for key in value:
        if key not in _FIELD_KEYS:
            _fail(f"{path}.{key}", "unexpected key in a field")
    name = value.get("name")
    if not isinstance(name, str):
        _fail(f"{path}.name", f"expected a string, got {_kind_of(name)}")
    problem = field_name_problem(name)
    if problem:
        _fail(f"{path}.name", problem)
    type_ = _check_type(value.get("type"), f"{path}.type")
    field: dict[str, Any] = {"name": name, "type": type_}
    for key in ("desc", "prefix"):
        if key in value:
            v = value[key]
            if not isinstance(v, str):
                _fail(f"{path}.{key}", f"expected a string, got {_kind_of(v)}")
            field[key] = v
    constraints = _check_constraints(value.get("constraints"), type_, f"{path}.constraints")
    if constraints:
        field["constraints"] = constraints
    return field


def check_signature(sig: object, path: str = "signature") -> dict[str, Any]:
    """Checks a wire signature; returns a normalised copy. Raises ValidationError naming the offending path,
    e.g. ``signature.outputs[1].type``."""
    if not isinstance(sig, Mapping):
        _fail(path, f"expected a signature object, got {_kind_of(sig)}")
    for key in sig:
        if key not in _SIGNATURE_KEYS:
            _fail(f"{path}.{key}", "unexpected key in a signature")
    out: dict[str, Any] = {}
    if "instructions" in sig:
        instructions = sig["instructions"]
        if not isinstance(instructions, str):
            _fail(f"{path}.instructions", f"expected a string, got {_kind_of(instructions)}")
        out["instructions"] = instructions
    seen: dict[str, str] = {}
    for side in ("inputs", "outputs"):
        fields = sig.get(side)
        if not isinstance(fields, list | tuple):
            _fail(f"{path}.{side}", f"expected an array of fields, got {_kind_of(fields)}")
        if not fields:
            _fail(f"{path}.{side}", f"a signature needs at least one {side[:-1]}")
        checked = []
        for i, raw in enumerate(fields):
            field_path = f"{path}.{side}[{i}]"
            field = _check_field(raw, field_path)
            previous = seen.get(field["name"])
            if previous is not None:
                if previous.startswith(f"{path}.{side}"):
                    _fail(f"{field_path}.name", f"duplicate field '{field['name']}' (also {previous})")
                _fail(
                    f"{field_path}.name",
                    f"field '{field['name']}' is both an input and an output (also {previous})",
                )
            seen[field["name"]] = field_path
            checked.append(field)
        out[side] = checked
    return out


def type_from_expr(expr: Mapping[str, Any]) -> Any:
    """The Python type of a checked type expression: ``list[str]``, ``dict[str, int]``, ``Optional[X]``,
    ``Literal['a', 'b']``, ``typing.Any``."""
    kind = expr["kind"]
    scalar = _SCALARS.get(kind)
    if scalar is not None:
        return scalar
    if kind == "list":
        return types.GenericAlias(list, (type_from_expr(expr["items"]),))
    if kind == "dict":
        return types.GenericAlias(dict, (type_from_expr(expr["keys"]), type_from_expr(expr["values"])))
    if kind == "optional":
        return _OPTIONAL[type_from_expr(expr["inner"])]
    if kind == "literal":
        return _LITERAL[tuple(expr["values"])]
    raise ValidationError(f"unknown type kind {kind!r}", field="type.kind")


def signature_key(sig: Mapping[str, Any]) -> str:
    """A deterministic cache key: sha256 of the canonical JSON (sorted keys, compact) of the signature."""
    try:
        text = json.dumps(sig, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"signature is not plain JSON data: {exc}", field="signature") from exc
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_signature(sig: Mapping[str, Any]) -> type[dspy.Signature]:
    """A ``dspy.Signature`` class from a wire signature (the same fields, order, types and instructions as
    ``dspy.Signature(text, instructions)`` for the string the signature was parsed from).

    Constraints become pydantic ``Field`` kwargs of ``dspy.InputField``/``dspy.OutputField`` (DSPy also renders
    them as a "Constraints:" line in the prompt). Inputs typed ``str`` are marked as DSPy marks untyped fields, so
    DSPy does not warn when a list is passed to them (it formats lists as numbered lists)."""
    checked = check_signature(sig)
    fields: dict[str, tuple[Any, Any]] = {}
    prefixes: dict[str, str] = {}
    for side in ("inputs", "outputs"):
        for f in checked[side]:
            kwargs: dict[str, Any] = {}
            if "desc" in f:
                kwargs["desc"] = f["desc"]
            kwargs.update(f.get("constraints") or {})
            if side == "inputs":
                kwargs[IS_TYPE_UNDEFINED] = f["type"]["kind"] == "str"
                field_info = dspy.InputField(**kwargs)
            else:
                field_info = dspy.OutputField(**kwargs)
            fields[f["name"]] = (type_from_expr(f["type"]), field_info)
            if "prefix" in f:
                prefixes[f["name"]] = f["prefix"]
    try:
        cls: type[dspy.Signature] = make_signature(fields, checked.get("instructions"))
    except (TypeError, ValueError, pydantic.PydanticUserError) as exc:  # pragma: no cover - checked above
        raise ValidationError(f"DSPy rejected the signature: {exc}", field="signature") from exc
    # `prefix` is deprecated as an InputField/OutputField argument (it warns); set it where DSPy keeps it.
    for name, prefix in prefixes.items():
        extra = cls.model_fields[name].json_schema_extra
        if isinstance(extra, dict):
            extra["prefix"] = prefix
    return cls


class SignatureCache:
    """A bounded, thread-safe LRU of built signature classes keyed by `signature_key`."""

    def __init__(self, maxsize: int = 256) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[str, type[dspy.Signature]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get_or_build(self, sig: Mapping[str, Any]) -> tuple[str, type[dspy.Signature]]:
        """Returns ``(key, signature class)``, building and caching the class on a miss."""
        key = signature_key(sig)
        with self._lock:
            cls = self._items.get(key)
            if cls is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return key, cls
            self.misses += 1
        cls = build_signature(sig)
        with self._lock:
            self._items[key] = cls
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return key, cls

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = 0
            self.misses = 0


# ---------------------------------------------------------------------------------------------------------
# Input validation (mirrors services/shared/src/signature/validate.ts).


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
        pass_through=_inner_kind(f["type"]) == "str",
        constraints=f.get("constraints"),
        adapter=pydantic.TypeAdapter(annotation),
        is_literal=f["type"]["kind"] == "literal",
    )


def _compile_inputs(sig: Mapping[str, Any], key: str | None = None) -> tuple[_FieldCheck, ...]:
    if key is None:
        key = signature_key(sig)
    with _VALIDATORS_LOCK:
        found = _VALIDATORS.get(key)
        if found is not None:
            _VALIDATORS.move_to_end(key)
            return found
    checked = check_signature(sig)
    compiled = tuple(_field_check(f) for f in checked["inputs"])
    with _VALIDATORS_LOCK:
        _VALIDATORS[key] = compiled
        while len(_VALIDATORS) > _VALIDATORS_MAX:
            _VALIDATORS.popitem(last=False)
    return compiled


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
            f"inputs must be an object mapping field names to values, got {_describe(inputs)}", field="inputs"
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
        try:
            coerced = check.coerce(value)
        except pydantic.ValidationError as exc:
            for err in exc.errors():
                path = _path(check.name, tuple(err["loc"]))
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
