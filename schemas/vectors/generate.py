"""Writes the golden vectors: <name>.json (the decoded value) and <name>.msgpack (its canonical bytes).

Run only when the contract changes; both test suites check these files byte for byte. Integers stay within
32 bits and floats have a fractional part, since JavaScript numbers cannot say int64 or 1.0.
"""

import json
from pathlib import Path

import msgpack

SIG_QA = {
    "inputs": [{"name": "question", "type": {"kind": "str"}}],
    "outputs": [{"name": "answer", "type": {"kind": "str"}}],
}

SIG_RICH = {
    "instructions": "Classify the review and say why. Réponds brièvement — 简短.",
    "inputs": [
        {"name": "context", "type": {"kind": "list", "items": {"kind": "str"}}, "desc": "passages"},
        {"name": "review", "type": {"kind": "str"}, "constraints": {"max_length": 2000}},
        {"name": "meta", "type": {"kind": "optional", "inner": {"kind": "dict", "keys": {"kind": "str"}, "values": {"kind": "int"}}}},
    ],
    "outputs": [
        {"name": "sentiment", "type": {"kind": "literal", "values": ["positive", "negative", "neutral"]}},
        {"name": "confidence", "type": {"kind": "float"}, "constraints": {"ge": 0, "le": 1}},
        {"name": "keywords", "type": {"kind": "list", "items": {"kind": "str"}}, "prefix": "Keywords:"},
    ],
}

VECTORS = {
    "request-predict-minimal": {
        "v": 1,
        "id": "0b7d2c1e-6a55-4f0e-9a53-3f1f2f0e7a11",
        "op": "predict",
        "signature": SIG_QA,
        "inputs": {"question": "What is 2+3?"},
    },
    "request-cot-full": {
        "v": 1,
        "id": "req-full-0001",
        "op": "chain_of_thought",
        "signature": SIG_RICH,
        "inputs": {
            "context": ["Battery lasts 2 days.", "Écran superbe 🌟"],
            "review": "Great phone, but pricey.",
            "meta": {"stars": 4, "helpful": -3, "views": 70000, "big": 4000000000},
        },
        "lm": {"model": "openai/gpt-4o-mini", "api_base": "http://127.0.0.1:8000/v1", "temperature": 0.7, "max_tokens": 512},
        "module": {"demos": [{"context": [], "review": "Awful.", "meta": None, "sentiment": "negative", "confidence": 0.95, "keywords": ["awful"]}]},
        "session": "session-42",
        "timeout_ms": 30000,
    },
    "reply-ok": {
        "v": 1,
        "id": "req-full-0001",
        "ok": True,
        "outputs": {"reasoning": "Positive words outweigh price.", "sentiment": "positive", "confidence": 0.85, "keywords": ["battery", "screen"]},
        "lm": "openai/gpt-4o-mini",
        "usage": {"prompt_tokens": 312, "completion_tokens": 41, "total_tokens": 353},
        "timings": {"queue_ms": 1.25, "exec_ms": 812.5},
        "worker": "general-1-4242",
    },
    "reply-error": {
        "v": 1,
        "id": "req-bad-0002",
        "ok": False,
        "error": {"type": "ValidationError", "message": "missing input `question`", "field": "inputs.question", "retryable": False, "details": {"missing": ["question"]}},
        "worker": "general-2-4243",
        "timings": {"queue_ms": 0.5, "exec_ms": 0.25},
    },
}


# msgpack type families (schemas/dlq.schema.json#/definitions/msgpackType) of the JSON values used here
MSGPACK_TYPES = {type(None): "nil", bool: "bool", int: "int", float: "float", str: "str", list: "array", dict: "map"}


def redacted(request: dict, pool: str) -> dict:
    """What a redacted dead letter keeps of a request (dlq.schema.json#/definitions/redactedBody): computed here
    from the values, independently of the worker's and the DLQ service's readers of the bytes."""
    return {
        "redacted": True,
        "bytes": len(msgpack.packb(request, use_bin_type=True)),
        "id": request["id"],
        "op": request["op"],
        "pool": pool,
        "fields": {
            name: {"type": MSGPACK_TYPES[type(value)], "bytes": len(msgpack.packb(value, use_bin_type=True))}
            for name, value in request["inputs"].items()
        },
    }


# The summary of request-cot-full published on dspex.req.general.any.
VECTORS["dlq-redacted-cot-full"] = redacted(VECTORS["request-cot-full"], "general")


def main() -> None:
    here = Path(__file__).parent
    for name, value in VECTORS.items():
        (here / f"{name}.json").write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        (here / f"{name}.msgpack").write_bytes(msgpack.packb(value, use_bin_type=True))


if __name__ == "__main__":
    main()
