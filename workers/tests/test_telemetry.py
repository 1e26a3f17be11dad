"""The worker's OpenTelemetry helpers without NATS: trace context from headers, the process span, the DSPy callback.

The DSPy tests run real dspy (its native lm15 client) against a tiny OpenAI-compatible HTTP server in a thread;
spans and metrics go to in-memory exporters.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dspy
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from dspex_worker.observability import telemetry
from dspex_worker.observability.dspy_callback import input_messages, provider_name, split_model
from dspex_worker.observability.log import JsonFormatter, trace_fields

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@dataclass
class Otel:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    provider: TracerProvider

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def by_name(self, name: str) -> ReadableSpan:
        found = [s for s in self.finished() if s.name == name]
        assert len(found) == 1, f"{name}: {[s.name for s in self.finished()]}"
        return found[0]

    def metric_points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        points: list[Any] = []
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points


def _otel(capture_content: bool = False) -> Otel:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    telemetry.configure(
        tracer_provider=provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
        worker_id="w-1",
        pool="general",
        capture_content=capture_content,
    )
    return Otel(exporter, reader, provider)


@pytest.fixture
def otel() -> Iterator[Otel]:
    yield _otel()
    telemetry.reset()


@pytest.fixture
def otel_content() -> Iterator[Otel]:
    yield _otel(capture_content=True)
    telemetry.reset()


@dataclass
class FakeMsg:
    """The parts of a nats-py Msg the hooks read (a message without a JetStream ack subject)."""

    headers: dict[str, str] | None
    subject: str = "dspex.req.general.any"
    data: bytes = b"\x80"
    reply: str = ""
    metadata: Any = None


# -- propagation ---------------------------------------------------------------------------------------------------


def test_extract_reads_traceparent_and_tracestate_from_nats_headers() -> None:
    ctx = telemetry.extract_context({"traceparent": TRACEPARENT, "tracestate": "vendor=abc", "Dspex-Reply-To": "x"})
    span_context = trace.get_current_span(ctx).get_span_context()
    assert span_context.is_valid and span_context.is_remote
    assert format(span_context.trace_id, "032x") == TRACE_ID
    assert format(span_context.span_id, "016x") == PARENT_ID
    assert span_context.trace_state.get("vendor") == "abc"


def test_extract_matches_header_names_case_insensitively_and_tolerates_none() -> None:
    ctx = telemetry.extract_context({"Traceparent": TRACEPARENT})
    assert format(trace.get_current_span(ctx).get_span_context().trace_id, "032x") == TRACE_ID
    assert not trace.get_current_span(telemetry.extract_context(None)).get_span_context().is_valid
    bad = telemetry.extract_context({"traceparent": "00-not-a-trace-01"})
    assert not trace.get_current_span(bad).get_span_context().is_valid


def test_log_lines_carry_trace_and_span_ids(otel: Otel) -> None:
    record = logging.LogRecord("dspex.worker", logging.INFO, __file__, 1, "hello", None, None)
    assert "trace_id" not in json.loads(JsonFormatter().format(record))
    with otel.provider.get_tracer("t").start_as_current_span("s") as span:
        entry = json.loads(JsonFormatter().format(record))
    ctx = span.get_span_context()
    assert entry["trace_id"] == format(ctx.trace_id, "032x")
    assert entry["span_id"] == format(ctx.span_id, "016x")


# -- disabled ------------------------------------------------------------------------------------------------------


def test_without_an_endpoint_nothing_is_installed() -> None:
    telemetry.reset()
    st = telemetry.setup_telemetry(worker_id="w", pool="general", environ={"OTEL_SERVICE_NAME": "x"})
    assert not st.active
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"}
    assert not telemetry.setup_telemetry(worker_id="w", pool="general", environ=disabled).active
    none = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"}
    assert telemetry._endpoint("TRACES", none) is None
    assert telemetry._endpoint("METRICS", none) == "http://127.0.0.1:1"
    assert telemetry.dspy_callbacks() == []


async def test_disabled_traced_request_only_keeps_log_correlation() -> None:
    telemetry.reset()
    seen: dict[str, str] = {}

    async def work() -> dict[str, Any]:
        seen.update(trace_fields())
        return {"ok": True}

    assert await telemetry.traced_request(work(), FakeMsg({"traceparent": TRACEPARENT}), pool="general") == {"ok": True}
    assert seen == {"trace_id": TRACE_ID, "span_id": PARENT_ID}
    assert trace_fields() == {}


# -- the process span ----------------------------------------------------------------------------------------------


async def test_process_span_continues_the_callers_trace(otel: Otel) -> None:
    inner: dict[str, str] = {}

    async def work() -> dict[str, Any]:
        telemetry.note_request("predict")
        inner.update(trace_fields())
        return {"ok": True, "outputs": {}}

    headers = {"traceparent": TRACEPARENT, "Nats-Msg-Id": "req-1", "Dspex-Reply-To": "_INBOX.x"}
    await telemetry.traced_request(work(), FakeMsg(headers), pool="general", queue_ms=12.5)
    span = otel.by_name("process dspex.req.general")
    assert span.kind == SpanKind.CONSUMER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID
    assert inner["span_id"] == format(span.context.span_id, "016x")
    attrs = dict(span.attributes or {})
    assert attrs["messaging.system"] == "nats"
    assert attrs["messaging.operation.type"] == "process"
    assert attrs["messaging.destination.name"] == "dspex.req.general.any"
    assert attrs["messaging.destination.template"] == "dspex.req.general.{key}"
    assert attrs["messaging.message.id"] == "req-1"
    assert attrs["messaging.consumer.group.name"] == "general"
    assert attrs["dspex.operation"] == "predict"
    assert attrs["dspex.worker.id"] == "w-1"
    assert span.status.status_code == StatusCode.UNSET

    durations = otel.metric_points("dspex.worker.request.duration")
    assert [dict(p.attributes) for p in durations] == [
        {"dspex.operation": "predict", "dspex.pool": "general", "dspex.outcome": "ok"}
    ]
    waits = otel.metric_points("dspex.worker.queue_wait.duration")
    assert waits[0].sum == pytest.approx(0.0125)
    inflight = otel.metric_points("dspex.worker.requests.inflight")
    assert inflight[0].value == 0


async def test_an_error_reply_marks_the_process_span(otel: Otel) -> None:
    async def work() -> dict[str, Any]:
        return {"ok": False, "error": {"type": "LMError", "message": "boom", "retryable": True}}

    await telemetry.traced_request(work(), FakeMsg({}), pool="general")
    span = otel.by_name("process dspex.req.general")
    assert span.status.status_code == StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "LMError"
    assert span.parent is None  # no traceparent: a new trace
    (point,) = otel.metric_points("dspex.worker.request.duration")
    assert dict(point.attributes)["error.type"] == "LMError"
    assert dict(point.attributes)["dspex.outcome"] == "error"


def test_signature_cache_metrics_are_observed(otel: Otel) -> None:
    telemetry.observe_worker(lambda: {"pool": "general", "signature_cache": {"hits": 3, "misses": 1}})
    (ratio,) = otel.metric_points("dspex.worker.signature_cache.hit_ratio")
    assert ratio.value == pytest.approx(0.75)
    lookups = {
        dict(p.attributes)["dspex.cache.result"]: p.value
        for p in otel.metric_points("dspex.worker.signature_cache.lookups")
    }
    assert lookups == {"hit": 3, "miss": 1}


# -- the DSPy callback ---------------------------------------------------------------------------------------------


@dataclass
class FakeProvider:
    """An OpenAI-compatible chat endpoint answering DSPy's ChatAdapter format; `fail` answers HTTP 500 once."""

    url: str = ""
    fail: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    state = FakeProvider()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(body)
            if state.fail > 0:
                state.fail -= 1
                payload = json.dumps({"error": {"message": "boom", "type": "server_error"}}).encode()
                self.send_response(500)
            else:
                text = "[[ ## reasoning ## ]]\nsimple.\n\n[[ ## answer ## ]]\n42\n\n[[ ## completed ## ]]"
                payload = json.dumps(
                    {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "fake-model-2026",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                    }
                ).encode()
                self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _lm(provider: FakeProvider) -> dspy.LM:
    return dspy.LM("openai/fake-model", api_base=provider.url, api_key="x", cache=False, num_retries=0, temperature=0.5)


async def _run(provider: FakeProvider, module: Any, **inputs: Any) -> Any:
    with dspy.context(lm=_lm(provider), track_usage=True, callbacks=telemetry.dspy_callbacks()):
        return await module.acall(**inputs)


async def test_module_and_lm_spans_with_genai_attributes(otel: Otel, provider: FakeProvider) -> None:
    tracer = otel.provider.get_tracer("test")
    with tracer.start_as_current_span("process"):
        prediction = await _run(provider, dspy.ChainOfThought("question -> answer: int"), question="6*7?")
    assert prediction.answer == 42
    process = otel.by_name("process")
    cot = otel.by_name("dspy.ChainOfThought")
    predict = otel.by_name("dspy.Predict")
    chat = otel.by_name("chat fake-model")
    assert cot.parent is not None and cot.parent.span_id == process.context.span_id
    assert predict.parent is not None and predict.parent.span_id == cot.context.span_id
    assert chat.parent is not None and chat.parent.span_id == predict.context.span_id
    assert (cot.attributes or {})["dspy.signature.input_fields"] == ("question",)
    assert (cot.attributes or {})["dspy.signature.output_fields"] == ("reasoning", "answer")
    assert (cot.attributes or {})["dspy.signature"] == "question -> reasoning, answer"

    assert chat.kind == SpanKind.CLIENT
    attrs = dict(chat.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.system"] == "openai"
    assert attrs["gen_ai.request.model"] == "fake-model"
    assert attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.response.model"] == "fake-model-2026"
    assert attrs["gen_ai.usage.input_tokens"] == 11
    assert attrs["gen_ai.usage.output_tokens"] == 7
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["server.address"] == "127.0.0.1"
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs  # content is opt-in
    assert all("api_key" not in key for key in attrs)

    tokens = {
        tuple(
            dict(p.attributes)[k] for k in ("gen_ai.token.type", "gen_ai.provider.name", "gen_ai.request.model")
        ): p.value
        for p in otel.metric_points("dspex.worker.lm.tokens")
    }
    assert tokens == {("input", "openai", "fake-model"): 11, ("output", "openai", "fake-model"): 7}
    usage = otel.metric_points("gen_ai.client.token.usage")
    assert sorted(p.sum for p in usage) == [7, 11]
    assert otel.metric_points("gen_ai.client.operation.duration")[0].count == 1


async def test_usage_comes_from_the_tracker_when_history_is_off(otel: Otel, provider: FakeProvider) -> None:
    with dspy.context(disable_history=True):
        await _run(provider, dspy.Predict("question -> answer: int"), question="6*7?")
    attrs = dict(otel.by_name("chat fake-model").attributes or {})
    assert attrs["gen_ai.usage.input_tokens"] == 11
    assert attrs["gen_ai.usage.output_tokens"] == 7
    assert "gen_ai.response.model" not in attrs


async def test_an_lm_failure_marks_lm_and_module_spans(otel: Otel, provider: FakeProvider) -> None:
    provider.fail = 1
    with pytest.raises(Exception) as raised:
        await _run(provider, dspy.Predict("question -> answer: int"), question="6*7?")
    chat = otel.by_name("chat fake-model")
    predict = otel.by_name("dspy.Predict")
    for span in (chat, predict):
        assert span.status.status_code == StatusCode.ERROR
        assert (span.attributes or {})["error.type"] == type(raised.value).__name__
    assert type(raised.value).__name__ == "LMServerError"
    assert any(e.name == "exception" for e in chat.events)
    (duration,) = otel.metric_points("gen_ai.client.operation.duration")
    assert dict(duration.attributes)["error.type"] == "LMServerError"
    assert otel.metric_points("dspex.worker.lm.tokens") == []


async def test_prompt_and_completion_are_recorded_only_when_opted_in(
    otel_content: Otel, provider: FakeProvider
) -> None:
    await _run(provider, dspy.Predict("question -> answer: int"), question="What is 6*7?")
    attrs = dict(otel_content.by_name("chat fake-model").attributes or {})
    messages = json.loads(str(attrs["gen_ai.input.messages"]))
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "What is 6*7?" in messages[-1]["parts"][0]["content"]
    output = json.loads(str(attrs["gen_ai.output.messages"]))
    assert output[0]["role"] == "assistant" and output[0]["finish_reason"] == "stop"
    assert "[[ ## answer ## ]]" in output[0]["parts"][0]["content"]


def test_model_helpers() -> None:
    assert split_model("openai/gpt-4o-mini") == ("openai", "gpt-4o-mini")
    assert split_model("gpt-4o") == ("", "gpt-4o")
    assert provider_name("vertex_ai") == "gcp.vertex_ai"
    assert provider_name("") == "unknown"
    assert input_messages({"prompt": "hi"}) == [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
