/**
 * OpenTelemetry end to end: one trace from the TypeScript caller through NATS JetStream into the Python worker,
 * its DSPy module and its LM call, plus metrics from both sides — exported over OTLP/HTTP (JSON from Node,
 * protobuf from Python) to a real receiver. Real nats-server, real worker processes, real dspy; only the LM is
 * faked, at HTTP.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import { LMError } from "@dspex/protocol";
import { initTelemetry, type Telemetry } from "@dspex/observability";
import { newToken, startRouter, type RouterService } from "@dspex/router";
import { startHarness, type Harness } from "../integration/harness.js";
import {
  PYTHON,
  descendsFrom,
  one,
  startReceiver,
  waitFor,
  waitForTrace,
  type FlatPoint,
  type FlatSpan,
  type Receiver,
} from "./receiver.js";

const run = promisify(execFile);

describe("OpenTelemetry: TypeScript → NATS → Python worker → LM, one trace", { timeout: 90_000 }, () => {
  let receiver: Receiver;
  let telemetry: Telemetry;
  let h: Harness;
  let router: RouterService;

  before(async () => {
    receiver = await startReceiver();
    telemetry = initTelemetry({ endpoint: receiver.url, metricExportIntervalMs: 500, env: {} });
    assert.ok(telemetry.tracing && telemetry.metrics);
    h = await startHarness({
      fleet: {
        workerEnv: {
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_SERVICE_NAME: undefined, // the worker's default service name applies
          OTEL_SDK_DISABLED: undefined,
          OTEL_METRIC_EXPORT_INTERVAL: "500",
          DSPEX_OTEL_FLUSH_EACH_REQUEST: "true",
        },
      },
    });
    // the router service reports the consumers' lag (the client itself runs nothing in the background)
    router = await startRouter({ port: 0, tokens: [newToken("test", ["predict"]).entry], client: { servers: h.fleet.natsUrl, creds: h.fleet.creds.client } });
  });
  after(async () => {
    await router?.stop();
    await h?.close();
    await telemetry?.shutdown();
    await receiver?.close();
  });

  /** The client's call span and producer span of request `id`, once exported. */
  async function routerSpans(id: string, op = "dspex.predict"): Promise<{ call: FlatSpan; send: FlatSpan }> {
    await telemetry.forceFlush();
    return waitFor(`client spans of ${id}`, async () => {
      const spans = await receiver.spans();
      const call = spans.find((s) => s.name === op && s.attributes["dspex.request.id"] === id);
      const send = spans.find((s) => s.kind === "PRODUCER" && s.attributes["messaging.message.id"] === id);
      return call && send ? { call, send } : undefined;
    });
  }

  test("a packaged program's trace: its module span, one span per predictor under it, one LM span per predictor call", async () => {
    const id = randomUUID();
    const result = await h.client.program("qa").call({ question: "What is 2+3?" }, { requestId: id });
    const { call } = await routerSpans(id, "dspex.program");
    const spans = await waitForTrace(receiver, call.traceId, (s) => s.filter((x) => x.name === "chat test-model").length >= 2);
    const process = one(spans, (s) => s.kind === "CONSUMER", "CONSUMER span");
    assert.equal(process.attributes["dspex.operation"], "program");
    const program = one(spans, (s) => s.name === "dspy.QA", "the program's module span");
    assert.ok(descendsFrom(spans, program, process), "the program span descends from the CONSUMER span");
    const predictors = spans.filter((s) => s.name === "dspy.Predict");
    assert.equal(predictors.length, 2, "one span per predictor call (draft, refine)");
    for (const p of predictors) assert.equal(p.parentSpanId, program.spanId);
    const lms = spans.filter((s) => s.name === "chat test-model");
    assert.equal(lms.length, 2);
    for (const lm of lms) assert.ok(predictors.some((p) => descendsFrom(spans, lm, p)), "each LM span is under a predictor span");
    assert.equal(result.usage.total_tokens, lms.reduce((a, lm) => a + Number(lm.attributes["gen_ai.usage.input_tokens"]) + Number(lm.attributes["gen_ai.usage.output_tokens"]), 0));
  });

  for (const lane of ["durable", "direct"] as const) {
    test(`one trace id from the call span through the PRODUCER and CONSUMER spans to the LM span (${lane} lane)`, async () => {
      const id = randomUUID();
      const prefix = lane === "durable" ? "dspex.req.general" : "dspex.direct.general";
      const result = await h.client.predict("question -> answer: int", { question: "What is 2+3?" }, { requestId: id, lane });
      assert.equal(result.outputs.answer, 5);
      const { call, send } = await routerSpans(id);
      const spans = await waitForTrace(receiver, call.traceId, (s) => s.some((x) => x.name === "chat test-model"));

      // TypeScript side (OTLP/JSON).
      assert.equal(call.service, "dspex-client");
      assert.equal(call.kind, "INTERNAL");
      assert.equal(call.encoding, "json");
      assert.equal(call.attributes["dspex.operation"], "predict");
      assert.equal(call.attributes["dspex.pool"], "general");
      assert.equal(call.attributes["dspex.worker.id"], result.worker);
      assert.equal(send.name, `send ${prefix}`);
      assert.equal(send.parentSpanId, call.spanId);
      assert.equal(send.traceId, call.traceId);
      assert.deepEqual(
        {
          system: send.attributes["messaging.system"],
          destination: send.attributes["messaging.destination.name"],
          template: send.attributes["messaging.destination.template"],
          operation: send.attributes["messaging.operation.type"],
        },
        { system: "nats", destination: `${prefix}.any`, template: `${prefix}.{key}`, operation: "send" },
      );

      // Python side (OTLP/protobuf), same trace: the CONSUMER span's parent is the PRODUCER span.
      const process = one(spans, (s) => s.kind === "CONSUMER", "CONSUMER span");
      assert.equal(process.name, `process ${prefix}`);
      assert.equal(process.service, "dspex-worker");
      assert.equal(process.encoding, "protobuf");
      assert.equal(process.parentSpanId, send.spanId);
      assert.equal(process.attributes["messaging.system"], "nats");
      assert.equal(process.attributes["messaging.operation.type"], "process");
      assert.equal(process.attributes["messaging.destination.name"], `${prefix}.any`);
      assert.equal(process.attributes["messaging.message.id"], id);
      // the durable lane's JetStream consumer, or the direct lane's queue group
      assert.equal(process.attributes["messaging.consumer.group.name"], lane === "durable" ? "general" : "dspex-direct");
      assert.equal(process.attributes["dspex.operation"], "predict");
      assert.equal(process.attributes["dspex.worker.id"], result.worker);

      const module = one(spans, (s) => s.name === "dspy.Predict", "dspy.Predict span");
      assert.equal(module.parentSpanId, process.spanId);
      assert.deepEqual(module.attributes["dspy.signature.input_fields"], ["question"]);
      assert.deepEqual(module.attributes["dspy.signature.output_fields"], ["answer"]);

      const lm = one(spans, (s) => s.name === "chat test-model", "LM span");
      assert.equal(lm.kind, "CLIENT");
      assert.ok(descendsFrom(spans, lm, process), "the LM span descends from the CONSUMER span");
      assert.equal(lm.attributes["gen_ai.operation.name"], "chat");
      assert.equal(lm.attributes["gen_ai.request.model"], "test-model");
      assert.equal(lm.attributes["gen_ai.provider.name"], "openai");
      assert.equal(lm.attributes["gen_ai.system"], "openai");
      assert.equal(lm.attributes["gen_ai.response.model"], "test-model");
      assert.equal(lm.attributes["gen_ai.usage.input_tokens"], result.usage.prompt_tokens);
      assert.equal(lm.attributes["gen_ai.usage.output_tokens"], result.usage.completion_tokens);
      assert.ok(Number(lm.attributes["gen_ai.usage.input_tokens"]) > 0);
      assert.equal(lm.attributes["gen_ai.input.messages"], undefined, "prompt text is off by default");
      assert.equal(lm.attributes["gen_ai.output.messages"], undefined, "completion text is off by default");
      assert.ok(spans.every((s) => s.status.code !== "ERROR"));
    });
  }

  test("chain of thought nests dspy.ChainOfThought → dspy.Predict → chat", async () => {
    const id = randomUUID();
    await h.client.chainOfThought("question -> answer: int", { question: "What is 6*7?" }, { requestId: id });
    const { call } = await routerSpans(id, "dspex.chain_of_thought");
    const spans = await waitForTrace(receiver, call.traceId, (s) => s.some((x) => x.name === "chat test-model"));
    const process = one(spans, (s) => s.kind === "CONSUMER", "CONSUMER span");
    const cot = one(spans, (s) => s.name === "dspy.ChainOfThought", "ChainOfThought span");
    const predict = one(spans, (s) => s.name === "dspy.Predict", "Predict span");
    const lm = one(spans, (s) => s.name === "chat test-model", "LM span");
    assert.equal(process.attributes["dspex.operation"], "chain_of_thought");
    assert.equal(cot.parentSpanId, process.spanId);
    assert.equal(predict.parentSpanId, cot.spanId);
    assert.equal(lm.parentSpanId, predict.spanId);
    assert.deepEqual(cot.attributes["dspy.signature.output_fields"], ["reasoning", "answer"]);
  });

  test("an LM failure marks the call, CONSUMER, module and LM spans as errors, and logs carry the trace id", async () => {
    const id = randomUUID();
    h.lmDouble.control.failNext("http500", 1);
    // retry: false — the client would otherwise retry the retryable LMError (docs/reliability.md).
    const failing = h.client.predict("question -> answer", { question: "fail?" }, { requestId: id, retry: false });
    await assert.rejects(failing, LMError);
    const { call, send } = await routerSpans(id);
    const spans = await waitForTrace(receiver, call.traceId, (s) => s.some((x) => x.name === "chat test-model"));

    assert.equal(call.status.code, "ERROR");
    assert.equal(call.attributes["error.type"], "LMError");
    assert.ok(call.events.some((e) => e.name === "exception"));
    assert.equal(send.status.code, "UNSET", "the publish itself succeeded");

    const process = one(spans, (s) => s.kind === "CONSUMER", "CONSUMER span");
    assert.equal(process.status.code, "ERROR");
    assert.equal(process.attributes["error.type"], "LMError");
    const module = one(spans, (s) => s.name === "dspy.Predict", "module span");
    assert.equal(module.status.code, "ERROR");
    const lm = one(spans, (s) => s.name === "chat test-model", "LM span");
    assert.equal(lm.status.code, "ERROR");
    assert.equal(lm.attributes["error.type"], "LMServerError");
    assert.equal(lm.attributes["gen_ai.usage.input_tokens"], undefined);

    // The worker's JSON log line about the failure carries the trace and the CONSUMER span.
    const line = await waitFor("the worker's log line with the trace id", async () =>
      h.fleet.workers
        .flatMap((w) => w.logs)
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, unknown>;
          } catch {
            return undefined;
          }
        })
        .find((entry) => entry?.trace_id === call.traceId && entry?.id === id),
    );
    assert.equal(line.span_id, process.spanId);
    assert.equal(line.error_type, "LMError");
  });

  test("a request from a plain nats-py client continues the trace named in its traceparent", async () => {
    const traceId = randomBytes(16).toString("hex");
    const parentId = randomBytes(8).toString("hex");
    const script = join(import.meta.dirname, "traced_request.py");
    const { stdout } = await run(PYTHON, [
      script,
      h.fleet.natsUrl,
      `00-${traceId}-${parentId}-01`,
      "vendor=dspex-test",
    ], { env: { ...globalThis.process.env, NATS_CREDS: h.fleet.creds.client } });
    const out = JSON.parse(stdout) as { request_id: string; reply: { ok: boolean; outputs: { answer: number } } };
    assert.equal(out.reply.ok, true);
    assert.equal(out.reply.outputs.answer, 42);
    const spans = await waitForTrace(receiver, traceId, (s) => s.some((x) => x.name === "chat test-model"));
    const process = one(spans, (s) => s.kind === "CONSUMER", "CONSUMER span");
    assert.equal(process.parentSpanId, parentId);
    assert.equal(process.attributes["messaging.message.id"], out.request_id);
    assert.match(process.traceState, /vendor=dspex-test/);
    const lm = one(spans, (s) => s.name === "chat test-model", "LM span");
    assert.ok(descendsFrom(spans, lm, process));
    assert.ok(spans.every((s) => s.service === "dspex-worker"), "no client span: the client was not involved");
  });

  test("metrics arrive from both sides", async () => {
    const points = await waitFor(
      "client and worker metrics",
      async () => {
        await telemetry.forceFlush();
        const all = await receiver.metrics();
        const has = (name: string, ok: (p: FlatPoint) => boolean = () => true) =>
          all.some((p) => p.name === name && ok(p));
        const wanted = [
          has("dspex.client.request.duration", (p) => p.attributes["dspex.outcome"] === "ok" && (p.count ?? 0) > 0),
          has("dspex.client.request.duration", (p) => p.attributes["error.type"] === "LMError"),
          has("dspex.worker.request.duration", (p) => p.attributes["dspex.operation"] === "predict"),
          has("dspex.worker.lm.tokens", (p) => p.attributes["gen_ai.token.type"] === "input" && (p.value ?? 0) > 0),
          has("dspex.worker.lm.tokens", (p) => p.attributes["gen_ai.token.type"] === "output" && (p.value ?? 0) > 0),
          has("dspex.worker.queue_wait.duration"),
          has("dspex.worker.signature_cache.hit_ratio"),
          has("gen_ai.client.token.usage"),
          has("dspex.consumer.pending", (p) => p.attributes["dspex.pool"] === "general"),
        ];
        return wanted.every(Boolean) ? all : undefined;
      },
      20_000,
    );
    const latest = (name: string, filter: (p: FlatPoint) => boolean = () => true) =>
      points.filter((p) => p.name === name && filter(p)).at(-1)!;
    const client = latest("dspex.client.request.duration", (p) => p.attributes["dspex.outcome"] === "ok");
    assert.equal(client.service, "dspex-client");
    assert.equal(client.unit, "s");
    assert.equal(client.encoding, "json");
    assert.equal(client.type, "histogram");
    const worker = latest("dspex.worker.request.duration", (p) => p.attributes["dspex.outcome"] === "ok");
    assert.equal(worker.service, "dspex-worker");
    assert.equal(worker.encoding, "protobuf");
    assert.equal(worker.attributes["dspex.pool"], "general");
    const tokens = latest("dspex.worker.lm.tokens", (p) => p.attributes["gen_ai.token.type"] === "input");
    assert.equal(tokens.attributes["gen_ai.request.model"], "test-model");
    assert.equal(tokens.attributes["gen_ai.provider.name"], "openai");
    assert.equal(tokens.type, "sum");
    const failed = latest("dspex.worker.request.duration", (p) => p.attributes["dspex.outcome"] === "error");
    assert.equal(failed.attributes["error.type"], "LMError");
    const ratio = latest("dspex.worker.signature_cache.hit_ratio");
    assert.ok((ratio.value ?? -1) >= 0 && (ratio.value ?? 2) <= 1);
  });
});
