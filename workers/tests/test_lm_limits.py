"""An LM profile's limits on one worker (lm/limits.py): concurrency, requests and tokens per minute, the pause after
a 429 — on a clock the test moves, so nothing here waits on real time."""

from __future__ import annotations

import asyncio
import json

import pytest

from dspex_worker.lm.factory import LMFactory
from dspex_worker.lm.limits import ProfileLimiter, is_rate_limited
from dspex_worker.lm.profiles import LMProfilesError, load_policy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_max_concurrency_holds_the_next_request_until_one_ends() -> None:
    limiter = ProfileLimiter("p", max_concurrency=2)
    entered: list[int] = []
    release = asyncio.Event()

    async def request(i: int) -> None:
        async with limiter.slot():
            entered.append(i)
            await release.wait()

    tasks = [asyncio.create_task(request(i)) for i in range(3)]
    while len(entered) < 2:
        await asyncio.sleep(0)
    for _ in range(5):
        await asyncio.sleep(0)
    assert entered == [0, 1], "the third waits"
    assert limiter.waited == 1
    release.set()
    await asyncio.gather(*tasks)
    assert entered == [0, 1, 2]


async def test_requests_per_minute_is_a_bucket_of_one_minute() -> None:
    clock = Clock()
    limiter = ProfileLimiter("p", requests_per_minute=2, clock=clock)
    for _ in range(2):
        assert limiter.ready_in() == 0
        async with limiter.slot():
            pass
    assert limiter.ready_in() == pytest.approx(30.0), "one request's worth comes back every 30 s"
    clock.now += 30
    assert limiter.ready_in() == 0


async def test_tokens_per_minute_are_debited_by_usage_after_the_request() -> None:
    clock = Clock()
    limiter = ProfileLimiter("p", tokens_per_minute=600, clock=clock)
    async with limiter.slot():
        pass
    limiter.spent(1000)  # more than the minute's budget: the next request waits until it is back above zero
    assert limiter.ready_in() == pytest.approx((1 + 400) / 10)
    clock.now += 40.1
    assert limiter.ready_in() == pytest.approx(0, abs=1e-9)
    assert limiter.stats()["tokens_left"] == 1


def test_a_429_pauses_new_requests_for_retry_after_or_a_doubling_backoff() -> None:
    clock = Clock()
    limiter = ProfileLimiter("p", max_concurrency=4, clock=clock)
    limiter.throttled(5.0)
    assert limiter.ready_in() == pytest.approx(5.0)
    clock.now += 5
    assert limiter.ready_in() == 0
    limiter.throttled(None)
    assert limiter.ready_in() == pytest.approx(1.0)
    clock.now += 1
    limiter.throttled(None)
    assert limiter.ready_in() == pytest.approx(2.0)
    clock.now += 2
    limiter.spent(10)  # a success resets the backoff
    limiter.throttled(None)
    assert limiter.ready_in() == pytest.approx(1.0)
    assert limiter.rate_limited == 4


def test_is_rate_limited_reads_the_error_reply() -> None:
    assert is_rate_limited({"type": "LMError", "details": {"status": 429}})
    assert is_rate_limited({"type": "LMError", "details": {"dspy_error": "RateLimitError"}})
    assert not is_rate_limited({"type": "LMError", "details": {"status": 500}})
    assert not is_rate_limited({"type": "WorkerError", "details": {"status": 429}})


def test_profiles_carry_their_limits_to_the_factory() -> None:
    document = {
        "profiles": {
            "default": {"model": "openai/a", "max_concurrency": 8, "requests_per_minute": 600},
            "other": {"model": "openai/b"},
        },
        "allow_endpoints": [{"url": "http://lab.internal:8080/v1"}],
    }
    factory = LMFactory(policy=load_policy({"DSPEX_LM_PROFILES": json.dumps(document)}))
    assert set(factory.limiters) == {"default"}
    assert factory.limiter(None) is factory.limiters["default"], "the default profile's"
    assert factory.limiter({"model": "openai/a"}) is factory.limiters["default"]
    assert factory.limiter({"profile": "other", "model": "openai/b"}) is None, "no limits"
    assert factory.limiter({"model": "openai/x", "api_base": "http://lab.internal:8080/v1"}) is None


def test_a_limit_the_schema_refuses_names_the_field() -> None:
    document = {"profiles": {"default": {"model": "openai/a", "max_concurrency": 0}}}
    with pytest.raises(LMProfilesError) as err:
        load_policy({"DSPEX_LM_PROFILES": json.dumps(document)})
    assert "max_concurrency" in str(err.value)
