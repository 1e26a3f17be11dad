"""The worker's default executor: DSPy's per-call bookkeeping runs inline on the event loop, everything else in
threads.

DSPy's async LM path (`BaseLM.acall`, `execution.aexecute`, dspy 3.4) sends its bookkeeping to a thread with
`asyncio.to_thread`: building the call (`prepare`), the response-cache lookup and store (`_cached`, `_store`) and
the advisory price (`_price_result`, `_price_legacy`). In a general-purpose process that keeps a disk cache or a
local media file read off the loop. On a worker none of them blocks: `dspy.cache` is the worker's own (memory tier
plus the fleet tier's in-memory replica, lm/fleet_cache.py: never a disk), wire media are URLs, data URIs or
bytes, and the price is a lookup in a table DSPy loads once — `preload_tables` loads it in a thread when the
worker is ready, and the worker sets LITELLM_LOCAL_MODEL_COST_MAP so that DSPy reads its bundled table instead of
fetching one. Each hop, though, costs two cross-thread wake-ups and GIL hand-offs — a fifth of the worker's CPU
per request at concurrency 1 in a py-spy profile, more latency when the threads were idle between requests
(docs/performance.md). `asyncio.to_thread` goes through the loop's default executor, so this executor decides per
function: DSPy's helpers named in `HELPER_NAMES` run in the calling thread and return a finished future; every
other function (a program's sync `forward`, optimizers, the embedder, DNS lookups, and DSPy's capability lookup
for provider models, which may import LiteLLM) goes to the thread pool as before.

The set is checked against the installed DSPy at start (`missing_helpers`): a DSPy release that renames one only
loses the shortcut for it, and the worker logs which.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
from collections.abc import Callable
from typing import Any

from dspy.clients import execution as _dspy_execution
from dspy.clients import model_metadata

# DSPy's per-call helpers that only touch memory on a worker (see the module docstring).
HELPER_NAMES = ("prepare", "_cached", "_store", "_price_result", "_price_legacy")


def _helpers() -> frozenset[Callable[..., Any]]:
    found = (getattr(_dspy_execution, name, None) for name in HELPER_NAMES)
    return frozenset(f for f in found if callable(f))


def missing_helpers() -> list[str]:
    """The helper names the installed DSPy no longer has (they then run in threads, as DSPy does)."""
    return [name for name in HELPER_NAMES if not callable(getattr(_dspy_execution, name, None))]


def _target(fn: Callable[..., Any]) -> Any:
    # asyncio.to_thread submits functools.partial(contextvars.Context.run, func, *args); unwrap to `func`.
    if not isinstance(fn, functools.partial) or not fn.args:
        return fn
    if isinstance(getattr(fn.func, "__self__", None), contextvars.Context):
        return fn.args[0]
    return fn


class InlineHelpersExecutor(concurrent.futures.ThreadPoolExecutor):
    """A ThreadPoolExecutor that runs DSPy's memory-only helpers in the submitting thread."""

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="dspex-worker")
        self._inline = _helpers()
        self.inline_calls = 0
        self.thread_calls = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        if _target(fn) not in self._inline:
            self.thread_calls += 1
            return super().submit(fn, *args, **kwargs)
        self.inline_calls += 1
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # the caller's await re-raises it, as it would from a thread
            future.set_exception(exc)
        return future


async def preload_tables() -> None:
    """Loads what the inline helpers read (DSPy's model price table, gzip + JSON, ~35 ms) in a thread, so that no
    request's first price lookup loads it on the loop. The worker starts this right after it is ready."""
    await model_metadata.apreload()


def install(loop: asyncio.AbstractEventLoop) -> InlineHelpersExecutor:
    """Makes an InlineHelpersExecutor the loop's default executor (what `asyncio.to_thread` uses)."""
    executor = InlineHelpersExecutor()
    loop.set_default_executor(executor)
    return executor
