"""The worker's event loop: uvloop by default, and DSPy's per-call bookkeeping inline instead of a thread hop each
(inline_executor.py), while every other `asyncio.to_thread` still runs in a thread."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import threading

import dspy
import pytest
import uvloop

from dspex_worker import inline_executor
from dspex_worker.__main__ import loop_factory
from dspex_worker.config import parse_config
from dspex_worker.lm.echo import EchoLM
from dspex_worker.protocol.errors import TransportError
from dspex_worker.transport.connect import server_list

SENTIMENT = "review: str -> sentiment: Literal['positive', 'negative', 'neutral'], confidence: float"


def test_the_installed_dspy_has_every_helper_run_inline() -> None:
    # fails when a DSPy upgrade renames one: the worker would then pay a thread hop for it again
    assert inline_executor.missing_helpers() == []


def test_dspy_calls_make_no_thread_hop_and_other_work_still_runs_in_threads() -> None:
    async def run() -> tuple[inline_executor.InlineHelpersExecutor, dspy.Prediction, int]:
        executor = inline_executor.install(asyncio.get_running_loop())
        with dspy.context(lm=EchoLM(), track_usage=True):
            prediction = await dspy.Predict(SENTIMENT).acall(review="Battery lasts two days.")
        assert executor.thread_calls == 0
        # a program's sync forward, an optimizer, the embedder: still off the loop
        other = await asyncio.to_thread(threading.get_ident)
        assert other != threading.get_ident()
        assert executor.thread_calls == 1
        return executor, prediction, other

    executor, prediction, _ = asyncio.run(run())
    assert prediction.sentiment == "positive" and prediction.confidence == 0.5
    assert prediction.get_lm_usage()["dspex/echo"]["total_tokens"] > 0
    # prepare and the cache lookup at least (the store and the price too when DSPy runs them)
    assert executor.inline_calls >= 2


def test_an_inline_helper_sees_the_callers_context_and_raises_to_the_caller() -> None:
    seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")

    def helper(fail: bool) -> str:
        if fail:
            raise ValueError("from the helper")
        return f"{seen.get()} on {threading.get_ident()}"

    async def run() -> None:
        executor = inline_executor.install(asyncio.get_running_loop())
        executor._inline = frozenset({helper})  # the test's own helper stands in for DSPy's
        seen.set("the caller's value")
        assert await asyncio.to_thread(helper, False) == f"the caller's value on {threading.get_ident()}"
        with pytest.raises(ValueError, match="from the helper"):
            await asyncio.to_thread(helper, True)
        assert (executor.inline_calls, executor.thread_calls) == (2, 0)

    asyncio.run(run())


def test_event_loop_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DSPEX_WORKER_EVENT_LOOP", raising=False)
    assert parse_config([]).event_loop == "uvloop"
    assert parse_config(["--event-loop", "asyncio"]).event_loop == "asyncio"
    monkeypatch.setenv("DSPEX_WORKER_EVENT_LOOP", "asyncio")
    assert parse_config([]).event_loop == "asyncio"
    with pytest.raises(SystemExit):
        parse_config(["--event-loop", "trio"])
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("asyncio") is None

    async def running_loop() -> type:
        return type(asyncio.get_running_loop())

    factory = loop_factory("uvloop")
    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(running_loop()) is uvloop.Loop


def test_the_worker_imports_nats_without_aiohttp_and_refuses_websocket_urls() -> None:
    # a fresh interpreter, as `python -m dspex_worker` starts: nats is there, aiohttp is not, and stays importable
    probe = (
        "import sys, dspex_worker.__main__; "
        "print('nats' in sys.modules, 'aiohttp' in sys.modules); import aiohttp; print(aiohttp.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "aiohttp"]
    assert server_list("nats://a:4222, tls://b:4222") == ["nats://a:4222", "tls://b:4222"]
    with pytest.raises(TransportError) as err:
        server_list("nats://a:4222,ws://b:8080")
    assert err.value.field == "NATS_URL" and "ws://b:8080" in err.value.message


def test_the_price_table_is_loaded_in_a_thread_before_a_request_needs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from dspy.clients import model_metadata

    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # as __main__ sets it: the bundled table
    monkeypatch.setattr(model_metadata, "_data", None)

    async def run() -> inline_executor.InlineHelpersExecutor:
        executor = inline_executor.install(asyncio.get_running_loop())
        await inline_executor.preload_tables()
        return executor

    executor = asyncio.run(run())
    assert executor.thread_calls == 1 and executor.inline_calls == 0  # the load went to a thread
    assert model_metadata.model_info("openai", "gpt-4o-mini")  # a lookup in the loaded table
