"""The `evaluate` operation: run a module on an example's inputs, then score it with named Python metrics.

A request with `op: "evaluate"` carries, besides the usual signature, inputs, lm and module options,

    evaluate: {
      module: "predict" | "chain_of_thought",          # the DSPy module to run (default "predict")
      metrics: [{name: "answer_exact_match", args?: {frac: 1.0}}, ...],
      example: {answer: "...", ...},                   # the example's gold (label) fields
    }

and its reply is the usual success reply plus `scores: {<metric name>: bool | float}`.

Metric names resolve through a registry: DSPy's own `answer_exact_match` and `answer_passage_match`, and
user metrics named by dotted path `package.module:function`, loaded only when the worker's environment
allows them (`DSPEX_METRICS_ALLOW`, comma-separated entries `package.module:function` or
`package.module:*`). Metrics are called as DSPy calls them in `dspy.Evaluate`:
`metric(example, prediction, **args)` with `example` a `dspy.Example` whose inputs are the request's
inputs, and `prediction` a `dspy.Prediction` of the module's outputs.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dspy
from dspy.evaluate import answer_exact_match, answer_passage_match

from .errors import ValidationError, WorkerError

if TYPE_CHECKING:
    from .executor import Execution, Executor
    from .wire import Request

ALLOW_ENV = "DSPEX_METRICS_ALLOW"
EVALUATE_MODULES = ("predict", "chain_of_thought")
EVALUATE_KEYS = {"module", "metrics", "example"}

Metric = Callable[..., Any]

BUILTIN_METRICS: dict[str, Metric] = {
    "answer_exact_match": answer_exact_match,
    "answer_passage_match": answer_passage_match,
}

_loaded: dict[str, Metric] = {}


def allowed_paths(env: dict[str, str] | None = None) -> list[str]:
    """Entries of DSPEX_METRICS_ALLOW: `package.module:function` or `package.module:*`."""
    raw = (env if env is not None else os.environ).get(ALLOW_ENV, "")
    return [entry.strip() for entry in raw.split(",") if entry.strip()]


def is_allowed(path: str, allow: list[str]) -> bool:
    module, _, _function = path.partition(":")
    return any(entry == path or (entry.endswith(":*") and entry[:-2] == module) for entry in allow)


def resolve_metric(name: str, env: dict[str, str] | None = None) -> Metric:
    """A metric by registry name or allow-listed dotted path; ValidationError for anything else."""
    if name in BUILTIN_METRICS:
        return BUILTIN_METRICS[name]
    if ":" not in name:
        known = ", ".join(sorted(BUILTIN_METRICS))
        raise ValidationError(
            f"unknown metric {name!r}; built-in metrics: {known}, or `package.module:function` "
            f"when allowed by {ALLOW_ENV}",
            field="evaluate.metrics",
            details={"builtin": sorted(BUILTIN_METRICS)},
        )
    if not is_allowed(name, allowed_paths(env)):
        raise ValidationError(
            f"metric {name!r} is not allowed on this worker; add it to {ALLOW_ENV}",
            field="evaluate.metrics",
        )
    if name in _loaded:
        return _loaded[name]
    module_name, _, function_name = name.partition(":")
    try:
        module = importlib.import_module(module_name)
        function = getattr(module, function_name)
    except (ImportError, AttributeError) as exc:
        raise ValidationError(f"cannot load metric {name!r}: {exc}", field="evaluate.metrics") from exc
    if not callable(function):
        raise ValidationError(f"metric {name!r} is not callable", field="evaluate.metrics")
    _loaded[name] = function
    return function  # type: ignore[no-any-return]


@dataclasses.dataclass(slots=True)
class MetricCall:
    name: str
    args: dict[str, Any]


@dataclasses.dataclass(slots=True)
class EvaluateSpec:
    module: str
    metrics: list[MetricCall]
    example: dict[str, Any]


def parse_evaluate(spec: dict[str, Any] | None) -> EvaluateSpec:
    """Checks the request's `evaluate` map; raises ValidationError naming the bad field."""
    if not isinstance(spec, dict):
        raise ValidationError("op 'evaluate' needs an `evaluate` map", field="evaluate")
    unknown = sorted(set(spec) - EVALUATE_KEYS)
    if unknown:
        raise ValidationError(f"unknown evaluate option(s): {', '.join(unknown)}", field=f"evaluate.{unknown[0]}")
    module = spec.get("module", "predict")
    if module not in EVALUATE_MODULES:
        raise ValidationError(
            f"`evaluate.module` must be one of {', '.join(EVALUATE_MODULES)} (got {module!r})",
            field="evaluate.module",
        )
    raw_metrics = spec.get("metrics")
    if not isinstance(raw_metrics, list) or not raw_metrics:
        raise ValidationError("`evaluate.metrics` must be a non-empty list", field="evaluate.metrics")
    metrics: list[MetricCall] = []
    for i, item in enumerate(raw_metrics):
        entry = {"name": item} if isinstance(item, str) else item
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValidationError("each metric must be a name or a map with a `name`", field=f"evaluate.metrics[{i}]")
        args = entry.get("args") or {}
        if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
            raise ValidationError("metric `args` must be a map", field=f"evaluate.metrics[{i}].args")
        metrics.append(MetricCall(name=entry["name"], args=dict(args)))
    example = spec.get("example") or {}
    if not isinstance(example, dict):
        raise ValidationError("`evaluate.example` must be a map of gold fields", field="evaluate.example")
    return EvaluateSpec(module=module, metrics=metrics, example=example)


def score_value(name: str, value: Any) -> bool | float:
    """A metric result as a wire value: bool stays bool, numbers become floats (`.score` is read if present)."""
    if not isinstance(value, bool | int | float) and hasattr(value, "score"):
        value = value.score
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    raise WorkerError(
        f"metric {name!r} returned {type(value).__name__}; a metric must return a bool or a finite number",
        details={"metric": name, "stage": "metric"},
    )


async def apply_metrics(
    metrics: list[MetricCall],
    example: dspy.Example,
    prediction: dspy.Prediction,
    outputs: dict[str, Any],
) -> dict[str, bool | float]:
    scores: dict[str, bool | float] = {}
    for call in metrics:
        metric = resolve_metric(call.name)
        try:
            result = metric(example, prediction, **call.args)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            raise WorkerError(
                f"metric {call.name!r} raised {type(exc).__name__}: {exc}",
                details={"metric": call.name, "stage": "metric", "outputs": outputs},
            ) from exc
        scores[call.name] = score_value(call.name, result)
    return scores


async def run_evaluate(executor: Executor, request: Request) -> Execution:
    """Runs the module through the executor (same caching and LM handling as predict), then the metrics."""
    spec = parse_evaluate(request.evaluate)
    for call in spec.metrics:
        resolve_metric(call.name)  # fail before spending LM tokens
    execution = await executor.run(dataclasses.replace(request, op=spec.module, evaluate=None))
    example = dspy.Example(**{**spec.example, **request.inputs}).with_inputs(*request.inputs)
    prediction = dspy.Prediction(**execution.outputs)
    lm, adapter = executor.lms.resolve(request.lm)
    with dspy.context(lm=lm, adapter=adapter):
        execution.scores = await apply_metrics(spec.metrics, example, prediction, execution.outputs)
    return execution
