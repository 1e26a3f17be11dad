"""Sending replies so that faults lose nothing and nothing runs twice (docs/reliability.md).

* **Redeliveries.** `answer_duplicate` looks the request up in the reply memory (memory.py): a redelivery of a
  request answered here is answered again from memory, one still running here is waited for, not rerun.
* **Confirmed replies.** When the request carries `Dspex-Reply-Ack: 1` (the TypeScript client sets it), the
  reply is sent as a NATS request and the caller answers "got it". No answer (the caller is reconnecting, or
  the reply was published while this worker was cut off) means it is sent again, with backoff and in-progress
  acks, until the caller's deadline; only then is the request acked. Without the header the reply is a plain
  publish (hand-written clients).
* **Settling.** After the reply the request is acked, or dead-lettered when this worker could not read it at
  all (dead_letter.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError

from ..observability.log import get_logger
from ..protocol import DspexError, encode
from ..protocol.errors import PayloadTooLarge, WorkerError
from ..protocol.generated.bus import HEADER_DEADLINE, HEADER_MSG_ID, HEADER_REPLY_ACK
from .acks import DEFAULT_INTERVAL_S, keep_alive
from .dead_letter import TERMINAL_ERRORS, DeadLetters
from .envelope import error_reply
from .memory import ReplyMemory

log = get_logger("reliability")


class Replies:
    def __init__(
        self,
        nc: Client,
        dead_letters: DeadLetters,
        memory: ReplyMemory | None = None,
        *,
        progress_interval: float = DEFAULT_INTERVAL_S,
        confirm_max_s: float = 30.0,
    ) -> None:
        self.nc = nc
        self.dead_letters = dead_letters
        self.worker_id = dead_letters.worker_id
        self.memory = memory or ReplyMemory.from_env()
        self.progress_interval = progress_interval
        self.confirm_max_s = confirm_max_s
        self.redelivered = 0
        self.unconfirmed = 0

    def stats(self) -> dict[str, Any]:
        return {
            "memory": self.memory.stats(),
            "redelivered": self.redelivered,
            "terminated": self.dead_letters.terminated,
            "unconfirmed_replies": self.unconfirmed,
            "progress_interval_s": self.progress_interval,
        }

    @staticmethod
    def key(msg: Msg, req_id: str) -> str:
        try:
            return f"{msg.metadata.sequence.stream}:{req_id}"
        except Exception:
            return req_id

    async def answer_duplicate(self, msg: Msg, req_id: str, reply_to: str) -> bool:
        """True when this delivery was a redelivery answered from memory; else marks the request as running."""
        try:
            delivered = msg.metadata.num_delivered
        except Exception:
            delivered = 1
        if delivered > 1:
            self.redelivered += 1
            log.info("redelivered request", id=req_id, delivery=delivered)
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
                    await keep_alive(msg)
                continue
            if entry.reply is None:  # pragma: no cover - get() drops abandoned entries
                continue
            self.memory.hits += 1
            log.info("redelivered request answered from memory", id=req_id)
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
        data = self.encode_reply(reply, self.nc.max_payload)
        self.memory.complete(self.key(msg, req_id), data)
        if not await self.deliver(msg, reply_to, data):
            # Not sent (connection lost): leave the request unacked. Its redelivery is answered from memory.
            return False
        error = reply.get("error") if not reply.get("ok") else None
        if isinstance(error, dict) and error.get("type") in TERMINAL_ERRORS:
            await self.dead_letters.terminate(msg, f"{error.get('type')}: {error.get('message', '')}")
        else:
            with contextlib.suppress(Exception):
                await msg.ack()
        return True

    async def deliver(self, msg: Msg, reply_to: str, data: bytes) -> bool:
        headers = msg.headers or {}
        if headers.get(HEADER_REPLY_ACK) != "1":
            try:
                await self.nc.publish(reply_to, data)
                return True
            except Exception as exc:
                log.error("reply publish failed", subject=reply_to, error=f"{type(exc).__name__}: {exc}")
                return False
        return await self._deliver_confirmed(msg, reply_to, data, headers)

    async def _deliver_confirmed(self, msg: Msg, reply_to: str, data: bytes, headers: dict[str, str]) -> bool:
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
                    log.info("reply confirmed", subject=reply_to, tries=tries)
                return True
            except ConnectionClosedError:
                return False
            except Exception as exc:  # no responders (caller reconnecting), timeout (we are), buffer full
                last = exc
            if time.time() + delay >= give_up:
                self.unconfirmed += 1
                log.warning(
                    "reply not confirmed; the caller's deadline has passed, giving up",
                    subject=reply_to,
                    id=headers.get(HEADER_MSG_ID, ""),
                    tries=tries,
                    error=type(last).__name__,
                )
                return True
            await keep_alive(msg)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
