"""Dead letters from the worker's side. A request that cannot be decoded (DecodeError, VersionError) or has no
reply subject is copied into the dead-letter stream (`dspex.dlq.<pool>`, `Nats-Msg-Id: dlq:<stream seq>`, the
original headers plus `Dspex-Dlq-*`) and then terminated with `+TERM <reason>`; the work-queue stream drops a
terminated message at once, so the copy is made first. The DLQ service records the MSG_TERMINATED advisory too,
deduplicated by that id (docs/reliability.md).

A copy keeps the request's inputs only when the operator says so (DSPEX_DLQ_KEEP_INPUTS=1): by default its body is
the redacted summary (redaction.py: sizes, types and field names) and its header Dspex-Dlq-Body is `redacted`."""

from __future__ import annotations

import contextlib
import time

from nats.aio.client import Client
from nats.aio.msg import Msg

from ..observability.log import get_logger
from ..protocol import encode
from ..protocol.generated import bus
from .redaction import pool_of as _pool
from .redaction import redacted_body

log = get_logger("reliability")

REQUEST_STREAM = bus.STREAMS["requests"]["name"]
# Reply error types whose request is dead-lettered (terminated) after the error reply: this worker cannot even
# read it, so no redelivery can help; a replay after an upgrade may.
TERMINAL_ERRORS = frozenset({"DecodeError", "VersionError"})


def pool_of(subject: str) -> str:
    """`dspex.req.<pool>.<key>` -> `<pool>` (`unknown` for any other subject)."""
    return _pool(subject) or "unknown"


def one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class DeadLetters:
    def __init__(self, nc: Client, worker_id: str, *, keep_inputs: bool = False) -> None:
        self.nc = nc
        self.worker_id = worker_id
        self.keep_inputs = keep_inputs  # DSPEX_DLQ_KEEP_INPUTS=1: copy the body as it is
        self.terminated = 0

    async def terminate(self, msg: Msg, reason: str) -> None:
        """Copies the request into the dead-letter stream, then terminates it with the reason."""
        reason = one_line(reason)
        headers = msg.headers or {}
        try:
            seq = str(msg.metadata.sequence.stream)
            consumer = msg.metadata.consumer
            deliveries = str(msg.metadata.num_delivered)
        except Exception:  # not a JetStream delivery: nothing to copy or terminate by sequence
            seq, consumer, deliveries = "", "", ""
        if seq:
            record = {k: v for k, v in headers.items() if not k.lower().startswith("nats-")}
            record.update(
                {
                    bus.HEADER_MSG_ID: f"dlq:{seq}",
                    bus.HEADER_DLQ_REASON: reason,
                    bus.HEADER_DLQ_KIND: "terminated",
                    bus.HEADER_DLQ_STREAM: REQUEST_STREAM,
                    bus.HEADER_DLQ_SEQ: seq,
                    bus.HEADER_DLQ_SUBJECT: msg.subject,
                    bus.HEADER_DLQ_CONSUMER: consumer,
                    bus.HEADER_DLQ_DELIVERIES: deliveries,
                    bus.HEADER_DLQ_BY: self.worker_id,
                    bus.HEADER_DLQ_AT: str(int(time.time() * 1000)),
                }
            )
            if headers.get(bus.HEADER_MSG_ID):
                record[bus.HEADER_DLQ_MSG_ID] = headers[bus.HEADER_MSG_ID]
            body = msg.data
            if not self.keep_inputs:
                body = encode(redacted_body(msg.data, msg.subject))
                record[bus.HEADER_DLQ_BODY] = "redacted"
            try:
                await self.nc.jetstream().publish(
                    bus.dead_letter_subject(pool_of(msg.subject)), body, timeout=2.0, headers=record
                )
            except Exception as exc:
                # No DLQ stream: the MSG_TERMINATED advisory still names the sequence.
                log.warning("dead-letter copy failed", seq=seq, error=f"{type(exc).__name__}: {exc}")
        self.terminated += 1
        log.warning("request terminated", reason=reason, seq=seq)
        if msg.reply:
            with contextlib.suppress(Exception):
                # `+TERM <reason>` (nats-server >= 2.11 puts the reason into the MSG_TERMINATED advisory).
                await self.nc.publish(msg.reply, b"+TERM " + reason.encode())
