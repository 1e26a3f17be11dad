"""The `evaluate` operation's metric registry and request checks (the module run itself is covered end to end
by the TypeScript integration tests against real workers)."""

from __future__ import annotations

import sys
import types
from typing import Any

import dspy
import pytest

from dspex_worker.ops.allowlist import is_allowed
from dspex_worker.ops.evaluate import apply_metrics
from dspex_worker.ops.metrics import BUILTIN_METRICS, metric_call, resolve_metric, score_value
from dspex_worker.protocol import encode
from dspex_worker.protocol.errors import ValidationError, WorkerError
from dspex_worker.transport.envelope import decode_request


def test_builtin_metrics_are_dspys() -> None:
    assert resolve_metric("answer_exact_match") is dspy.evaluate.answer_exact_match
    assert resolve_metric("answer_passage_match") is dspy.evaluate.answer_passage_match
    assert set(BUILTIN_METRICS) == {"answer_exact_match", "answer_passage_match"}


def test_unknown_and_disallowed_metrics_are_validation_errors() -> None:
    with pytest.raises(ValidationError, match="unknown metric"):
        resolve_metric("rouge_l", env={})
    with pytest.raises(ValidationError, match="not allowed"):
        resolve_metric("os:system", env={})
    with pytest.raises(ValidationError, match="not allowed"):
        resolve_metric("os:system", env={"DSPEX_METRICS_ALLOW": "os.path:*, json:loads"})


def test_allow_list_entries() -> None:
    allow = ["pkg.mod:exact", "other.mod:*"]
    assert is_allowed("pkg.mod:exact", allow)
    assert not is_allowed("pkg.mod:other", allow)
    assert is_allowed("other.mod:anything", allow)
    assert not is_allowed("other.mod.sub:anything", allow)


def test_user_metric_loads_by_dotted_path() -> None:
    module = types.ModuleType("dspex_test_user_metrics")

    def length_match(example: Any, pred: Any, trace: Any = None) -> bool:
        return len(example.answer) == len(pred.answer)

    module.length_match = length_match  # type: ignore[attr-defined]
    sys.modules["dspex_test_user_metrics"] = module
    try:
        env = {"DSPEX_METRICS_ALLOW": "dspex_test_user_metrics:length_match"}
        assert resolve_metric("dspex_test_user_metrics:length_match", env=env) is length_match
        with pytest.raises(ValidationError, match="cannot load"):
            resolve_metric("dspex_test_user_metrics:missing", env={"DSPEX_METRICS_ALLOW": "dspex_test_user_metrics:*"})
    finally:
        del sys.modules["dspex_test_user_metrics"]


def evaluate_request(evaluate: Any) -> bytes:
    body = {"v": 1, "id": "r1", "op": "evaluate", "signature": {"inputs": [], "outputs": []}, "inputs": {}}
    return encode({**body, "evaluate": evaluate} if evaluate is not None else body)


def test_the_evaluate_map() -> None:
    request = decode_request(evaluate_request({"metrics": ["answer_exact_match", {"name": "x:y", "args": {"f": 1}}]}))
    assert request["evaluate"] == {
        "module": "predict",  # the schema's default
        "metrics": ["answer_exact_match", {"name": "x:y", "args": {"f": 1}}],
    }
    assert [metric_call(m) for m in request["evaluate"]["metrics"]] == [("answer_exact_match", {}), ("x:y", {"f": 1})]
    for bad, field in [
        (None, "evaluate"),
        ({"metrics": []}, "evaluate.metrics"),
        ({"metrics": ["m"], "module": "react"}, "evaluate.module"),
        ({"metrics": [{"args": {}}]}, "evaluate.metrics[0]"),
        ({"metrics": ["m"], "example": [1]}, "evaluate.example"),
        ({"metrics": ["m"], "extra": 1}, "evaluate.extra"),
    ]:
        with pytest.raises(ValidationError) as info:
            decode_request(evaluate_request(bad))
        assert info.value.field == field


def test_score_values() -> None:
    assert score_value("m", True) is True
    assert score_value("m", 1) == 1.0
    assert score_value("m", dspy.Prediction(score=0.25, feedback="ok")) == 0.25
    with pytest.raises(WorkerError):
        score_value("m", "yes")
    with pytest.raises(WorkerError):
        score_value("m", float("nan"))


async def test_apply_metrics_like_dspy_evaluate() -> None:
    example = dspy.Example(question="q", answer=["Paris", "paris, france"]).with_inputs("question")
    pred = dspy.Prediction(answer="The Paris")
    calls = [("answer_exact_match", {}), ("answer_exact_match", {"frac": 0.5})]
    scores = await apply_metrics(calls, example, pred, {"answer": "The Paris"})
    assert scores == {"answer_exact_match": True}  # same name twice: the last one wins in the map
    failing = await apply_metrics(
        [("answer_passage_match", {})],
        dspy.Example(answer="Paris"),
        dspy.Prediction(context=["The capital is Paris."]),
        {},
    )
    assert failing == {"answer_passage_match": True}
    with pytest.raises(WorkerError) as info:
        await apply_metrics(
            [("answer_exact_match", {})],
            dspy.Example(answer=3),
            pred,
            {"answer": "The Paris"},
        )
    assert info.value.details is not None and info.value.details["metric"] == "answer_exact_match"


def test_lm_judged_metrics_map_field_names_and_name_the_arg_to_set() -> None:
    import dspy
    import pytest

    from dspex_worker.ops.judges import _prepare
    from dspex_worker.ops.metrics import resolve_metric
    from dspex_worker.protocol.errors import ValidationError

    example = dspy.Example(question="q", answer="gold")
    pred = dspy.Prediction(answer="a", passages=["p"])
    module, gold, answer = _prepare(
        "complete_and_grounded", example, pred, {"gold": "answer", "answer": "answer", "context": "passages"}
    )
    assert type(module).__name__ == "CompleteAndGrounded"
    assert (gold.question, gold.response, answer.response, answer.context) == ("q", "gold", "a", ["p"])
    with pytest.raises(ValidationError) as missing:
        _prepare("complete_and_grounded", example, pred, {"gold": "answer", "answer": "answer"})
    assert missing.value.field == "args.context"
    with pytest.raises(ValidationError) as unknown:
        _prepare("semantic_f1", example, pred, {"decompositional": True, "bogus": 1})
    assert unknown.value.field == "args.bogus"
    assert resolve_metric("semantic_f1").__name__ == "semantic_f1"  # optimizers get it as a plain metric
