"""Helpers shared by the benchmark's Python sides: latency statistics and a closed-loop load driver."""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any


def summarize(samples_s: list[float], wall_s: float, errors: int = 0) -> dict[str, Any]:
    """Latency percentiles in ms and throughput, the same fields bench/lib/load.ts reports."""
    xs = sorted(samples_s)
    n = len(xs)

    def pct(p: float) -> float:
        if not xs:
            return float("nan")
        return xs[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))] * 1000  # nearest rank

    return {
        "requests": n,
        "errors": errors,
        "wall_s": round(wall_s, 4),
        "rps": round(n / wall_s, 1) if wall_s > 0 else 0.0,
        "p50_ms": round(pct(50), 4),
        "p95_ms": round(pct(95), 4),
        "p99_ms": round(pct(99), 4),
        "mean_ms": round(sum(xs) / n * 1000, 4) if n else float("nan"),
        "max_ms": round(xs[-1] * 1000, 4) if xs else float("nan"),
    }


async def closed_loop_async(
    op: Callable[[], Awaitable[Any]], concurrency: int, duration_s: float, warmup_s: float, max_requests: int
) -> dict[str, Any]:
    """`concurrency` tasks each calling `op` back to back: warm-up first (discarded), then the measured run."""

    async def run(seconds: float, budget: int, record: bool) -> tuple[list[float], int, float]:
        samples: list[float] = []
        errors = 0
        end = time.perf_counter() + seconds
        started = time.perf_counter()

        async def user() -> None:
            nonlocal errors
            while time.perf_counter() < end and len(samples) + errors < budget:
                t0 = time.perf_counter()
                try:
                    await op()
                except Exception:
                    errors += 1
                    continue
                if record:
                    samples.append(time.perf_counter() - t0)

        await asyncio.gather(*(user() for _ in range(concurrency)))
        return samples, errors, time.perf_counter() - started

    if warmup_s > 0:
        await run(warmup_s, max_requests, record=False)
    samples, errors, wall = await run(duration_s, max_requests, record=True)
    out = summarize(samples, wall, errors)
    out["concurrency"] = concurrency
    return out


def closed_loop_sync(op: Callable[[], Any], duration_s: float, warmup_s: float, max_requests: int) -> dict[str, Any]:
    """One caller in a plain loop (concurrency 1, no event loop)."""
    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        op()
    samples: list[float] = []
    started = time.perf_counter()
    end = started + duration_s
    while time.perf_counter() < end and len(samples) < max_requests:
        t0 = time.perf_counter()
        op()
        samples.append(time.perf_counter() - t0)
    out = summarize(samples, time.perf_counter() - started)
    out["concurrency"] = 1
    return out


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def emit(result: dict[str, Any]) -> None:
    """The result on stdout as one JSON line (the TypeScript orchestrator parses the last line)."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
