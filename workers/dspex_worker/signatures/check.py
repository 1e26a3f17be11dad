"""What makes a wire signature usable by DSPy, and the Python types of its type expressions.

The shape (keys, field objects, type expressions, constraint keys and their JSON types) is the schema's:
`protocol.check_signature` (schemas/signature.schema.json). The rules here are those a schema cannot say,
checked against real DSPy 3.4 / pydantic 2, and mirrored by services/shared/src/signature so that the
TypeScript side rejects before publishing what the worker would reject: field names DSPy or Python refuse,
a name used twice, dict key types pydantic cannot parse, non-finite literal values, constraints that do not
apply to the field's type or that no value satisfies. Every error is a ValidationError whose `field` is the
path (`signature.outputs[1].type.keys`) and whose message starts with it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import keyword
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Final, Literal

import dspy
import pydantic

from ..protocol import check_signature as check_signature_shape
from ..protocol.errors import ValidationError

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

# How deep object types nest (an object in an object's field is one level), as the TypeScript side checks.
MAX_OBJECT_DEPTH: Final = 8

_DICT_KEY_KINDS: Final = frozenset({"str", "int", "float", "bool", "literal", "any"})
_SCALARS: Final[dict[str, Any]] = {"str": str, "int": int, "float": float, "bool": bool, "any": Any}

# typing special forms subscripted with run-time values (typed Any so that mypy accepts the subscription).
_LITERAL: Final[Any] = Literal
_OPTIONAL: Final[Any] = typing.Optional
_UNION: Final[Any] = typing.Union


def _fail(path: str, message: str) -> typing.NoReturn:
    raise ValidationError(f"{path}: {message}", field=path)


def field_name_problem(name: str) -> str | None:
    """Why `name` (an identifier, as the schema's pattern requires) cannot be a field name, or None."""
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
    if kind == "union":
        return f"Union[{', '.join(format_type(m) for m in expr['members'])}]"
    if kind == "object":
        return str(expr["name"])
    if kind in ("history", "image", "audio"):
        return str(kind).capitalize()
    return str(kind)


def inner_kind(expr: Mapping[str, Any]) -> str:
    """The kind under any number of `optional`s."""
    while expr["kind"] == "optional":
        expr = expr["inner"]
    return str(expr["kind"])


def _object(expr: Mapping[str, Any], path: str, depth: int, scope: tuple[str, ...]) -> dict[str, Any]:
    """An object type: unique field names pydantic accepts, nesting at most MAX_OBJECT_DEPTH deep."""
    if depth > MAX_OBJECT_DEPTH:
        _fail(path, f"objects nest at most {MAX_OBJECT_DEPTH} deep")
    fields: list[dict[str, Any]] = []
    for i, f in enumerate(expr["fields"]):
        where = f"{path}.fields[{i}]"
        if f["name"].startswith("_") or keyword.iskeyword(f["name"]):
            _fail(f"{where}.name", f"'{f['name']}' cannot be a pydantic field name")
        if any(g["name"] == f["name"] for g in fields):
            _fail(f"{where}.name", f"duplicate field '{f['name']}'")
        out: dict[str, Any] = {
            "name": f["name"],
            "type": _type(f["type"], f"{where}.type", depth, (*scope, expr["name"])),
        }
        if "desc" in f:
            out["desc"] = f["desc"]
        if f.get("required") is False:
            out["required"] = False
        if constraints := _constraints(f.get("constraints") or {}, out["type"], f"{where}.constraints"):
            out["constraints"] = constraints
        fields.append(out)
    checked: dict[str, Any] = {"kind": "object", "name": expr["name"], "fields": fields}
    if "description" in expr:
        checked["description"] = expr["description"]
    return checked


def _type(expr: Mapping[str, Any], path: str, depth: int = 0, scope: tuple[str, ...] = ()) -> dict[str, Any]:
    """A shape-checked type expression, normalised (literal values without repeats)."""
    kind = expr["kind"]
    if kind == "object":
        return _object(expr, path, depth + 1, scope)
    if kind == "ref":
        if expr["name"] not in scope:
            _fail(f"{path}.name", f"a ref names an enclosing object type ({', '.join(scope) or 'none here'})")
        return {"kind": kind, "name": expr["name"]}
    if kind == "list":
        return {"kind": kind, "items": _type(expr["items"], f"{path}.items", depth, scope)}
    if kind == "dict":
        keys = _type(expr["keys"], f"{path}.keys", depth, scope)
        if keys["kind"] not in _DICT_KEY_KINDS:
            _fail(f"{path}.keys", f"dict keys must be str, int, float, bool, any or literal, not {format_type(keys)}")
        return {"kind": kind, "keys": keys, "values": _type(expr["values"], f"{path}.values", depth, scope)}
    if kind == "optional":
        return {"kind": kind, "inner": _type(expr["inner"], f"{path}.inner", depth, scope)}
    if kind == "literal":
        values: list[str | int | float | bool] = []
        for i, v in enumerate(expr["values"]):
            if isinstance(v, float) and not math.isfinite(v):  # msgpack carries them; JSON and DSPy do not
                _fail(f"{path}.values[{i}]", f"literal values must be finite, got {v}")
            if not any(type(x) is type(v) and x == v for x in values):
                values.append(v)
        return {"kind": kind, "values": values}
    if kind == "union":
        # one spelling per Python type: Union[A, B, None] is optional(union(A, B)), nested unions are flattened
        members: list[dict[str, Any]] = []
        for i, m in enumerate(expr["members"]):
            member = _type(m, f"{path}.members[{i}]", depth, scope)
            if member["kind"] == "optional":
                _fail(f"{path}.members[{i}]", "a union member cannot be optional; wrap the union in optional instead")
            if member["kind"] == "union":
                _fail(f"{path}.members[{i}]", "a union member cannot be a union; list its members instead")
            if any(_same_type(member, x) for x in members):
                _fail(f"{path}.members[{i}]", f"duplicate union member {format_type(member)}")
            members.append(member)
        return {"kind": kind, "members": members}
    return {"kind": kind}


def _same_type(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two checked type expressions are one Python type (unions compare as sets, as typing's do)."""
    try:
        return bool(type_from_expr(a) == type_from_expr(b))
    except TypeError:  # pragma: no cover - every checked expression builds
        return False


def _constraints(value: Mapping[str, Any], type_: Mapping[str, Any], path: str) -> dict[str, int | float]:
    kind = inner_kind(type_)
    out: dict[str, int | float] = {}
    for key in CONSTRAINT_KEYS:
        if key not in value:
            continue
        v = value[key]
        if not math.isfinite(v):
            _fail(f"{path}.{key}", f"expected a finite number, got {v}")
        if key in _RANGE_KEYS and kind not in ("int", "float"):
            _fail(f"{path}.{key}", f"range constraints apply to int and float fields, not {format_type(type_)}")
        if key not in _RANGE_KEYS and kind not in ("str", "list", "dict"):
            _fail(f"{path}.{key}", f"length constraints apply to str, list and dict fields, not {format_type(type_)}")
        out[key] = v if key in _RANGE_KEYS else int(v)
    inf = math.inf
    lower = max(out.get("ge", -inf), out.get("gt", -inf))
    upper = min(out.get("le", inf), out.get("lt", inf))
    lower_exclusive = "gt" in out and out["gt"] >= out.get("ge", -inf)
    upper_exclusive = "lt" in out and out["lt"] <= out.get("le", inf)
    if lower > upper or (lower == upper and (lower_exclusive or upper_exclusive)):
        _fail(path, "no value satisfies these range constraints")
    if "min_length" in out and "max_length" in out and out["min_length"] > out["max_length"]:
        _fail(path, "min_length is greater than max_length")
    return out


def check_signature(sig: object, path: str = "signature") -> dict[str, Any]:
    """Checks a wire signature (the schema, then the rules above); returns a normalised copy."""
    shaped = check_signature_shape(sig, path)
    out: dict[str, Any] = {}
    if "instructions" in shaped:
        out["instructions"] = shaped["instructions"]
    seen: dict[str, str] = {}
    for side in ("inputs", "outputs"):
        checked = []
        for i, raw in enumerate(shaped[side]):
            field_path = f"{path}.{side}[{i}]"
            name = raw["name"]
            if problem := field_name_problem(name):
                _fail(f"{field_path}.name", problem)
            previous = seen.get(name)
            if previous is not None:
                if previous.startswith(f"{path}.{side}"):
                    _fail(f"{field_path}.name", f"duplicate field '{name}' (also {previous})")
                _fail(f"{field_path}.name", f"field '{name}' is both an input and an output (also {previous})")
            seen[name] = field_path
            field: dict[str, Any] = {"name": name, "type": _type(raw["type"], f"{field_path}.type")}
            if side == "outputs" and field["type"]["kind"] in ("history", "image", "audio"):
                _fail(f"{field_path}.type", f"{format_type(field['type'])} is an input type")
            field.update({k: raw[k] for k in ("desc", "prefix") if k in raw})
            if constraints := _constraints(raw.get("constraints") or {}, field["type"], f"{field_path}.constraints"):
                field["constraints"] = constraints
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
    if kind == "union":
        return _UNION[tuple(type_from_expr(m) for m in expr["members"])]
    if kind == "object":
        return _model(json.dumps(expr, sort_keys=True, separators=(",", ":")))
    if kind == "ref":
        return typing.ForwardRef(expr["name"])  # resolved when the enclosing model is built (`_model`)
    if kind == "history":
        return dspy.History
    if kind == "image":
        return dspy.Image
    if kind == "audio":
        return dspy.Audio
    raise ValidationError(f"type.kind: unknown type kind {kind!r}", field="type.kind")


@functools.lru_cache(maxsize=512)
def _model(canonical: str) -> type[pydantic.BaseModel]:
    """The pydantic model of a checked object type (its canonical JSON: one class per distinct type, so a cached
    signature class and its nested models are built once)."""
    expr = json.loads(canonical)
    fields: dict[str, Any] = {}
    for f in expr["fields"]:
        kwargs: dict[str, Any] = dict(f.get("constraints") or {})
        if "desc" in f:
            kwargs["description"] = f["desc"]
        annotation = type_from_expr(f["type"])
        if f.get("required", True):
            fields[f["name"]] = (annotation, pydantic.Field(**kwargs))
        else:
            fields[f["name"]] = (_OPTIONAL[annotation], pydantic.Field(default=None, **kwargs))
    model: type[pydantic.BaseModel] = pydantic.create_model(expr["name"], __doc__=expr.get("description"), **fields)
    if refers(expr):  # a recursive model: resolve the references to it (and to enclosing ones) now
        namespace = {expr["name"]: model}
        for nested in _nested_models(expr):
            namespace.setdefault(nested.__name__, nested)
        # a model inside refers to one enclosing it that may not exist yet: the outermost rebuild resolves all
        for candidate in (*_nested_models(expr), model):
            candidate.model_rebuild(force=True, raise_errors=False, _types_namespace=namespace)
    return model


def _inner_types(expr: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The type expressions directly inside a type: an object's field types, a list's items, a dict's keys and
    values, an optional's inner type, a union's members."""
    kind = expr["kind"]
    if kind == "object":
        return [f["type"] for f in expr["fields"]]
    if kind == "union":
        return list(expr["members"])
    if kind == "list":
        return [expr["items"]]
    if kind == "dict":
        return [expr["keys"], expr["values"]]
    if kind == "optional":
        return [expr["inner"]]
    return []


def refers(expr: Mapping[str, Any]) -> bool:
    """Whether a type holds a `ref` anywhere inside (a recursive model), by its structure: a field or model named
    `ref` is not one."""
    return expr["kind"] == "ref" or any(refers(t) for t in _inner_types(expr))


def _nested_models(expr: Mapping[str, Any]) -> list[type[pydantic.BaseModel]]:
    """The models of the object types inside an object type's fields (built, so cached)."""
    out: list[type[pydantic.BaseModel]] = []

    def walk(t: Mapping[str, Any]) -> None:
        if t["kind"] == "object":
            out.append(_model(json.dumps(t, sort_keys=True, separators=(",", ":"))))
        for inner in _inner_types(t):
            walk(inner)

    for inner in _inner_types(expr):
        walk(inner)
    return out


def signature_key(sig: Mapping[str, Any]) -> str:
    """A deterministic cache key: sha256 of the canonical JSON (sorted keys, compact) of the signature."""
    try:
        text = json.dumps(sig, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"signature: not plain JSON data: {exc}", field="signature") from exc
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
