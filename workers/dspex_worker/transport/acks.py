"""In-progress acks: while a request runs, JetStream is told it is still being worked on, so AckWait does not
redeliver it. Paced from the consumer's real ack wait (AckWait, or BackOff[0], which overrides it), read when
the worker verifies the bus: a third of it, so a long request is never redelivered while it runs."""

from __future__ import annotations

import asyncio
import contextlib

from nats.aio.msg import Msg

DEFAULT_INTERVAL_S = 10.0


def progress_interval(ack_wait_s: float | None, backoff_s: list[float] | None) -> float:
    """A third of the shortest ack wait a delivery can get, between 0.1 s and 10 s."""
    waits = [w for w in [ack_wait_s, *(backoff_s or [])] if w]
    if not waits:
        return DEFAULT_INTERVAL_S
    return max(0.1, min(DEFAULT_INTERVAL_S, min(waits) / 3))


async def keep_alive(msg: Msg) -> None:
    """One in-progress ack; a failure (reconnecting) is left to the next one."""
    with contextlib.suppress(Exception):
        await msg.in_progress()


class InProgress:
    """In-progress acks every `interval` seconds from a loop timer: a request that finishes first never costs a
    task (most requests are far shorter than a third of AckWait)."""

    __slots__ = ("_msg", "_interval", "_loop", "_timer", "_task")

    def __init__(self, msg: Msg, interval: float) -> None:
        self._msg = msg
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None
        self._timer = self._loop.call_later(interval, self._tick)

    def _tick(self) -> None:
        self._task = self._loop.create_task(keep_alive(self._msg))
        self._timer = self._loop.call_later(self._interval, self._tick)

    def cancel(self) -> None:
        self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
