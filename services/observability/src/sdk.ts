/**
 * Optional OpenTelemetry SDK set-up for DSPex processes (the CLI, the services, tests): OTLP/HTTP
 * (JSON) trace and metric exporters configured by the standard OTEL_* variables.
 *
 * Nothing is installed — and every DSPex span and instrument stays the API's no-op — unless an endpoint is
 * configured (`OTEL_EXPORTER_OTLP_ENDPOINT`, or the per-signal `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` /
 * `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, or `options.endpoint`); `OTEL_SDK_DISABLED=true` wins over all of them.
 * The SDK itself reads `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_*`, `OTEL_RESOURCE_ATTRIBUTES`
 * and `OTEL_EXPORTER_OTLP_*_HEADERS` / `_TIMEOUT` / `_COMPRESSION`; this module adds `OTEL_SERVICE_NAME` (default
 * `dspex-client`; each service passes its own) and `OTEL_METRIC_EXPORT_INTERVAL` / `OTEL_METRIC_EXPORT_TIMEOUT`.
 */
import { randomUUID } from "node:crypto";
import { context, diag, DiagLogLevel, metrics, propagation, trace, type Attributes, type DiagLogger } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { createLogger, type Logger } from "./log.js";

export const DEFAULT_SERVICE_NAME = "dspex-client";

export interface TelemetryOptions {
  /** service.name when OTEL_SERVICE_NAME (and service.name in OTEL_RESOURCE_ATTRIBUTES) is unset. */
  serviceName?: string;
  /** Base OTLP/HTTP endpoint (e.g. http://localhost:4318); wins over the environment for both signals. */
  endpoint?: string;
  /** Environment to read (default process.env). */
  env?: Record<string, string | undefined>;
  /** Metric export interval; default OTEL_METRIC_EXPORT_INTERVAL, then 60000 ms. */
  metricExportIntervalMs?: number;
  /** Extra resource attributes. */
  resourceAttributes?: Attributes;
  /** Route the SDK's own diagnostics (export failures, …) to this JSON logger at WARN (default true). */
  diagnostics?: boolean;
}

export interface Telemetry {
  /** Spans are exported. */
  readonly tracing: boolean;
  /** Metrics are exported. */
  readonly metrics: boolean;
  readonly tracesUrl: string | undefined;
  readonly metricsUrl: string | undefined;
  /** Exports everything buffered (spans and a metric collection) now. */
  forceFlush(): Promise<void>;
  /** Flushes and stops the exporters; DSPex spans and instruments become no-ops again. */
  shutdown(): Promise<void>;
}

const DISABLED: Telemetry = {
  tracing: false,
  metrics: false,
  tracesUrl: undefined,
  metricsUrl: undefined,
  forceFlush: async () => {},
  shutdown: async () => {},
};

let current: Telemetry | undefined;

function truthy(value: string | undefined): boolean {
  return ["1", "true", "yes", "on"].includes((value ?? "").trim().toLowerCase());
}

function joinUrl(base: string, path: string): string {
  return base.endsWith("/") ? base + path : `${base}/${path}`;
}

/** The OTLP/HTTP URL for one signal, or undefined when that signal is not exported. */
export function otlpUrl(
  signal: "traces" | "metrics",
  env: Record<string, string | undefined> = process.env,
  endpoint?: string,
): string | undefined {
  const SIGNAL = signal.toUpperCase();
  if ((env[`OTEL_${SIGNAL}_EXPORTER`] ?? "otlp").trim().toLowerCase() === "none") return undefined;
  if (endpoint) return joinUrl(endpoint, `v1/${signal}`);
  const specific = env[`OTEL_EXPORTER_OTLP_${SIGNAL}_ENDPOINT`];
  if (specific) return specific;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  return base ? joinUrl(base, `v1/${signal}`) : undefined;
}

function positive(value: string | undefined): number | undefined {
  const n = value === undefined ? NaN : Number(value);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

function diagLogger(log: Logger): DiagLogger {
  // The SDK's error handler logs exceptions as JSON strings ({"message", "stack", …}): unpack them.
  const line = (level: "error" | "warn" | "info" | "debug") => (msg: string, ...args: unknown[]) => {
    let text = msg;
    const fields: Record<string, unknown> = {};
    if (msg.startsWith("{")) {
      try {
        const parsed = JSON.parse(msg) as { message?: unknown; stack?: unknown };
        if (typeof parsed.message === "string") text = parsed.message;
        if (typeof parsed.stack === "string") fields.stack = parsed.stack;
      } catch {
        // not JSON after all
      }
    }
    if (args.length) fields.detail = args.map((a) => (a instanceof Error ? a.message : a));
    log[level](text, fields);
  };
  return { error: line("error"), warn: line("warn"), info: line("info"), debug: line("debug"), verbose: line("debug") };
}

/**
 * Installs the SDK when an OTLP endpoint is configured and returns a handle; otherwise returns a handle whose
 * methods do nothing. Idempotent: a second call returns the first handle. Call it before `Client.connect` so the
 * router's observable instruments (consumer lag) register with the real MeterProvider.
 */
export function initTelemetry(options: TelemetryOptions = {}): Telemetry {
  if (current) return current;
  const env = options.env ?? process.env;
  if (truthy(env.OTEL_SDK_DISABLED)) return DISABLED;
  const tracesUrl = otlpUrl("traces", env, options.endpoint);
  const metricsUrl = otlpUrl("metrics", env, options.endpoint);
  if (!tracesUrl && !metricsUrl) return DISABLED;

  const log = createLogger("dspex.telemetry");
  if (options.diagnostics !== false) diag.setLogger(diagLogger(log), DiagLogLevel.WARN);

  const defaults: Attributes = {
    "service.name": options.serviceName ?? DEFAULT_SERVICE_NAME,
    "service.instance.id": randomUUID(),
    ...options.resourceAttributes,
  };
  // Precedence: SDK defaults < our defaults < OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME.
  const resource = defaultResource()
    .merge(resourceFromAttributes(defaults))
    .merge(detectResources({ detectors: [envDetector] }));

  let tracerProvider: NodeTracerProvider | undefined;
  if (tracesUrl) {
    tracerProvider = new NodeTracerProvider({
      resource,
      spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: tracesUrl }))],
    });
    tracerProvider.register(); // global tracer provider, AsyncLocalStorage context manager, W3C propagators
  }
  let meterProvider: MeterProvider | undefined;
  if (metricsUrl) {
    const exportIntervalMillis =
      options.metricExportIntervalMs ?? positive(env.OTEL_METRIC_EXPORT_INTERVAL) ?? 60_000;
    const exportTimeoutMillis = Math.min(positive(env.OTEL_METRIC_EXPORT_TIMEOUT) ?? 30_000, exportIntervalMillis);
    meterProvider = new MeterProvider({
      resource,
      readers: [
        new PeriodicExportingMetricReader({
          exporter: new OTLPMetricExporter({ url: metricsUrl }),
          exportIntervalMillis,
          exportTimeoutMillis,
        }),
      ],
    });
    metrics.setGlobalMeterProvider(meterProvider);
  }

  const flush = async () => {
    await Promise.all([tracerProvider?.forceFlush(), meterProvider?.forceFlush()]);
  };
  const onBeforeExit = () => void flush().catch(() => {});
  process.once("beforeExit", onBeforeExit);

  const handle: Telemetry = {
    tracing: tracerProvider !== undefined,
    metrics: meterProvider !== undefined,
    tracesUrl,
    metricsUrl,
    forceFlush: flush,
    async shutdown() {
      process.off("beforeExit", onBeforeExit);
      current = undefined;
      await Promise.allSettled([tracerProvider?.shutdown(), meterProvider?.shutdown()]);
      if (tracerProvider) {
        trace.disable();
        context.disable();
        propagation.disable();
      }
      if (meterProvider) metrics.disable();
      diag.disable();
    },
  };
  current = handle;
  log.debug("OpenTelemetry export enabled", { traces_url: tracesUrl, metrics_url: metricsUrl });
  return handle;
}

/** The handle of the SDK installed by initTelemetry, if any. */
export function currentTelemetry(): Telemetry | undefined {
  return current;
}
