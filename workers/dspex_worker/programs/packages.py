"""Users' own DSPy programs (`dspy.Module` subclasses), loaded only from what the deployment declares: the
Python entry point group `dspex.programs` of the installed packages, and the `DSPEX_PROGRAMS` allow-list
(`package.module:Class`, comma-separated). Nothing is imported by a name arriving on the bus.

Each program is instantiated once with its constructor options — `DSPEX_PROGRAM_OPTIONS`, a JSON object of
keyword arguments per program name (`{"docs_rag": {"k": 5}}`) — and described for the worker's ready/status info
as wire data: name, package version, pool, its input/output fields as wire type expressions (from a class-level
`signature` attribute; else the annotations of `forward` when it returns a TypedDict — parameters are the
inputs, the TypedDict's keys the outputs; else the signature of its single predictor), and its predictors'
names. A program that fails to import, to construct with its options, or whose signature cannot be expressed on
the wire is reported with the reason; the others are still served."""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import inspect
import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import dspy
import pydantic

from ..protocol.errors import ProgramError, UnknownProgram, ValidationError
from ..signatures.check import MAX_OBJECT_DEPTH, check_signature
from ..signatures.inputs import validate_inputs
from .graph import module_graph

GROUP: Final = "dspex.programs"
ENV_VAR: Final = "DSPEX_PROGRAMS"
OPTIONS_VAR: Final = "DSPEX_PROGRAM_OPTIONS"
POOLS: Final = frozenset({"general", "optimizer", "gpu"})
_SCALARS: Final[dict[Any, str]] = {str: "str", int: "int", float: "float", bool: "bool", Any: "any"}


@dataclass
class Program:
    name: str
    cls: type[dspy.Module]
    info: dict[str, Any]
    # the instance the worker serves: built once at start (as dspy.Evaluate shares one program across its
    # threads, concurrent requests share it)
    instance: dspy.Module


@dataclass
class Catalog:
    programs: dict[str, Program] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)

    def advertisement(self) -> dict[str, Any]:
        return {"programs": [p.info for p in self.programs.values()], "failures": list(self.failures)}

    def get(self, name: str) -> Program:
        """The program served under `name`; UnknownProgram listing the available ones otherwise."""
        program = self.programs.get(name)
        if program is None:
            available = sorted(self.programs)
            raise UnknownProgram(
                f"program: {name!r} is not served here; available: {', '.join(available) or 'none'}",
                field="program",
                details={"available": available},
            )
        return program


def check_inputs(program: Program, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs checked and coerced against the program's advertised fields (ValidationError naming one)."""
    return validate_inputs({"inputs": program.info["inputs"], "outputs": program.info["outputs"]}, inputs)


def check_outputs(program: Program, outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The declared outputs of a program's result; a field it did not declare is a ValidationError naming it."""
    declared = [f["name"] for f in program.info["outputs"]]
    for name in outputs:
        if name not in declared:
            raise ValidationError(
                f"outputs.{name}: program {program.name!r} returned a field it does not declare "
                f"(declared: {', '.join(declared)})",
                field=f"outputs.{name}",
            )
    return dict(outputs)


def program_error(program: Program, exc: BaseException) -> ProgramError:
    """What the caller sees of an exception a program raised: its type and message, never the traceback."""
    return ProgramError(
        f"program {program.name!r} raised {type(exc).__name__}: {exc}",
        details={"exception": type(exc).__name__, "program": program.name},
    )


_CONSTRAINT_ATTRS: Final = (("gt", "gt"), ("ge", "ge"), ("lt", "lt"), ("le", "le"))


def _model_wire(model: type[pydantic.BaseModel], depth: int, enclosing: tuple[type, ...]) -> dict[str, Any]:
    """A pydantic model as an object type: its fields with their types, descriptions, requiredness and the
    range/length constraints pydantic keeps in their metadata."""
    if depth > MAX_OBJECT_DEPTH:
        raise ValueError(f"model {model.__name__} nests deeper than {MAX_OBJECT_DEPTH} (or refers to itself)")
    fields: list[dict[str, Any]] = []
    for name, info in model.model_fields.items():
        field: dict[str, Any] = {"name": name, "type": wire_type(info.annotation, depth, (*enclosing, model))}
        if info.description:
            field["desc"] = info.description
        if not info.is_required():
            field["required"] = False
        constraints: dict[str, Any] = {}
        for meta in info.metadata:
            for attr, key in _CONSTRAINT_ATTRS:
                if getattr(meta, attr, None) is not None:
                    constraints[key] = getattr(meta, attr)
            if getattr(meta, "min_length", None) is not None:
                constraints["min_length"] = meta.min_length
            if getattr(meta, "max_length", None) is not None:
                constraints["max_length"] = meta.max_length
        if constraints:
            field["constraints"] = constraints
        fields.append(field)
    out: dict[str, Any] = {"kind": "object", "name": model.__name__, "fields": fields}
    doc = model.__doc__
    if doc and doc != pydantic.BaseModel.__doc__:
        out["description"] = inspect.cleandoc(doc)
    return out


def wire_type(annotation: Any, depth: int = 0, enclosing: tuple[type, ...] = ()) -> dict[str, Any]:
    """The wire type expression of a Python annotation; ValueError for one the wire cannot carry."""
    scalar = _SCALARS.get(annotation)
    if scalar is not None:
        return {"kind": scalar}
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        if annotation in enclosing:  # a recursive model refers to itself (or to a model enclosing it)
            return {"kind": "ref", "name": annotation.__name__}
        return _model_wire(annotation, depth + 1, enclosing)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and len(args) == 1:
        return {"kind": "list", "items": wire_type(args[0], depth, enclosing)}
    if origin is dict and len(args) == 2:
        keys, values = wire_type(args[0], depth, enclosing), wire_type(args[1], depth, enclosing)
        return {"kind": "dict", "keys": keys, "values": values}
    if origin is typing.Literal:
        return {"kind": "literal", "values": list(args)}
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        inner = args[0] if args[1] is type(None) else args[1]
        return {"kind": "optional", "inner": wire_type(inner, depth, enclosing)}
    raise ValueError(f"type {annotation!r} has no wire type")


def _fields(sig: type[dspy.Signature], side: str) -> list[dict[str, Any]]:
    fields = sig.input_fields if side == "inputs" else sig.output_fields
    out = []
    for name, info in fields.items():
        try:
            out.append({"name": name, "type": wire_type(info.annotation)})
        except ValueError as exc:
            raise ValueError(f"{side}.{name}: {exc}") from exc
    return out


def _forward_fields(cls: type[dspy.Module]) -> dict[str, Any] | None:
    """Fields from `forward`'s annotations when it returns a TypedDict: its parameters are the inputs, the
    TypedDict's keys the outputs. None when it does not (a `dspy.Prediction` names no fields)."""
    forward = getattr(cls, "forward", None)
    if forward is None:
        return None
    try:
        hints = typing.get_type_hints(forward)
    except Exception as exc:  # an annotation naming something that does not resolve
        raise ValueError(f"forward's annotations do not resolve: {exc}") from exc
    returned = hints.get("return")
    if returned is None or not typing.is_typeddict(returned):
        return None
    inputs = []
    for param in list(inspect.signature(forward).parameters.values())[1:]:  # after self
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.name not in hints:
            raise ValueError(f"forward's parameter {param.name!r} needs a name and a type annotation")
        inputs.append({"name": param.name, "type": _wire(hints[param.name], f"inputs.{param.name}")})
    outputs = [
        {"name": name, "type": _wire(t, f"outputs.{name}")} for name, t in typing.get_type_hints(returned).items()
    ]
    return {"inputs": inputs, "outputs": outputs}


def _wire(annotation: Any, where: str) -> dict[str, Any]:
    try:
        return wire_type(annotation)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def program_signature(cls: type[dspy.Module], instance: dspy.Module) -> dict[str, Any]:
    """The checked wire signature of a program: its class-level `signature`, else `forward`'s annotations (a
    TypedDict return), else its single predictor's."""
    declared = getattr(cls, "signature", None)
    if declared is None and (fields := _forward_fields(cls)) is not None:
        try:
            return check_signature(fields)
        except ValidationError as exc:
            raise ValueError(str(exc)) from exc
    if declared is None:
        predictors = instance.named_predictors()
        if len(predictors) != 1:
            raise ValueError(
                f"declares no class-level `signature` and has {len(predictors)} predictors (needs exactly one)"
            )
        declared = predictors[0][1].signature
    if isinstance(declared, str):
        declared = dspy.Signature(declared)
    if not (isinstance(declared, type) and issubclass(declared, dspy.Signature)):
        raise ValueError(f"`signature` is {type(declared).__name__}, not a dspy.Signature")
    try:
        return check_signature({"inputs": _fields(declared, "inputs"), "outputs": _fields(declared, "outputs")})
    except ValidationError as exc:
        raise ValueError(str(exc)) from exc


class _Versions:
    """A declared program's version: its entry point's distribution, read at once; for a program declared by path
    (DSPEX_PROGRAMS), the distribution that installs its top-level package. That one needs
    `packages_distributions()`, which reads every installed distribution's file list (~0.2 s with DSPy's
    dependencies): computed once per discovery, and only when such a program is declared."""

    def __init__(self) -> None:
        self._by_top: Mapping[str, list[str]] | None = None

    def of(self, module_name: str, dist: metadata.Distribution | None) -> str | None:
        if dist is not None:
            return dist.version
        if self._by_top is None:
            self._by_top = metadata.packages_distributions()
        for name in self._by_top.get(module_name.split(".")[0], []):
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        return None


def _declared(env: Mapping[str, str]) -> list[tuple[str, str, str, metadata.Distribution | None]]:
    """(name, path, source, distribution) of every declared program; the allow-list names a program by its class
    name (and has no distribution: `_Versions` finds it)."""
    out = [(ep.name, ep.value, "entry point", ep.dist) for ep in metadata.entry_points(group=GROUP)]
    for entry in (e.strip() for e in env.get(ENV_VAR, "").split(",")):
        if entry:
            out.append((entry.rpartition(":")[2], entry, ENV_VAR, None))
    return out


def _options(env: Mapping[str, str], names: set[str]) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The constructor options per program name, or the reason they cannot be used."""
    raw = env.get(OPTIONS_VAR, "").strip()
    if not raw:
        return {}, None
    try:
        options = json.loads(raw)
    except json.JSONDecodeError as exc:
        return {}, f"{OPTIONS_VAR} is not JSON: {exc}"
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        return {}, f"{OPTIONS_VAR} must map program names to objects of keyword arguments"
    unknown = sorted(set(options) - names)
    if unknown:
        return {}, f"{OPTIONS_VAR} names programs that are not declared: {', '.join(unknown)}"
    return options, None


def _load(
    name: str, path: str, options: Mapping[str, Any], versions: _Versions, dist: metadata.Distribution | None
) -> Program:
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"{path!r} is not `package.module:Class`")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, dspy.Module)):
        raise ValueError(f"{path!r} is not a dspy.Module subclass")
    pool = getattr(cls, "pool", "general")
    if pool not in POOLS:
        raise ValueError(f"pool {pool!r} is not one of {sorted(POOLS)}")
    instance = cls(**options)
    sig = program_signature(cls, instance)
    info = {
        "name": name,
        "path": path,
        "version": versions.of(module_name, dist),
        "pool": pool,
        "inputs": sig["inputs"],
        "outputs": sig["outputs"],
        "predictors": [n for n, _ in instance.named_predictors()],
        "graph": module_graph(instance),
    }
    return Program(name=name, cls=cls, info=info, instance=instance)


def discover(env: Mapping[str, str] | None = None) -> Catalog:
    """Every declared program, loaded and described; a failure is recorded (name, path, reason), not raised."""
    catalog = Catalog()
    environ = env if env is not None else os.environ
    declared = _declared(environ)
    options, problem = _options(environ, {name for name, _, _, _ in declared})
    versions = _Versions()
    for name, path, source, dist in declared:
        if name in catalog.programs:
            catalog.failures.append({"name": name, "path": path, "error": f"duplicate program name (from {source})"})
            continue
        if problem is not None:  # wrong options would build another program than the operator meant
            catalog.failures.append({"name": name, "path": path, "error": problem})
            continue
        try:
            catalog.programs[name] = _load(name, path, options.get(name, {}), versions, dist)
        except Exception as exc:  # any import/constructor error of user code is reported, never fatal
            catalog.failures.append({"name": name, "path": path, "error": f"{type(exc).__name__}: {exc}"})
    return catalog


def main() -> None:
    """`python -m dspex_worker.programs.packages`: the advertisement of this environment's declared programs as
    JSON on stdout, what `dspex codegen --offline` reads (nothing connects to the bus)."""
    import json
    import sys

    json.dump(discover().advertisement(), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
