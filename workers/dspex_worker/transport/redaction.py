"""A request body reduced to what it was without what it said: the redacted dead letter (schemas/dlq.schema.json
#/definitions/redactedBody). The DLQ service makes the same summary of the same bytes (golden vector
schemas/vectors/dlq-redacted-cot-full): sizes are those of the values in the original bytes, never re-encoded, and
a value's type is its msgpack type family, read from its first byte.
"""

from __future__ import annotations

from typing import Any

import msgpack

from ..protocol import decode
from ..protocol.generated import bus


def msgpack_type(first: int) -> str:
    """The msgpack type family of the value whose encoding starts with this byte."""
    if first <= 0x7F or first >= 0xE0 or 0xCC <= first <= 0xD3:
        return "int"
    if 0x80 <= first <= 0x8F or first in (0xDE, 0xDF):
        return "map"
    if 0x90 <= first <= 0x9F or first in (0xDC, 0xDD):
        return "array"
    if 0xA0 <= first <= 0xBF or first in (0xD9, 0xDA, 0xDB):
        return "str"
    if first == 0xC0:
        return "nil"
    if first in (0xC2, 0xC3):
        return "bool"
    if first in (0xC4, 0xC5, 0xC6):
        return "bin"
    if first in (0xCA, 0xCB):
        return "float"
    return "ext"  # 0xC7-0xC9, 0xD4-0xD8 (0xC1 is never a value: such a body does not decode)


def _input_fields(data: bytes) -> dict[str, dict[str, Any]]:
    """Per input name, the type and size of its value in `data` (a map whose `inputs` is a map: checked)."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=max(len(data), 1))
    unpacker.feed(data)
    fields: dict[str, dict[str, Any]] = {}
    for _ in range(unpacker.read_map_header()):
        if unpacker.unpack() != "inputs":
            unpacker.skip()
            continue
        fields = {}  # a repeated key: the last one is the one decoding keeps
        for _ in range(unpacker.read_map_header()):
            name = unpacker.unpack()
            start = unpacker.tell()
            unpacker.skip()
            fields[str(name)] = {"type": msgpack_type(data[start]), "bytes": unpacker.tell() - start}
    return fields


def pool_of(subject: str) -> str | None:
    """`dspex.req.<pool>.<key>` -> `<pool>`, when it is one of bus.json's pools."""
    for pool in bus.POOLS:
        if subject.startswith(bus.request_subject(pool, "")):
            return pool
    return None


def redacted_body(data: bytes, subject: str) -> dict[str, Any]:
    """The summary a redacted dead letter keeps of a request body published on `subject` (keys in the schema's
    order: redacted, bytes, id, op, pool, fields)."""
    try:
        body = decode(data)
    except Exception:  # msgpack raises several unrelated types for bad bytes
        body = None
    body = body if isinstance(body, dict) else {}
    summary: dict[str, Any] = {"redacted": True, "bytes": len(data)}
    for key in ("id", "op"):
        if isinstance(body.get(key), str):
            summary[key] = body[key]
    if (pool := pool_of(subject)) is not None:
        summary["pool"] = pool
    if isinstance(body.get("inputs"), dict):
        summary["fields"] = _input_fields(data)
    return summary
