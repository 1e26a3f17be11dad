"""OpenTelemetry for the worker: trace context from NATS headers, the `process` span, metrics, log correlation.

Everything is off unless an OTLP endpoint is configured with the standard variables
(`OTEL_EXPORTER_OTLP_ENDPOINT`, or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `..._METRICS_ENDPOINT`), and
`OTEL_SDK_DISABLED=true` turns it off regardless. Off means: no SDK is imported, no provider is installed,
the worker's hooks return at once, and DSPy runs without callbacks. The only thing kept is log correlation:
when a request carries a `traceparent`, log lines written while handling it carry the caller's trace id.

Hooks in the rest of the worker are one-liners:
  * `__main__`: `setup_telemetry(worker_id=..., pool=...)` once, before the event loop starts;
  * `worker.Worker`: `observe_worker(self.stats)`, `reply = await traced_request(self._execute(...), msg, ...)`
    and `note_request(op)` once the request is decoded;
  * the ops: `dspy.context(..., callbacks=dspy_callbacks())`;
  * `log.JsonFormatter`: `entry.update(trace_fields())` (log correlation needs only the OpenTelemetry API).

The DSPy callback (module and LM spans, GenAI attributes, token metrics) lives in `dspy_callback.py`, the metric
instruments both use in `instruments.py`.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, StatusCode, Tracer, TracerProvider

from .. import __version__
from ..protocol.generated.bus import HEADER_MSG_ID, HEADER_TRACEPARENT, QUEUES, direct_subject, request_subject
from .dspy_callback import OtelDspyCallback
from .instruments import Instruments
from .log import get_logger

if TYPE_CHECKING:
    from nats.aio.msg import Msg

log = get_logger("telemetry")

INSTRUMENTATION_NAME = "dspex_worker"
DEFAULT_SERVICE_NAME = "dspex-worker"
MESSAGING_SYSTEM = "nats"


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    value = (environ if environ is not None else os.environ).get(name, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


class HeaderGetter(Getter[Mapping[str, str]]):
    """Reads W3C trace context from NATS headers (a plain dict in nats-py); names match case-insensitively."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            wanted = key.lower()
            value = next((v for k, v in carrier.items() if k.lower() == wanted), None)
        return [value] if value is not None else None

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier.keys())


HEADER_GETTER = HeaderGetter()


def extract_context(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The caller's trace context from NATS headers (`traceparent`, `tracestate`, `baggage`)."""
    return propagate.extract(headers or {}, getter=HEADER_GETTER)


@dataclass
class TelemetryState:
    tracing: bool = False
    metrics: bool = False
    capture_content: bool = False
    flush_each_request: bool = False
    pool: str = ""
    worker_id: str = ""
    tracer: Tracer = field(default_factory=lambda: trace.NoOpTracer())
    instruments: Instruments | None = None
    tracer_provider: Any = None  # SDK providers when this module installed them (flush/shutdown)
    meter_provider: Any = None
    callback: OtelDspyCallback | None = None

    @property
    def active(self) -> bool:
        return self.tracing or self.metrics


_state = TelemetryState()


def state() -> TelemetryState:
    return _state


@dataclass
class RequestInfo:
    """What the hooks learn about the request being processed; shared with the executor's task via a ContextVar."""

    span: trace.Span
    pool: str
    operation: str = "unknown"


_current_request: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "dspex_current_request", default=None
)


def _endpoint(signal: str, environ: Mapping[str, str]) -> str | None:
    if environ.get(f"OTEL_{signal}_EXPORTER", "otlp").strip().lower() == "none":
        return None
    return environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None


def setup_telemetry(*, worker_id: str, pool: str, environ: Mapping[str, str] | None = None) -> TelemetryState:
    """Installs OTLP/HTTP (protobuf) trace and metric exporters when an endpoint is configured; else does nothing.

    The SDK reads the rest of the standard variables itself: `OTEL_SERVICE_NAME` (default here: dspex-worker),
    `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_*`,
    `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_EXPORTER_OTLP_*_HEADERS` / `_TIMEOUT` / `_COMPRESSION`.
    """
    env = environ if environ is not None else os.environ
    if env_flag("OTEL_SDK_DISABLED", env):
        return _state
    traces_endpoint = _endpoint("TRACES", env)
    metrics_endpoint = _endpoint("METRICS", env)
    if not traces_endpoint and not metrics_endpoint:
        return _state

    from opentelemetry import metrics
    from opentelemetry.sdk.resources import Resource

    attributes: dict[str, Any] = {
        "service.version": __version__,
        "service.instance.id": worker_id,
        "dspex.pool": pool,
    }
    if not env.get("OTEL_SERVICE_NAME") and "service.name=" not in env.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes["service.name"] = DEFAULT_SERVICE_NAME
    resource = Resource.create(attributes)

    tracer_provider = None
    meter_provider = None
    if traces_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider = SdkTracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER(_ARG)
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(tracer_provider)
    if metrics_endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(OTLPMetricExporter())  # interval from OTEL_METRIC_EXPORT_INTERVAL
        meter_provider = SdkMeterProvider(resource=resource, metric_readers=[reader])
        metrics.set_meter_provider(meter_provider)

    configure(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        worker_id=worker_id,
        pool=pool,
        capture_content=env_flag("DSPEX_OTEL_CAPTURE_CONTENT", env),
        flush_each_request=env_flag("DSPEX_OTEL_FLUSH_EACH_REQUEST", env),
    )
    log.info("OpenTelemetry export enabled", traces_endpoint=traces_endpoint, metrics_endpoint=metrics_endpoint)
    return _state


def configure(
    *,
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None,
    worker_id: str = "",
    pool: str = "",
    capture_content: bool = False,
    flush_each_request: bool = False,
) -> TelemetryState:
    """Points the hooks at the given providers (setup_telemetry uses it; tests pass in-memory providers)."""
    from opentelemetry.metrics import NoOpMeterProvider

    global _state
    st = TelemetryState(
        tracing=tracer_provider is not None,
        metrics=meter_provider is not None,
        capture_content=capture_content,
        flush_each_request=flush_each_request,
        pool=pool,
        worker_id=worker_id,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
    if tracer_provider is not None:
        st.tracer = tracer_provider.get_tracer(INSTRUMENTATION_NAME, __version__)
    st.instruments = Instruments((meter_provider or NoOpMeterProvider()).get_meter(INSTRUMENTATION_NAME, __version__))
    st.callback = OtelDspyCallback(st.tracer, st.instruments, capture_content=capture_content)
    _state = st
    return st


def reset() -> None:
    """Back to the disabled state (tests)."""
    global _state
    _state = TelemetryState()


def flush(timeout_millis: int = 5000) -> None:
    """Exports everything buffered now (blocking: call it off the event loop)."""
    st = _state
    for provider in (st.tracer_provider, st.meter_provider):
        if provider is not None and hasattr(provider, "force_flush"):
            try:
                provider.force_flush(timeout_millis)
            except Exception as exc:  # an unreachable collector must never fail a request
                log.warning("telemetry flush failed", error=f"{type(exc).__name__}: {exc}")


def shutdown() -> None:
    st = _state
    for provider in (st.tracer_provider, st.meter_provider):
        if provider is not None and hasattr(provider, "shutdown"):
            try:
                provider.shutdown()
            except Exception as exc:
                log.warning("telemetry shutdown failed", error=f"{type(exc).__name__}: {exc}")


def dspy_callbacks() -> list[Any]:
    """Callbacks for `dspy.context(callbacks=...)`: the global ones, plus the OpenTelemetry callback when on."""
    import dspy

    existing = list(dspy.settings.get("callbacks", None) or [])
    st = _state
    if not st.active or st.callback is None:
        return existing
    return [*existing, st.callback]


def note_request(operation: str) -> None:
    """Tells the current `process` span (and the duration metric) which operation the decoded request asks for."""
    info = _current_request.get()
    if info is not None:
        info.operation = operation
        info.span.set_attribute("dspex.operation", operation)


def _template(msg: Msg, pool: str) -> str:
    """The subject template of the lane the request came on: `dspex.req.<pool>.{key}` or `dspex.direct.<pool>.{key}`."""
    direct = direct_subject(pool, "{key}")
    return direct if msg.subject.startswith(direct.removesuffix("{key}")) else request_subject(pool, "{key}")


def _message_attributes(msg: Msg, pool: str) -> dict[str, Any]:
    headers = msg.headers or {}
    template = _template(msg, pool)
    attributes: dict[str, Any] = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": msg.subject,
        "messaging.destination.template": template,  # dspex.req.<pool>.{key} or dspex.direct.<pool>.{key}
        "messaging.message.body.size": len(msg.data),
        "dspex.pool": pool,
    }
    message_id = headers.get(HEADER_MSG_ID)
    if message_id:
        attributes["messaging.message.id"] = message_id
        attributes["dspex.request.id"] = message_id
    if _state.worker_id:
        attributes["dspex.worker.id"] = _state.worker_id
    # the direct lane's queue group; on the durable lane, the JetStream consumer (below)
    consumer = QUEUES["direct"] if template.startswith("dspex.direct.") else pool
    try:
        if msg.reply:
            metadata = msg.metadata
            consumer = metadata.consumer or pool
            attributes["dspex.delivery_count"] = metadata.num_delivered
    except Exception:
        pass
    # The durable JetStream consumer plays the role of the consumer group (the pool's, or a partition's).
    attributes["messaging.consumer.group.name"] = consumer
    attributes["messaging.destination.subscription.name"] = consumer
    return attributes


async def traced_request(
    work: Awaitable[dict[str, Any]], msg: Msg, *, pool: str, queue_ms: float = 0.0
) -> dict[str, Any]:
    """Runs one request's work (which returns the reply map) inside a CONSUMER span continuing the caller's trace.

    Records the request duration, in-flight count and queue wait; sets ERROR status and `error.type` from an
    error reply; flushes the exporters afterwards when DSPEX_OTEL_FLUSH_EACH_REQUEST is set (tests, debugging).
    """
    st = _state
    if not st.active:
        # Telemetry off: keep only log correlation with the caller's trace, when it sent one.
        headers = msg.headers
        if not headers or not (HEADER_TRACEPARENT in headers or HEADER_TRACEPARENT.capitalize() in headers):
            return await work
        token = otel_context.attach(extract_context(headers))
        try:
            return await work
        finally:
            otel_context.detach(token)

    assert st.instruments is not None
    instruments = st.instruments
    parent = extract_context(msg.headers)
    span = st.tracer.start_span(
        # `process dspex.req.<pool>`: the span name the TypeScript side's trace view expects (tracing.ts)
        f"process {_template(msg, pool).removesuffix('.{key}')}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=_message_attributes(msg, pool),
    )
    info = RequestInfo(span=span, pool=pool)
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    request_token = _current_request.set(info)
    pool_attrs = {"dspex.pool": pool}
    instruments.inflight.add(1, pool_attrs)
    if queue_ms > 0:
        instruments.queue_wait.record(queue_ms / 1000, pool_attrs)
        span.set_attribute("dspex.queue_wait_ms", round(queue_ms, 3))
    started = time.perf_counter()
    error_type: str | None = None
    try:
        reply = await work
        if not reply.get("ok", False):
            error = reply.get("error") or {}
            error_type = str(error.get("type") or "WorkerError")
            span.set_status(StatusCode.ERROR, str(error.get("message", ""))[:1024])
            span.set_attribute("error.type", error_type)
        return reply
    except BaseException as exc:
        error_type = type(exc).__name__
        span.record_exception(exc)
        span.set_status(StatusCode.ERROR, str(exc)[:1024])
        span.set_attribute("error.type", error_type)
        raise
    finally:
        elapsed = time.perf_counter() - started
        _current_request.reset(request_token)
        otel_context.detach(token)
        span.end()
        attrs: dict[str, Any] = {
            "dspex.operation": info.operation,
            "dspex.pool": pool,
            "dspex.outcome": "ok" if error_type is None else "error",
        }
        if error_type is not None:
            attrs["error.type"] = error_type
        instruments.request_duration.record(elapsed, attrs)
        instruments.inflight.add(-1, pool_attrs)
        if st.flush_each_request:
            await asyncio.to_thread(flush)


def observe_worker(stats: Callable[[], Mapping[str, Any]]) -> None:
    """Observable metrics read from the worker's `stats()`: signature-cache hit ratio and lookups."""
    st = _state
    if not st.metrics or st.instruments is None:
        return
    meter = st.instruments.meter

    def cache_counts() -> tuple[int, int, dict[str, Any]]:
        snapshot = stats()
        cache = snapshot.get("signature_cache") or {}
        return int(cache.get("hits", 0)), int(cache.get("misses", 0)), {"dspex.pool": snapshot.get("pool", st.pool)}

    def hit_ratio(_options: CallbackOptions) -> Iterable[Observation]:
        hits, misses, attrs = cache_counts()
        total = hits + misses
        return [Observation(hits / total if total else 0.0, attrs)]

    def lookups(_options: CallbackOptions) -> Iterable[Observation]:
        hits, misses, attrs = cache_counts()
        return [
            Observation(hits, {**attrs, "dspex.cache.result": "hit"}),
            Observation(misses, {**attrs, "dspex.cache.result": "miss"}),
        ]

    meter.create_observable_gauge(
        "dspex.worker.signature_cache.hit_ratio",
        callbacks=[hit_ratio],
        unit="1",
        description="Share of signature lookups answered from the worker's signature-class cache",
    )
    meter.create_observable_counter(
        "dspex.worker.signature_cache.lookups",
        callbacks=[lookups],
        unit="{lookup}",
        description="Signature-class cache lookups by result (hit, miss)",
    )

    def lm_cache(_options: CallbackOptions) -> Iterable[Observation]:
        snapshot = stats()
        fleet = (snapshot.get("lm_cache") or {}).get("fleet") or {}
        attrs = {"dspex.pool": snapshot.get("pool", st.pool)}
        memory = int((snapshot.get("lm_cache") or {}).get("memory_hits", 0))
        return [
            Observation(memory, {**attrs, "dspex.cache.result": "hit", "dspex.cache.tier": "memory"}),
            Observation(int(fleet.get("hits", 0)), {**attrs, "dspex.cache.result": "hit", "dspex.cache.tier": "fleet"}),
            Observation(
                int(fleet.get("misses", 0)), {**attrs, "dspex.cache.result": "miss", "dspex.cache.tier": "fleet"}
            ),
        ]

    def lm_cache_bytes(_options: CallbackOptions) -> Iterable[Observation]:
        snapshot = stats()
        fleet = (snapshot.get("lm_cache") or {}).get("fleet") or {}
        return [Observation(int(fleet.get("bytes", 0)), {"dspex.pool": snapshot.get("pool", st.pool)})]

    meter.create_observable_counter(
        "dspex.worker.lm_cache.lookups",
        callbacks=[lm_cache],
        unit="{lookup}",
        description="LM response cache lookups by tier (memory, fleet) and result; a fleet miss calls the LM",
    )
    meter.create_observable_gauge(
        "dspex.worker.lm_cache.replica_bytes",
        callbacks=[lm_cache_bytes],
        unit="By",
        description="Bytes of the fleet LM cache this worker holds in its replica",
    )
