"""Checks against the wire contract with the validators generated from schemas/ (fastjsonschema): a failure is
a ValidationError whose `field` is the path of the offending value (`module.n`, `compile.options.auto`), the
same path the TypeScript client reports for the same mistake, and whose message starts with that path. Defaults
of the schemas are filled in.

Only what a schema cannot say is decided here: how a fastjsonschema failure becomes a path (its messages are
parsed, it has no structured "missing property" result), and how a failed tagged union (a oneOf such as a
signature's type expression) is narrowed to the branch its tag selects, so the error names the field inside it."""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from typing import Any, cast

from fastjsonschema import JsonSchemaValueException

from .generated.errors import ValidationError
from .generated.ops import MODULE_OPTIONS, OPERATION_REQUIRES
from .generated.types import RequestEnvelope
from .generated.unions import UNIONS
from .generated.validators import validate_compile as _compile
from .generated.validators import validate_dlq_redacted_body as _dlq_redacted_body
from .generated.validators import validate_job_progress as _job_progress
from .generated.validators import validate_job_record as _job_record
from .generated.validators import validate_lm as _lm
from .generated.validators import validate_lm_profiles as _lm_profiles
from .generated.validators import validate_request as _request
from .generated.validators import validate_signature as _signature

_MISSING = re.compile(r"must contain \['([^']+)'")  # the first missing one
_EXTRA = re.compile(r"must not contain \{'([^']+)'")


def _path(prefix: str, parts: list[Any]) -> str:
    path = prefix
    for part in parts[1:]:  # parts[0] is "data"
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def _narrow(exc: JsonSchemaValueException) -> JsonSchemaValueException | tuple[list[Any], str]:
    """A failed tagged union narrowed to the branch its tag selects (repeatedly: unions nest), or the path and
    problem of a tag no branch has. Anything else is returned as it is."""
    while exc.rule == "oneOf" and isinstance(exc.definition, dict):
        union = UNIONS.get(str(exc.definition.get("title")))
        if union is None or not isinstance(exc.value, dict):
            break
        parts = list(exc.path or ["data"])
        tag = exc.value.get(union.tag)
        branch = union.branches.get(tag) if isinstance(tag, Hashable) else None
        if branch is None:
            expected = ", ".join(str(v) for v in union.branches)
            return [*parts, union.tag], f"unknown {union.tag} {tag!r}; expected one of {expected}"
        try:
            union.validate({branch: exc.value})
        except JsonSchemaValueException as inner:
            # the branch's path starts data.<branch title>: put the union's own path in its place
            where, own = exc.name or "data", f"data.{branch}"
            exc = JsonSchemaValueException(
                (inner.message or "").replace(own, where, 1), value=inner.value,
                name=(inner.name or own).replace(own, where, 1), definition=inner.definition, rule=inner.rule,
            )  # fmt: skip
            continue
        break
    return exc


def _error(exc: JsonSchemaValueException, prefix: str) -> ValidationError:
    narrowed = _narrow(exc)
    if isinstance(narrowed, tuple):
        parts, problem = narrowed
        field = _path(prefix, parts)
        return ValidationError(f"{field}: {problem}", field=field or None, details={"rule": "oneOf"})
    exc = narrowed
    parts = list(exc.path or ["data"])
    text = exc.message or "is invalid"
    details: dict[str, Any] = {"rule": exc.rule}
    if missing := _MISSING.search(text):
        parts.append(missing.group(1))
        problem = "is required"
    elif extra := _EXTRA.search(text):
        parts.append(extra.group(1))
        allowed = sorted((exc.definition or {}).get("properties") or {})
        details["allowed"] = allowed
        problem = f"unknown option; allowed: {', '.join(allowed) or 'none'}"
    else:
        # "data.module.n must be smaller than or equal to 20" -> "must be smaller than or equal to 20"
        problem = text[len(exc.name) :].strip() if exc.name and text.startswith(exc.name) else text
    field = _path(prefix, parts)
    return ValidationError(f"{field or 'body'}: {problem}", field=field or None, details=details)


def check(validate: Callable[[Any], Any], value: Any, prefix: str) -> Any:
    """Runs a generated validator; returns the value with the schema's defaults filled in."""
    try:
        return validate(value)
    except JsonSchemaValueException as exc:
        raise _error(exc, prefix) from None


def check_request(body: Any) -> RequestEnvelope:
    """The envelope. Its parts that are checked once per distinct value or per op are left to check_signature,
    check_lm, check_module_options and check_compile."""
    checked: dict[str, Any] = check(_request, body, "")
    for name in OPERATION_REQUIRES.get(checked["op"], ()):
        if checked.get(name) is None:
            raise ValidationError(f"{name}: op {checked['op']!r} needs it", field=name)
    return cast(RequestEnvelope, checked)


def check_signature(signature: Any, prefix: str = "signature") -> dict[str, Any]:
    result: dict[str, Any] = check(_signature, signature, prefix)
    return result


def check_lm(lm: Any, prefix: str = "lm") -> dict[str, Any]:
    result: dict[str, Any] = check(_lm, lm, prefix)
    return result


def check_lm_profiles(document: Any, prefix: str = "") -> dict[str, Any]:
    """An operator's LM profiles document (lm-profiles.schema.json)."""
    result: dict[str, Any] = check(_lm_profiles, document, prefix)
    return result


def check_dlq_redacted_body(body: Any) -> dict[str, Any]:
    """The body of a redacted dead letter (dlq.schema.json#/definitions/redactedBody)."""
    result: dict[str, Any] = check(_dlq_redacted_body, body, "")
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
