/**
 * The native engine's spans beside the worker's, exported to a real OTLP receiver: the same call through the bus
 * (the worker's DSPy callback, OTLP/protobuf) and through the native lane (OTLP/JSON from this process) gives the
 * same module and LM spans — names, nesting, kinds, the `dspy.*` and `gen_ai.*` attributes and their values — and
 * a failing LM marks the LM span with the same `error.type` (DSPy's class). Real nats-server and worker; only the
 * LM is faked, at HTTP.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { LMError } from "@dspex/protocol";
import { initTelemetry, type Telemetry } from "@dspex/observability";
import { Client } from "@dspex/client";
import { lmEnv } from "@dspex/embedded";
import { startHarness, type Harness } from "../integration/harness.js";
import { one, startReceiver, waitFor, waitForTrace, type FlatSpan, type Receiver } from "./receiver.js";

/** Attributes both sides must agree on (ids and timings aside). */
const SHARED = /^(gen_ai\.(?!response\.id)|dspy\.(module|signature$|signature\.input_fields|signature\.output_fields|lm\.model)|server\.|error\.type)/;

function shared(span: FlatSpan): Record<string, unknown> {
  return Object.fromEntries(Object.entries(span.attributes).filter(([k]) => SHARED.test(k)));
}

describe("native spans are the worker's spans", { timeout: 120_000 }, () => {
  let receiver: Receiver;
  let telemetry: Telemetry;
  let h: Harness;
  let client: Client;

  before(async () => {
    receiver = await startReceiver();
    telemetry = initTelemetry({ endpoint: receiver.url, metricExportIntervalMs: 500, env: {} });
    h = await startHarness({
      fleet: {
        workerEnv: {
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_SERVICE_NAME: undefined,
          OTEL_SDK_DISABLED: undefined,
          OTEL_METRIC_EXPORT_INTERVAL: "500",
          DSPEX_OTEL_FLUSH_EACH_REQUEST: "true",
        },
      },
    });
    client = await Client.connect({ servers: h.fleet.natsUrl, creds: h.fleet.creds.client, lm: h.lm, engine: { native: { env: { ...lmEnv(h.profile) } } } });
  });
  after(async () => {
    await client?.close();
    await h?.close();
    await telemetry?.shutdown();
    await receiver?.close();
  });

  /** The spans of the call with request id `id`: its call span and everything in its trace below it. */
  async function callSpans(id: string, op: string, done: (spans: FlatSpan[]) => boolean): Promise<FlatSpan[]> {
    await telemetry.forceFlush();
    const call = await waitFor(`the call span of ${id}`, async () =>
      (await receiver.spans()).find((s) => s.name === `dspex.${op}` && s.attributes["dspex.request.id"] === id),
    );
    return waitForTrace(receiver, call.traceId, done);
  }

  const hasLm = (spans: FlatSpan[]) => spans.some((s) => s.name === "chat test-model");

  test("chain of thought: dspex call → dspy.ChainOfThought → dspy.Predict → chat, with the same attributes", async () => {
    const run = async (engine: "python" | "native") => {
      const id = randomUUID();
      const r = await client.chainOfThought("question -> answer: int", { question: "What is 6*7?" }, { engine, requestId: id });
      assert.equal(r.outputs.answer, 42);
      await telemetry.forceFlush();
      return { result: r, spans: await callSpans(id, "chain_of_thought", hasLm) };
    };
    const py = await run("python");
    const nat = await run("native");
    const pick = (spans: FlatSpan[]) => ({
      cot: one(spans, (s) => s.name === "dspy.ChainOfThought", "ChainOfThought span"),
      predict: one(spans, (s) => s.name === "dspy.Predict", "Predict span"),
      lm: one(spans, (s) => s.name === "chat test-model", "LM span"),
      call: one(spans, (s) => s.name === "dspex.chain_of_thought", "call span"),
    });
    const a = pick(py.spans);
    const b = pick(nat.spans);
    assert.equal(b.cot.parentSpanId, b.call.spanId, "the native module span is under the call span");
    assert.equal(b.predict.parentSpanId, b.cot.spanId);
    assert.equal(b.lm.parentSpanId, b.predict.spanId);
    assert.equal(a.predict.parentSpanId, a.cot.spanId);
    assert.equal(a.lm.parentSpanId, a.predict.spanId);
    for (const name of ["cot", "predict", "lm"] as const) {
      assert.equal(b[name].kind, a[name].kind, name);
      assert.deepEqual(shared(b[name]), shared(a[name]), `${name}: the worker's attributes and values`);
    }
    assert.ok(Object.keys(shared(a.lm)).length >= 10, `the worker's LM span has the GenAI attributes: ${Object.keys(shared(a.lm)).join(", ")}`);
    assert.ok(Number(b.lm.attributes["gen_ai.usage.input_tokens"]) > 0);
    assert.equal(b.lm.attributes["gen_ai.usage.output_tokens"], nat.result.usage.completion_tokens);
    assert.equal(b.call.attributes["dspex.engine"], "native");
    assert.equal(b.call.attributes["dspex.worker.id"], "native");
    assert.equal(a.call.attributes["dspex.engine"], "python");
    assert.equal(b.lm.service, "dspex-client");
    assert.equal(a.lm.service, "dspex-worker");
  });

  test("a failing LM: the LM span has DSPy's error class on both engines", async () => {
    const run = async (engine: "python" | "native") => {
      const id = randomUUID();
      h.lmDouble.control.failNext("http500", 1);
      await assert.rejects(client.predict("question -> answer", { question: "fail?" }, { engine, requestId: id, retry: false }), LMError);
      const spans = await callSpans(id, "predict", hasLm);
      return { lm: one(spans, (s) => s.name === "chat test-model", "LM span"), call: one(spans, (s) => s.name === "dspex.predict", "call span") };
    };
    const py = await run("python");
    const nat = await run("native");
    assert.equal(nat.lm.status.code, "ERROR");
    assert.equal(nat.lm.attributes["error.type"], py.lm.attributes["error.type"]);
    assert.equal(nat.lm.attributes["error.type"], "LMServerError");
    assert.equal(nat.call.attributes["error.type"], py.call.attributes["error.type"]);
  });
});
