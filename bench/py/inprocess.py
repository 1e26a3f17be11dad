"""Scenario 2, in-process DSPy: `dspy.Predict` in one Python process against the zero-latency `dspex/echo` LM.

Modes (all on the signature the other scenarios use):
  * predict_sync   `program(**inputs)` in a plain loop (what a script or notebook does), concurrency 1;
  * predict_async  `await program.acall(**inputs)` from asyncio tasks, concurrency 1/16/64 (the call the
                   worker makes, and the best a single Python process can do);
  * executor       the worker's op path, `registry.run(ops, request)`: signature cache + input validation + module
                   cache + `dspy.context` + `acall` + output conversion, i.e. the worker's work minus NATS,
                   concurrency 1;
  * executor_idle  the same, but the process sleeps 5 ms between calls (only the call is timed), as any server
                   does between requests that arrive one at a time: CPU caches go cold and the call costs
                   about twice the hot-loop time. This, not the hot loop, is what a server at concurrency 1 sees.

Prints one JSON line: {"modes": [...], "cpu_s": ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from common import closed_loop_async, closed_loop_sync, cpu_seconds, emit, summarize


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--signature", required=True, help="DSPy signature string")
    parser.add_argument("--wire", required=True, help="the same signature as wire JSON")
    parser.add_argument("--inputs", required=True, help="inputs as JSON")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--max-requests", type=int, default=50_000)
    parser.add_argument("--modes", default="predict_sync,predict_async,executor,executor_idle")
    parser.add_argument("--idle-ms", type=float, default=5.0)
    args = parser.parse_args()

    t0 = time.perf_counter()
    import dspy

    from dspex_worker.execution import Request
    from dspex_worker.lm.echo import EchoLM
    from dspex_worker.lm.factory import LMFactory
    from dspex_worker.ops import registry
    from dspex_worker.ops.context import OpContext

    import_s = time.perf_counter() - t0
    inputs: dict[str, Any] = json.loads(args.inputs)
    lm = EchoLM("dspex/echo")
    dspy.configure(lm=lm)
    program = dspy.Predict(args.signature)
    modes = set(args.modes.split(","))
    results: list[dict[str, Any]] = []
    cpu0 = cpu_seconds()

    if "predict_sync" in modes:
        r = closed_loop_sync(lambda: program(**inputs), args.duration, args.warmup, args.max_requests)
        results.append({"mode": "predict_sync", **r})
        print(f"predict_sync c=1: {r['rps']} req/s p50 {r['p50_ms']} ms", file=sys.stderr)

    async def run_async() -> None:
        if "predict_async" in modes:
            for c in (int(x) for x in args.concurrency.split(",")):

                async def op() -> Any:
                    return await program.acall(**inputs)

                r = await closed_loop_async(op, c, args.duration, args.warmup, args.max_requests)
                results.append({"mode": "predict_async", **r})
                print(f"predict_async c={c}: {r['rps']} req/s p50 {r['p50_ms']} ms", file=sys.stderr)
        # the worker's op path without the bus: the op registry with the worker's caches, on the test model
        ops = OpContext(lms=LMFactory(allow_test_models=True))
        request: Request = {
            "v": 1,
            "id": "bench",
            "op": "predict",
            "signature": json.loads(args.wire),
            "inputs": inputs,
            "lm": {"model": "dspex/echo"},
        }
        if "executor" in modes:

            async def op_exec() -> Any:
                return await registry.run(ops, request)

            r = await closed_loop_async(op_exec, 1, args.duration, args.warmup, args.max_requests)
            results.append({"mode": "executor", **r})
            print(f"executor c=1: {r['rps']} req/s p50 {r['p50_ms']} ms", file=sys.stderr)
        if "executor_idle" in modes:
            samples: list[float] = []
            end = time.perf_counter() + args.duration
            while time.perf_counter() < end and len(samples) < args.max_requests:
                await asyncio.sleep(args.idle_ms / 1000)
                t0 = time.perf_counter()
                await registry.run(ops, request)
                samples.append(time.perf_counter() - t0)
            r = summarize(samples[5:], sum(samples[5:]))
            r["concurrency"] = 1
            r["rps"] = 0.0  # not a throughput run: the process idles between calls on purpose
            r["idle_ms_between_calls"] = args.idle_ms
            results.append({"mode": "executor_idle", **r})
            print(f"executor_idle c=1: p50 {r['p50_ms']} ms", file=sys.stderr)

    asyncio.run(run_async())
    emit({"modes": results, "import_dspy_s": round(import_s, 3), "cpu_s": round(cpu_seconds() - cpu0, 3)})


if __name__ == "__main__":
    main()
