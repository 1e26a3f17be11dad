"""The version-1 wire envelopes (schemas/README.md): msgpack codec, headers, request decoding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from .errors import DecodeError, UnknownOperation, ValidationError, VersionError

ENVELOPE_VERSION = 1
# The DSPy surface (modules.py, optimize.py; docs/dspy-surface.md).
SURFACE_OPERATIONS = (
    "react",
    "program_of_thought",
    "rlm",
    "multi_chain_comparison",
    "best_of_n",
    "refine",
    "parallel",
    "majority",
    "ensemble",
    "compile",
)
OPERATIONS = ("predict", "chain_of_thought", "evaluate", *SURFACE_OPERATIONS)

HEADER_REPLY_TO = "Dspex-Reply-To"
HEADER_MSG_ID = "Nats-Msg-Id"
HEADER_VERSION = "Dspex-Version"
HEADER_DEADLINE = "Dspex-Deadline"
HEADER_SESSION_WORKER = "Dspex-Session-Worker"

REQUEST_STREAM = "DSPEX_REQ"
# Priority group on the pinned partition consumers (services/shared/src/wire/subjects.ts).
PARTITION_GROUP = "dspex"
SUBJECT_PREFIX = "dspex.req"
POOLS = ("general", "optimizer", "gpu")


def encode(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def decode(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=True)


@dataclass(slots=True)
class Request:
    id: str
    op: str
    signature: dict[str, Any]
    inputs: dict[str, Any]
    lm: dict[str, Any] | None = None
    module: dict[str, Any] = field(default_factory=dict)
    session: str | None = None
    timeout_ms: int | None = None
    # op "evaluate" only: module, metrics and gold fields (see metrics.py)
    evaluate: dict[str, Any] | None = None
    # a stored program {id, version} whose state the worker loads from KV (programs.py)
    program: dict[str, Any] | None = None
    # DSPy surface (docs/dspy-surface.md): token/status streaming target, op "parallel" items, op "compile" job
    stream: dict[str, Any] | None = None
    batch: list[Any] | None = None
    compile: dict[str, Any] | None = None


def _expect(body: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(key)
    if not isinstance(value, kind):
        got = "missing" if key not in body else type(value).__name__
        raise ValidationError(f"`{key}` must be {what} (got {got})", field=key)
    return value


def decode_request(data: bytes) -> Request:
    """Decodes and checks a request body; raises a typed error naming the field that is wrong."""
    try:
        body = decode(data)
    except Exception as exc:  # msgpack raises several unrelated types for bad bytes
        raise DecodeError(f"request body is not valid msgpack: {exc}") from exc
    if not isinstance(body, dict):
        raise DecodeError(f"request body must be a msgpack map (got {type(body).__name__})")
    version = body.get("v")
    if version != ENVELOPE_VERSION:
        raise VersionError(
            f"unsupported envelope version {version!r}; this worker speaks v{ENVELOPE_VERSION}",
            field="v",
            details={"supported": [ENVELOPE_VERSION]},
        )
    req_id = _expect(body, "id", str, "a string")
    op = _expect(body, "op", str, "a string")
    if op not in OPERATIONS:
        raise UnknownOperation(
            f"unknown operation {op!r}; supported: {', '.join(OPERATIONS)}",
            field="op",
            details={"supported": list(OPERATIONS)},
        )
    signature = _expect(body, "signature", dict, "a map")
    inputs = _expect(body, "inputs", dict, "a map")
    lm = body.get("lm")
    if lm is not None and not isinstance(lm, dict):
        raise ValidationError("`lm` must be a map", field="lm")
    module = body.get("module") or {}
    if not isinstance(module, dict):
        raise ValidationError("`module` must be a map", field="module")
    session = body.get("session")
    timeout_ms = body.get("timeout_ms")
    evaluate = body.get("evaluate")
    program = body.get("program")
    if program is not None and not isinstance(program, dict):
        raise ValidationError("`program` must be a map {id, version}", field="program")
    if op == "evaluate" and not isinstance(evaluate, dict):
        raise ValidationError("op 'evaluate' needs an `evaluate` map", field="evaluate")
    return Request(
        id=req_id,
        op=op,
        signature=signature,
        inputs=inputs,
        lm=lm,
        module=module,
        session=session if isinstance(session, str) else None,
        timeout_ms=int(timeout_ms) if isinstance(timeout_ms, int | float) else None,
        evaluate=evaluate if isinstance(evaluate, dict) else None,
        program=program,
        **_surface_fields(body),
    )


def _surface_fields(body: dict[str, Any]) -> dict[str, Any]:
    """`stream`, `batch` and `compile` of the DSPy surface ops, checked for shape (modules.py checks content)."""
    out: dict[str, Any] = {}
    for key, kind, what in (("stream", dict, "a map"), ("batch", list, "a list"), ("compile", dict, "a map")):
        value = body.get(key)
        if value is not None and not isinstance(value, kind):
            raise ValidationError(f"`{key}` must be {what}", field=key)
        out[key] = value
    return out


def ok_reply(
    req_id: str,
    outputs: dict[str, Any],
    *,
    lm: str,
    usage: dict[str, int],
    timings: dict[str, float],
    worker: str,
    scores: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "v": ENVELOPE_VERSION,
        "id": req_id,
        "ok": True,
        "outputs": outputs,
        "lm": lm,
        "usage": usage,
        "timings": timings,
        "worker": worker,
    }
    if scores is not None:
        reply["scores"] = scores  # op "evaluate": metric name -> bool | float
    if extra is not None:
        reply["extra"] = extra  # DSPy surface ops: trajectory, results, votes, job (docs/dspy-surface.md)
    return reply


def error_reply(
    req_id: str, error: dict[str, Any], *, worker: str, timings: dict[str, float] | None = None
) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "v": ENVELOPE_VERSION,
        "id": req_id,
        "ok": False,
        "error": error,
        "worker": worker,
    }
    if timings:
        reply["timings"] = timings
    return reply
