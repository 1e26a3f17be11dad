"""What the ops share with the worker: the request as the ops see it, what running it produced, and DSPy's
values as wire data. A leaf: it imports nothing of the worker but the generated protocol types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from .protocol.generated.types import RequestEnvelope

# A request as the ops get it: the envelope after protocol.check_request.
Request = RequestEnvelope

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass(slots=True)
class Execution:
    outputs: dict[str, Any]
    lm: str
    usage: dict[str, int]
    # op "evaluate": metric name -> score (ops/evaluate.py)
    scores: dict[str, Any] | None = None
    # DSPy surface ops: typed results beyond the prediction (trajectory, results, votes, job)
    extra: dict[str, Any] | None = None


def to_wire_value(value: Any) -> Any:
    """Converts DSPy output values (pydantic models, tuples, sets) into plain msgpack-able data."""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): to_wire_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_wire_value(v) for v in value]
    return value


def sum_usage(*per_model: Mapping[str, Mapping[str, Any]] | None) -> dict[str, int]:
    """Token usage summed over DSPy's per-model usage maps (`prediction.get_lm_usage()`)."""
    total = dict.fromkeys(USAGE_KEYS, 0)
    for usages in per_model:
        for usage in (usages or {}).values():
            for key in USAGE_KEYS:
                total[key] += int(usage.get(key) or 0)
    return total
