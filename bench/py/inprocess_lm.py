"""In-process DSPy against an OpenAI-compatible endpoint (bench/native.ts's Python baseline): `dspy.Predict` with
`dspy.LM("openai/<model>", api_base=...)` — DSPy's own engine, HTTP to the LM double — awaited from asyncio tasks at
each concurrency, in one Python process. The same call the native engine makes from TypeScript and a worker makes
behind the bus, with nothing around it.

Prints one JSON line: {"modes": [{concurrency, rps, p50_ms, …, cpu_ms_per_req}], "import_dspy_s": …}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from common import closed_loop_async, cpu_seconds, emit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--signature", required=True)
    parser.add_argument("--inputs", required=True, help="inputs as JSON")
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--model", default="openai/test-model")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--max-requests", type=int, default=50_000)
    args = parser.parse_args()

    t0 = time.perf_counter()
    import dspy

    import_s = time.perf_counter() - t0
    inputs: dict[str, Any] = json.loads(args.inputs)
    # as a worker's factory builds it: no cache, no client retries, a placeholder key (workers/dspex_worker/lm)
    lm = dspy.LM(args.model, api_base=args.api_base, api_key="dspex-no-key", cache=False, num_retries=0)
    dspy.configure(lm=lm)
    program = dspy.Predict(args.signature)
    results: list[dict[str, Any]] = []

    async def run() -> None:
        for c in (int(x) for x in args.concurrency.split(",")):

            async def op() -> Any:
                return await program.acall(**inputs)

            if args.warmup > 0:
                await closed_loop_async(op, c, args.warmup, 0, args.max_requests)
            cpu0 = cpu_seconds()
            r = await closed_loop_async(op, c, args.duration, 0, args.max_requests)
            r["cpu_ms_per_req"] = round((cpu_seconds() - cpu0) * 1000 / r["requests"], 3) if r["requests"] else 0.0
            results.append(r)
            print(f"inprocess c={c}: {r['rps']} req/s p50 {r['p50_ms']} ms", file=sys.stderr)

    asyncio.run(run())
    emit({"modes": results, "import_dspy_s": round(import_s, 3)})


if __name__ == "__main__":
    main()
