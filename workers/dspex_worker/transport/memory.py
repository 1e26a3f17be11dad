"""A bounded memory of the requests this worker ran recently and the replies it computed for them.

JetStream delivers at least once: a request comes back when its ack was lost, when AckWait passed while the
worker was cut off from the server, or after a reconnect. A redelivery of a request this worker already
answered is answered again from memory (the same reply bytes) instead of being run twice; a redelivery that
arrives while the first delivery is still running waits for it instead of starting it again.

Entries are keyed by the request's stream sequence (plus its id), which is what makes two deliveries the same
request: a new message that reuses an id gets a new sequence and runs. The memory is per process: a request
redelivered after a worker crash goes to another worker, which runs it (the first never replied).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field

DEFAULT_MAX_ENTRIES = 4096
DEFAULT_MAX_BYTES = 64 * 2**20
DEFAULT_TTL_S = 900.0


@dataclass
class Entry:
    """One request: running (no reply yet) or done (`reply` holds the encoded reply)."""

    task: asyncio.Task[object] | None
    started: float = field(default_factory=time.monotonic)
    reply: bytes | None = None
    done_at: float = 0.0
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def running(self) -> bool:
        return self.reply is None and not self.abandoned

    @property
    def abandoned(self) -> bool:
        """The task that ran it ended without a reply (it raised, or was cancelled)."""
        return self.reply is None and self.task is not None and self.task.done()

    async def wait(self, timeout: float) -> bool:
        """Waits until the reply is there or the task ended without one; False on timeout."""
        if not self.running:
            return True
        waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(self._done.wait())}
        if self.task is not None:
            waiters.add(self.task)
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            if w is not self.task and not w.done():
                w.cancel()
        return bool(done)


class ReplyMemory:
    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        ttl_s: float = DEFAULT_TTL_S,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.joined = 0

    @classmethod
    def from_env(cls) -> ReplyMemory:
        """DSPEX_WORKER_DEDUP_ENTRIES, DSPEX_WORKER_DEDUP_MB, DSPEX_WORKER_DEDUP_TTL_S."""
        return cls(
            max_entries=int(os.environ.get("DSPEX_WORKER_DEDUP_ENTRIES") or DEFAULT_MAX_ENTRIES),
            max_bytes=int(float(os.environ.get("DSPEX_WORKER_DEDUP_MB") or DEFAULT_MAX_BYTES / 2**20) * 2**20),
            ttl_s=float(os.environ.get("DSPEX_WORKER_DEDUP_TTL_S") or DEFAULT_TTL_S),
        )

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Entry | None:
        self._expire()
        entry = self._entries.get(key)
        if entry is not None and entry.abandoned:
            del self._entries[key]
            return None
        return entry

    def start(self, key: str, task: asyncio.Task[object] | None) -> Entry:
        """Marks `key` as running in `task` (the handler's task: if it ends without a reply, so does the entry)."""
        old = self._entries.pop(key, None)
        if old is not None and old.reply is not None:
            self._bytes -= len(old.reply)
        entry = Entry(task=task)
        self._entries[key] = entry
        self._evict()
        return entry

    def complete(self, key: str, reply: bytes) -> None:
        entry = self._entries.get(key)
        if entry is None:
            entry = Entry(task=None)
            self._entries[key] = entry
        elif entry.reply is not None:
            self._bytes -= len(entry.reply)
        entry.reply = reply
        entry.done_at = time.monotonic()
        entry._done.set()
        self._bytes += len(reply)
        self._entries.move_to_end(key)
        self._evict()

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._entries), "bytes": self._bytes, "hits": self.hits, "joined": self.joined}

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.ttl_s
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.running or (entry.done_at or entry.started) > cutoff:
                break
            self._drop(key)

    def _evict(self) -> None:
        # Oldest first, but never a request that is still running (its redelivery must find it).
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            victim = next((k for k, e in self._entries.items() if not e.running), None)
            if victim is None:
                break
            self._drop(victim)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        if entry.reply is not None:
            self._bytes -= len(entry.reply)
