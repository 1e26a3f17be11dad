"""Object types (pydantic models) from the wire, against real DSPy and pydantic: checked, built once per distinct
type, validated as inputs with paths naming the nested field, and read back from users' models."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest

from dspex_worker.programs.packages import wire_type
from dspex_worker.protocol.errors import ValidationError
from dspex_worker.signatures import SignatureCache, validate_inputs
from dspex_worker.signatures.check import check_signature, refers, type_from_expr

ADDRESS: dict[str, Any] = {
    "kind": "object",
    "name": "Address",
    "fields": [{"name": "city", "type": {"kind": "str"}}, {"name": "zip", "type": {"kind": "str"}, "required": False}],
}
PERSON: dict[str, Any] = {
    "kind": "object",
    "name": "Person",
    "description": "Someone the text mentions.",
    "fields": [
        {"name": "name", "type": {"kind": "str"}, "desc": "full name"},
        {"name": "age", "type": {"kind": "int"}, "constraints": {"ge": 0}},
        {"name": "addresses", "type": {"kind": "list", "items": ADDRESS}},
    ],
}
SIG: dict[str, Any] = {
    "inputs": [{"name": "person", "type": PERSON}],
    "outputs": [{"name": "people", "type": {"kind": "list", "items": PERSON}}],
}


def test_an_object_type_becomes_one_pydantic_model_per_distinct_type() -> None:
    checked = check_signature(SIG)
    model = type_from_expr(checked["inputs"][0]["type"])
    assert issubclass(model, pydantic.BaseModel)
    assert model.__name__ == "Person" and model.__doc__ == "Someone the text mentions."
    assert model.model_fields["name"].description == "full name"
    assert type_from_expr(check_signature(SIG)["inputs"][0]["type"]) is model, "built once"
    schema = model.model_json_schema()
    assert schema["properties"]["age"]["minimum"] == 0
    assert schema["$defs"]["Address"]["required"] == ["city"]
    person = model.model_validate({"name": "Ada", "age": 36, "addresses": [{"city": "London"}]})
    assert person.model_dump() == {"name": "Ada", "age": 36, "addresses": [{"city": "London", "zip": None}]}
    _, cls = SignatureCache().get_or_build(SIG)
    assert cls.output_fields["people"].annotation == list[model]


def test_object_inputs_are_validated_naming_the_nested_field() -> None:
    ok = validate_inputs(SIG, {"person": {"name": "Ada", "age": "36", "addresses": []}})
    assert ok["person"].age == 36
    with pytest.raises(ValidationError) as err:
        validate_inputs(SIG, {"person": {"name": "Ada", "addresses": [{"zip": "1"}]}})
    paths = {p["path"] for p in err.value.details["problems"]}
    assert paths == {"person.age", "person.addresses[0].city"}
    with pytest.raises(ValidationError) as neg:
        validate_inputs(SIG, {"person": {"name": "Ada", "age": -1, "addresses": []}})
    assert neg.value.details["problems"][0]["path"] == "person.age"


def test_bad_object_types_are_refused_with_the_path() -> None:
    dup = {**PERSON, "fields": [*PERSON["fields"], {"name": "age", "type": {"kind": "int"}}]}
    with pytest.raises(ValidationError) as err:
        check_signature({"inputs": [], "outputs": [{"name": "p", "type": dup}]})
    assert err.value.field == "signature.outputs[0].type.fields[3].name"
    deep: dict[str, Any] = {"kind": "str"}
    for i in range(9):
        deep = {"kind": "object", "name": f"L{i}", "fields": [{"name": "x", "type": deep}]}
    with pytest.raises(ValidationError, match="nest at most 8"):
        check_signature({"inputs": [], "outputs": [{"name": "p", "type": deep}]})


def test_a_users_pydantic_model_is_advertised_as_an_object_type() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "ticket_triage"))
    try:
        from dspex_example_ticket_triage.program import Triage
    finally:
        sys.path.pop(0)
    wire = wire_type(Triage)
    assert wire["kind"] == "object" and wire["name"] == "Triage"
    fields = {f["name"]: f for f in wire["fields"]}
    assert fields["category"]["type"] == {"kind": "literal", "values": ["billing", "bug", "account", "other"]}
    assert fields["priority"]["constraints"] == {"ge": 1, "le": 4}
    assert fields["tags"]["required"] is False
    assert check_signature({"inputs": [], "outputs": [{"name": "triage", "type": wire}]})


TREE_REF = {"kind": "ref", "name": "Tree"}


class Comment(pydantic.BaseModel):
    text: str
    replies: list[Comment] = []


def test_recursive_models_refer_to_their_enclosing_object_type() -> None:
    wire = wire_type(Comment)
    assert wire["fields"][1]["type"] == {"kind": "list", "items": {"kind": "ref", "name": "Comment"}}
    sig = {"inputs": [], "outputs": [{"name": "thread", "type": wire}]}
    model = type_from_expr(check_signature(sig)["outputs"][0]["type"])
    value = model.model_validate({"text": "a", "replies": [{"text": "b", "replies": [{"text": "c"}]}]})
    # a field that is not required defaults to None on the wire model (its Python default is not carried)
    assert value.model_dump() == {"text": "a", "replies": [{"text": "b", "replies": [{"text": "c", "replies": None}]}]}
    tree: dict[str, Any] = {
        "kind": "object",
        "name": "Tree",
        "fields": [
            {
                "name": "kids",
                "type": {
                    "kind": "list",
                    "items": {
                        "kind": "object",
                        "name": "Node",
                        "fields": [
                            {"name": "sub", "type": {"kind": "optional", "inner": {"kind": "ref", "name": "Tree"}}}
                        ],
                    },
                },
            }
        ],
    }
    nested = type_from_expr(
        check_signature({"inputs": [], "outputs": [{"name": "t", "type": tree}]})["outputs"][0]["type"]
    )
    assert nested.model_validate({"kids": [{"sub": {"kids": []}}]}).kids[0].sub.kids == []
    with pytest.raises(ValidationError) as err:
        check_signature({"inputs": [], "outputs": [{"name": "t", "type": {"kind": "ref", "name": "Tree"}}]})
    assert err.value.field == "signature.outputs[0].type.name"


def test_recursion_is_read_from_the_types_structure_not_its_names() -> None:
    named_ref: dict[str, Any] = {
        "kind": "object",
        "name": "ref",
        "fields": [{"name": "ref", "type": {"kind": "literal", "values": ["ref"]}}],
    }
    assert not refers(named_ref)  # the text "ref" three times, no reference
    assert not refers(PERSON)
    assert refers(wire_type(Comment))
    deep = {
        "kind": "dict",
        "keys": {"kind": "str"},
        "values": {"kind": "optional", "inner": {"kind": "ref", "name": "X"}},
    }
    assert refers({"kind": "union", "members": [{"kind": "int"}, {"kind": "list", "items": deep}]})
    model = type_from_expr(
        check_signature({"inputs": [], "outputs": [{"name": "r", "type": named_ref}]})["outputs"][0]["type"]
    )
    assert model.model_validate({"ref": "ref"}).model_dump() == {"ref": "ref"}
