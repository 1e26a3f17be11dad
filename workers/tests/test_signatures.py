"""dspex_worker.signatures: building dspy.Signature classes from the wire format, the cache, input validation."""

from __future__ import annotations

import copy
import typing
import warnings
from typing import Any, Literal, Optional

import dspy
import pytest
from annotated_types import Ge, Le, MinLen
from dspy.utils.dummies import DummyLM

from dspex_worker.protocol.errors import ValidationError
from dspex_worker.signatures import (
    SignatureCache,
    build_signature,
    check_signature,
    signature_key,
    type_from_expr,
    validate_inputs,
)

STR = {"kind": "str"}
INT = {"kind": "int"}

SIG: dict[str, Any] = {
    "instructions": "Score the answer.",
    "inputs": [
        {"name": "question", "type": STR, "desc": "The question"},
        {"name": "passages", "type": {"kind": "list", "items": STR}, "constraints": {"min_length": 1}},
        {"name": "k", "type": {"kind": "optional", "inner": {"kind": "int"}}, "constraints": {"ge": 1, "le": 10}},
    ],
    "outputs": [
        {"name": "score", "type": {"kind": "float"}, "constraints": {"ge": 0, "le": 1}, "prefix": "Score:"},
        {"name": "label", "type": {"kind": "literal", "values": ["good", "bad"]}},
        {"name": "notes", "type": {"kind": "dict", "keys": STR, "values": {"kind": "list", "items": {"kind": "int"}}}},
    ],
}


def simple(*outputs: dict[str, Any]) -> dict[str, Any]:
    return {"inputs": [{"name": "q", "type": STR}], "outputs": list(outputs) or [{"name": "a", "type": STR}]}


# ---------------------------------------------------------------------------------------------------------
# build_signature


def test_build_fields_types_order_and_instructions() -> None:
    sig = build_signature(SIG)
    assert issubclass(sig, dspy.Signature)
    assert list(sig.input_fields) == ["question", "passages", "k"]
    assert list(sig.output_fields) == ["score", "label", "notes"]
    assert sig.instructions == "Score the answer."
    annotations = {name: f.annotation for name, f in sig.fields.items()}
    assert annotations == {
        "question": str,
        "passages": list[str],
        "k": Optional[int],  # noqa: UP045 - the type DSPy builds for Optional[int]
        "score": float,
        "label": Literal["good", "bad"],
        "notes": dict[str, list[int]],
    }


def test_build_desc_prefix_and_constraints_the_way_dspy_keeps_them() -> None:
    sig = build_signature(SIG)
    question = sig.input_fields["question"].json_schema_extra
    assert question["desc"] == "The question"
    assert question["prefix"] == "Question:"  # DSPy's inferred prefix
    score = sig.output_fields["score"]
    assert score.json_schema_extra["prefix"] == "Score:"
    assert score.json_schema_extra["desc"] == "${score}"  # DSPy's default desc
    assert score.json_schema_extra["constraints"] == "greater than or equal to: 0, less than or equal to: 1"
    assert score.metadata == [Ge(ge=0), Le(le=1)]
    assert sig.input_fields["passages"].metadata == [MinLen(min_length=1)]
    assert (
        sig.input_fields["k"].json_schema_extra["constraints"]
        == "greater than or equal to: 1, less than or equal to: 10"
    )


def test_build_matches_dspy_string_signature() -> None:
    wire = {
        "inputs": [{"name": "context", "type": {"kind": "list", "items": STR}}, {"name": "question", "type": STR}],
        "outputs": [{"name": "answer", "type": STR}, {"name": "confidence", "type": {"kind": "float"}}],
    }
    ours = build_signature(wire)
    theirs = dspy.Signature("context: list[str], question: str -> answer: str, confidence: float")
    assert (
        ours.instructions
        == theirs.instructions
        == ("Given the fields `context`, `question`, produce the fields `answer`, `confidence`.")
    )
    for name, field in theirs.fields.items():
        assert ours.fields[name].annotation == field.annotation
        for key in ("desc", "prefix", "__dspy_field_type"):
            assert ours.fields[name].json_schema_extra[key] == field.json_schema_extra[key]


def test_build_emits_no_deprecation_warning_for_prefix() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_signature(SIG)


def test_str_inputs_are_marked_like_untyped_dspy_fields() -> None:
    sig = build_signature(SIG)
    assert sig.input_fields["question"].json_schema_extra["IS_TYPE_UNDEFINED"] is True
    assert sig.input_fields["passages"].json_schema_extra["IS_TYPE_UNDEFINED"] is False


def test_type_from_expr_builds_real_types() -> None:
    assert type_from_expr({"kind": "any"}) is typing.Any
    assert type_from_expr({"kind": "literal", "values": ["a"]}) == Literal["a"]
    assert type_from_expr({"kind": "literal", "values": [1, True, 2.5, "x"]}) == Literal[1, True, 2.5, "x"]
    assert (
        type_from_expr({"kind": "optional", "inner": {"kind": "list", "items": {"kind": "any"}}})
        == Optional[  # noqa: UP045
            list[Any]
        ]
    )
    assert type_from_expr({"kind": "dict", "keys": {"kind": "int"}, "values": {"kind": "bool"}}) == dict[int, bool]


def test_unions_and_input_less_signatures_run_in_dspy_predict() -> None:
    union = {"kind": "union", "members": [INT, {"kind": "list", "items": STR}]}
    assert type_from_expr({"kind": "optional", "inner": union}) == typing.Union[int, list[str], None]  # noqa: UP007
    sig = build_signature({"inputs": [], "outputs": [{"name": "a", "type": union}, {"name": "b", "type": union}]})
    assert list(sig.input_fields) == []
    lm = DummyLM([{"a": "7", "b": '["x", "y"]'}])
    with dspy.context(lm=lm):
        prediction = dspy.Predict(sig)()
    assert prediction.a == 7
    assert prediction.b == ["x", "y"]


def test_union_input_problems_are_reported_at_the_union() -> None:
    wire = {
        "inputs": [
            {"name": "n", "type": {"kind": "union", "members": [INT, {"kind": "list", "items": INT}]}},
            {"name": "f", "type": {"kind": "list", "items": {"kind": "union", "members": [INT, {"kind": "bool"}]}}},
        ],
        "outputs": [{"name": "a", "type": STR}],
    }
    assert validate_inputs(wire, {"n": "[1, 2]", "f": [1, "yes"]}) == {"n": [1, 2], "f": [1, True]}
    with pytest.raises(ValidationError) as info:
        validate_inputs(wire, {"n": [1, "x"], "f": [1, "x"]})
    problems = (info.value.details or {})["problems"]
    assert [(p["code"], p["path"]) for p in problems] == [("type", "n"), ("type", "f[1]")]


def test_built_signature_runs_in_dspy_predict_and_parses_typed_outputs() -> None:
    sig = build_signature(SIG)
    lm = DummyLM([{"score": "0.75", "label": "good", "notes": '{"x": [1, 2]}'}])
    with dspy.context(lm=lm):
        prediction = dspy.Predict(sig)(question="Why?", passages=["p1", "p2"], k=3)
    assert prediction.score == 0.75
    assert prediction.label == "good"
    assert prediction.notes == {"x": [1, 2]}


MALFORMED: list[tuple[Any, str]] = [
    ("q -> a", "signature"),
    ({"inputs": [{"name": "q", "type": STR}]}, "signature.outputs"),
    ({"inputs": [{"name": "q", "type": STR}], "outputs": []}, "signature.outputs"),
    (simple({"name": "a", "type": {"kind": "union", "members": [STR]}}), "signature.outputs[0].type.members"),
    (
        simple({"name": "a", "type": {"kind": "union", "members": [STR, {"kind": "optional", "inner": INT}]}}),
        "signature.outputs[0].type.members[1]",
    ),
    (
        simple({"name": "a", "type": {"kind": "union", "members": [INT, STR, INT]}}),
        "signature.outputs[0].type.members[2]",
    ),
    ({**simple(), "extra": 1}, "signature.extra"),
    ({**simple(), "instructions": 3}, "signature.instructions"),
    (simple({"name": "a", "type": STR}, {"name": "b", "type": "str"}), "signature.outputs[1].type"),
    (simple({"name": "a", "type": {"kind": "lst"}}), "signature.outputs[0].type.kind"),
    (simple({"name": "a", "type": {"kind": "list"}}), "signature.outputs[0].type.items"),
    (simple({"name": "a", "type": {"kind": "optional", "inner": STR, "x": 1}}), "signature.outputs[0].type.x"),
    (simple({"name": "a", "type": {"kind": "literal", "values": []}}), "signature.outputs[0].type.values"),
    (simple({"name": "a", "type": {"kind": "literal", "values": ["x", None]}}), "signature.outputs[0].type.values[1]"),
    (
        simple({"name": "a", "type": {"kind": "dict", "keys": {"kind": "list", "items": STR}, "values": STR}}),
        "signature.outputs[0].type.keys",
    ),
    (simple({"name": "1a", "type": STR}), "signature.outputs[0].name"),
    (simple({"name": "class", "type": STR}), "signature.outputs[0].name"),
    (simple({"name": "_a", "type": STR}), "signature.outputs[0].name"),
    (simple({"name": "instructions", "type": STR}), "signature.outputs[0].name"),
    (simple({"name": "q", "type": STR}), "signature.outputs[0].name"),
    (simple({"name": "a", "type": STR, "description": "x"}), "signature.outputs[0].description"),
    (simple({"name": "a", "type": STR, "desc": 1}), "signature.outputs[0].desc"),
    (simple({"name": "a", "type": STR, "constraints": {"ge": 0}}), "signature.outputs[0].constraints.ge"),
    (
        simple({"name": "a", "type": {"kind": "int"}, "constraints": {"min_length": 1}}),
        "signature.outputs[0].constraints.min_length",
    ),
    (
        simple({"name": "a", "type": STR, "constraints": {"max_length": -1}}),
        "signature.outputs[0].constraints.max_length",
    ),
    (
        simple({"name": "a", "type": {"kind": "float"}, "constraints": {"ge": True}}),
        "signature.outputs[0].constraints.ge",
    ),
    (
        simple({"name": "a", "type": {"kind": "float"}, "constraints": {"ge": 1, "lt": 1}}),
        "signature.outputs[0].constraints",
    ),
    (
        simple({"name": "a", "type": {"kind": "float"}, "constraints": {"minimum": 1}}),
        "signature.outputs[0].constraints.minimum",
    ),
]


@pytest.mark.parametrize(("wire", "path"), MALFORMED)
def test_malformed_signature_names_the_path(wire: Any, path: str) -> None:
    with pytest.raises(ValidationError) as info:
        build_signature(wire)
    assert info.value.field == path
    assert info.value.message.startswith(f"{path}: ")
    assert info.value.type == "ValidationError"
    assert info.value.retryable is False


def test_check_signature_normalises() -> None:
    wire = simple({"name": "a", "type": {"kind": "literal", "values": ["x", "x", 1, True, 1]}})
    assert check_signature(wire)["outputs"][0]["type"]["values"] == ["x", 1, True]


# ---------------------------------------------------------------------------------------------------------
# SignatureCache


def test_cache_hits_misses_and_identity() -> None:
    cache = SignatureCache()
    key1, cls1 = cache.get_or_build(SIG)
    key2, cls2 = cache.get_or_build(copy.deepcopy(SIG))
    assert (cache.hits, cache.misses) == (1, 1)
    assert key1 == key2 and cls1 is cls2
    assert len(key1) == 64 and key1 in cache
    _, other = cache.get_or_build(simple())
    assert other is not cls1
    assert (cache.hits, cache.misses, len(cache)) == (1, 2, 2)


def test_cache_key_is_canonical_and_content_sensitive() -> None:
    reordered = {"outputs": SIG["outputs"], "inputs": SIG["inputs"], "instructions": SIG["instructions"]}
    assert signature_key(reordered) == signature_key(SIG)
    changed = copy.deepcopy(SIG)
    changed["outputs"][0]["constraints"]["le"] = 2
    assert signature_key(changed) != signature_key(SIG)
    with pytest.raises(ValidationError) as info:
        signature_key({"inputs": {1, 2}})
    assert info.value.field == "signature"


def test_cache_is_bounded_lru() -> None:
    cache = SignatureCache(maxsize=2)
    a, b, c = (simple({"name": n, "type": STR}) for n in ("a", "b", "c"))
    key_a, _ = cache.get_or_build(a)
    key_b, _ = cache.get_or_build(b)
    cache.get_or_build(a)  # a is now the most recent
    key_c, _ = cache.get_or_build(c)  # evicts b
    assert key_a in cache and key_c in cache and key_b not in cache
    assert len(cache) == 2
    cache.get_or_build(b)
    assert (cache.hits, cache.misses) == (1, 4)


def test_cache_does_not_store_failures() -> None:
    cache = SignatureCache()
    bad = simple({"name": "a", "type": {"kind": "nope"}})
    for _ in range(2):
        with pytest.raises(ValidationError):
            cache.get_or_build(bad)
    assert len(cache) == 0 and cache.misses == 2


# ---------------------------------------------------------------------------------------------------------
# validate_inputs

VSIG: dict[str, Any] = {
    "inputs": [
        {"name": "context", "type": {"kind": "list", "items": STR}},
        {"name": "question", "type": STR},
        {"name": "k", "type": {"kind": "int"}, "constraints": {"ge": 1}},
        {"name": "weight", "type": {"kind": "float"}},
        {"name": "mode", "type": {"kind": "literal", "values": ["fast", "slow"]}},
        {"name": "hint", "type": {"kind": "optional", "inner": STR}},
    ],
    "outputs": [{"name": "answer", "type": STR}],
}


def test_validate_inputs_coerces_like_dspy() -> None:
    out = validate_inputs(
        VSIG, {"context": '["a", "b"]', "question": "Why?", "k": "3", "weight": "0.9", "mode": "'fast'"}
    )
    assert out == {"context": ["a", "b"], "question": "Why?", "k": 3, "weight": 0.9, "mode": "fast"}


def test_str_inputs_take_any_value_unchanged_and_optional_inputs_may_be_omitted() -> None:
    out = validate_inputs(
        VSIG, {"context": [], "question": ["p1", "p2"], "k": 1, "weight": 1, "mode": "slow", "hint": None}
    )
    assert out["question"] == ["p1", "p2"]
    assert out["hint"] is None
    assert "hint" not in validate_inputs(VSIG, {"context": [], "question": "q", "k": 1, "weight": 1, "mode": "slow"})


def test_missing_input() -> None:
    with pytest.raises(ValidationError) as info:
        validate_inputs(simple(), {})
    assert info.value.field == "q"
    assert info.value.message == "missing input 'q' (str)"
    assert info.value.details == {
        "side": "input",
        "problems": [
            {"field": "q", "path": "q", "code": "missing", "expected": "str", "message": "missing input 'q' (str)"}
        ],
    }


def test_all_problems_are_reported() -> None:
    with pytest.raises(ValidationError) as info:
        validate_inputs(
            VSIG, {"context": ["a", 3], "question": None, "k": 0, "weight": "heavy", "mode": "medium", "zzz": 1}
        )
    err = info.value
    assert err.field == "context"
    assert err.details is not None
    got = [(p["code"], p["path"]) for p in err.details["problems"]]
    assert got == [
        ("type", "context[1]"),
        ("type", "question"),
        ("constraint", "k"),
        ("type", "weight"),
        ("type", "mode"),
        ("unexpected", "zzz"),
    ]
    assert err.message.startswith("6 problems with the inputs: input 'context[1]': Input should be a valid string")
    assert "input 'k': must be greater than or equal to 1, got 0" in err.message
    assert err.to_wire()["type"] == "ValidationError"


def test_length_constraints() -> None:
    wire = simple()
    wire["inputs"] = [{"name": "tags", "type": {"kind": "list", "items": STR}, "constraints": {"max_length": 2}}]
    with pytest.raises(ValidationError) as info:
        validate_inputs(wire, {"tags": ["a", "b", "c"]})
    assert info.value.message == "input 'tags': must have at most 2 item(s), got 3"
    assert validate_inputs(wire, {"tags": "['a']"}) == {"tags": ["a"]}


def test_inputs_must_be_a_mapping() -> None:
    with pytest.raises(ValidationError) as info:
        validate_inputs(simple(), ["q"])  # type: ignore[arg-type]
    assert info.value.field == "inputs"


def test_validate_inputs_rejects_malformed_signature() -> None:
    with pytest.raises(ValidationError) as info:
        validate_inputs(simple({"name": "a", "type": {"kind": "lst"}}), {"q": "x"})
    assert info.value.field == "signature.outputs[0].type.kind"
