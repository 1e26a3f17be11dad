"""LM-judged metrics: DSPy's `SemanticF1` and `CompleteAndGrounded` as named metrics (`semantic_f1`,
`complete_and_grounded`; in eval jobs `py:semantic_f1`).

DSPy's modules read fixed field names (`example.question`, `example.response`, `pred.response`, and
`pred.context` for groundedness); a DSPex program's fields are the caller's, so the args name them:
`question` (default "question"), `gold` — the example's reference answer (default "response") —, `answer` —
the prediction's answer (default "response") —, `context` (default "context"), plus DSPy's own `threshold`
and, for semantic_f1, `decompositional`. A field that is not there is a ValidationError naming the arg to set.

They call the request's LM (the judge is the program's LM profile), off the event loop, and their LM usage is
returned with the score so the evaluate op adds it to the request's usage (what eval jobs sum).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Final

import dspy
from dspy.evaluate import CompleteAndGrounded, SemanticF1

from ..protocol.errors import ValidationError

_MODULE_ARGS: Final[dict[str, frozenset[str]]] = {
    "semantic_f1": frozenset({"threshold", "decompositional"}),
    "complete_and_grounded": frozenset({"threshold"}),
}
_FIELD_ARGS: Final = {"question": "question", "gold": "response", "answer": "response", "context": "context"}
JUDGES: Final[dict[str, Callable[..., dspy.Module]]] = {
    "semantic_f1": SemanticF1,
    "complete_and_grounded": CompleteAndGrounded,
}


def _value(name: str, source: Mapping[str, Any] | Any, key: str, arg: str, where: str) -> Any:
    try:
        return source[key]
    except (KeyError, TypeError):
        raise ValidationError(
            f"metric {name!r}: the {where} has no field {key!r} (set args.{arg} to the field to use)",
            field=f"args.{arg}",
            details={"metric": name, "arg": arg, "field": key},
        ) from None


def _prepare(
    name: str, example: Any, prediction: Any, args: Mapping[str, Any]
) -> tuple[dspy.Module, dspy.Example, dspy.Prediction]:
    """The judge module and DSPy's field names filled from the caller's (ValidationError naming the arg)."""
    unknown = set(args) - set(_FIELD_ARGS) - _MODULE_ARGS[name]
    if unknown:
        allowed = sorted(set(_FIELD_ARGS) | _MODULE_ARGS[name])
        raise ValidationError(
            f"metric {name!r}: unknown args {sorted(unknown)}; allowed: {allowed}",
            field=f"args.{sorted(unknown)[0]}",
        )
    fields = {arg: str(args.get(arg, default)) for arg, default in _FIELD_ARGS.items()}
    gold = dspy.Example(
        question=_value(name, example, fields["question"], "question", "example"),
        response=_value(name, example, fields["gold"], "gold", "example"),
    )
    answer: dict[str, Any] = {"response": _value(name, prediction, fields["answer"], "answer", "prediction")}
    if name == "complete_and_grounded":
        answer["context"] = _value(name, prediction, fields["context"], "context", "prediction")
    module = JUDGES[name](**{k: v for k, v in args.items() if k in _MODULE_ARGS[name]})
    return module, gold, dspy.Prediction(**answer)


async def judge(
    name: str, example: dspy.Example, prediction: dspy.Prediction, args: Mapping[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """(the judge's score, its per-model LM usage). Runs in a worker thread: the judge's LM calls are blocking."""
    module, gold, answer = _prepare(name, example, prediction, args)
    with dspy.context(track_usage=True):
        result = await asyncio.to_thread(module, gold, answer)
    return result, dict(result.get_lm_usage() or {})


def judge_metric(name: str) -> Callable[..., Any]:
    """The judge as a plain DSPy metric `(example, pred, trace=None, **args)`, for optimizers (which already run
    in a thread of their own and pass `trace` while compiling)."""

    def metric(example: Any, pred: Any, trace: Any = None, **args: Any) -> Any:
        module, gold, answer = _prepare(name, example, pred, args)
        return module(gold, answer, trace=trace)

    metric.__name__ = name
    return metric
