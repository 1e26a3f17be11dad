"""The direct lane on the worker: core NATS request-reply, at most once (docs/performance.md, docs/reliability.md).

A worker subscribes, in the queue group `dspex-direct`, to `dspex.direct.<pool>.any` (sessionless: NATS hands each
request to one worker of the pool) and to `dspex.direct.<pool>.p<N>` for the session partitions the shared
assignment gives it (so a session's direct requests reach the worker that owns its partition, as its durable ones
do). Nothing is stored: no stream write, no pull, no ack, no reply confirmation. The reply is published once to
the request's NATS reply subject, the caller's inbox.

What it keeps from the durable lane: the envelope and its checks, the deadline, strict affinity, tracing, typed
error replies — the handler is the worker's own `_execute`. What it loses on a crash: the request. So that no
caller waits out its deadline for a worker that is gone, a request that asks for it (`Dspex-Heartbeat: <ms>`)
gets an empty message with that header every interval while it runs; the caller gives up after a few silent
intervals.

Requests share the worker's execution slots with the pull loop: at most `slots` run at once; more wait here, in
arrival order, within their deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from ..observability.log import get_logger
from ..protocol.generated.bus import HEADER_HEARTBEAT, QUEUES, direct_subject

log = get_logger("direct")

# Shortest heartbeat interval a caller may ask for (a tighter one would mostly cost messages).
MIN_HEARTBEAT_S = 0.05

# Runs one request (its message and when it arrived, time.time()); returns the encoded reply.
Handler = Callable[[Msg, float], Awaitable[bytes]]


def heartbeat_interval(headers: dict[str, str] | None) -> float | None:
    """Seconds between heartbeats the request asks for, or None."""
    raw = (headers or {}).get(HEADER_HEARTBEAT)
    if not raw:
        return None
    try:
        ms = float(raw)
    except ValueError:
        return None
    return max(MIN_HEARTBEAT_S, ms / 1000) if ms > 0 else None


class Heartbeat:
    """A sign of life to the caller every `interval` seconds from a loop timer: a request shorter than the
    interval (most are) never costs a message or a task."""

    __slots__ = ("_nc", "_subject", "_headers", "_interval", "_loop", "_timer", "_task")

    def __init__(self, nc: Client, subject: str, worker_id: str, interval: float) -> None:
        self._nc = nc
        self._subject = subject
        self._headers = {HEADER_HEARTBEAT: worker_id}
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(interval, self._tick)

    def _tick(self) -> None:
        self._task = self._loop.create_task(self._send())
        self._timer = self._loop.call_later(self._interval, self._tick)

    async def _send(self) -> None:
        with contextlib.suppress(Exception):  # reconnecting: the next one may get through
            await self._nc.publish(self._subject, b"", headers=self._headers)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None and not self._task.done():
            self._task.cancel()


class DirectServer:
    def __init__(
        self, nc: Client, pool: str, worker_id: str, handler: Handler, slots: int, on_done: Callable[[], None]
    ) -> None:
        self._nc = nc
        self._pool = pool
        self._worker_id = worker_id
        self._handler = handler
        self._slots = asyncio.Semaphore(slots)
        self._on_done = on_done
        self._subs: dict[str, Any] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = 0
        self._stopping = False
        self.received = 0

    @property
    def inflight(self) -> int:
        """Requests running now (not those waiting for a slot)."""
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._tasks) - self._running

    @property
    def subjects(self) -> list[str]:
        return sorted(self._subs)

    async def start(self) -> None:
        await self._subscribe(direct_subject(self._pool, "any"))

    async def _subscribe(self, subject: str) -> None:
        if subject in self._subs or self._stopping:
            return
        self._subs[subject] = None  # taken: a concurrent call for the same subject returns at once
        try:
            self._subs[subject] = await self._nc.subscribe(subject, queue=QUEUES["direct"], cb=self._on_message)
        except BaseException:
            self._subs.pop(subject, None)
            raise

    async def _unsubscribe(self, subject: str) -> None:
        sub = self._subs.pop(subject, None)
        if sub is not None:
            # drain: requests NATS already handed to this subscription still run
            with contextlib.suppress(Exception):
                await sub.drain()

    async def set_partitions(self, partitions: set[int]) -> None:
        """Subscribes to exactly these session partitions' direct subjects (besides `any`)."""
        wanted = {direct_subject(self._pool, f"p{p}") for p in partitions}
        current = {s for s in self._subs if s != direct_subject(self._pool, "any")}
        for subject in sorted(wanted - current):
            await self._subscribe(subject)
        for subject in sorted(current - wanted):
            await self._unsubscribe(subject)

    async def _on_message(self, msg: Msg) -> None:
        if not msg.reply:
            log.warning(
                "direct request without a reply subject dropped: nobody can hear the answer", subject=msg.subject
            )
            return
        self.received += 1
        task = asyncio.get_running_loop().create_task(self._run(msg, time.time()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, msg: Msg, received: float) -> None:
        interval = heartbeat_interval(msg.headers)
        beat = Heartbeat(self._nc, msg.reply, self._worker_id, interval) if interval else None
        try:
            async with self._slots:
                self._running += 1
                try:
                    data = await self._handler(msg, received)
                finally:
                    self._running -= 1
                    self._on_done()
        finally:
            if beat is not None:
                beat.cancel()
        try:
            await self._nc.publish(msg.reply, data)
        except Exception as exc:  # connection lost: at most once, the caller's deadline (or heartbeat) tells it
            log.error("direct reply publish failed", subject=msg.reply, error=f"{type(exc).__name__}: {exc}")

    async def stop(self, drain_timeout: float) -> int:
        """Stops taking direct requests and waits for those it took; returns how many were still running."""
        self._stopping = True
        for subject in list(self._subs):
            await self._unsubscribe(subject)
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(set(self._tasks), timeout=drain_timeout)
        for task in pending:
            task.cancel()
        return len(pending)
