"""Named Python metrics, for the `evaluate` op and optimizer jobs.

Names resolve through a registry: DSPy's own `answer_exact_match` and `answer_passage_match`, the LM-judged
`semantic_f1` and `complete_and_grounded` (judges.py), and user metrics
named by dotted path `package.module:function`, loaded only when the worker's environment allows them
(`DSPEX_METRICS_ALLOW`, allowlist.py). Metrics are called as DSPy calls them in `dspy.Evaluate`:
`metric(example, prediction, **args)` with `example` a `dspy.Example` whose inputs are the request's inputs,
and `prediction` a `dspy.Prediction` of the module's outputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from dspy.evaluate import answer_exact_match, answer_passage_match

from ..protocol.errors import ValidationError, WorkerError
from .allowlist import load_allowed
from .judges import JUDGES, judge_metric

ALLOW_ENV = "DSPEX_METRICS_ALLOW"

Metric = Callable[..., Any]

BUILTIN_METRICS: dict[str, Metric] = {
    "answer_exact_match": answer_exact_match,
    "answer_passage_match": answer_passage_match,
}


def resolve_metric(name: str, *, field: str = "evaluate.metrics", env: Mapping[str, str] | None = None) -> Metric:
    """A metric by registry name or allow-listed dotted path; ValidationError naming `field` for anything else."""
    if name in BUILTIN_METRICS:
        return BUILTIN_METRICS[name]
    if name in JUDGES:
        return judge_metric(name)
    if ":" not in name:
        known = ", ".join(sorted([*BUILTIN_METRICS, *JUDGES]))
        raise ValidationError(
            f"{field}: unknown metric {name!r}; built-in metrics: {known}, or `package.module:function` "
            f"when allowed by {ALLOW_ENV}",
            field=field,
            details={"builtin": sorted([*BUILTIN_METRICS, *JUDGES])},
        )
    return load_allowed(name, ALLOW_ENV, what="metric", field=field, env=env)


def metric_call(metric: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A MetricRef (a name, or {name, args}) as (name, keyword arguments)."""
    if isinstance(metric, str):
        return metric, {}
    return str(metric["name"]), dict(metric.get("args") or {})


def _result(value: Any) -> Any:
    """DSPy's feedback predictions carry the metric's result in `.score`."""
    if not isinstance(value, bool | int | float) and hasattr(value, "score"):
        return value.score
    return value


def score_value(name: str, value: Any) -> bool | float:
    """A metric result as a wire value: bool stays bool, numbers become floats."""
    value = _result(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    raise WorkerError(
        f"metric {name!r} returned {type(value).__name__}; a metric must return a bool or a finite number",
        details={"metric": name, "stage": "metric"},
    )


def numeric(value: Any) -> float | None:
    """A metric's result as a number, or None."""
    value = _result(value)
    return float(value) if isinstance(value, bool | int | float) else None
