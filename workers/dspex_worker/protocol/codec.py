"""msgpack as the whole bus uses it: maps with string keys, bin for bytes, no extension types — byte-identical to
the TypeScript encoder (msgpackr with useRecords false), checked by the golden vectors in schemas/vectors."""

from __future__ import annotations

from typing import Any

import msgpack


def encode(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def decode(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=True)
