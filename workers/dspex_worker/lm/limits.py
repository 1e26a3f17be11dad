"""An LM profile's limits on one worker (schemas/lm-profiles.schema.json: max_concurrency, requests_per_minute,
tokens_per_minute), and a pause after the provider said 429.

A worker holds hundreds of requests at once (LM calls are I/O-bound); what bounds them for one provider is the
provider. So a request whose LM is a profile with limits waits here, within its deadline, before it runs:

* **max_concurrency** — at most this many of the profile's requests run at once on this worker;
* **requests_per_minute** — a token bucket holding one minute's worth, refilled continuously;
* **tokens_per_minute** — a budget debited after each request by its usage (prompt + completion tokens, which
  are not known before); a request starts only while the budget is not spent;
* **429** — when the provider answers "rate limited", the profile's new requests wait for its Retry-After, or a
  backoff (1 s doubling to 30 s) when it gave none; a success resets the backoff. The rate-limited request itself
  is answered with its retryable LMError (and `retry_after`): the caller's retry policy decides.

Limits are per worker: an operator divides a provider's account limit by the workers that share it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0


class _Bucket:
    """A token bucket of `capacity`, refilled at `capacity` per minute; its level may go below zero (debts)."""

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self, need: float, now: float) -> float:
        """Seconds until the level reaches `need` (0: now)."""
        self.refill(now)
        return 0.0 if self.level >= need else (need - self.level) / self.rate


class ProfileLimiter:
    def __init__(
        self,
        name: str,
        *,
        max_concurrency: int | None = None,
        requests_per_minute: float | None = None,
        tokens_per_minute: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._clock = clock
        now = clock()
        self._slots = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._requests = _Bucket(requests_per_minute, now) if requests_per_minute else None
        self._tokens = _Bucket(tokens_per_minute, now) if tokens_per_minute else None
        self._paused_until = 0.0
        self._backoff = 0.0
        self.waited = 0  # requests that had to wait
        self.rate_limited = 0  # 429s seen

    @classmethod
    def from_limits(cls, name: str, limits: Mapping[str, Any]) -> ProfileLimiter | None:
        if not limits:
            return None
        return cls(
            name,
            max_concurrency=limits.get("max_concurrency"),
            requests_per_minute=limits.get("requests_per_minute"),
            tokens_per_minute=limits.get("tokens_per_minute"),
        )

    def ready_in(self) -> float:
        """Seconds until a request may start as far as the rates and a 429 pause go (0: now)."""
        now = self._clock()
        wait = max(0.0, self._paused_until - now)
        if self._requests is not None:
            wait = max(wait, self._requests.wait(1.0, now))
        if self._tokens is not None:
            wait = max(wait, self._tokens.wait(1.0, now))  # a budget not spent: at least one token left
        return wait

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Waits for the profile's limits, then holds one of its slots while the request runs."""
        if self._slots is not None:
            if self._slots.locked():
                self.waited += 1
            await self._slots.acquire()
        try:
            waited = False
            while (wait := self.ready_in()) > 0:
                if not waited:
                    self.waited += 1
                    waited = True
                await asyncio.sleep(wait)
            if self._requests is not None:
                self._requests.level -= 1.0
            yield
        finally:
            if self._slots is not None:
                self._slots.release()

    def spent(self, tokens: int) -> None:
        """A request's usage, debited from the token budget; a request that succeeded resets the 429 backoff."""
        self._backoff = 0.0
        if self._tokens is not None and tokens > 0:
            self._tokens.refill(self._clock())
            self._tokens.level -= tokens

    def throttled(self, retry_after: float | None) -> None:
        """The provider said 429: new requests wait for its Retry-After, or the next step of the backoff."""
        self.rate_limited += 1
        if retry_after is not None and retry_after > 0:
            pause = min(float(retry_after), BACKOFF_MAX_S * 4)
        else:
            self._backoff = min(BACKOFF_MAX_S, self._backoff * 2 if self._backoff else BACKOFF_START_S)
            pause = self._backoff
        self._paused_until = max(self._paused_until, self._clock() + pause)

    def stats(self) -> dict[str, Any]:
        now = self._clock()
        return {
            "waited": self.waited,
            "rate_limited": self.rate_limited,
            "paused_s": round(max(0.0, self._paused_until - now), 2),
            **({"tokens_left": round(self._tokens.level)} if self._tokens is not None else {}),
        }


def is_rate_limited(error: Mapping[str, Any]) -> bool:
    """Whether a request's error reply (its wire map) says the provider rate-limited it."""
    details = error.get("details") or {}
    return error.get("type") == "LMError" and (
        details.get("status") == 429 or "RateLimit" in str(details.get("dspy_error", ""))
    )
