"""The `evaluate` operation: run a module on an example's inputs, then score the prediction with named Python
metrics (metrics.py). The request carries, besides the usual signature, inputs, lm and module options,

    evaluate: {
      module: "predict" | "chain_of_thought" | "program",  # the DSPy module to run (default "predict")
      program: "qa",                                   # with module "program": the packaged program
      metrics: [{name: "answer_exact_match", args?: {frac: 1.0}}, ...],
      example: {answer: "...", ...},                   # the example's gold (label) fields
    }

(request.schema.json#/definitions/evaluate) and its reply is the usual success reply plus
`scores: {<metric name>: bool | float}`.
"""

from __future__ import annotations

import inspect
from typing import Any

import dspy

from ..execution import Execution, Request, sum_usage
from ..protocol import DspexError
from ..protocol.errors import ValidationError, WorkerError
from ..protocol.generated.types import EvaluateSpec
from . import predict
from .context import OpContext
from .judges import JUDGES, judge
from .metrics import metric_call, resolve_metric, score_value
from .plan import Planner, run_planned


async def apply_metrics(
    metrics: list[tuple[str, dict[str, Any]]],
    example: dspy.Example,
    prediction: dspy.Prediction,
    outputs: dict[str, Any],
    usage: list[dict[str, Any]] | None = None,
) -> dict[str, bool | float]:
    """Each metric called as `dspy.Evaluate` calls it; a metric that raises is a WorkerError naming it. The LM
    usage of LM-judged metrics (judges.py) is appended to `usage`."""
    scores: dict[str, bool | float] = {}
    for name, args in metrics:
        try:
            if name in JUDGES:
                result, judged = await judge(name, example, prediction, args)
                if usage is not None:
                    usage.append(judged)
            else:
                result = resolve_metric(name)(example, prediction, **args)
                if inspect.isawaitable(result):
                    result = await result
        except DspexError:
            raise
        except Exception as exc:
            raise WorkerError(
                f"metric {name!r} raised {type(exc).__name__}: {exc}",
                details={"metric": name, "stage": "metric", "outputs": outputs},
            ) from exc
        scores[name] = score_value(name, result)
    return scores


async def run(ctx: OpContext, request: Request, options: dict[str, Any], program_planner: Planner) -> Execution:
    spec: EvaluateSpec = request["evaluate"]
    metrics = [metric_call(m) for m in spec["metrics"]]
    for i, (name, _) in enumerate(metrics):
        resolve_metric(name, field=f"evaluate.metrics[{i}]")  # fail before spending LM tokens
    module = spec.get("module", "predict")
    if module == "program":  # a user's packaged program (docs/programs.md), by the name its workers advertise
        program = spec.get("program")
        if not program:
            raise ValidationError(
                "evaluate.program: module `program` needs the program's name", field="evaluate.program"
            )
        execution = await run_planned(ctx, {**request, "op": "program"}, {"name": program}, program_planner)
    else:
        execution = await run_planned(ctx, {**request, "op": module}, options, predict.plan)
    example = dspy.Example(**{**spec.get("example", {}), **request["inputs"]}).with_inputs(*request["inputs"])
    lm, adapter = ctx.lms.resolve(request.get("lm"))
    judged: list[dict[str, Any]] = []
    with dspy.context(lm=lm, adapter=adapter):
        execution.scores = await apply_metrics(
            metrics, example, dspy.Prediction(**execution.outputs), execution.outputs, judged
        )
    if judged:
        # the judge's tokens are the request's too: an eval job's summary counts them
        execution.usage = {k: execution.usage.get(k, 0) + v for k, v in sum_usage(*judged).items()}
    return execution
