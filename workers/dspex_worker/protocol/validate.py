"""Checks against the wire contract with the validators generated from schemas/ (fastjsonschema): a failure is
a ValidationError whose `field` is the path of the offending value (`module.n`, `compile.options.auto`), the
same path the TypeScript client reports for the same mistake. Defaults of the schemas are filled in."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastjsonschema import JsonSchemaValueException

from .generated.errors import ValidationError
from .generated.ops import MODULE_OPTIONS, OPERATION_REQUIRES
from .generated.validators_compile import validate as _compile
from .generated.validators_job_progress import validate as _job_progress
from .generated.validators_job_record import validate as _job_record
from .generated.validators_request import validate as _request
from .generated.validators_signature import validate as _signature

_PREFIX = re.compile(r"^data(\.|\[|$)")


def _path(prefix: str, parts: list[Any]) -> str:
    path = prefix
    for part in parts[1:]:  # parts[0] is "data"
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def _error(exc: JsonSchemaValueException, prefix: str) -> ValidationError:
    parts = list(exc.path or ["data"])
    text = exc.message or "is invalid"
    missing = re.search(r"must contain \['([^']+)'\] properties", text)
    extra = re.search(r"must not contain \{'([^']+)'\} properties", text)
    if missing:
        parts.append(missing.group(1))
        field = _path(prefix, parts)
        return ValidationError(f"`{field}` is required", field=field, details={"rule": exc.rule})
    if extra:
        parts.append(extra.group(1))
        field = _path(prefix, parts)
        return ValidationError(f"unknown option `{field}`", field=field, details={"rule": exc.rule})
    field = _path(prefix, parts)
    # "data.module.n must be smaller than or equal to 20" -> "`module.n` must be smaller than or equal to 20"
    rest = text.split(" ", 1)[1] if _PREFIX.match(text) else text
    return ValidationError(f"`{field}` {rest}", field=field or None, details={"rule": exc.rule})


def check(validate: Callable[[Any], Any], value: Any, prefix: str) -> Any:
    """Runs a generated validator; returns the value with the schema's defaults filled in."""
    try:
        return validate(value)
    except JsonSchemaValueException as exc:
        raise _error(exc, prefix) from None


def check_request(body: Any) -> dict[str, Any]:
    """The envelope (the signature and the op's options are checked by check_signature / check_module_options)."""
    checked: dict[str, Any] = check(_request, body, "")
    for name in OPERATION_REQUIRES.get(checked["op"], ()):
        if checked.get(name) is None:
            raise ValidationError(f"op {checked['op']!r} needs `{name}`", field=name)
    return checked


def check_signature(signature: Any, prefix: str = "signature") -> dict[str, Any]:
    result: dict[str, Any] = check(_signature, signature, prefix)
    return result


def check_module_options(op: str, options: Any, prefix: str = "module") -> dict[str, Any]:
    result: dict[str, Any] = check(MODULE_OPTIONS[op], {} if options is None else options, prefix)
    return result


def check_compile(spec: Any, prefix: str = "compile") -> dict[str, Any]:
    result: dict[str, Any] = check(_compile, spec, prefix)
    return result


def check_job_record(record: Any) -> dict[str, Any]:
    result: dict[str, Any] = check(_job_record, record, "")
    return result


def check_job_progress(event: Any) -> dict[str, Any]:
    result: dict[str, Any] = check(_job_progress, event, "")
    return result
