/**
 * Tracing for the TypeScript side, written against `@opentelemetry/api` only: with no SDK registered every call
 * here is the API's no-op (non-recording spans, no header written), so a library user who installs their own
 * OpenTelemetry SDK gets DSPex spans in their traces, and everyone else pays next to nothing.
 *
 *   dspex.predict / dspex.chain_of_thought (INTERNAL)   traceCall()
 *     └─ send dspex.req.<pool> (PRODUCER)               tracedPublish(): injects traceparent/tracestate
 *          └─ process dspex.req.<pool> (CONSUMER)       ← the Python worker, from the NATS headers
 */
import {
  context,
  propagation,
  trace,
  SpanKind,
  SpanStatusCode,
  type Attributes,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
  type Tracer,
} from "@opentelemetry/api";
import { directSubject, requestSubject } from "@dspex/protocol";
import { clientInstruments } from "./metrics.js";

export const INSTRUMENTATION_NAME = "@dspex/client";
export const INSTRUMENTATION_VERSION = "0.1.0";
export const MESSAGING_SYSTEM = "nats";

export function tracer(): Tracer {
  return trace.getTracer(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION);
}

/** What the propagator needs from nats.js `MsgHdrs` (structural, so this package needs no NATS dependency). */
export interface HeaderWriter {
  set(key: string, value: string): void;
}
export interface HeaderReader {
  get(key: string): string;
  keys(): string[];
}

export const natsHeaderSetter: TextMapSetter<HeaderWriter> = {
  set(carrier, key, value) {
    carrier.set(key, value);
  },
};

export const natsHeaderGetter: TextMapGetter<HeaderReader> = {
  get(carrier, key) {
    const exact = carrier.get(key);
    if (exact) return exact;
    const wanted = key.toLowerCase();
    const found = carrier.keys().find((k) => k.toLowerCase() === wanted);
    return found === undefined ? undefined : carrier.get(found) || undefined;
  },
  keys(carrier) {
    return carrier.keys();
  },
};

/** Writes W3C `traceparent` / `tracestate` (and baggage) of `ctx` into NATS headers. */
export function injectTraceContext(headers: HeaderWriter, ctx: Context = context.active()): void {
  propagation.inject(ctx, headers, natsHeaderSetter);
}

/** The trace context a NATS message carries (for TypeScript consumers of DSPex subjects). */
export function extractTraceContext(headers: HeaderReader | undefined, ctx: Context = context.active()): Context {
  return headers ? propagation.extract(ctx, headers, natsHeaderGetter) : ctx;
}

/** A low-cardinality error name: a DspexError's `type` (LMError, DeadlineExceeded, …), else the class name. */
export function errorType(err: unknown): string {
  if (err && typeof err === "object") {
    const type = (err as { type?: unknown }).type;
    if (typeof type === "string" && type) return type;
    const name = (err as { name?: unknown }).name;
    if (typeof name === "string" && name) return name;
    return err.constructor?.name ?? "Error";
  }
  return "Error";
}

/** Marks a span as failed the way the semantic conventions ask: status ERROR, `error.type`, an exception event. */
export function recordError(span: Span, err: unknown): string {
  const type = errorType(err);
  span.setAttribute("error.type", type);
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  if (err instanceof Error) span.recordException(err);
  else span.recordException(String(err));
  return type;
}

/** Sets attributes on the span of the call in progress (`dspex.<op>`), if one is recording. */
export function setCallAttributes(attributes: Attributes): void {
  const span = trace.getActiveSpan();
  if (span?.isRecording()) span.setAttributes(attributes);
}

/** Attributes of a resolved call worth having on its span (duck-typed on the router's CallResult). */
function resultAttributes(result: unknown): Attributes {
  if (!result || typeof result !== "object") return {};
  const r = result as { id?: unknown; worker?: unknown; lm?: unknown; usage?: Record<string, unknown> };
  const out: Attributes = {};
  if (typeof r.worker === "string") out["dspex.worker.id"] = r.worker;
  if (typeof r.lm === "string") out["dspex.lm.model"] = r.lm;
  if (r.usage && typeof r.usage === "object") {
    if (typeof r.usage.prompt_tokens === "number") out["dspex.usage.input_tokens"] = r.usage.prompt_tokens;
    if (typeof r.usage.completion_tokens === "number") out["dspex.usage.output_tokens"] = r.usage.completion_tokens;
  }
  return out;
}

/** LiteLLM-style provider prefixes → `gen_ai.provider.name` values (the same table as the worker's). */
const GENAI_PROVIDERS: Record<string, string> = {
  openai: "openai",
  anthropic: "anthropic",
  azure: "azure.ai.openai",
  azure_ai: "azure.ai.inference",
  bedrock: "aws.bedrock",
  gemini: "gcp.gemini",
  vertex_ai: "gcp.vertex_ai",
  cohere: "cohere",
  deepseek: "deepseek",
  groq: "groq",
  mistral: "mistral_ai",
  perplexity: "perplexity",
  xai: "x_ai",
  watsonx: "ibm.watsonx.ai",
};

export function genAiProvider(prefix: string): string {
  return GENAI_PROVIDERS[prefix] ?? (prefix || "unknown");
}

function countTokens(instruments: ReturnType<typeof clientInstruments>, described: Attributes): void {
  const lm = described["dspex.lm.model"];
  if (typeof lm !== "string") return;
  // "openai/gpt-4o-mini" → provider "openai", model "gpt-4o-mini" (as the worker's GenAI attributes have them).
  const slash = lm.indexOf("/");
  const model = {
    "gen_ai.provider.name": genAiProvider(slash > 0 ? lm.slice(0, slash) : ""),
    "gen_ai.request.model": slash > 0 ? lm.slice(slash + 1) : lm,
  };
  for (const [type, key] of [["input", "dspex.usage.input_tokens"], ["output", "dspex.usage.output_tokens"]] as const) {
    const count = described[key];
    if (typeof count === "number" && count > 0) {
      instruments.lmTokens.add(count, { ...model, "gen_ai.token.type": type });
    }
  }
}

/**
 * Runs one API call (`predict`, `chain_of_thought`, …) inside the span `dspex.<op>` and records the client
 * request-duration histogram and in-flight counter. Errors set status ERROR and `error.type`, and are rethrown.
 */
export function traceCall<T>(op: string, pool: string, fn: () => Promise<T>): Promise<T> {
  const attributes: Attributes = { "dspex.operation": op, "dspex.pool": pool };
  const instruments = clientInstruments();
  const started = performance.now();
  instruments.inflight.add(1, attributes);
  return tracer().startActiveSpan(`dspex.${op}`, { kind: SpanKind.INTERNAL, attributes }, async (span) => {
    let error: string | undefined;
    try {
      const result = await fn();
      const described = resultAttributes(result);
      if (span.isRecording()) span.setAttributes(described);
      countTokens(instruments, described);
      return result;
    } catch (err) {
      error = recordError(span, err);
      throw err;
    } finally {
      span.end();
      instruments.inflight.add(-1, attributes);
      instruments.requestDuration.record((performance.now() - started) / 1000, {
        ...attributes,
        "dspex.outcome": error === undefined ? "ok" : "error",
        ...(error === undefined ? {} : { "error.type": error }),
      });
    }
  });
}

export interface PublishInfo {
  /** The headers the message will be published with; the trace context is written into them. */
  headers: HeaderWriter;
  /** The concrete subject, e.g. dspex.req.general.any. */
  subject: string;
  pool: string;
  /** The request id (= Nats-Msg-Id). */
  messageId: string;
  bodySize?: number;
}

/**
 * The PRODUCER span `send dspex.req.<pool>` around a JetStream publish: starts the span, injects its context
 * into `info.headers`, runs `publish` (which must read those headers), and ends the span when JetStream acks
 * (or the publish fails). Returns publish's promise unchanged.
 */
export function tracedPublish<T>(info: PublishInfo, publish: () => Promise<T>): Promise<T> {
  // the lane's subject template: dspex.req.<pool>.{key} (durable) or dspex.direct.<pool>.{key} (direct)
  const direct = directSubject(info.pool, "{key}");
  const template = info.subject.startsWith(direct.slice(0, -"{key}".length)) ? direct : requestSubject(info.pool, "{key}");
  const span = tracer().startSpan(`send ${template.slice(0, -".{key}".length)}`, {
    kind: SpanKind.PRODUCER,
    attributes: {
      "messaging.system": MESSAGING_SYSTEM,
      "messaging.operation.type": "send",
      "messaging.operation.name": "publish",
      "messaging.destination.name": info.subject,
      "messaging.destination.template": template,
      "messaging.message.id": info.messageId,
      ...(info.bodySize === undefined ? {} : { "messaging.message.body.size": info.bodySize }),
      "dspex.pool": info.pool,
    },
  });
  const ctx = trace.setSpan(context.active(), span);
  injectTraceContext(info.headers, ctx);
  trace.getActiveSpan()?.setAttribute("dspex.request.id", info.messageId);
  let pending: Promise<T>;
  try {
    pending = context.with(ctx, publish);
  } catch (err) {
    recordError(span, err);
    span.end();
    throw err;
  }
  return pending.then(
    (ack) => {
      const a = ack as { seq?: unknown; duplicate?: unknown; stream?: unknown } | undefined;
      if (span.isRecording() && a && typeof a === "object") {
        if (typeof a.seq === "number") span.setAttribute("dspex.stream.sequence", a.seq);
        if (typeof a.duplicate === "boolean") span.setAttribute("dspex.stream.duplicate", a.duplicate);
      }
      span.end();
      return ack;
    },
    (err: unknown) => {
      recordError(span, err);
      span.end();
      throw err;
    },
  );
}
