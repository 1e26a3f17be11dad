"""The in-process `dspex/echo` LM: real DSPy modules and adapters parse its answers into typed outputs."""

from __future__ import annotations

import asyncio
import time

import dspy
import pytest

from dspex_worker.execution import Request
from dspex_worker.lm.echo import EchoLM, output_fields, parse_model, value_for
from dspex_worker.lm.factory import LMFactory
from dspex_worker.ops import registry
from dspex_worker.ops.context import OpContext
from dspex_worker.protocol.errors import LMConfigError

SENTIMENT = "review: str -> sentiment: Literal['positive', 'negative', 'neutral'], confidence: float"


def test_predict_gets_typed_outputs() -> None:
    lm = EchoLM()
    sig = dspy.Signature(f"{SENTIMENT}, tags: list[str], ok: bool, n: int, note: Optional[str]")
    with dspy.context(lm=lm, track_usage=True):
        pred = dspy.Predict(sig)(review="Battery lasts two days.")
    assert pred.sentiment == "positive"
    assert pred.confidence == 0.5
    assert pred.tags == [] and pred.ok is True and pred.n == 1
    assert pred.note == "note: Battery lasts two days."
    usage = pred.get_lm_usage()["dspex/echo"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert lm.echo_engine.calls == 1  # parsed by ChatAdapter at once: no JSONAdapter retry


def test_chain_of_thought_and_async_path() -> None:
    lm = EchoLM()

    async def run() -> dspy.Prediction:
        with dspy.context(lm=lm):
            return await dspy.ChainOfThought("question -> answer").acall(question="What is 2+2?")

    pred = asyncio.run(run())
    assert pred.reasoning == "reasoning: What is 2+2?"
    assert pred.answer == "answer: What is 2+2?"


def test_same_prompt_same_answer() -> None:
    lm = EchoLM()
    with dspy.context(lm=lm):
        first = dspy.Predict(SENTIMENT)(review="x")
        second = dspy.Predict(SENTIMENT)(review="x")
    assert first.toDict() == second.toDict()


def test_json_adapter_gets_json() -> None:
    lm = EchoLM()
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        pred = dspy.Predict(SENTIMENT)(review="fine")
    assert pred.sentiment == "positive" and pred.confidence == 0.5


def test_latency_option_sync_and_async() -> None:
    lm = EchoLM("dspex/echo?latency_ms=50")
    predict = dspy.Predict("question -> answer")
    started = time.perf_counter()
    with dspy.context(lm=lm):
        predict(question="q")
    assert time.perf_counter() - started >= 0.05

    async def concurrent() -> float:
        t0 = time.perf_counter()
        with dspy.context(lm=lm):
            await asyncio.gather(*(predict.acall(question=f"q{i}") for i in range(16)))
        return time.perf_counter() - t0

    # The waits overlap (asyncio.sleep, not a blocking sleep): one after another they would take 0.8 s.
    assert 0.05 <= asyncio.run(concurrent()) < 0.7


def test_model_options() -> None:
    assert parse_model("dspex/echo").latency_s == 0
    assert parse_model("dspex/echo?latency_ms=100").latency_s == pytest.approx(0.1)
    for bad in ("dspex/other", "dspex/echo?latency=1", "dspex/echo?latency_ms=-1", "dspex/echo?latency_ms=x"):
        with pytest.raises(ValueError):
            parse_model(bad)


def test_output_fields_from_the_system_prompt() -> None:
    system = (
        "Your input fields are:\n1. `q` (str):\nYour output fields are:\n"
        "1. `label` (Literal['a (x)', 'b, c']): the label\n   over two lines\n2. `score` (float):\n"
        "All interactions will be structured in the following way"
    )
    assert output_fields(system) == [("label", "Literal['a (x)', 'b, c']"), ("score", "float")]
    assert value_for("label", "Literal['a (x)', 'b, c']", "") == "a (x)"
    assert value_for("m", "dict[str, int]", "") == {}
    assert value_for("o", "int | None", "") == 1


def test_test_models_are_refused_unless_the_worker_allows_them() -> None:
    with pytest.raises(LMConfigError) as err:
        LMFactory().get({"model": "dspex/echo"})
    assert err.value.field == "lm.model" and "--allow-test-models" in err.value.message
    assert isinstance(LMFactory(allow_test_models=True).get({"model": "dspex/echo"}), EchoLM)


def test_lm_maps_are_checked_against_the_schema() -> None:
    factory = LMFactory(allow_test_models=True)
    for config, field, words in [
        ({"model": "gpt-4o-mini"}, "lm.model", "'<provider>/<model>'"),
        ({"model": "openai/x", "bogus": 1}, "lm.bogus", "unknown LM option(s): bogus"),
        ({"model": "openai/x", "num_retries": -1}, "lm.num_retries", "lm.num_retries: must be"),
    ]:
        with pytest.raises(LMConfigError) as err:
            factory.get(config)
        assert err.value.field == field and words in err.value.message, err.value.message


def test_factory_selects_echo_by_model_name() -> None:
    factory = LMFactory(allow_test_models=True)
    lm = factory.get({"model": "dspex/echo?latency_ms=0"})
    assert isinstance(lm, EchoLM)
    assert factory.get({"model": "dspex/echo?latency_ms=0"}) is lm
    with pytest.raises(LMConfigError):
        factory.get({"model": "dspex/nope"})


def test_factory_resolves_the_adapter_lm_adapter_names() -> None:
    factory = LMFactory(allow_test_models=True)
    lm, adapter = factory.resolve({"model": "dspex/echo", "adapter": "json"})
    assert isinstance(adapter, dspy.JSONAdapter)
    assert factory.resolve({"model": "dspex/echo"}) == (lm, None), "same client; chat is DSPy's default"
    with pytest.raises(LMConfigError) as err:
        factory.resolve({"model": "dspex/echo", "adapter": "xml"})
    assert err.value.field == "lm.adapter" and "'chat', 'json'" in str(err.value)


def test_the_registry_runs_a_request_on_echo() -> None:
    request: Request = {
        "v": 1,
        "id": "r1",
        "op": "predict",
        "signature": {
            "inputs": [{"name": "question", "type": {"kind": "str"}}],
            "outputs": [{"name": "answer", "type": {"kind": "str"}}, {"name": "n", "type": {"kind": "int"}}],
        },
        "inputs": {"question": "hi"},
        "lm": {"model": "dspex/echo"},
    }
    execution = asyncio.run(registry.run(OpContext(lms=LMFactory(allow_test_models=True)), request))
    assert execution.outputs == {"answer": "answer: hi", "n": 1}
    assert execution.lm == "dspex/echo"
    assert execution.usage["total_tokens"] > 0
