"""The embedded embedding model in-process (bench/retrieval.ts's baseline): the gpu worker's own WordLlama model
class (dspex_worker.ops.embedder), called on the same texts in the same batch size, in one Python process.

Prints one JSON line: {"vectors_per_s": …, "texts": n, "batch": b, "load_s": …}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", required=True, help="a JSON file: a list of strings")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    with open(args.texts) as f:
        texts: list[str] = json.load(f)
    t0 = time.perf_counter()
    from dspex_worker.ops.embedder import WordLlamaModel

    model = WordLlamaModel()
    load_s = time.perf_counter() - t0
    model.embed(texts[: args.batch], True)  # warm-up
    t1 = time.perf_counter()
    for start in range(0, len(texts), args.batch):
        model.embed(texts[start : start + args.batch], True)
    elapsed = time.perf_counter() - t1
    out = {"vectors_per_s": len(texts) / elapsed, "texts": len(texts), "batch": args.batch, "load_s": load_s}
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
