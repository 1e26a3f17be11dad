"""The wire contract from the Python side: golden vectors, JSON Schemas, request decoding errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import msgpack
import pytest
from referencing import Registry, Resource

from dspex_worker.protocol import decode, encode
from dspex_worker.protocol.errors import DecodeError, UnknownOperation, ValidationError, VersionError
from dspex_worker.transport.envelope import decode_request

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
VECTORS = sorted(p.stem for p in (SCHEMAS / "vectors").glob("*.msgpack"))


def load_schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text())  # type: ignore[no-any-return]


def validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator of a schema file, or of a definition in one (`file#/definitions/x`)."""
    registry: Registry[Any] = Registry()
    for file in SCHEMAS.glob("*.schema.json"):
        schema = json.loads(file.read_text())
        resource = Resource.from_contents(schema)
        registry = registry.with_resources([(file.name, resource), (schema["$id"], resource)])
    if "#" in name:
        return jsonschema.Draft202012Validator({"$ref": name}, registry=registry)
    return jsonschema.Draft202012Validator(load_schema(name), registry=registry)


def test_vectors_present() -> None:
    assert len(VECTORS) >= 4


@pytest.mark.parametrize("name", VECTORS)
def test_golden_vector_round_trip(name: str) -> None:
    raw = (SCHEMAS / "vectors" / f"{name}.msgpack").read_bytes()
    expected = json.loads((SCHEMAS / "vectors" / f"{name}.json").read_text())
    assert decode(raw) == expected
    assert encode(expected) == raw


@pytest.mark.parametrize("name", VECTORS)
def test_golden_vector_matches_schema(name: str) -> None:
    value = json.loads((SCHEMAS / "vectors" / f"{name}.json").read_text())
    schema = {"request": "request.schema.json", "reply": "reply.schema.json"}.get(
        name.split("-")[0], "dlq.schema.json#/definitions/redactedBody"
    )
    validator(schema).validate(value)


def test_schema_rejects_bad_request() -> None:
    bad = {"v": 1, "id": "x", "op": "predict", "signature": {"inputs": [], "outputs": []}, "inputs": {}}
    errors = list(validator("request.schema.json").iter_errors(bad))
    assert errors, "an empty signature must not validate"


def request(**overrides: Any) -> bytes:
    body: dict[str, Any] = json.loads((SCHEMAS / "vectors" / "request-predict-minimal.json").read_text())
    body.update(overrides)
    return encode({k: v for k, v in body.items() if v is not None})


def test_decode_request_ok() -> None:
    req = decode_request(request())
    assert req["op"] == "predict" and req["inputs"] == {"question": "What is 2+3?"}


@pytest.mark.parametrize(
    ("data", "error", "field"),
    [
        (b"\xc1\xc1", DecodeError, "body"),
        (msgpack.packb([1, 2]), DecodeError, "body"),
        (request(v=2), VersionError, "v"),
        (request(op="teleport"), UnknownOperation, "op"),
        (request(inputs="nope"), ValidationError, "inputs"),
        (request(signature=None), ValidationError, "signature"),
        (request(lm="gpt"), ValidationError, "lm"),
        (request(timeout_ms=float("inf")), ValidationError, "timeout_ms"),
        (request(module={"demos": "x"}, op="predict"), None, None),  # module options are checked per op, later
        (request(stream={"subject": "s", "bogus": 1}), ValidationError, "stream.bogus"),
        (request(op="evaluate"), ValidationError, "evaluate"),
    ],
)
def test_decode_request_errors(data: bytes, error: type[Exception] | None, field: str | None) -> None:
    if error is None:
        decode_request(data)
        return
    with pytest.raises(error) as info:
        decode_request(data)
    assert getattr(info.value, "field", None) == field
    assert str(info.value)


def test_an_unexpected_exception_while_decoding_is_a_decode_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A body that breaks decoding in a way no check knows is answered as DecodeError (and dead-lettered)."""
    from dspex_worker.transport import envelope

    def breaks(body: object) -> object:
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(envelope, "check_request", breaks)
    with pytest.raises(DecodeError) as info:
        decode_request(request())
    assert info.value.field == "body" and "OverflowError" in info.value.message
