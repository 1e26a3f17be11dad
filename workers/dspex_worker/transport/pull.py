"""Pulls requests from several JetStream consumers with one budget of execution slots.

nats-py's `fetch` returns early and leaves lingering pull requests behind (a worker could be handed more
messages than it has slots for) and cannot send priority-group fields. So this sends the raw pull requests
(`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`) itself, as nats.js `consume()` does: every message or
expiry returns credit. The pool's sessionless consumer is pulled for the free execution slots; each partition
consumer assigned to this worker always keeps one pull open, with the priority group and the pin id the
server gave us (see `Puller._plan`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from ..observability.log import get_logger

log = get_logger("pull")

STATUS_HEADER = "Status"
PIN_HEADER = "Nats-Pin-Id"


@dataclass
class Source:
    consumer: str
    group: str | None = None
    inbox: str = ""
    sub: Any = None
    outstanding: int = 0
    expiry: float = 0.0
    pin_id: str = ""
    active: bool = True


class Puller:
    def __init__(
        self,
        nc: Client,
        stream: str,
        handler: Callable[[Msg], Coroutine[Any, Any, None]],
        max_inflight: int,
        expires: float = 2.0,
        busy: Callable[[], int] | None = None,
    ) -> None:
        self._nc = nc
        self._stream = stream
        self._handler = handler
        self._max_inflight = max_inflight
        self._expires = expires
        # slots taken outside this puller (the direct lane's requests): the budget is the worker's, shared
        self._busy = busy or (lambda: 0)
        self._sources: dict[str, Source] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self.received = 0

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def consumers(self) -> list[str]:
        return [s.consumer for s in self._sources.values() if s.active]

    def describe(self) -> dict[str, Any]:
        """Per-consumer pull state, for status: open credit, seconds until it expires, whether pinned."""
        now = time.monotonic()
        return {
            s.consumer: {"outstanding": s.outstanding, "expires_in": round(s.expiry - now, 2), "pinned": bool(s.pin_id)}
            for s in self._sources.values()
        }

    def wake(self) -> None:
        """A slot taken elsewhere was given back: pull again if that leaves room."""
        self._wake.set()

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._pull_loop())

    async def add(self, consumer: str, group: str | None = None) -> None:
        if consumer in self._sources and self._sources[consumer].active:
            return
        source = Source(consumer=consumer, group=group, inbox=self._nc.new_inbox())

        async def on_message(msg: Msg) -> None:
            await self._on_message(source, msg)

        source.sub = await self._nc.subscribe(source.inbox, cb=on_message)
        old = self._sources.get(consumer)
        if old is not None:
            await self._close_source(old)
        self._sources[consumer] = source
        self._wake.set()

    async def remove(self, consumer: str) -> None:
        """Stops pulling from a consumer and gives up its pin so the new owner is served at once."""
        source = self._sources.pop(consumer, None)
        if source is None:
            return
        source.active = False
        # Unpin even when no message told us our pin id: the server may have pinned us at a pull alone, and
        # a partition must not wait out the pin timeout. If the new owner was pinned already, it merely gets
        # one 423 and pulls again.
        if source.group:
            await self._unpin(source)
        # Pulls still open may deliver a message or two: the subscription stays until they expire (nak'd).
        asyncio.get_running_loop().call_later(
            self._expires + 0.5, lambda: asyncio.ensure_future(self._close_source(source))
        )

    async def _unpin(self, source: Source) -> None:
        with contextlib.suppress(Exception):
            await self._nc.request(
                f"$JS.API.CONSUMER.UNPIN.{self._stream}.{source.consumer}",
                json.dumps({"group": source.group}).encode(),
                timeout=2,
            )

    async def _close_source(self, source: Source) -> None:
        source.active = False
        if source.sub is not None:
            with contextlib.suppress(Exception):
                await source.sub.unsubscribe()
            source.sub = None

    def reset_credit(self) -> None:
        """After a reconnect the server has forgotten our pull requests: ask again."""
        for source in self._sources.values():
            source.outstanding = 0
        self._wake.set()

    async def _pull(self, source: Source, batch: int, now: float) -> None:
        request: dict[str, Any] = {"batch": batch, "expires": int(self._expires * 1e9)}
        if source.group:
            request["group"] = source.group
            if source.pin_id:
                request["id"] = source.pin_id
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{source.consumer}"
        await self._nc.publish(subject, json.dumps(request).encode(), reply=source.inbox)
        source.outstanding += batch
        # Our own expiry is a little later than the server's, so nothing can still arrive for it after.
        source.expiry = now + self._expires + 0.25

    def _plan(self, idle: list[Source], free: int) -> list[tuple[Source, int]]:
        """How many messages to ask each idle source for.

        Every partition consumer this worker owns always keeps one pull open, whatever the free slots: a
        partition must never wait behind the others or behind the pool's consumer, and a partition serves one
        session stream at a time anyway. So a worker may run up to `concurrency + owned partitions` requests
        at once. The pool's own consumer (sessionless traffic) gets the free slots.
        """
        plan: list[tuple[Source, int]] = [(s, 1) for s in idle if s.group is not None]
        primaries = [s for s in idle if s.group is None]
        if primaries and free > 0:
            share = max(1, free // len(primaries))
            for source in primaries:
                if free <= 0:
                    break
                plan.append((source, min(share, free)))
                free -= plan[-1][1]
        return plan

    async def _pull_loop(self) -> None:
        while not self._stopping:
            now = time.monotonic()
            sources = [s for s in self._sources.values() if s.active]
            for s in sources:
                if s.outstanding and now >= s.expiry:
                    s.outstanding = 0
            primary_out = sum(s.outstanding for s in sources if s.group is None)
            free = self._max_inflight - len(self._inflight) - self._busy() - primary_out
            # The pool's own consumer is topped up once it waits for no more messages than there are free
            # slots, not only once its pulls ran dry: requests published together then each find a waiting
            # pull instead of a pull round trip apiece, and a steady trickle still costs few pull requests.
            idle = [s for s in sources if s.outstanding == 0 or (s.group is None and s.outstanding <= free)]
            if idle and self._nc.is_connected:
                for source, batch in self._plan(idle, free):
                    try:
                        await self._pull(source, batch, now)
                        free -= batch
                    except Exception as exc:  # connection closing or reconnecting
                        log.warning("pull request failed", error=f"{type(exc).__name__}: {exc}")
                        break
            self._wake.clear()
            waits = [s.expiry - time.monotonic() for s in self._sources.values() if s.active and s.outstanding]
            timeout = max(0.05, min(waits)) if waits else self._expires
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):  # no new task per wait, unlike wait_for
                    await self._wake.wait()

    async def _on_message(self, source: Source, msg: Msg) -> None:
        headers = msg.headers or {}
        status = headers.get(STATUS_HEADER)
        if status is not None and not msg.data:
            if status == "100":  # idle heartbeat
                return
            pending = headers.get("Nats-Pending-Messages")
            if status == "423":
                # Another worker holds this partition's pin (or ours moved): pull again without a pin id.
                source.pin_id = ""
            if pending is not None:
                source.outstanding = max(0, source.outstanding - int(pending))
            else:
                source.outstanding = 0
            if status not in ("404", "408", "423"):
                log.warning(
                    "pull status", status=status, consumer=source.consumer, description=headers.get("Description", "")
                )
            self._wake.set()
            return
        if self._stopping or not source.active:
            # A pull sent before we stopped (or let go of this partition) was still open: hand it back now.
            with contextlib.suppress(Exception):
                await msg.nak()
            return
        pin = headers.get(PIN_HEADER)
        if pin:
            source.pin_id = pin
        self.received += 1
        source.outstanding = max(0, source.outstanding - 1)
        task = asyncio.create_task(self._handler(msg))
        self._inflight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()

    async def stop(self, drain_timeout: float) -> int:
        """Stops pulling and waits for in-flight work; returns how many tasks were still running at the timeout."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        for source in list(self._sources.values()):
            if source.group and source.pin_id:
                await self._unpin(source)
        left = 0
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=drain_timeout)
            for task in pending:
                task.cancel()
            left = len(pending)
        for source in list(self._sources.values()):
            await self._close_source(source)
        return left
