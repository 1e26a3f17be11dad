/**
 * GenAI spans and metrics of LM calls made from TypeScript (the native engine), shaped as the worker's DSPy
 * callback shapes them (workers/dspex_worker/observability/dspy_callback.py), so a trace reads the same whichever
 * engine ran the call:
 *
 *   dspy.Predict / dspy.ChainOfThought (INTERNAL)      traceModule(): dspy.module, dspy.signature, …
 *     └─ chat <model> (CLIENT)                          traceLmCall(): gen_ai.* request, response and usage
 *
 * Prompt and completion text are recorded only with DSPEX_OTEL_CAPTURE_CONTENT on (`gen_ai.input.messages`,
 * `gen_ai.output.messages`), as on the worker. Metrics: `gen_ai.client.operation.duration` (s) and
 * `gen_ai.client.token.usage` ({token}) with the semantic conventions' attributes.
 */
import { SpanKind, ValueType, type Attributes, type Histogram, type MeterProvider } from "@opentelemetry/api";
import { metrics } from "@opentelemetry/api";
import { DURATION_BUCKETS, METER_NAME, METER_VERSION } from "./metrics.js";
import { errorType, genAiProvider, recordError, tracer } from "./tracing.js";

const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304];
const MAX_CONTENT_CHARS = 16_384;

interface GenAiInstruments {
  tokenUsage: Histogram;
  operationDuration: Histogram;
}

let cached: { provider: MeterProvider; instruments: GenAiInstruments } | undefined;

function instruments(): GenAiInstruments {
  const provider = metrics.getMeterProvider();
  if (cached?.provider === provider) return cached.instruments;
  const m = provider.getMeter(METER_NAME, METER_VERSION);
  const made: GenAiInstruments = {
    tokenUsage: m.createHistogram("gen_ai.client.token.usage", {
      unit: "{token}",
      description: "Number of input and output tokens used per LM call",
      valueType: ValueType.INT,
      advice: { explicitBucketBoundaries: TOKEN_BUCKETS },
    }),
    operationDuration: m.createHistogram("gen_ai.client.operation.duration", {
      unit: "s",
      description: "Duration of LM calls",
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
  };
  cached = { provider, instruments: made };
  return made;
}

/** Whether prompt and completion text go on spans (DSPEX_OTEL_CAPTURE_CONTENT=1|true|yes|on). */
export function captureContent(env: NodeJS.ProcessEnv = process.env): boolean {
  return ["1", "true", "yes", "on"].includes((env.DSPEX_OTEL_CAPTURE_CONTENT ?? "").trim().toLowerCase());
}

function truncate(text: string): string {
  return text.length <= MAX_CONTENT_CHARS ? text : `${text.slice(0, MAX_CONTENT_CHARS)}…`;
}

function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p) => (p && typeof p === "object" ? String((p as { text?: unknown }).text ?? "") : String(p))).join("\n");
  return content === null || content === undefined ? "" : String(content);
}

export interface LmCallInfo {
  /** provider/model, e.g. openai/gpt-4o-mini. */
  model: string;
  /** The endpoint the call goes to (server.address, server.port). */
  endpoint?: string;
  temperature?: number;
  maxTokens?: number;
  n?: number;
  messages?: ReadonlyArray<{ role: string; content: unknown }>;
}

export interface LmCallOutcome {
  responseModel?: string;
  responseId?: string;
  finishReasons?: string[];
  inputTokens?: number;
  outputTokens?: number;
  /** The completions' texts, for `gen_ai.output.messages`. */
  texts?: ReadonlyArray<string | null>;
}

/**
 * The CLIENT span `chat <model>` around one LM call, with the worker's GenAI attributes, and the GenAI client
 * metrics. `fn` resolves with its value and what the response said (model, id, finish reasons, usage).
 */
export async function traceLmCall<T>(info: LmCallInfo, fn: () => Promise<{ value: T; outcome: LmCallOutcome }>): Promise<T> {
  const slash = info.model.indexOf("/");
  const provider = genAiProvider(slash > 0 ? info.model.slice(0, slash) : "");
  const name = slash > 0 ? info.model.slice(slash + 1) : info.model;
  const attributes: Attributes = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": provider,
    "gen_ai.system": provider,
    "gen_ai.request.model": name,
    "dspy.lm.model": info.model,
    "dspex.engine": "native",
  };
  if (info.temperature !== undefined) attributes["gen_ai.request.temperature"] = info.temperature;
  if (info.maxTokens !== undefined) attributes["gen_ai.request.max_tokens"] = info.maxTokens;
  if (info.n !== undefined && info.n !== 1) attributes["gen_ai.request.choice.count"] = info.n;
  if (info.endpoint) {
    try {
      const u = new URL(info.endpoint);
      attributes["server.address"] = u.hostname.replace(/^\[|\]$/g, "");
      if (u.port) attributes["server.port"] = Number(u.port);
    } catch {
      // not a URL: no server attributes
    }
  }
  const capture = captureContent();
  if (capture && info.messages) {
    attributes["gen_ai.input.messages"] = JSON.stringify(
      info.messages.map((m) => ({ role: m.role, parts: [{ type: "text", content: truncate(textOf(m.content)) }] })),
    );
  }
  const metricAttributes: Attributes = { "gen_ai.operation.name": "chat", "gen_ai.provider.name": provider, "gen_ai.request.model": name };
  const started = performance.now();
  return tracer().startActiveSpan(`chat ${name}`, { kind: SpanKind.CLIENT, attributes }, async (span) => {
    try {
      const { value, outcome } = await fn();
      if (outcome.responseModel) {
        span.setAttribute("gen_ai.response.model", outcome.responseModel);
        metricAttributes["gen_ai.response.model"] = outcome.responseModel;
      }
      if (outcome.responseId) span.setAttribute("gen_ai.response.id", outcome.responseId);
      if (outcome.finishReasons?.length) span.setAttribute("gen_ai.response.finish_reasons", outcome.finishReasons);
      if (outcome.inputTokens !== undefined) span.setAttribute("gen_ai.usage.input_tokens", outcome.inputTokens);
      if (outcome.outputTokens !== undefined) span.setAttribute("gen_ai.usage.output_tokens", outcome.outputTokens);
      if (capture && outcome.texts) {
        span.setAttribute(
          "gen_ai.output.messages",
          JSON.stringify(
            outcome.texts.map((t, i) => ({
              role: "assistant",
              parts: [{ type: "text", content: truncate(textOf(t)) }],
              ...(outcome.finishReasons?.[i] ? { finish_reason: outcome.finishReasons[i] } : {}),
            })),
          ),
        );
      }
      const usage = instruments().tokenUsage;
      for (const [type, count] of [["input", outcome.inputTokens], ["output", outcome.outputTokens]] as const) {
        if (count !== undefined) usage.record(count, { ...metricAttributes, "gen_ai.token.type": type });
      }
      return value;
    } catch (err) {
      recordError(span, err);
      // the worker's LM span names DSPy's exception class (LMServerError, …), which an LMError carries
      const dspy = (err as { details?: { dspy_error?: unknown } } | undefined)?.details?.dspy_error;
      const type = typeof dspy === "string" ? dspy : errorType(err);
      span.setAttribute("error.type", type);
      metricAttributes["error.type"] = type;
      throw err;
    } finally {
      span.end();
      instruments().operationDuration.record((performance.now() - started) / 1000, metricAttributes);
    }
  });
}

export interface ModuleInfo {
  /** The DSPy module's class name: Predict, ChainOfThought. */
  module: string;
  inputs: readonly string[];
  outputs: readonly string[];
  demos?: number;
}

/** The INTERNAL span `dspy.<Module>` around a native module call, with the worker's `dspy.*` attributes. */
export function traceModule<T>(info: ModuleInfo, fn: () => Promise<T>): Promise<T> {
  const attributes: Attributes = {
    "dspy.module": info.module,
    "dspy.signature": `${info.inputs.join(", ")} -> ${info.outputs.join(", ")}`,
    "dspy.signature.input_fields": [...info.inputs],
    "dspy.signature.output_fields": [...info.outputs],
    "dspex.engine": "native",
  };
  if (info.demos !== undefined) attributes["dspy.predict.demos"] = info.demos;
  return tracer().startActiveSpan(`dspy.${info.module}`, { kind: SpanKind.INTERNAL, attributes }, async (span) => {
    try {
      return await fn();
    } catch (err) {
      recordError(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}
