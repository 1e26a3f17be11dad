/**
 * The execution router on the real fleet (issue 22): real nats-server, real Python workers running real dspy, the
 * native engine in this process configured with the workers' own default profile (the LM double, the one fake).
 *
 * - The same calls give the same outputs, usage and model through python, native and hybrid — and the LM receives
 *   the same request body from the native engine as from the worker's DSPy.
 * - What the native engine does not run goes to a worker, with the reason counted, on the call's span and in the
 *   `dspex.client.engine.calls` metric; an answer that does not parse costs DSPy's one JSONAdapter call, made by a
 *   worker, and a usable answer is never asked for twice.
 * - Typed errors, retries, deadlines and the LM's circuit breaker behave the same on both engines.
 * - The native engine sends no key anywhere but to its profile's endpoint (the capture double).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { metrics, trace } from "@opentelemetry/api";
import { AggregationTemporality, MeterProvider, MetricReader, type ResourceMetrics } from "@opentelemetry/sdk-metrics";
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { CircuitOpenError, DeadlineExceeded, LMConfigError, LMError, LMOutputError, type LMConfig } from "@dspex/protocol";
import { Client, lmKey, NATIVE_WORKER, type CallResult, type ClientOptions } from "@dspex/client";
import { lmEnv } from "@dspex/embedded";
import { busSettings, busSpec, collectStatus, formatStatus } from "@dspex/bus";
import { newToken, startRouter } from "@dspex/router";
import { startHarness, type Harness } from "./harness.js";
import { startCaptureDouble, type CaptureDouble } from "../security/capture-double.js";
import type { RecordedRequest } from "../lm-double/server.js";
import { PREDICT_STATE } from "../support/fixtures.js";

class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}


const ENGINES = ["python", "native", "hybrid"] as const;
type EngineName = (typeof ENGINES)[number];

/** The body an LM request carried, without what identifies the run (nothing does: the bodies are compared whole). */
const bodyOf = (r: RecordedRequest) => r.body as Record<string, unknown>;

describe("execution router: python, native and hybrid on the real fleet", { timeout: 240_000 }, () => {
  let h: Harness;
  let client: Client;
  let capture: CaptureDouble;
  const spans = new InMemorySpanExporter();
  const tracing = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const reader = new TestReader();
  const meters = new MeterProvider({ readers: [reader] });
  const saved = { ...process.env };

  const connect = (extra: ClientOptions = {}) =>
    Client.connect({
      servers: h.fleet.natsUrl,
      creds: h.fleet.creds.client,
      lm: h.lm,
      engine: { native: { env: { ...lmEnv(h.profile) } } },
      ...extra,
    });

  before(async () => {
    tracing.register();
    metrics.setGlobalMeterProvider(meters);
    capture = await startCaptureDouble();
    h = await startHarness({ fleet: { workers: { general: 2 } } });
    // what the openai package would read if the native engine let it: none of it may be used (set after the workers
    // started, which inherit this environment: there it would change DSPy's choice of engine)
    process.env.OPENAI_API_KEY = "sk-ambient-never-sent";
    process.env.OPENAI_BASE_URL = capture.url;
    process.env.OPENAI_CUSTOM_HEADERS = "X-Leak: ambient";
    client = await connect();
  });
  after(async () => {
    process.env = saved;
    await client?.close();
    await h?.close();
    await capture?.close();
    await tracing.shutdown();
    await meters.shutdown();
    trace.disable();
    metrics.disable();
  });

  /** Runs `fn` on each engine; returns each result and the LM requests it caused. */
  async function onEach<T>(fn: (engine: EngineName) => Promise<T>): Promise<Record<EngineName, { result: T; sent: RecordedRequest[] }>> {
    const out = {} as Record<EngineName, { result: T; sent: RecordedRequest[] }>;
    for (const engine of ENGINES) {
      const seen = h.lmDouble.requests().length;
      const result = await fn(engine);
      out[engine] = { result, sent: h.lmDouble.requests().slice(seen) };
    }
    return out;
  }

  const split = () => client.snapshot().engines;

  test("the same calls: the same outputs, usage and model on every engine, and the same request body at the LM", async () => {
    const { definition, version } = await client.createProgram({
      signature: "question -> answer",
      module: "chain_of_thought",
      state: { demos: [{ question: "1+1?", reasoning: "Add one and one.", answer: "2" }] },
    });
    const cases: Array<[string, (e: EngineName) => Promise<CallResult<Record<string, unknown>>>]> = [
      ["predict", (engine) => client.predict("question -> answer", { question: "What is 2+2?" }, { engine })],
      ["chain of thought", (engine) => client.chainOfThought("question -> answer: int", { question: "What is 3*7?" }, { engine })],
      [
        "typed outputs",
        (engine) =>
          client.predict(
            "review: str -> sentiment: Literal['positive', 'negative', 'neutral'], confidence: float, keywords: list[str], facts: dict[str, int], note: Optional[str]",
            { review: "Battery lasts two days; the speaker is weak." },
            { engine },
          ),
      ],
      [
        "instructions, demos, knobs",
        (engine) =>
          client.predict("question, context: list[str] -> answer", { question: "Capital of France?", context: ["Paris is in France.", "Lyon too."] }, {
            engine,
            instructions: "Answer in one word.\n  Be brief.",
            demos: [{ question: "Capital of Italy?", context: ["Rome."], answer: "Rome" }, { question: "Capital of Spain?", answer: "Madrid" }],
            lm: { ...h.lm, temperature: 0.25, max_tokens: 64 },
          }),
      ],
      ["stored program with demos", (engine) => client.execute(definition.id, { question: "What is 9-4?" }, { engine, version })],
    ];
    const before = { ...split().counts };
    for (const [name, run] of cases) {
      const r = await onEach(run);
      const py = r.python;
      assert.notEqual(py.result.worker, NATIVE_WORKER, name);
      for (const engine of ["native", "hybrid"] as const) {
        const got = r[engine];
        assert.equal(got.result.worker, NATIVE_WORKER, `${name}: ${engine} ran natively`);
        assert.deepEqual(got.result.outputs, py.result.outputs, `${name}: ${engine} outputs`);
        assert.deepEqual(got.result.usage, py.result.usage, `${name}: ${engine} usage`);
        assert.equal(got.result.lm, py.result.lm, `${name}: ${engine} model`);
        assert.equal(got.sent.length, 1, `${name}: ${engine} made one LM call`);
        assert.deepEqual(bodyOf(got.sent[0]!), bodyOf(py.sent[0]!), `${name}: ${engine} sent the worker's request body`);
        assert.equal(got.sent[0]!.authorization, "Bearer dspex-no-key", `${name}: the profile names no key`);
      }
    }
    const counts = split().counts;
    assert.deepEqual(
      { native: counts.native - before.native, python: counts.python - before.python, fallback: counts.fallback - before.fallback },
      { native: 2 * cases.length, python: cases.length, fallback: 0 },
    );
    assert.equal(capture.requests().length, 0, "nothing followed OPENAI_BASE_URL");
  });

  test("what the native engine does not run goes to a worker, with the reason on the span, in the metric and the split", async () => {
    const ask = { question: "What is 5+5?" };
    const { definition } = await client.createProgram({ signature: "question -> answer", state: { dspy_state: PREDICT_STATE } });
    const cases: Array<[string, () => Promise<{ worker: string }>]> = [
      ["module", () => client.modules.majority("question -> answer", ask, { n: 3 }, { engine: "native" })],
      ["lm_cache", () => client.predict("question -> answer", ask, { engine: "native", lm: { ...h.lm, cache: true } })],
      ["session_strict", () => client.predict("question -> answer", ask, { engine: "native", session: "s-strict", affinity: "strict" })],
      ["program_state", () => client.execute(definition.id, ask, { engine: "hybrid" })],
      ["json_adapter", () => client.predict("question -> answer", ask, { engine: "hybrid", lm: { ...h.lm, adapter: "json" } })],
      [
        "stream",
        async () => {
          const stream = client.stream("predict", "question -> answer", ask, {}, { engine: "native" });
          for await (const _ of stream) void _;
          return stream.result;
        },
      ],
    ];
    spans.reset();
    for (const [code, run] of cases) {
      const before = split();
      const r = await run();
      assert.notEqual(r.worker, NATIVE_WORKER, `${code}: a worker answered`);
      const after = split();
      assert.equal(after.counts.fallback - before.counts.fallback, 1, `${code}: counted as a fallback`);
      assert.equal((after.reasons[code] ?? 0) - (before.reasons[code] ?? 0), 1, `${code}: its reason counted`);
    }
    const reasons = spans
      .getFinishedSpans()
      .filter((s) => s.name.startsWith("dspex.") && s.attributes["dspex.engine.fallback"] === true)
      .map((s) => s.attributes["dspex.engine.reason"]);
    assert.deepEqual(reasons.sort(), cases.map(([code]) => code).sort(), "each call's span says why");
    const { resourceMetrics } = await reader.collect();
    const points = counterPoints(resourceMetrics, "dspex.client.engine.calls");
    for (const [code] of cases) {
      assert.ok(
        points.some((p) => p.attributes["dspex.engine.route"] === "fallback" && p.attributes["dspex.engine.reason"] === code && p.value >= 1),
        `metric point for ${code}`,
      );
    }
    assert.ok(points.some((p) => p.attributes["dspex.engine.route"] === "native" && p.value >= 1));
  });

  test("an answer that does not parse: DSPy's one JSONAdapter call, made by a worker; a usable answer is never asked for twice", async () => {
    const run = (engine: EngineName) => client.predict("question -> answer: int", { question: "What is 12+30?" }, { engine });
    const r = await onEach(async (engine) => {
      h.lmDouble.control.failNext("malformed", 1);
      const before = split();
      const result = await run(engine);
      return { result, reasons: Object.fromEntries(Object.entries(split().reasons).map(([k, v]) => [k, v - (before.reasons[k] ?? 0)]).filter(([, v]) => v)) };
    });
    for (const engine of ENGINES) {
      const { result, reasons } = r[engine].result;
      assert.equal(result.outputs.answer, 42, engine);
      assert.notEqual(result.worker, NATIVE_WORKER, `${engine}: the JSONAdapter answer came from a worker`);
      assert.equal(r[engine].sent.length, 2, `${engine}: ChatAdapter's call, then one JSONAdapter call`);
      assert.ok(!("response_format" in bodyOf(r[engine].sent[0]!)));
      assert.deepEqual(bodyOf(r[engine].sent[1]!), bodyOf(r.python.sent[1]!), `${engine}: the worker's JSONAdapter request`);
      assert.deepEqual(result.usage, r.python.result.result.usage, `${engine}: both calls' usage`);
      assert.deepEqual(reasons, engine === "python" ? {} : { [engine === "native" ? "json_capabilities" : "parse_failure"]: 1 });
    }
    // with DSPy's verdict on the LM configured, the native engine makes the JSONAdapter call itself
    const known = await connect({ engine: { native: { env: { ...lmEnv(h.profile) }, capabilities: { [h.profile.model]: { responseFormat: false, responseSchema: false } } } } });
    try {
      const seen = h.lmDouble.requests().length;
      h.lmDouble.control.failNext("malformed", 1);
      const own = await known.predict("question -> answer: int", { question: "What is 12+30?" }, { engine: "native" });
      assert.equal(own.worker, NATIVE_WORKER);
      assert.deepEqual(own.outputs, r.python.result.result.outputs);
      assert.deepEqual(h.lmDouble.requests().slice(seen).map(bodyOf), r.python.sent.map(bodyOf), "the same two requests as DSPy's");
    } finally {
      await known.close();
    }
  });

  test("typed errors and retries are the same on both engines", async () => {
    const q = { question: "What is 1+1?" };
    const failing = async (engine: EngineName, setup: () => void, options: Record<string, unknown> = {}) => {
      setup();
      try {
        await client.predict("question -> answer", q, { engine, retry: false, ...options });
      } catch (err) {
        return err as Error & { retryable?: boolean; field?: string; details?: Record<string, unknown> };
      } finally {
        h.lmDouble.control.clearFailure();
      }
      throw new Error(`${engine}: the call succeeded`);
    };
    for (const engine of ["native", "hybrid"] as const) {
      const unparsable = [await failing("python", () => h.lmDouble.control.failAll("malformed")), await failing(engine, () => h.lmDouble.control.failAll("malformed"))];
      assert.ok(unparsable.every((e) => e instanceof LMOutputError));
      assert.equal(unparsable[1]!.message, unparsable[0]!.message, `${engine}: DSPy's message`);
      assert.deepEqual(unparsable[1]!.details, unparsable[0]!.details);

      const server = [await failing("python", () => h.lmDouble.control.failNext("http500", 1)), await failing(engine, () => h.lmDouble.control.failNext("http500", 1))];
      const limited = [
        await failing("python", () => h.lmDouble.control.failNext("http429", 1, { retryAfterSeconds: 3 })),
        await failing(engine, () => h.lmDouble.control.failNext("http429", 1, { retryAfterSeconds: 3 })),
      ];
      for (const [py, nat] of [server, limited]) {
        assert.ok(py instanceof LMError && nat instanceof LMError && py.retryable && nat.retryable);
        assert.equal(nat.message, py.message.split("\n\n")[0]!.trimEnd(), `${engine}: the provider's message`);
        for (const key of ["dspy_error", "status", "provider", "model", "retry_after"]) assert.equal(nat.details?.[key], py.details?.[key], key);
      }

      const late = [
        await failing("python", () => h.lmDouble.control.failNext("hang", 1), { timeoutMs: 1_500 }),
        await failing(engine, () => h.lmDouble.control.failNext("hang", 1), { timeoutMs: 1_500 }),
      ];
      assert.ok(late.every((e) => e instanceof DeadlineExceeded), `${engine}: ${late.map(String).join(" / ")}`);

      const refused = [
        await failing("python", () => {}, { lm: { model: h.lm.model, api_base: capture.url } satisfies LMConfig }),
        await failing(engine, () => {}, { lm: { model: h.lm.model, api_base: capture.url } satisfies LMConfig }),
      ];
      assert.ok(refused.every((e) => e instanceof LMConfigError && e.field === "lm.api_base"));
      assert.equal(refused[1]!.message, refused[0]!.message);
    }
    assert.equal(capture.requests().length, 0, "a refused endpoint got nothing from either engine");

    // a retryable failure is retried by the client's policy on the native lane too: <id>#2, #3, then the answer
    const retries = client.counts.retries;
    const seen = h.lmDouble.requests().length;
    h.lmDouble.control.failNext("http500", 2);
    const ok = await client.predict("question -> answer", { question: "What is 4+4?" }, { engine: "native", retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 20 } });
    assert.equal(ok.outputs.answer, "8");
    assert.equal(ok.worker, NATIVE_WORKER);
    assert.equal(h.lmDouble.requests().length - seen, 3);
    assert.equal(client.counts.retries - retries, 2);
  });

  test("one LM breaker for both engines: native failures open it, both engines then fail fast, a native probe closes it", async () => {
    const tight = await connect({
      breakers: { all: { volumeThreshold: 4, errorThresholdPercentage: 50, rollingWindowMs: 10_000, rollingBuckets: 10 }, lm: { resetTimeoutMs: 1_500 } },
    });
    const name = `lm:${lmKey(h.lm)}`;
    try {
      h.lmDouble.control.failAll("http500");
      const opened = tight.breakers.waitFor(name, "open");
      for (let i = 0; i < 4; i++) {
        await assert.rejects(tight.predict("question -> answer", { question: `fail ${i}` }, { engine: "native", retry: false }), LMError);
      }
      await opened;
      const seen = h.lmDouble.requests().length;
      for (const engine of ENGINES) {
        await assert.rejects(tight.predict("question -> answer", { question: "fast?" }, { engine, retry: false }), CircuitOpenError, engine);
      }
      assert.equal(h.lmDouble.requests().length, seen, "neither engine reached the LM");
      h.lmDouble.control.clearFailure();
      await tight.breakers.waitFor(name, "half_open");
      const closed = tight.breakers.waitFor(name, "closed");
      const probe = await tight.predict("question -> answer", { question: "What is 2+5?" }, { engine: "native", retry: false });
      assert.equal(probe.worker, NATIVE_WORKER);
      await closed;
    } finally {
      h.lmDouble.control.clearFailure();
      await tight.close();
    }
  });

  test("a session used by the native lane stays alive, and its first strict call binds it to a worker", async () => {
    const session = `native-${Date.now()}`;
    const r = await client.predict("question -> answer", { question: "What is 2+6?" }, { engine: "native", session });
    assert.equal(r.worker, NATIVE_WORKER);
    await waitForSession(client, session);
    const strict = await client.predict("question -> answer", { question: "What is 2+6?" }, { engine: "native", session, affinity: "strict" });
    assert.notEqual(strict.worker, NATIVE_WORKER, "strict sessions are the workers'");
    const again = await client.predict("question -> answer", { question: "What is 2+7?" }, { session, affinity: "strict" });
    assert.equal(again.worker, strict.worker, "bound to the worker of its first strict call");
  });

  test("dspex status shows the split each router reports", async () => {
    const router = await startRouter({
      port: 0,
      host: "127.0.0.1",
      tokens: [newToken("test", ["predict"]).entry],
      client: { servers: h.fleet.natsUrl, creds: h.fleet.creds.client, lm: h.lm, engine: { default: "hybrid", native: { env: { ...lmEnv(h.profile) } } } },
    });
    try {
      await router.client.predict("question -> answer", { question: "What is 3+3?" });
      await router.client.predict("question -> answer", { question: "What is 3+3?" }, { engine: "python" });
      await router.client.modules.majority("question -> answer", { question: "What is 3+3?" }, { n: 2 });
      const status = await collectStatus(h.admin, busSpec(busSettings()));
      const mine = status.routers.find((r) => r.engines?.default === "hybrid");
      assert.ok(mine, "the router answered with its split");
      assert.deepEqual(mine.engines!.counts, { native: 1, python: 1, fallback: 1 });
      assert.deepEqual(mine.engines!.reasons, { module: 1 });
      assert.match(formatStatus(status), /default hybrid\s+native 1, python 1, fallback 1 \(module 1\)/);
    } finally {
      await router.stop();
    }
  });

  test("the native engine sends a profile's key to that profile's endpoint only", async () => {
    const keyed = await connect({
      engine: {
        native: {
          env: {
            ...lmEnv(h.profile),
            PROFILE_KEY: "sk-profile-key",
            DSPEX_LM_PROFILES: JSON.stringify({ profiles: { captured: { model: "openai/test-model", api_base: capture.url, api_key_env: "PROFILE_KEY" } } }),
          },
        },
      },
    });
    try {
      const seen = h.lmDouble.requests().length;
      const plain = await keyed.predict("question -> answer", { question: "What is 6+1?" }, { engine: "native" });
      assert.equal(plain.outputs.answer, "7");
      assert.deepEqual(h.lmDouble.requests().slice(seen).map((r) => r.authorization), ["Bearer dspex-no-key"]);
      const captured = await keyed.predict("question -> answer", { question: "anything" }, { engine: "native", lm: { profile: "captured" } });
      assert.equal(captured.worker, NATIVE_WORKER);
      assert.deepEqual(
        capture.requests().map((r) => [r.path, r.authorization, r.headers["x-leak"]]),
        [["/v1/chat/completions", "Bearer sk-profile-key", undefined]],
        "the profile's key, at its endpoint, once; no ambient key, base URL or header",
      );
    } finally {
      await keyed.close();
    }
  });
});

/** The session's record is written in the background (sessions.ts): wait for it in KV. */
async function waitForSession(client: Client, session: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await client.sessions.exists(session)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`session ${session} was not recorded`);
}

interface Point {
  attributes: Record<string, unknown>;
  value: number;
}

function counterPoints(resourceMetrics: ResourceMetrics, name: string): Point[] {
  return resourceMetrics.scopeMetrics
    .flatMap((s) => s.metrics)
    .filter((m) => m.descriptor.name === name)
    .flatMap((m) => m.dataPoints.map((p) => ({ attributes: p.attributes as Record<string, unknown>, value: Number(p.value) })));
}
