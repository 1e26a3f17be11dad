"""Image and audio inputs (`{kind: "image" | "audio"}`, schemas/signature.schema.json) as `dspy.Image` and
`dspy.Audio`: an http(s) URL (images only — handed to the provider as it is; the worker never fetches it), a
base64 data URI of the right media type, or `{data: <bytes>, mime}` / `{data: <bytes>, format}`. Decoded media
larger than DSPEX_MEDIA_MAX_BYTES (default 1 MiB) are a PayloadTooLarge naming the field; anything that does not
decode is a ValidationError naming it."""

from __future__ import annotations

import base64
import binascii
import os
import re
from typing import Any, Final

import dspy

from ..protocol.errors import PayloadTooLarge, ValidationError

_DATA_URI: Final = re.compile(r"^data:([a-z]+)/([-\w.+]+);base64,([A-Za-z0-9+/]*={0,2})$")
_URL: Final = re.compile(r"^https?://\S+$", re.IGNORECASE)


def media_max_bytes() -> int:
    raw = os.environ.get("DSPEX_MEDIA_MAX_BYTES", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1024 * 1024


def _decode(b64: str, field: str, kind: str) -> bytes:
    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(f"{field}: the {kind} data URI does not decode (base64)", field=field) from None


def _bounded(data: bytes, field: str, kind: str) -> bytes:
    limit = media_max_bytes()
    if len(data) > limit:
        raise PayloadTooLarge(
            f"{field}: {len(data)} bytes of {kind}, over the {limit}-byte limit (DSPEX_MEDIA_MAX_BYTES)",
            field=field,
            details={"bytes": len(data), "limit": limit},
        )
    return data


def to_media(kind: str, value: Any, field: str) -> Any:
    """The `dspy.Image` / `dspy.Audio` of a wire value; typed errors naming `field`."""
    if isinstance(value, str):
        if kind == "image" and _URL.match(value):
            return dspy.Image(value)
        match = _DATA_URI.match(value)
        if match is None or match.group(1) != kind:
            expected = "an http(s) URL or a base64 data:image/… URI" if kind == "image" else "a base64 data:audio/… URI"
            raise ValidationError(f"{field}: expected {expected}", field=field)
        data = _bounded(_decode(match.group(3), field, kind), field, kind)
        if kind == "image":
            return dspy.Image(value)
        return dspy.Audio(data=base64.b64encode(data).decode(), audio_format=match.group(2))
    meta = "mime" if kind == "image" else "format"
    if isinstance(value, dict) and isinstance(value.get("data"), bytes) and isinstance(value.get(meta), str):
        data = _bounded(value["data"], field, kind)
        encoded = base64.b64encode(data).decode()
        if kind == "image":
            return dspy.Image(f"data:{value['mime']};base64,{encoded}")
        return dspy.Audio(data=encoded, audio_format=value["format"])
    raise ValidationError(f"{field}: expected a URI or {{data: bytes, {meta}}} for {kind}", field=field)
