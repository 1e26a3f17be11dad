"""A pull consumer that keeps exactly as many messages requested as there are free execution slots.

nats-py's `fetch` returns early and leaves lingering pull requests behind, so a worker could be handed more
messages than it has slots for, and it cannot send the priority-group fields JetStream supports. This sends
the raw pull requests (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`) itself, the way nats.js `consume()`
does: a message or an expiry returns credit, and new pulls are issued only for free slots.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

log = logging.getLogger("dspex.pull")

STATUS_HEADER = "Status"


class PullConsumer:
    def __init__(
        self,
        nc: Client,
        stream: str,
        consumer: str,
        handler: Callable[[Msg], Coroutine[Any, Any, None]],
        max_inflight: int,
        expires: float = 5.0,
        pull_extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._nc = nc
        self._subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._handler = handler
        self._max_inflight = max_inflight
        self._expires = expires
        self._pull_extra = pull_extra
        self._inflight: set[asyncio.Task[None]] = set()
        self._outstanding = 0
        self._pull_expiry = 0.0
        self._wake = asyncio.Event()
        self._stopping = False
        self._inbox = ""
        self._sub: Any = None
        self._loop_task: asyncio.Task[None] | None = None
        self.received = 0

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_message)
        self._loop_task = asyncio.create_task(self._pull_loop())

    def reset_credit(self) -> None:
        """After a reconnect the server forgets our pull requests; ask again."""
        self._outstanding = 0
        self._wake.set()

    async def _pull_loop(self) -> None:
        while not self._stopping:
            now = time.monotonic()
            if self._outstanding and now >= self._pull_expiry:
                # Every pull we sent has expired on the server by now.
                self._outstanding = 0
            want = self._max_inflight - len(self._inflight) - self._outstanding
            if want > 0 and self._nc.is_connected:
                request: dict[str, Any] = {"batch": want, "expires": int(self._expires * 1e9)}
                if self._pull_extra:
                    request.update(self._pull_extra())
                try:
                    await self._nc.publish(self._subject, json.dumps(request).encode(), reply=self._inbox)
                    self._outstanding += want
                    # Our own expiry is a little later than the server's, so no message can still be coming.
                    self._pull_expiry = now + self._expires + 0.25
                except Exception as exc:  # connection closing or reconnecting
                    log.warning("pull request failed: %s", exc)
            self._wake.clear()
            timeout = max(0.05, self._pull_expiry - time.monotonic()) if self._outstanding else self._expires
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def _on_message(self, msg: Msg) -> None:
        status = msg.headers.get(STATUS_HEADER) if msg.headers else None
        if status is not None and not msg.data:
            if status == "100":  # idle heartbeat
                return
            # 404 no messages, 408 request expired, 409 limits: the credit of that pull is gone.
            pending = msg.headers.get("Nats-Pending-Messages") if msg.headers else None
            if pending is not None:
                self._outstanding = max(0, self._outstanding - int(pending))
            else:
                self._outstanding = 0
            if status not in ("404", "408"):
                log.warning("pull status %s: %s", status, msg.headers.get("Description") if msg.headers else "")
            self._wake.set()
            return
        if self._stopping:
            # A pull sent before we began stopping was still open: hand the message straight back.
            await msg.nak()
            return
        self.received += 1
        self._outstanding = max(0, self._outstanding - 1)
        task = asyncio.create_task(self._handler(msg))
        self._inflight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()

    async def stop(self, drain_timeout: float) -> int:
        """Stops pulling, waits for in-flight work; returns how many tasks were still running at the timeout."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        left = 0
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=drain_timeout)
            for task in pending:
                task.cancel()
            left = len(pending)
        if self._sub is not None:
            await self._sub.unsubscribe()
        return left
