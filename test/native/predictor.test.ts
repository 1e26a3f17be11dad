/**
 * The native predictor (services/native/src/predictor, lm/) against the LM double over HTTP, no fleet: what it
 * sends is what DSPy sends (the adapters' messages, `model` without its provider, `temperature`,
 * `max_completion_tokens`), it answers what the double answers, usage adds up, streaming hands over the text as it
 * comes, the provider's failures are the worker's typed errors, and a key goes only where its profile says —
 * never the ambient OPENAI_API_KEY, OPENAI_BASE_URL or OPENAI_CUSTOM_HEADERS of the process.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { DeadlineExceeded, LMConfigError, LMError, LMOutputError } from "@dspex/protocol";
import {
  ChatAdapter,
  JSONAdapter,
  JsonFallbackNeeded,
  NativeEngine,
  formatRequest,
  moduleSignature,
  parseSignature,
  resolveSignature,
  workerInputs,
  type NativeCall,
} from "@dspex/native";
import { startLmDouble, type LmDouble } from "../lm-double/server.js";
import { startCaptureDouble, type CaptureDouble } from "../security/capture-double.js";

const QA = resolveSignature("question -> answer");
const NONE = { responseFormat: false, responseSchema: false };
const soon = (ms = 10_000) => ({ deadline: Date.now() + ms });

describe("native predictor against the LM double", { timeout: 60_000 }, () => {
  let double: LmDouble;
  let capture: CaptureDouble;
  let engine: NativeEngine;
  const saved = { ...process.env };

  before(async () => {
    double = await startLmDouble();
    capture = await startCaptureDouble();
    // what the openai package would read from the environment if it were asked nothing
    process.env.OPENAI_API_KEY = "sk-ambient-never-sent";
    process.env.OPENAI_BASE_URL = capture.url;
    process.env.OPENAI_ADMIN_KEY = "sk-admin-never-sent";
    process.env.OPENAI_CUSTOM_HEADERS = "X-Leak: ambient\nAuthorization: Bearer sk-custom-never-sent";
    engine = new NativeEngine({
      env: {
        DSPEX_LM: "openai/test-model",
        DSPEX_LM_API_BASE: double.url,
        PROFILE_KEY: "sk-profile-key",
        DSPEX_LM_PROFILES: JSON.stringify({
          profiles: { captured: { model: "openai/test-model", api_base: capture.url, api_key_env: "PROFILE_KEY" } },
        }),
      },
      capabilities: { "openai/test-model": NONE },
    });
  });
  after(async () => {
    process.env = saved;
    await double?.close();
    await capture?.close();
  });

  const call = (over: Partial<NativeCall> = {}): NativeCall => ({ op: "predict", signature: QA, inputs: { question: "What is 2+2?" }, lm: undefined, ...over });

  test("Predict: DSPy's messages and body, the double's answer, the usage it reported", async () => {
    const seen = double.requests().length;
    const r = await engine.predict(call(), soon());
    assert.deepEqual(r.outputs, { answer: "4" });
    assert.equal(r.lm, "openai/test-model");
    assert.equal(r.adapter, "ChatAdapter");
    const [sent] = double.requests().slice(seen);
    const expected = formatRequest(new ChatAdapter(), { signature: QA, inputs: workerInputs(QA, { question: "What is 2+2?" }), capabilities: NONE });
    assert.deepEqual(sent!.body, { model: "test-model", messages: expected.messages });
    assert.equal(sent!.authorization, "Bearer dspex-no-key", "the placeholder, not OPENAI_API_KEY");
    assert.equal(r.usage.prompt_tokens + r.usage.completion_tokens, r.usage.total_tokens);
    assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
    assert.equal(capture.requests().length, 0, "OPENAI_BASE_URL was not followed");
  });

  test("ChainOfThought with demos and the profile's knobs: reasoning first, temperature and max_completion_tokens sent", async () => {
    const seen = double.requests().length;
    const demos = [{ question: "1+1?", answer: "2" }];
    const r = await engine.predict(
      call({ op: "chain_of_thought", signature: resolveSignature("question -> answer: int"), inputs: { question: "What is 3+2?" }, demos, lm: { temperature: 0.3, max_tokens: 99 } }),
      soon(),
    );
    assert.deepEqual(Object.keys(r.outputs), ["reasoning", "answer"]);
    assert.equal(r.outputs.answer, 5);
    const [sent] = double.requests().slice(seen);
    const body = sent!.body as Record<string, unknown>;
    assert.equal(body.temperature, 0.3);
    assert.equal(body.max_completion_tokens, 99);
    const cot = moduleSignature(resolveSignature("question -> answer: int"), "chain_of_thought");
    assert.deepEqual(body.messages, new ChatAdapter().format(cot, demos, { question: "What is 3+2?" }));
  });

  test("a profile's key goes to its endpoint only, with none of the ambient headers", async () => {
    const r = await engine.predict(call({ lm: { profile: "captured" } }), soon());
    assert.equal(r.outputs.answer, "captured");
    const got = capture.requests();
    assert.equal(got.length, 1);
    assert.equal(got[0]!.path, "/v1/chat/completions");
    assert.equal(got[0]!.authorization, "Bearer sk-profile-key");
    assert.equal(got[0]!.headers["x-leak"], undefined, "OPENAI_CUSTOM_HEADERS dropped");
    await assert.rejects(engine.predict(call({ lm: { model: "openai/test-model", api_base: capture.url } }), soon()), (e: unknown) => e instanceof LMConfigError && e.field === "lm.api_base");
    assert.equal(capture.requests().length, 1, "a refused endpoint gets nothing");
  });

  test("streaming hands over the completion as it arrives; the parsed outputs are the same", async () => {
    const pieces: string[] = [];
    const r = await engine.predict(call({ inputs: { question: "What is 6+7?" } }), { ...soon(), onText: (d) => pieces.push(d) });
    assert.equal(r.outputs.answer, "13");
    assert.ok(pieces.length > 1, "several pieces");
    const [sent] = double.requests().slice(-1);
    assert.equal(pieces.join(""), sent!.content);
    assert.ok(r.usage.completion_tokens > 0, "usage from the stream's last chunk");
  });

  test("the provider's failures are the worker's typed errors", async () => {
    double.control.failNext("http500", 1);
    await assert.rejects(engine.predict(call(), soon()), (e: unknown) => {
      assert.ok(e instanceof LMError && e.retryable);
      assert.match(e.message, /^\[openai\/test-model\] The LM test double was told to fail this request with HTTP 500\./);
      assert.deepEqual(e.details, { dspy_error: "LMServerError", status: 500, provider: "openai-chat", model: "openai/test-model" });
      return true;
    });
    double.control.failNext("http429", 1, { retryAfterSeconds: 2 });
    await assert.rejects(engine.predict(call(), soon()), (e: unknown) => e instanceof LMError && e.retryable && e.details?.retry_after === 2);
    double.control.failNext("hang", 1);
    await assert.rejects(engine.predict(call(), soon(300)), (e: unknown) => e instanceof DeadlineExceeded);
    const controller = new AbortController();
    double.control.failNext("hang", 1);
    const before = double.requests().length;
    const aborted = engine.predict(call(), { ...soon(), signal: controller.signal });
    await double.waitForRequests(before + 1);
    controller.abort(new Error("caller gave up"));
    await assert.rejects(aborted, /caller gave up/);
  });

  test("an answer that does not parse: DSPy's JSONAdapter call, then LMOutputError as the worker words it", async () => {
    const seen = double.requests().length;
    double.control.failNext("malformed", 1);
    const r = await engine.predict(call(), soon());
    assert.equal(r.adapter, "JSONAdapter");
    assert.equal(r.calls, 2);
    const sent = double.requests().slice(seen);
    assert.equal(sent.length, 2);
    const json = formatRequest(new JSONAdapter(), { signature: QA, inputs: { question: "What is 2+2?" }, capabilities: NONE });
    assert.deepEqual((sent[1]!.body as { messages: unknown }).messages, json.messages);
    double.control.failNext("malformed", 2);
    await assert.rejects(engine.predict(call(), soon()), (e: unknown) => {
      assert.ok(e instanceof LMOutputError);
      assert.match(e.message, /^the LM's output could not be parsed into the signature: LM response cannot be serialized to a JSON object\.\n\nAdapter JSONAdapter failed/);
      assert.deepEqual(e.details, { adapter: "AdapterParseError" });
      return true;
    });
  });

  test("without the LM's capabilities (or jsonFallback: python) the JSONAdapter call is handed back, not made", async () => {
    const bare = new NativeEngine({ env: { DSPEX_LM: "openai/test-model", DSPEX_LM_API_BASE: double.url } });
    const deferring = new NativeEngine({ env: { DSPEX_LM: "openai/test-model", DSPEX_LM_API_BASE: double.url }, capabilities: { "openai/test-model": NONE }, jsonFallback: "python" });
    for (const [e, code] of [[bare, "json_capabilities"], [deferring, "parse_failure"]] as const) {
      const seen = double.requests().length;
      double.control.failNext("malformed", 1);
      await assert.rejects(e.predict(call(), soon()), (err: unknown) => err instanceof JsonFallbackNeeded && err.code === code && err.usage.total_tokens > 0);
      assert.equal(double.requests().length - seen, 1, "one LM call");
    }
  });

  test("support: what runs natively, and why not", () => {
    assert.ok("lm" in engine.support({ op: "predict", lm: undefined }));
    const reason = (e: NativeEngine, c: Parameters<NativeEngine["support"]>[0]) => {
      const s = e.support(c);
      return "code" in s ? s.code : "ok";
    };
    assert.equal(reason(engine, { op: "majority", lm: undefined } as never), "module");
    assert.equal(reason(engine, { op: "predict", lm: { cache: true } }), "lm_cache");
    assert.equal(reason(new NativeEngine({ env: {} }), { op: "predict", lm: undefined }), "no_profiles");
    assert.equal(reason(new NativeEngine({ env: { DSPEX_LM: "anthropic/claude-x" } }), { op: "predict", lm: undefined }), "provider");
    assert.equal(reason(new NativeEngine({ env: { DSPEX_LM: "openai/gpt-5-mini" } }), { op: "predict", lm: undefined }), "reasoning_model");
    assert.equal(reason(new NativeEngine({ env: { DSPEX_LM: "openai/m", DSPEX_LM_API_KEY_ENV: "ABSENT_KEY" } }), { op: "predict", lm: undefined }), "key_absent");
    assert.equal(reason(new NativeEngine({ env: { DSPEX_LM: "openai/m", DSPEX_LM_ADAPTER: "json" } }), { op: "predict", lm: undefined }), "json_capabilities");
    assert.equal(reason(engine, { op: "predict", lm: { model: "dspex/echo" } }), "test_model");
    // types the native adapters do not render go to the workers' DSPy; input-less signatures run natively
    assert.equal(reason(engine, { op: "predict", lm: undefined, signature: parseSignature("q -> a: int | str") }), "signature_type");
    assert.equal(reason(engine, { op: "predict", lm: undefined, signature: parseSignature("q: list[Optional[int | str]] -> a") }), "signature_type");
    assert.equal(reason(engine, { op: "predict", lm: undefined, signature: parseSignature("-> a: int") }), "ok");
    assert.throws(() => engine.support({ op: "predict", lm: { profile: "ghost" } }), (e: unknown) => e instanceof LMConfigError && e.field === "lm.profile");
  });
});
