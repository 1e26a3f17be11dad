"""Scenario 6, Python side: dynamic signature class creation (`build_signature`, cold) and the worker's
`SignatureCache` (cached), plus the worker's input validation, on a signature given as wire JSON."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from common import emit


def per_call_us(fn: Any, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wire", required=True, help="signature wire JSON")
    parser.add_argument("--inputs", required=True, help="inputs as JSON")
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()

    t0 = time.perf_counter()
    import dspy  # noqa: F401  (timed: what every worker start pays)

    import_s = time.perf_counter() - t0
    from dspex_worker.signatures import SignatureCache, build_signature, signature_key, validate_inputs

    sig: dict[str, Any] = json.loads(args.wire)
    inputs: dict[str, Any] = json.loads(args.inputs)
    t0 = time.perf_counter()
    build_signature(sig)
    first_us = (time.perf_counter() - t0) * 1e6
    cold_us = per_call_us(lambda: build_signature(sig), args.n)
    cache = SignatureCache()
    cache.get_or_build(sig)
    cached_us = per_call_us(lambda: cache.get_or_build(sig), args.n * 20)
    key_us = per_call_us(lambda: signature_key(sig), args.n * 20)
    validate_inputs(sig, inputs)
    validate_us = per_call_us(lambda: validate_inputs(sig, inputs), args.n * 20)
    emit(
        {
            "import_dspy_s": round(import_s, 3),
            "build_first_us": round(first_us, 1),
            "build_cold_us": round(cold_us, 1),
            "cache_hit_us": round(cached_us, 2),
            "signature_key_us": round(key_us, 2),
            "validate_inputs_us": round(validate_us, 2),
            "cache": {"hits": cache.hits, "misses": cache.misses},
        }
    )


if __name__ == "__main__":
    main()
