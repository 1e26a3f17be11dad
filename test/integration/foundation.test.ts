/**
 * The foundation path end to end: TypeScript client → msgpack on JetStream → Python worker running real
 * dspy → LM double over HTTP → reply → validated outputs in TypeScript.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { jetstreamManager } from "@nats-io/jetstream";
import {
  LMError,
  LMOutputError,
  NoWorkersError,
  STREAMS,
  DeadlineExceeded,
  ValidationError,
  SignatureError,
} from "@dspex/protocol";
import { startHarness, type Harness } from "./harness.js";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "../..");

describe("foundation: TypeScript → NATS JetStream → Python dspy → TypeScript", { timeout: 240_000 }, () => {
  let h: Harness;

  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h?.close();
  });

  test("a multi-input, multi-output signature returns typed outputs from a real dspy.Predict", async () => {
    const result = await h.client.predict<{ answer: string; confidence: number }>("context: list[str], question: str -> answer: str, confidence: float", {
      context: ["Two plus three makes five."],
      question: "What is 2+3?",
    });
    assert.equal(result.outputs.answer, "5");
    assert.equal(typeof result.outputs.confidence, "number");
    assert.ok(result.outputs.confidence >= 0 && result.outputs.confidence <= 1);
    assert.match(result.worker, /^general-/);
    assert.equal(result.lm, "openai/test-model");
    assert.ok(result.usage.total_tokens > 0, "usage is reported");
    // What reached the LM is DSPy's real ChatAdapter prompt with both inputs.
    const last = h.lmDouble.requests().at(-1)!;
    assert.equal(last.prompt?.adapter, "chat");
    assert.deepEqual(Object.keys(last.prompt?.inputs ?? {}).sort(), ["context", "question"]);
  });

  test("chain of thought adds reasoning", async () => {
    const result = await h.client.chainOfThought("question -> answer: int", { question: "What is 6*7?" });
    assert.equal(result.outputs.answer, 42);
    assert.equal(typeof result.outputs.reasoning, "string");
    assert.ok(result.outputs.reasoning.length > 0);
    const fields = h.lmDouble.requests().at(-1)!.prompt!.outputFields.map((f) => f.name);
    assert.deepEqual(fields, ["reasoning", "answer"]);
  });

  test("a Literal and a list output parse into their types", async () => {
    const labels = ["positive", "negative", "neutral"];
    const result = await h.client.predict(
      "review -> sentiment: Literal['positive', 'negative', 'neutral'], keywords: list[str]",
      { review: "Great battery, poor screen." },
    );
    assert.ok(labels.includes(result.outputs.sentiment as string), `sentiment ${String(result.outputs.sentiment)}`);
    assert.ok(Array.isArray(result.outputs.keywords));
    assert.ok((result.outputs.keywords as unknown[]).every((k) => typeof k === "string"));
  });

  test("bad inputs and bad signatures are rejected before anything is published", async () => {
    const jsm = await jetstreamManager(h.admin);
    const before = (await jsm.streams.info(STREAMS.requests.name)).state.last_seq;
    await assert.rejects(h.client.predict("question -> answer", {}), (err: unknown) => {
      assert.ok(err instanceof ValidationError);
      assert.match(err.message, /question/);
      return true;
    });
    await assert.rejects(h.client.predict("question -> answer", { question: "q", extra: 1 }), ValidationError);
    await assert.rejects(h.client.predict("n: int -> answer", { n: "not a number" }), ValidationError);
    await assert.rejects(h.client.predict("question -> answer: string", { question: "q" }), (err: unknown) => {
      assert.ok(err instanceof SignatureError);
      assert.match(err.message, /str/);
      return true;
    });
    const afterSeq = (await jsm.streams.info(STREAMS.requests.name)).state.last_seq;
    assert.equal(afterSeq, before, "nothing was published");
  });

  test("an LM failure surfaces as a typed, retryable LMError", async () => {
    h.lmDouble.control.failNext("http500", 1);
    // retry: false — the client would otherwise retry a retryable error reply (docs/reliability.md).
    await assert.rejects(h.client.predict("question -> answer", { question: "boom?" }, { retry: false }), (err: unknown) => {
      assert.ok(err instanceof LMError, `got ${String(err)}`);
      assert.equal(err.type, "LMError");
      assert.equal(err.retryable, true);
      return true;
    });
    // The worker survived and answers the next call.
    const ok = await h.client.predict("question -> answer", { question: "What is 1+1?" });
    assert.equal(ok.outputs.answer, "2");
  });

  test("LM output DSPy cannot parse surfaces as LMOutputError", async () => {
    h.lmDouble.control.failAll("malformed");
    try {
      await assert.rejects(h.client.predict("question -> answer: int", { question: "q" }), (err: unknown) => {
        assert.ok(err instanceof LMOutputError);
        assert.equal(err.retryable, false);
        return true;
      });
    } finally {
      h.lmDouble.control.clearFailure();
    }
  });

  test("one worker runs several requests at once, and a deadline ends them with a timeout", async () => {
    h.lmDouble.control.failAll("hang");
    const seen = h.lmDouble.requests().length;
    const calls = Array.from({ length: 6 }, (_, i) =>
      h.client.predict("question -> answer", { question: `hang ${i}` }, { timeoutMs: 4_000 }),
    );
    try {
      // Resolves only if all six are at the LM at the same time: none of them can finish while it hangs.
      await h.lmDouble.waitForRequests(seen + 6, { timeoutMs: 30_000 });
      assert.equal(new Set(h.lmDouble.requests().slice(seen).map((r) => r.prompt?.inputs.question)).size, 6);
      for (const result of await Promise.allSettled(calls)) {
        assert.equal(result.status, "rejected");
        assert.ok(result.reason instanceof DeadlineExceeded, String(result.reason));
      }
    } finally {
      h.lmDouble.control.clearFailure();
    }
    const ok = await h.client.predict("question -> answer", { question: "What is 2+2?" });
    assert.equal(ok.outputs.answer, "4");
  });

  test("a pool with no live workers fails fast with NoWorkersError", async () => {
    await assert.rejects(
      h.client.predict("question -> answer", { question: "q" }, { pool: "optimizer" }),
      NoWorkersError,
    );
  });

  test("a request built by hand with plain nats-py gets the documented reply", async () => {
    const { stdout } = await run(
      join(ROOT, ".venv/bin/python"),
      [join(ROOT, "test/integration/hand_request.py"), h.fleet.natsUrl],
      { env: { ...process.env, NATS_CREDS: h.fleet.creds.client }, timeout: 60_000 },
    );
    const { request_id, stream, reply } = JSON.parse(stdout) as {
      request_id: string;
      stream: string;
      reply: { v: number; id: string; ok: boolean; outputs: { answer: number; tags: string[] }; worker: string };
    };
    assert.equal(stream, STREAMS.requests.name);
    assert.equal(reply.v, 1);
    assert.equal(reply.id, request_id);
    assert.equal(reply.ok, true);
    assert.equal(reply.outputs.answer, 42);
    assert.ok(Array.isArray(reply.outputs.tags));
  });
});
