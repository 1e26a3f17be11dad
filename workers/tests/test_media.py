"""Image and audio inputs on the worker (signatures/media.py), whatever a caller sent: DSPy's types built from
URLs, data URIs and bytes; an undecodable or mistyped value a ValidationError and an oversized one a
PayloadTooLarge, each naming the field."""

from __future__ import annotations

import base64

import dspy
import pytest

from dspex_worker.protocol.errors import PayloadTooLarge, ValidationError
from dspex_worker.signatures import validate_inputs

OK_CLIP = "data:audio/wav;base64,UklGRg=="
BIG = {"data": b"x" * (64 * 1024 + 1), "mime": "image/png"}
SIG = {
    "inputs": [{"name": "photo", "type": {"kind": "image"}}, {"name": "clip", "type": {"kind": "audio"}}],
    "outputs": [{"name": "answer", "type": {"kind": "str"}}],
}
WAV = b"RIFF\x04\x00\x00\x00WAVE"


def test_media_become_dspy_types_from_every_form() -> None:
    png = b"\x89PNG\r\n\x1a\n123"
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    for photo in (uri, {"data": png, "mime": "image/png"}):
        out = validate_inputs(SIG, {"photo": photo, "clip": {"data": WAV, "format": "wav"}})
        assert isinstance(out["photo"], dspy.Image) and out["photo"].format()[0]["image_url"]["url"] == uri
        assert out["clip"].format()[0]["input_audio"] == {"data": base64.b64encode(WAV).decode(), "format": "wav"}
    url = validate_inputs(SIG, {"photo": "https://example.org/a.png", "clip": "data:audio/wav;base64,UklGRg=="})
    assert url["photo"].format()[0]["image_url"]["url"] == "https://example.org/a.png"


@pytest.mark.parametrize(
    ("inputs", "error", "field"),
    [
        ({"photo": "data:image/png;base64,@@@", "clip": "data:audio/wav;base64,UklGRg=="}, ValidationError, "photo"),
        ({"photo": "data:image/png;base64,abc", "clip": "data:audio/wav;base64,UklGRg=="}, ValidationError, "photo"),
        ({"photo": "https://example.org/a.png", "clip": "https://example.org/a.wav"}, ValidationError, "clip"),
        (
            {"photo": {"data": b"x" * (64 * 1024 + 1), "mime": "image/png"}, "clip": "data:audio/wav;base64,UklGRg=="},
            PayloadTooLarge,
            "photo",
        ),
    ],
)
def test_bad_media_are_typed_errors_naming_the_field(
    inputs: dict[str, object], error: type[Exception], field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSPEX_MEDIA_MAX_BYTES", str(64 * 1024))
    with pytest.raises(error) as exc:
        validate_inputs(SIG, inputs)
    assert getattr(exc.value, "field", None) == field
