"""What the worker does so that faults lose nothing and nothing runs twice (docs/reliability.md).

* **Progress.** In-progress acks are paced from the consumer's real ack wait (AckWait, or BackOff[0], which
  overrides it), read at start-up: a third of it, so a long request is never redelivered while it runs.
* **Redeliveries.** `answer_duplicate` looks the request up in the reply memory (dedup.py): a redelivery of
  a request answered here is answered again from memory, one still running here is waited for, not rerun.
* **Confirmed replies.** When the request carries `Dspex-Reply-Ack: 1` (the TypeScript router sets it), the
  reply is sent as a NATS request and the router answers "got it". No answer (the router is reconnecting,
  or the reply was published while this worker was cut off) means it is sent again, with backoff and
  in-progress acks, until the caller's deadline; only then is the request acked. Without the header the
  reply is a plain publish (hand-written clients).
* **Dead letters.** A request that cannot be decoded (DecodeError, VersionError) or has no reply subject is
  copied into the dead-letter stream (`dspex.dlq.<pool>`, `Nats-Msg-Id: dlq:<stream seq>`) and then
  terminated with `+TERM <reason>`; the work-queue stream drops a terminated message at once, so the copy is
  made first. The router's DLQ listener records the MSG_TERMINATED advisory too, deduplicated by that id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError

from .dedup import ReplyMemory
from .errors import DecodeError, DspexError, PayloadTooLarge, WorkerError
from .wire import HEADER_DEADLINE, HEADER_MSG_ID, REQUEST_STREAM, Request, decode_request, encode, error_reply

log = logging.getLogger("dspex.reliability")

HEADER_REPLY_ACK = "Dspex-Reply-Ack"
DLQ_SUBJECT_PREFIX = "dspex.dlq"
# Reply error types whose request is dead-lettered (terminated) after the error reply: this worker cannot
# even read it, so no redelivery can help; a replay after an upgrade may.
TERMINAL_ERRORS = frozenset({"DecodeError", "VersionError"})
# Headers of a dead-letter record (services/router/src/dlq.ts reads the same names).
DLQ_REASON = "Dspex-Dlq-Reason"
DLQ_KIND = "Dspex-Dlq-Kind"
DLQ_STREAM = "Dspex-Dlq-Stream"
DLQ_SEQ = "Dspex-Dlq-Seq"
DLQ_SUBJECT = "Dspex-Dlq-Subject"
DLQ_CONSUMER = "Dspex-Dlq-Consumer"
DLQ_DELIVERIES = "Dspex-Dlq-Deliveries"
DLQ_MSG_ID = "Dspex-Dlq-Msg-Id"
DLQ_BY = "Dspex-Dlq-By"
DLQ_AT = "Dspex-Dlq-At"


def progress_interval(ack_wait_s: float | None, backoff_s: list[float] | None) -> float:
    """A third of the shortest ack wait a delivery can get, between 0.1 s and 10 s."""
    waits = [w for w in [ack_wait_s, *(backoff_s or [])] if w]
    if not waits:
        return 10.0
    return max(0.1, min(10.0, min(waits) / 3))


def pool_of(subject: str) -> str:
    """`dspex.req.<pool>.<key>` -> `<pool>`."""
    parts = subject.split(".")
    return parts[2] if len(parts) >= 4 and parts[0] == "dspex" and parts[1] == "req" else "unknown"


def decode_guarded(data: bytes) -> Request:
    """`decode_request`, where an unexpected exception (a body that breaks decoding in a way no check knows)
    is a DecodeError too: the request is answered, then dead-lettered, and the worker carries on."""
    try:
        return decode_request(data)
    except DecodeError as exc:
        if exc.field is None:
            exc.field = "body"  # the body as a whole is what cannot be read
        raise
    except DspexError:
        raise
    except Exception as exc:
        raise DecodeError(
            f"request body could not be decoded: {type(exc).__name__}: {exc}",
            field="body",
            details={"exception": type(exc).__name__},
        ) from exc


def one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Reliability:
    def __init__(self, worker_id: str, memory: ReplyMemory | None = None, confirm_max_s: float = 30.0) -> None:
        self.worker_id = worker_id
        self.memory = memory or ReplyMemory.from_env()
        self.confirm_max_s = confirm_max_s
        self.progress_interval = 10.0
        self.nc: Client | None = None
        self.redelivered = 0
        self.terminated = 0
        self.unconfirmed = 0

    async def start(self, nc: Client, pool: str) -> None:
        """Reads the pool consumer's ack wait and BackOff to pace in-progress acks."""
        self.nc = nc
        try:
            info = await nc.jetstream().consumer_info(REQUEST_STREAM, pool)
            self.progress_interval = progress_interval(info.config.ack_wait, info.config.backoff)
        except Exception as exc:
            log.warning("cannot read consumer %s: %s", pool, exc)

    def stats(self) -> dict[str, Any]:
        return {
            "memory": self.memory.stats(),
            "redelivered": self.redelivered,
            "terminated": self.terminated,
            "unconfirmed_replies": self.unconfirmed,
            "progress_interval_s": self.progress_interval,
        }

    @staticmethod
    def key(msg: Msg, req_id: str) -> str:
        try:
            return f"{msg.metadata.sequence.stream}:{req_id}"
        except Exception:
            return req_id

    async def _keep_alive(self, msg: Msg) -> None:
        with contextlib.suppress(Exception):
            await msg.in_progress()

    async def answer_duplicate(self, msg: Msg, req_id: str, reply_to: str) -> bool:
        """True when this delivery was a redelivery answered from memory; else marks the request as running."""
        try:
            delivered = msg.metadata.num_delivered
        except Exception:
            delivered = 1
        if delivered > 1:
            self.redelivered += 1
            log.info("redelivered request (delivery %d)", delivered, extra={"fields": {"id": req_id}})
        key = self.key(msg, req_id)
        while True:
            entry = self.memory.get(key)
            if entry is None:
                self.memory.start(key, asyncio.current_task())
                return False
            if entry.running:
                # The first delivery is still running in this process: wait for its reply, do not run it again.
                self.memory.joined += 1
                while entry.running and not await entry.wait(self.progress_interval):
                    await self._keep_alive(msg)
                continue
            if entry.reply is None:  # pragma: no cover - get() drops abandoned entries
                continue
            self.memory.hits += 1
            log.info("redelivered request answered from memory", extra={"fields": {"id": req_id}})
            if await self.deliver(msg, reply_to, entry.reply):
                with contextlib.suppress(Exception):
                    await msg.ack()
            return True

    def encode_reply(self, reply: dict[str, Any], max_payload: int) -> bytes:
        """The encoded reply, or an error reply when the reply cannot be encoded or is too large to publish."""
        try:
            data = encode(reply)
        except Exception as exc:
            error: DspexError = WorkerError(
                f"the reply could not be encoded: {type(exc).__name__}: {exc}",
                field="outputs",
                details={"exception": type(exc).__name__},
            )
            return encode(error_reply(str(reply.get("id", "")), error.to_wire(), worker=self.worker_id))
        if len(data) > max_payload - 4096:  # leave room for headers
            error = PayloadTooLarge(
                f"the reply is {len(data)} bytes; NATS accepts at most {max_payload}",
                field="outputs",
                details={"size": len(data), "limit": max_payload},
            )
            return encode(error_reply(str(reply.get("id", "")), error.to_wire(), worker=self.worker_id))
        return data

    async def finish(self, msg: Msg, req_id: str, reply_to: str, reply: dict[str, Any]) -> bool:
        """Remembers, delivers and settles (acks or dead-letters) one reply; False if it could not be sent."""
        assert self.nc is not None
        data = self.encode_reply(reply, self.nc.max_payload)
        self.memory.complete(self.key(msg, req_id), data)
        if not await self.deliver(msg, reply_to, data):
            # Not sent (connection lost): leave the request unacked. Its redelivery is answered from memory.
            return False
        error = reply.get("error") if not reply.get("ok") else None
        if isinstance(error, dict) and error.get("type") in TERMINAL_ERRORS:
            await self.terminate(msg, f"{error.get('type')}: {error.get('message', '')}")
        else:
            with contextlib.suppress(Exception):
                await msg.ack()
        return True

    async def deliver(self, msg: Msg, reply_to: str, data: bytes) -> bool:
        assert self.nc is not None
        headers = msg.headers or {}
        if headers.get(HEADER_REPLY_ACK) != "1":
            try:
                await self.nc.publish(reply_to, data)
                return True
            except Exception as exc:
                log.error("reply publish failed: %s", exc, extra={"fields": {"subject": reply_to}})
                return False
        return await self._deliver_confirmed(msg, reply_to, data, headers)

    async def _deliver_confirmed(self, msg: Msg, reply_to: str, data: bytes, headers: dict[str, str]) -> bool:
        assert self.nc is not None
        give_up = time.time() + self.confirm_max_s
        with contextlib.suppress(ValueError, TypeError):
            give_up = min(give_up, int(headers[HEADER_DEADLINE]) / 1000)
        delay = 0.05
        tries = 0
        while True:
            tries += 1
            try:
                await self.nc.request(reply_to, data, timeout=1.0)
                if tries > 1:
                    log.info("reply confirmed after %d tries", tries, extra={"fields": {"subject": reply_to}})
                return True
            except ConnectionClosedError:
                return False
            except Exception as exc:  # no responders (caller reconnecting), timeout (we are), buffer full
                last = exc
            if time.time() + delay >= give_up:
                self.unconfirmed += 1
                log.warning(
                    "reply not confirmed after %d tries (%s); the caller's deadline has passed, giving up",
                    tries,
                    type(last).__name__,
                    extra={"fields": {"subject": reply_to, "id": headers.get(HEADER_MSG_ID, "")}},
                )
                return True
            await self._keep_alive(msg)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def terminate(self, msg: Msg, reason: str) -> None:
        """Copies the request into the dead-letter stream, then terminates it with the reason."""
        assert self.nc is not None
        reason = one_line(reason)
        headers = msg.headers or {}
        try:
            seq = str(msg.metadata.sequence.stream)
            consumer = msg.metadata.consumer
            deliveries = str(msg.metadata.num_delivered)
        except Exception:
            seq, consumer, deliveries = "", "", ""
        if seq:
            record = {k: v for k, v in headers.items() if not k.lower().startswith("nats-")}
            record.update(
                {
                    HEADER_MSG_ID: f"dlq:{seq}",
                    DLQ_REASON: reason,
                    DLQ_KIND: "terminated",
                    DLQ_STREAM: REQUEST_STREAM,
                    DLQ_SEQ: seq,
                    DLQ_SUBJECT: msg.subject,
                    DLQ_CONSUMER: consumer,
                    DLQ_DELIVERIES: deliveries,
                    DLQ_BY: self.worker_id,
                    DLQ_AT: str(int(time.time() * 1000)),
                }
            )
            if headers.get(HEADER_MSG_ID):
                record[DLQ_MSG_ID] = headers[HEADER_MSG_ID]
            try:
                await self.nc.jetstream().publish(
                    f"{DLQ_SUBJECT_PREFIX}.{pool_of(msg.subject)}", msg.data, timeout=2.0, headers=record
                )
            except Exception as exc:
                # No DLQ stream (no router runs the listener): the advisory still names the sequence.
                log.warning("dead-letter copy failed: %s", exc, extra={"fields": {"seq": seq}})
        self.terminated += 1
        log.warning("request terminated: %s", reason, extra={"fields": {"seq": seq}})
        if msg.reply:
            with contextlib.suppress(Exception):
                # `+TERM <reason>` (nats-server >= 2.11 puts the reason into the MSG_TERMINATED advisory).
                await self.nc.publish(msg.reply, b"+TERM " + reason.encode())
