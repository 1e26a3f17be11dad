"""Pool membership and partition assignment.

Each worker heartbeats `<pool>.<worker>` into the KV bucket `dspex_members` and watches its pool's keys.
Every worker computes the same assignment from the same member list, so partitions are spread evenly with
no coordinator; the partition consumers are pinned (`pinned_client` priority policy), so while two workers
briefly disagree during a membership change the server still gives each partition to one of them only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client
from nats.js.kv import KeyValue

from ..buckets import MEMBERS, open_bucket
from ..observability.log import get_logger

log = get_logger("membership")


def _score(partition: int, member: str) -> int:
    digest = hashlib.blake2b(f"{partition}:{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def assign_partitions(partitions: int, members: list[str]) -> dict[int, str]:
    """Balanced rendezvous hashing: each partition goes to its highest-scoring member that still has room.

    Room is floor(P / n) partitions per member, plus one for the first P mod n members that ask, so loads
    differ by one at most; and a join or leave moves only a few partitions, so most sessions keep their
    worker.
    """
    if not members:
        return {}
    ordered = sorted(set(members))
    base, extra = divmod(partitions, len(ordered))
    load = dict.fromkeys(ordered, 0)
    out: dict[int, str] = {}
    for p in range(partitions):
        for member in sorted(ordered, key=lambda m: _score(p, m), reverse=True):
            if load[member] < base or (load[member] == base and extra > 0):
                if load[member] == base:
                    extra -= 1
                out[p] = member
                load[member] += 1
                break
    return out


class Membership:
    def __init__(
        self,
        nc: Client,
        pool: str,
        worker_id: str,
        on_change: Callable[[list[str]], None],
        heartbeat: float = 1.0,
        stale_after: float = 5.0,
    ) -> None:
        self._nc = nc
        self._pool = pool
        self._worker = worker_id
        self._on_change = on_change
        self._heartbeat = heartbeat
        self._stale_after = stale_after
        self._seen: dict[str, float] = {}
        self._members: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._kv: KeyValue | None = None
        self._leaving = False

    @property
    def members(self) -> list[str]:
        return list(self._members)

    async def start(self) -> None:
        self._kv = await open_bucket(self._nc.jetstream(), MEMBERS)
        await self._beat()
        self._seen[self._worker] = time.monotonic()
        self._recompute()
        watcher = await self._kv.watch(f"{self._pool}.*")
        self._tasks = [
            asyncio.create_task(self._heartbeat_loop()),
            asyncio.create_task(self._watch_loop(watcher)),
            asyncio.create_task(self._expire_loop()),
        ]

    async def _beat(self) -> None:
        assert self._kv is not None
        value = json.dumps({"worker": self._worker, "ts": time.time()}).encode()
        await self._kv.put(f"{self._pool}.{self._worker}", value)

    async def _heartbeat_loop(self) -> None:
        while not self._leaving:
            await asyncio.sleep(self._heartbeat)
            try:
                await self._beat()
            except Exception as exc:  # reconnecting: the next beat will do
                log.debug("heartbeat failed", error=f"{type(exc).__name__}: {exc}")

    async def _watch_loop(self, watcher: Any) -> None:
        async for entry in watcher:
            if entry is None:  # end of the initial values
                continue
            member = entry.key.split(".", 1)[1]
            if entry.operation in ("DEL", "PURGE"):
                self._seen.pop(member, None)
            else:
                self._seen[member] = time.monotonic()
            self._recompute()

    async def _expire_loop(self) -> None:
        while not self._leaving:
            await asyncio.sleep(self._heartbeat / 2)
            self._recompute()

    def _recompute(self) -> None:
        now = time.monotonic()
        live = sorted(m for m, seen in self._seen.items() if now - seen <= self._stale_after)
        if self._leaving:
            live = [m for m in live if m != self._worker]
        if live != self._members:
            self._members = live
            log.info("pool members changed", pool=self._pool, members=live)
            self._on_change(live)

    async def leave(self) -> None:
        """Stops heartbeating and deletes our key, so the others take our partitions at once."""
        self._leaving = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._kv is not None:
            with contextlib.suppress(Exception):
                await self._kv.delete(f"{self._pool}.{self._worker}")
