"""A DSPy callback that turns module calls and LM calls into OpenTelemetry spans and GenAI metrics.

DSPy calls `on_module_start/end` around every `Module.__call__`/`acall` and `on_lm_start/end` around every
`BaseLM.__call__`/`acall`, synchronously and in the caller's task, so a span can be started and made current in
`*_start` and ended in `*_end`. `on_lm_end` receives only the outputs, so token usage and the response model
come from the LM's history entry for this very call (DSPy's `finalize` stores `result.outputs` in the entry it
appends before the end callbacks run, so the entry is found by identity), or, with history off, from the
request's usage tracker (`dspy.context(track_usage=True)`).

LM spans follow the GenAI semantic conventions: name `{gen_ai.operation.name} {gen_ai.request.model}`, kind
CLIENT, `gen_ai.provider.name` (and the older `gen_ai.system`), `gen_ai.request.*`, `gen_ai.response.model`,
`gen_ai.usage.input_tokens` / `output_tokens`. Prompt and completion text are recorded only when
DSPEX_OTEL_CAPTURE_CONTENT is on, as the `gen_ai.input.messages` / `gen_ai.output.messages` attributes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from dspy.utils.callback import BaseCallback
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode, Tracer

from .instruments import Instruments
from .log import get_logger

log = get_logger("telemetry")

# LiteLLM-style provider prefixes → `gen_ai.provider.name` well-known values.
PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral": "mistral_ai",
    "perplexity": "perplexity",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}
OPERATIONS = {"chat": "chat", "responses": "chat", "text": "text_completion"}
MAX_CONTENT_CHARS = 16_384


def split_model(model: str) -> tuple[str, str]:
    """'openai/gpt-4o-mini' → ('openai', 'gpt-4o-mini'); a model without a provider prefix → ('', model)."""
    provider, sep, name = model.partition("/")
    return (provider, name) if sep else ("", model)


def provider_name(provider: str) -> str:
    return PROVIDERS.get(provider, provider or "unknown")


def error_type(exc: BaseException) -> str:
    return type(exc).__name__


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_CONTENT_CHARS else text[:MAX_CONTENT_CHARS] + "…"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "\n".join(str(p.get("text", "")) if isinstance(p, Mapping) else str(p) for p in content)
    return "" if content is None else str(content)


def input_messages(inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The call's messages in the GenAI conventions' `gen_ai.input.messages` shape (role + text parts)."""
    messages = inputs.get("messages")
    if not messages and inputs.get("prompt"):
        messages = [{"role": "user", "content": inputs["prompt"]}]
    out: list[dict[str, Any]] = []
    for m in messages or []:
        if isinstance(m, Mapping):
            role, content = str(m.get("role", "user")), m.get("content")
        else:  # an lm15 message object
            role, content = str(getattr(m, "role", "user")), getattr(m, "content", m)
        out.append({"role": role, "parts": [{"type": "text", "content": _truncate(_text_of(content))}]})
    return out


def output_messages(outputs: Any, finish_reasons: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, item in enumerate(outputs if isinstance(outputs, list) else [outputs]):
        text = item.get("text") if isinstance(item, Mapping) else item
        message: dict[str, Any] = {
            "role": "assistant",
            "parts": [{"type": "text", "content": _truncate(_text_of(text))}],
        }
        if i < len(finish_reasons):
            message["finish_reason"] = finish_reasons[i]
        out.append(message)
    return out


def _lm_attributes(lm: Any, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Span name, span attributes, and metric attributes of an LM call."""
    model = str(getattr(lm, "model", "unknown"))
    provider, name = split_model(model)
    operation = OPERATIONS.get(str(getattr(lm, "model_type", "chat")), "chat")
    provider_value = provider_name(provider)
    kwargs: dict[str, Any] = {**(getattr(lm, "kwargs", None) or {}), **(inputs.get("kwargs") or {})}
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider_value,
        "gen_ai.system": provider_value,
        "gen_ai.request.model": name,
        "dspy.lm.model": model,
    }
    for key, attr in (
        ("temperature", "gen_ai.request.temperature"),
        ("max_tokens", "gen_ai.request.max_tokens"),
        ("top_p", "gen_ai.request.top_p"),
        ("n", "gen_ai.request.choice.count"),
    ):
        value = kwargs.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[attr] = value
    api_base = kwargs.get("api_base") or kwargs.get("base_url")
    if isinstance(api_base, str):
        try:
            parts = urlsplit(api_base)
            if parts.hostname:
                attributes["server.address"] = parts.hostname
            if parts.port:
                attributes["server.port"] = parts.port
        except ValueError:
            pass
    metric_attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider_value,
        "gen_ai.request.model": name,
    }
    return f"{operation} {name}", attributes, metric_attributes


def _signature_attributes(instance: Any) -> dict[str, Any]:
    """The signature of a Predict (or of the Predict inside ChainOfThought) as span attributes."""
    signature = getattr(instance, "signature", None)
    if signature is None:
        signature = getattr(getattr(instance, "predict", None), "signature", None)
    attributes: dict[str, Any] = {"dspy.module": type(instance).__name__}
    if signature is None:
        return attributes
    try:
        inputs = list(signature.input_fields)
        outputs = list(signature.output_fields)
        attributes["dspy.signature"] = f"{', '.join(inputs)} -> {', '.join(outputs)}"
        attributes["dspy.signature.input_fields"] = inputs
        attributes["dspy.signature.output_fields"] = outputs
        attributes["dspy.signature.name"] = str(getattr(signature, "__name__", ""))
    except Exception:
        pass
    demos = getattr(instance, "demos", None)
    if isinstance(demos, list):
        attributes["dspy.predict.demos"] = len(demos)
    return attributes


@dataclass
class _Open:
    span: trace.Span
    token: object
    started: float
    lm: Any = None
    metric_attributes: dict[str, Any] | None = None
    usage_mark: int = -1  # entries in the request's usage tracker for this model when the call started


class OtelDspyCallback(BaseCallback):  # type: ignore[misc]  # dspy ships no type information
    """Spans for DSPy module calls (`dspy.<Module>`) and LM calls (`chat <model>`), plus token metrics."""

    def __init__(self, tracer: Tracer, instruments: Instruments, *, capture_content: bool = False) -> None:
        self.tracer = tracer
        self.instruments = instruments
        self.capture_content = capture_content
        self._open: dict[str, _Open] = {}
        self._lock = threading.Lock()  # DSPy may call LMs from threads (dspy.Parallel, sync calls)

    # -- bookkeeping -------------------------------------------------------------------------------------------

    def _push(self, call_id: str, span: trace.Span, **extra: Any) -> None:
        token = otel_context.attach(trace.set_span_in_context(span))
        with self._lock:
            self._open[call_id] = _Open(span=span, token=token, started=time.perf_counter(), **extra)

    def _pop(self, call_id: str) -> _Open | None:
        with self._lock:
            entry = self._open.pop(call_id, None)
        if entry is not None:
            try:
                otel_context.detach(entry.token)  # type: ignore[arg-type]
            except Exception:
                pass
        return entry

    @staticmethod
    def _fail(span: trace.Span, exc: BaseException) -> str:
        kind = error_type(exc)
        span.set_status(StatusCode.ERROR, str(exc)[:1024])
        span.set_attribute("error.type", kind)
        span.record_exception(exc)
        return kind

    # -- modules -----------------------------------------------------------------------------------------------

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        span = self.tracer.start_span(
            f"dspy.{type(instance).__name__}", kind=SpanKind.INTERNAL, attributes=_signature_attributes(instance)
        )
        self._push(call_id, span)

    def on_module_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        entry = self._pop(call_id)
        if entry is None:
            return
        if exception is not None:
            self._fail(entry.span, exception)
        entry.span.end()

    # -- LM calls ----------------------------------------------------------------------------------------------

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        name, attributes, metric_attributes = _lm_attributes(instance, inputs)
        if self.capture_content:
            attributes["gen_ai.input.messages"] = json.dumps(input_messages(inputs), ensure_ascii=False)
        span = self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        self._push(
            call_id,
            span,
            lm=instance,
            metric_attributes=metric_attributes,
            usage_mark=self._usage_mark(instance),
        )

    def on_lm_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        entry = self._pop(call_id)
        if entry is None:
            return
        span = entry.span
        metric_attributes = dict(entry.metric_attributes or {})
        elapsed = time.perf_counter() - entry.started
        try:
            if exception is not None:
                metric_attributes["error.type"] = self._fail(span, exception)
            else:
                self._record_result(entry, outputs, metric_attributes)
        except Exception as exc:  # telemetry must never break a request
            log.debug("LM span attributes failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            span.end()
            self.instruments.operation_duration.record(elapsed, metric_attributes)

    def _record_result(self, entry: _Open, outputs: Any, metric_attributes: dict[str, Any]) -> None:
        span = entry.span
        history = self._history_entry(entry.lm, outputs)
        usage: Mapping[str, Any] = {}
        finish_reasons: list[str] = []
        if history is not None:
            usage = history.get("usage") or {}
            response_model = history.get("response_model")
            if response_model:
                span.set_attribute("gen_ai.response.model", str(response_model))
                metric_attributes["gen_ai.response.model"] = str(response_model)
            response_id, finish_reasons = _response_details(history.get("response"))
            if response_id:
                span.set_attribute("gen_ai.response.id", response_id)
            if finish_reasons:
                span.set_attribute("gen_ai.response.finish_reasons", finish_reasons)
        else:
            usage = self._usage_since(entry)
        input_tokens = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
        output_tokens = _int(usage.get("completion_tokens", usage.get("output_tokens")))
        if input_tokens is not None:
            span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        if output_tokens is not None:
            span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
        if self.capture_content and outputs is not None:
            span.set_attribute(
                "gen_ai.output.messages", json.dumps(output_messages(outputs, finish_reasons), ensure_ascii=False)
            )
        token_attributes = {
            "gen_ai.provider.name": metric_attributes.get("gen_ai.provider.name", "unknown"),
            "gen_ai.request.model": metric_attributes.get("gen_ai.request.model", "unknown"),
        }
        for token_type, count in (("input", input_tokens), ("output", output_tokens)):
            if count is None:
                continue
            self.instruments.token_usage.record(count, {**metric_attributes, "gen_ai.token.type": token_type})
            self.instruments.lm_tokens.add(count, {**token_attributes, "gen_ai.token.type": token_type})

    @staticmethod
    def _history_entry(lm: Any, outputs: Any) -> Mapping[str, Any] | None:
        """This call's entry in the LM's history: the one whose `outputs` is the very object we were handed."""
        if outputs is None:
            return None
        history = getattr(lm, "history", None)
        if not isinstance(history, list):
            return None
        for item in reversed(history[-16:]):
            if isinstance(item, Mapping) and item.get("outputs") is outputs:
                return item
        return None

    @staticmethod
    def _usage_mark(lm: Any) -> int:
        import dspy

        tracker = dspy.settings.get("usage_tracker", None)
        if tracker is None:
            return -1
        return len(tracker.usage_data.get(str(getattr(lm, "model", "")), []))

    @staticmethod
    def _usage_since(entry: _Open) -> Mapping[str, Any]:
        import dspy

        tracker = dspy.settings.get("usage_tracker", None)
        if tracker is None or entry.usage_mark < 0:
            return {}
        added = tracker.usage_data.get(str(getattr(entry.lm, "model", "")), [])[entry.usage_mark :]
        total: dict[str, int] = {}
        for usage in added:
            for key in ("prompt_tokens", "completion_tokens"):
                value = _int(usage.get(key))
                if value is not None:
                    total[key] = total.get(key, 0) + value
        return total


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _response_details(response: Any) -> tuple[str | None, list[str]]:
    """Response id and finish reasons from an lm15 Response, a list of them, or an OpenAI-shaped response."""
    responses = response if isinstance(response, list | tuple) else [response]
    response_id: str | None = None
    reasons: list[str] = []
    for r in responses:
        if r is None:
            continue
        rid = r.get("id") if isinstance(r, Mapping) else getattr(r, "id", None)
        if response_id is None and isinstance(rid, str):
            response_id = rid
        reason = getattr(r, "finish_reason", None)
        if isinstance(reason, str):
            reasons.append(reason)
            continue
        choices = r.get("choices") if isinstance(r, Mapping) else getattr(r, "choices", None)
        for choice in choices or []:
            value = (
                choice.get("finish_reason") if isinstance(choice, Mapping) else getattr(choice, "finish_reason", None)
            )
            if isinstance(value, str):
                reasons.append(value)
    return response_id, reasons
