"""The fleet-wide LM response cache (docs/dspy-surface.md, "LM cache").

DSPy caches an LM's responses when the LM is built with `cache=True` (an LM profile's `cache`, or a request's
`lm.cache`): `dspy.cache.get(request)` before the call, `put(request, response)` after, keyed by the sha256 of the
request (model, messages, parameters, `rollout_id`) as DSPy computes it. The worker replaces `dspy.cache` with
`FleetCache`: DSPy's in-process memory tier first, then a second tier shared by every worker — the KV bucket
`dspex_lm_cache`, which each worker replicates into memory by watching it (bounded by
DSPEX_LM_CACHE_REPLICA_MB, least recently used first out). A lookup never waits on the network: DSPy asks the
cache synchronously, on the event loop as well as in threads, so the replica is what makes another worker's
response a hit. A response one worker stores reaches the others as soon as the watch delivers it.

What is shared: DSPy's plain-data response records (its native engine's) and LiteLLM chat completions, stored as
JSON — never pickles, so a value in the bucket cannot run code on a worker (and only worker identities may write
the bucket); anything else stays in the worker's memory tier. Requests with
`temperature > 0` and no `rollout_id` stay in the worker's memory tier: sampling again is what the caller asked
for, while a `rollout_id` names a rollout the caller wants repeatable. DSPEX_LM_CACHE=memory keeps DSPy's
memory-only behaviour; `off` disables caching even for LMs built with cache=True.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections import OrderedDict
from typing import Any

import dspy
from dspy.clients.cache import Cache
from nats.js.kv import KeyValue

from ..observability.log import get_logger

log = get_logger("dspex_worker.lm.fleet_cache")

DEFAULT_REPLICA_MB = 64


def _temperature(request: Any, depth: int = 0) -> Any:
    """The request's temperature: top level on the LiteLLM path, inside the request's config on DSPy's native one."""
    if not isinstance(request, dict) or depth > 3:
        return None
    if "temperature" in request:
        return request["temperature"]
    for value in request.values():
        if isinstance(value, dict) and (found := _temperature(value, depth + 1)) is not None:
            return found
    return None


def shareable(request: dict[str, Any]) -> bool:
    """May this request's response be shared with (and served from) other workers?"""
    temperature = _temperature(request)
    sampled = isinstance(temperature, int | float) and temperature > 0
    return not sampled or request.get("rollout_id") is not None


_LITELLM = "_dspex_litellm_model_response"


def _encode(value: Any) -> bytes | None:
    """JSON of what DSPy caches: its native engine's plain-data record, or a LiteLLM chat completion."""
    import litellm

    if isinstance(value, litellm.ModelResponse):
        value = {_LITELLM: value.model_dump()}
    elif not isinstance(value, dict):
        return None  # other response types (the Responses API objects) stay in the memory tier
    try:
        return json.dumps(value, separators=(",", ":")).encode()
    except (TypeError, ValueError):
        return None  # not plain data: kept in this worker's memory only


def _decode(data: bytes) -> Any:
    import litellm

    value = json.loads(data)
    if isinstance(value, dict) and _LITELLM in value:
        return litellm.ModelResponse(**value[_LITELLM])
    return value


class Replica:
    """This worker's copy of the shared tier: key → JSON bytes, least recently used out past `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.shared = 0  # responses this worker wrote to the bucket
        self.share_errors = 0
        self.evicted = 0
        self._kv: KeyValue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch: asyncio.Task[None] | None = None

    def _store(self, key: str, data: bytes) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._entries[key] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped)
                self.evicted += 1

    def _remove(self, key: str) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old)

    def get(self, key: str) -> Any:
        with self._lock:
            data = self._entries.get(key)
            if data is not None:
                self._entries.move_to_end(key)
        if data is None:
            self.misses += 1
            return None
        try:
            value = _decode(data)
        except Exception as exc:  # an entry this version cannot read: a miss, and out of the replica
            log.warning("unreadable LM cache entry", key=key, error=str(exc))
            self._remove(key)
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, key: str, value: Any) -> None:
        """Keeps the response here and shares it (from any thread; the write runs on the worker's loop)."""
        data = _encode(value)
        if data is None:
            return
        self._store(key, data)
        kv, loop = self._kv, self._loop
        if kv is None or loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(lambda: loop.create_task(self._share(kv, key, data)))

    async def _share(self, kv: KeyValue, key: str, data: bytes) -> None:
        try:
            await kv.put(key, data)
            self.shared += 1
        except Exception as exc:  # a full bucket or a lost connection: this worker still has it
            self.share_errors += 1
            log.warning("LM cache entry not shared", key=key, error=f"{type(exc).__name__}: {exc}")

    async def start(self, kv: KeyValue) -> None:
        """Loads the bucket and follows it until `stop`: entries other workers write become hits here."""
        self._kv, self._loop = kv, asyncio.get_running_loop()
        watcher = await kv.watchall()
        loaded = asyncio.Event()

        async def follow() -> None:
            async for entry in watcher:
                if entry is None:  # the end of what the bucket held when the watch started
                    loaded.set()
                    continue
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    self._remove(entry.key)
                else:
                    self._store(entry.key, entry.value)

        self._watch = asyncio.create_task(follow())
        await asyncio.wait({self._watch, asyncio.ensure_future(loaded.wait())}, return_when=asyncio.FIRST_COMPLETED)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        self._kv = None

    def stats(self) -> dict[str, Any]:
        with self._lock:
            entries, size = len(self._entries), self._bytes
        return {
            "hits": self.hits,
            "misses": self.misses,
            "entries": entries,
            "bytes": size,
            "max_bytes": self.max_bytes,
            "shared": self.shared,
            "share_errors": self.share_errors,
            "evicted": self.evicted,
        }


class FleetCache(Cache):  # type: ignore[misc]  # dspy is untyped
    """DSPy's Cache with its memory tier, and the fleet's shared tier where DSPy would use its disk."""

    def __init__(self, replica: Replica, memory_max_entries: int = 100_000) -> None:
        super().__init__(
            enable_disk_cache=False,
            enable_memory_cache=True,
            disk_cache_dir=None,
            memory_max_entries=memory_max_entries,
        )
        self.replica = replica
        self.memory_hits = 0

    def get(self, request: dict[str, Any], ignored_args_for_cache_key: list[str] | None = None) -> Any:
        try:
            key = self.cache_key(request, ignored_args_for_cache_key)
        except Exception:
            return None
        with self._lock:
            response = self.memory_cache.get(key)
        if response is not None:
            self.memory_hits += 1
            return self._prepare_cached_response(response)
        if not shareable(request):
            return None
        response = self.replica.get(key)
        if response is None:
            return None
        with self._lock:
            self.memory_cache[key] = response
        return self._prepare_cached_response(response)

    def put(
        self,
        request: dict[str, Any],
        value: Any,
        ignored_args_for_cache_key: list[str] | None = None,
        enable_memory_cache: bool = True,
    ) -> None:
        try:
            key = self.cache_key(request, ignored_args_for_cache_key)
        except Exception:
            return
        if enable_memory_cache:
            with self._lock:
                self.memory_cache[key] = value
        if shareable(request):
            self.replica.put(key, value)

    def stats(self) -> dict[str, Any]:
        return {"mode": "fleet", "memory_hits": self.memory_hits, "fleet": self.replica.stats()}


def cache_mode() -> str:
    mode = os.environ.get("DSPEX_LM_CACHE", "fleet").strip() or "fleet"
    if mode not in ("fleet", "memory", "off"):
        raise ValueError(f"DSPEX_LM_CACHE must be fleet, memory or off (got {mode!r})")
    return mode


def replica_bytes() -> int:
    raw = os.environ.get("DSPEX_LM_CACHE_REPLICA_MB", "")
    return (int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_REPLICA_MB) * 2**20


async def install(kv_opener: Any) -> FleetCache | None:
    """Makes the fleet cache DSPy's (`dspy.cache`) per DSPEX_LM_CACHE; `kv_opener()` opens the bucket."""
    mode = cache_mode()
    if mode == "memory":
        return None  # DSPy's own cache, in memory
    if mode == "off":
        dspy.cache = Cache(enable_disk_cache=False, enable_memory_cache=False, disk_cache_dir=None)
        return None
    replica = Replica(replica_bytes())
    await replica.start(await kv_opener())
    cache = FleetCache(replica)
    dspy.cache = cache
    return cache
