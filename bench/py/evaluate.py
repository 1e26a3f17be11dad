"""Scenario 5, the in-process side: `dspy.Evaluate(num_threads=K)` over N examples on `dspex/echo` with a
fixed LM latency (`time.sleep` in the threads, as a provider round trip would block them)."""

from __future__ import annotations

import argparse
import time

from common import cpu_seconds, emit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=100)
    args = parser.parse_args()

    import dspy
    from dspy.evaluate import answer_exact_match

    from dspex_worker.lm.echo import EchoLM

    lm = EchoLM(f"dspex/echo?latency_ms={args.latency_ms:g}")
    dspy.configure(lm=lm)
    devset = [
        dspy.Example(question=f"question {i}", answer=f"answer: question {i}").with_inputs("question")
        for i in range(args.examples)
    ]
    evaluate = dspy.Evaluate(devset=devset, metric=answer_exact_match, num_threads=args.threads, display_progress=False)
    program = dspy.Predict("question -> answer")
    cpu0 = cpu_seconds()
    started = time.perf_counter()
    result = evaluate(program)
    wall = time.perf_counter() - started
    emit(
        {
            "examples": args.examples,
            "threads": args.threads,
            "latency_ms": args.latency_ms,
            "wall_s": round(wall, 4),
            "score": float(result.score),
            "lm_calls": lm.echo_engine.calls,
            "cpu_s": round(cpu_seconds() - cpu0, 3),
        }
    )


if __name__ == "__main__":
    main()
