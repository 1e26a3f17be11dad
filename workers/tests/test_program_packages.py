"""Program discovery against real DSPy: the test programs under test/programs are named by the allow-list here
(the integration set-up installs the same package so that workers find it by its entry points)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import dspy
import pytest

from dspex_worker.programs.packages import (
    check_inputs,
    check_outputs,
    discover,
    program_error,
    wire_type,
)
from dspex_worker.protocol.errors import UnknownProgram, ValidationError

PROGRAMS_DIR = Path(__file__).resolve().parents[2] / "test" / "programs"


@pytest.fixture(autouse=True)
def _programs_on_path() -> Iterator[None]:
    sys.path.insert(0, str(PROGRAMS_DIR))
    yield
    sys.path.remove(str(PROGRAMS_DIR))


def test_allow_listed_programs_are_described_with_wire_types() -> None:
    env = {"DSPEX_PROGRAMS": "dspex_test_programs.qa:QA, dspex_test_programs.summarize:Summarize"}
    catalog = discover(env)
    qa = catalog.programs["QA"].info
    assert qa["pool"] == "general"
    assert qa["inputs"] == [{"name": "question", "type": {"kind": "str"}}]
    assert qa["outputs"] == [
        {"name": "answer", "type": {"kind": "str"}},
        {"name": "confidence", "type": {"kind": "float"}},
    ]
    assert qa["predictors"] == ["draft", "refine"]
    summ = catalog.programs["Summarize"].info
    assert summ["inputs"] == [
        {"name": "text", "type": {"kind": "str"}},
        {"name": "max_words", "type": {"kind": "int"}},
    ]
    # ChainOfThought adds `reasoning` before the declared outputs.
    assert {"name": "keywords", "type": {"kind": "list", "items": {"kind": "str"}}} in summ["outputs"]
    assert summ["predictors"] == ["summarize.predict"]


def test_broken_programs_are_reported_and_the_rest_served() -> None:
    env = {
        "DSPEX_PROGRAMS": ",".join(
            [
                "dspex_test_programs.qa:QA",
                "dspex_test_programs.broken:TwoPredictorsNoSignature",
                "dspex_test_programs.broken:BadPool",
                "dspex_test_programs.missing:Nope",
                "dspex_test_programs.qa:QASignature",
            ]
        )
    }
    catalog = discover(env)
    # The installed test package's entry points (qa, summarize) may be served beside the allow-list.
    assert "QA" in catalog.programs
    assert not {"TwoPredictorsNoSignature", "BadPool", "Nope", "QASignature"} & set(catalog.programs)
    errors = {f["name"]: f["error"] for f in catalog.failures}
    assert "has 2 predictors" in errors["TwoPredictorsNoSignature"]
    assert "pool 'tpu'" in errors["BadPool"]
    assert errors["Nope"].startswith("ModuleNotFoundError")
    assert "not a dspy.Module subclass" in errors["QASignature"]
    advert = catalog.advertisement()
    assert "QA" in [p["name"] for p in advert["programs"]]
    assert len(advert["failures"]) == 4


def test_wire_type_rejects_what_the_wire_cannot_carry() -> None:
    assert wire_type(dict[str, list[int]]) == {
        "kind": "dict",
        "keys": {"kind": "str"},
        "values": {"kind": "list", "items": {"kind": "int"}},
    }
    assert wire_type(int | None) == {"kind": "optional", "inner": {"kind": "int"}}
    with pytest.raises(ValueError, match="no wire type"):
        wire_type(set[int])


def test_lookup_inputs_outputs_and_raised_errors_are_typed() -> None:
    catalog = discover({"DSPEX_PROGRAMS": "dspex_test_programs.qa:QA"})
    with pytest.raises(UnknownProgram) as unknown:
        catalog.get("nope")
    assert "QA" in unknown.value.details["available"]
    qa = catalog.get("QA")
    assert check_inputs(qa, {"question": "q"}) == {"question": "q"}
    with pytest.raises(ValidationError) as bad:
        check_inputs(qa, {"question": "q", "extra": 1})
    assert "extra" in str(bad.value)
    with pytest.raises(ValidationError) as undeclared:
        check_outputs(qa, {"answer": "a", "confidence": 0.5, "secret": "x"})
    assert undeclared.value.field == "outputs.secret"
    err = program_error(qa, KeyError("missing"))
    assert err.details == {"exception": "KeyError", "program": "QA"}
    assert "Traceback" not in str(err)


def test_the_program_op_checks_the_signature_and_the_outputs() -> None:
    from dspex_worker.ops.program import _declared_outputs, check_signature

    qa = discover({"DSPEX_PROGRAMS": "dspex_test_programs.qa:QA"}).get("QA")
    check_signature(qa, {"inputs": qa.info["inputs"], "outputs": qa.info["outputs"]})
    older = [{"name": "question", "type": {"kind": "str"}}, {"name": "context", "type": {"kind": "str"}}]
    with pytest.raises(ValidationError) as skew:
        check_signature(qa, {"inputs": older, "outputs": qa.info["outputs"]})
    assert skew.value.field == "signature.inputs"
    retyped = [{"name": "answer", "type": {"kind": "str"}}, {"name": "confidence", "type": {"kind": "str"}}]
    with pytest.raises(ValidationError) as types:
        check_signature(qa, {"inputs": qa.info["inputs"], "outputs": retyped})
    assert types.value.field == "signature.outputs"

    out = _declared_outputs(qa, dspy.Prediction(answer="a", confidence=0.5))
    assert dict(out.items()) == {"answer": "a", "confidence": 0.5}
    with pytest.raises(ValidationError) as missing:
        _declared_outputs(qa, dspy.Prediction(answer="a"))
    assert missing.value.field == "outputs.confidence"
    with pytest.raises(ValidationError) as not_prediction:
        _declared_outputs(qa, "a")
    assert not_prediction.value.field == "outputs"


def test_fields_from_forward_annotations_and_constructor_options() -> None:
    env = {
        "DSPEX_PROGRAMS": "dspex_test_programs.typed:Annotated",
        "DSPEX_PROGRAM_OPTIONS": '{"Annotated": {"prefix": "B:"}}',
    }
    catalog = discover(env)
    program = catalog.programs["Annotated"]
    assert program.info["inputs"] == [
        {"name": "question", "type": {"kind": "str"}},
        {"name": "max_words", "type": {"kind": "int"}},
    ]
    assert program.info["outputs"] == [
        {"name": "answer", "type": {"kind": "str"}},
        {"name": "words", "type": {"kind": "int"}},
    ]
    assert program.info["predictors"] == ["draft", "shorten"]
    assert program.instance.prefix == "B:"


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ("{not json", "is not JSON"),
        ('{"Annotated": 3}', "must map program names to objects"),
        ('{"Nobody": {}}', "not declared: Nobody"),
        ('{"Annotated": {"suffix": "x"}}', "TypeError"),
    ],
)
def test_bad_constructor_options_are_reported_not_served(options: str, reason: str) -> None:
    catalog = discover({"DSPEX_PROGRAMS": "dspex_test_programs.typed:Annotated", "DSPEX_PROGRAM_OPTIONS": options})
    assert "Annotated" not in catalog.programs
    errors = {f["name"]: f["error"] for f in catalog.failures}
    assert reason in errors["Annotated"], errors
