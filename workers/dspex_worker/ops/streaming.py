"""Token streaming of a running program to its caller (docs/dspy-surface.md, "Streaming").

A request with `stream: {subject, fields?, status?}` runs its module through `dspy.streamify`; every event is
published (core NATS, msgpack) on `subject` while the program runs, then the usual reply goes to the reply
subject. Events, each with `v: 1`, the request `id` and a per-request `seq` (0, 1, 2, …):

* `{type: "token", field, predictor, chunk, last}` — a piece of an output field as the LM streams it
  (`dspy.streaming.StreamListener` per field). For programs whose predictors cannot be told apart by field
  (BestOfN/Refine run deep copies, ensembles have one predictor per member) the raw LM text is streamed with
  `field: null`.
* `{type: "status", kind, name?, message}` — `kind` is `module_start|module_end|lm_start|lm_end|tool_start|
  tool_end` (DSPy callbacks through a `StatusMessageProvider`).
* `{type: "end", ok}` — the last event, published right before the reply.

DSPy streams tokens only through `dspy.LM` (its LiteLLM path with `stream=True`); the LM double supports SSE.
"""

from __future__ import annotations

from typing import Any

import dspy
from dspy.streaming import StatusMessage, StatusMessageProvider, StreamListener, StreamResponse
from nats.aio.client import Client

from ..protocol import encode
from ..protocol.errors import ValidationError
from ..protocol.generated.types import StreamSpec
from ..protocol.subjects import is_publish_subject


class Status(str):
    """A status message string that also carries its kind and the name of the module/LM/tool."""

    kind: str
    name: str | None

    def __new__(cls, kind: str, name: str | None, message: str) -> Status:
        status = super().__new__(cls, message)
        status.kind = kind
        status.name = name
        return status


class StatusProvider(StatusMessageProvider):  # type: ignore[misc]
    """Status messages for module, LM and tool start and end."""

    def tool_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> Status:
        name = str(getattr(instance, "name", "tool"))
        return Status("tool_start", name, f"Calling tool {name}")

    def tool_end_status_message(self, outputs: Any) -> Status:
        return Status("tool_end", None, "Tool call finished")

    def module_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> Status:
        name = type(instance).__name__
        return Status("module_start", name, f"Running {name}")

    def module_end_status_message(self, outputs: Any) -> Status:
        return Status("module_end", None, "Module finished")

    def lm_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> Status:
        name = str(getattr(instance, "model", "lm"))
        return Status("lm_start", name, f"Calling LM {name}")

    def lm_end_status_message(self, outputs: Any) -> Status:
        return Status("lm_end", None, "LM call finished")


class NoStatus(StatusMessageProvider):  # type: ignore[misc]
    def tool_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> None:
        return None

    def tool_end_status_message(self, outputs: Any) -> None:
        return None


def check_subject(subject: str) -> str:
    """The schema says `stream.subject` is a string; a subject to publish on must also have no wildcards."""
    if not is_publish_subject(subject):
        raise ValidationError("stream.subject: must be a NATS subject without wildcards", field="stream.subject")
    return subject


def listeners_for(module: Any, fields: list[str]) -> list[Any]:
    """A StreamListener for each field produced by exactly one predictor of the module (others cannot be told apart)."""
    owners: dict[str, list[tuple[str, Any]]] = {f: [] for f in fields}
    for name, predictor in module.named_predictors():
        for field in predictor.signature.output_fields:
            if field in owners:
                owners[field].append((name, predictor))
    listeners = []
    for field, found in owners.items():
        if len(found) == 1:
            pname, predictor = found[0]
            listeners.append(
                StreamListener(signature_field_name=field, predict=predictor, predict_name=pname, allow_reuse=True)
            )
    return listeners


def _raw_text(value: Any) -> str | None:
    """Text of a raw LiteLLM stream chunk (`ModelResponseStream`), if it has any."""
    try:
        content = value.choices[0].delta.content
    except (AttributeError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) and content else None


async def run_streamed(
    nc: Client,
    spec: StreamSpec,
    module: Any,
    kwargs: dict[str, Any],
    *,
    request_id: str,
    default_fields: list[str],
    is_async: bool,
    raw: bool = False,
) -> Any:
    """Runs the module through `dspy.streamify`, publishing its events; returns the final prediction."""
    subject = check_subject(spec["subject"])
    fields = spec.get("fields") or default_fields
    seq = 0

    async def publish(event: dict[str, Any]) -> None:
        nonlocal seq
        event = {"v": 1, "id": request_id, "seq": seq, **event}
        seq += 1
        await nc.publish(subject, encode(event))

    listeners = [] if raw else listeners_for(module, fields)
    program = dspy.streamify(
        module,
        status_message_provider=StatusProvider() if spec.get("status", True) else NoStatus(),
        stream_listeners=listeners,
        include_final_prediction_in_output_stream=True,
        is_async_program=is_async,
        async_streaming=True,
    )
    prediction: Any = None
    ok = False
    try:
        async for value in program(**kwargs):
            if isinstance(value, StreamResponse):
                await publish(
                    {
                        "type": "token",
                        "field": value.signature_field_name,
                        "predictor": value.predict_name,
                        "chunk": value.chunk,
                        "last": bool(value.is_last_chunk),
                    }
                )
            elif isinstance(value, StatusMessage):
                message = value.message
                await publish(
                    {
                        "type": "status",
                        "kind": getattr(message, "kind", "status"),
                        "name": getattr(message, "name", None),
                        "message": str(message),
                    }
                )
            elif isinstance(value, dspy.Prediction):
                prediction = value
            elif (text := _raw_text(value)) is not None:
                await publish({"type": "token", "field": None, "predictor": None, "chunk": text, "last": False})
        ok = prediction is not None
    finally:
        try:
            await publish({"type": "end", "ok": ok})
        except Exception:  # the reply still tells the caller how it ended
            pass
    if prediction is None:
        raise ValidationError("stream: the streamed program ended without a prediction", field="stream")
    return prediction
