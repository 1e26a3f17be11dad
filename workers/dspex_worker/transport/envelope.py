"""The version-1 envelopes (schemas/README.md) at the worker's edge: a request body decoded and checked against
the contract (protocol.check_request) with a typed error for every problem, and the reply envelopes."""

from __future__ import annotations

import time
from typing import Any

from ..execution import Request
from ..protocol import ENVELOPE_VERSION, DspexError, check_request, decode
from ..protocol.errors import DecodeError, UnknownOperation, ValidationError, VersionError
from ..protocol.generated.bus import HEADER_DEADLINE
from ..protocol.generated.ops import OPERATIONS


def _decode(data: bytes) -> Request:
    try:
        body = decode(data)
    except Exception as exc:  # msgpack raises several unrelated types for bad bytes
        raise DecodeError(f"request body is not valid msgpack: {exc}", field="body") from exc
    if not isinstance(body, dict):
        raise DecodeError(f"request body must be a msgpack map (got {type(body).__name__})", field="body")
    # The version and the operation come first: they decide whether the rest can be read at all, and each has
    # its own error type (a newer client's envelope, an op this worker does not know).
    version = body.get("v")
    if version != ENVELOPE_VERSION:
        raise VersionError(
            f"unsupported envelope version {version!r}; this worker speaks v{ENVELOPE_VERSION}",
            field="v",
            details={"supported": [ENVELOPE_VERSION]},
        )
    op = body.get("op")
    if isinstance(op, str) and op not in OPERATIONS:
        raise UnknownOperation(
            f"unknown operation {op!r}; supported: {', '.join(OPERATIONS)}",
            field="op",
            details={"supported": list(OPERATIONS)},
        )
    return check_request(body)


def decode_request(data: bytes) -> Request:
    """Decodes and checks a request body; raises a typed error naming the field that is wrong. An unexpected
    exception (a body that breaks decoding in a way no check knows) is a DecodeError too: the request is
    answered, then dead-lettered, and the worker carries on."""
    try:
        return _decode(data)
    except DspexError:
        raise
    except Exception as exc:
        raise DecodeError(
            f"request body could not be decoded: {type(exc).__name__}: {exc}",
            field="body",
            details={"exception": type(exc).__name__},
        ) from exc


def remaining_seconds(deadline_header: str | None) -> float | None:
    """Seconds left until the `Dspex-Deadline` header's epoch-ms deadline (negative once passed)."""
    if not deadline_header:
        return None
    try:
        return int(deadline_header) / 1000 - time.time()
    except ValueError:
        raise ValidationError(
            f"{HEADER_DEADLINE}: must be Unix epoch milliseconds (got {deadline_header!r})", field=HEADER_DEADLINE
        ) from None


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
    reply: dict[str, Any] = {"v": ENVELOPE_VERSION, "id": req_id, "ok": False, "error": error, "worker": worker}
    if timings:
        reply["timings"] = timings
    return reply
