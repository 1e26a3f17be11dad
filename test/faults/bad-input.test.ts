/**
 * The bad-input catalogue (docs/reliability.md): every kind of bad request gets a typed error naming the
 * field and the problem — from the client before anything is published, or as an error reply from the
 * worker for what only a hand-built request can carry — the worker stays up, and what cannot be decoded lands
 * in the DLQ with its reason, from where it can be listed, shown and replayed. (A body that breaks decoding in a
 * way no check anticipates is a DecodeError too: workers/tests/test_wire.py; the generated envelope check leaves
 * no such body for a test to send.)
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import {
  LMOutputError,
  PayloadTooLarge,
  STREAMS,
  SignatureError,
  ValidationError,
  WorkerError,
  encode,
  type ReplyErr,
} from "@dspex/protocol";
import { getDeadLetter, listDeadLetters, replayDeadLetter } from "@dspex/dlq";
import { startHarness, type Harness } from "../integration/harness.js";
import { DeadLetters, handRequest, requestBody } from "./helpers.js";

const ROOT = join(import.meta.dirname, "../..");
const run = promisify(execFile);

function errorOf(reply: unknown): ReplyErr["error"] {
  const r = reply as ReplyErr;
  assert.equal(r.ok, false, `expected an error reply, got ${JSON.stringify(reply)}`);
  return r.error;
}

describe("bad inputs: typed errors, the worker stays up, undecodable requests are dead-lettered", { timeout: 180_000 }, () => {
  let h: Harness;
  let jsm: JetStreamManager;
  const dead = new DeadLetters();
  let workerPid: number | undefined;

  before(async () => {
    // dead letters keep the request bodies here (DSPEX_DLQ_KEEP_INPUTS=1; by default a worker keeps a redacted
    // summary, workers/tests/test_dead_letters.py): these tests show and replay them
    h = await startHarness({ fleet: { dlq: { onDeadLetter: dead.onDeadLetter, keepInputs: true }, workerEnv: { DSPEX_DLQ_KEEP_INPUTS: "1" } } });
    jsm = await jetstreamManager(h.admin);
    workerPid = h.fleet.workers[0]?.process.pid;
  });
  after(async () => {
    await h?.close();
  });

  const lastSeq = async () => (await jsm.streams.info(STREAMS.requests.name)).state.last_seq;

  test("client side: unknown pool, bad signature, bad inputs, oversized payload — typed, nothing published", async () => {
    const before = await lastSeq();
    await assert.rejects(
      h.client.predict("question -> answer", { question: "q" }, { pool: "nosuchpool" as never }),
      (err: unknown) => {
        assert.ok(err instanceof ValidationError, String(err));
        assert.equal(err.field, "pool");
        assert.match(err.message, /unknown pool "nosuchpool"; pools: general, optimizer, gpu/);
        return true;
      },
    );
    await assert.rejects(h.client.predict("question -> answer: string", { question: "q" }), (err: unknown) => {
      assert.ok(err instanceof SignatureError);
      assert.equal(err.field, "answer");
      assert.equal(err.details?.position, 20);
      assert.match(err.message, /unknown type 'string'.*did you mean str/s);
      return true;
    });
    const sig = "question: str, n: int -> answer";
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ question: "q" }, "n", /missing input 'n' \(int\)/],
      [{ question: "q", n: 1, extra: 2 }, "extra", /unexpected input 'extra'/],
      [{ question: "q", n: "x" }, "n", /expected int, got string "x"/],
    ];
    for (const [inputs, field, message] of cases) {
      await assert.rejects(h.client.predict(sig, inputs), (err: unknown) => {
        assert.ok(err instanceof ValidationError, String(err));
        assert.equal(err.field, field);
        assert.match(err.message, message);
        return true;
      });
    }
    await assert.rejects(h.client.predict("question -> answer", { question: "x".repeat(2 * 1024 * 1024) }), (err: unknown) => {
      assert.ok(err instanceof PayloadTooLarge, String(err));
      assert.equal(err.type, "PayloadTooLarge");
      assert.equal(err.field, "inputs");
      assert.equal(err.details?.limit, 1024 * 1024);
      return true;
    });
    // the size is checked before any validation: a huge value is refused for its size, not parsed
    await assert.rejects(h.client.predict(sig, { question: "q", n: "[".repeat(2 * 1024 * 1024) }), (err: unknown) => {
      assert.ok(err instanceof PayloadTooLarge, `size before validation: ${String(err)}`);
      return true;
    });
    assert.equal(await lastSeq(), before, "nothing was published");
  });

  test("a request published by hand to an unknown pool is refused by JetStream, not stored unconsumed", async () => {
    const before = await lastSeq();
    const h2 = natsHeaders();
    h2.set("Nats-Msg-Id", "nosuchpool-1");
    await assert.rejects(
      jetstream(h.client.nc).publish("dspex.req.nosuchpool.any", encode(requestBody()), { headers: h2, timeout: 2_000 }),
      (err: unknown) => {
        assert.match(String((err as Error).name), /JetStreamNotEnabled|NoResponders|RequestError/);
        return true;
      },
    );
    // A plain (core) publish is dropped by the server: no stream captures the subject.
    h.client.nc.publish("dspex.req.nosuchpool.any", encode(requestBody()));
    await h.client.nc.flush();
    assert.equal(await lastSeq(), before);
    const subjects = (await jsm.streams.info(STREAMS.requests.name)).config.subjects;
    assert.deepEqual(subjects, ["dspex.req.general.>", "dspex.req.optimizer.>", "dspex.req.gpu.>"]);
  });

  test("undecodable msgpack: DecodeError reply (field body), then dead-lettered with the reason and the body", async () => {
    const garbage = new Uint8Array([0xc1, 0x00, 0xff]);
    const r = await handRequest(h.client.nc, { body: garbage });
    const error = errorOf(await r.reply);
    assert.equal(error.type, "DecodeError");
    assert.equal(error.field, "body");
    assert.equal(error.retryable, false);
    assert.match(error.message, /not valid msgpack/);
    const event = await dead.forSeq(r.ack.seq);
    assert.equal(event.kind, "terminated");
    const entry = await getDeadLetter(jsm, event.dlqSeq);
    assert.ok(entry);
    assert.equal(entry.kind, "terminated");
    assert.match(entry.reason, /^DecodeError: request body is not valid msgpack/);
    assert.deepEqual([...entry.body], [...garbage], "the original body is kept");
    assert.equal(entry.originalSeq, r.ack.seq);
    assert.equal(entry.originalSubject, "dspex.req.general.any");
    assert.equal(entry.requestId, r.id);
    assert.equal(entry.subject, "dspex.dlq.general");
    assert.equal(entry.headers["Dspex-Dlq-By"]?.startsWith("general-"), true, "the worker made the copy");
    assert.equal(await jsm.streams.getMessage(STREAMS.requests.name, { seq: r.ack.seq }), null, "gone from the work queue");
  });

  test("wrong envelope version: VersionError (field v), dead-lettered", async () => {
    const r = await handRequest(h.client.nc, { body: requestBody({ v: 2 }) });
    const error = errorOf(await r.reply);
    assert.equal(error.type, "VersionError");
    assert.equal(error.field, "v");
    assert.match(error.message, /unsupported envelope version 2; this worker speaks v1/);
    assert.match((await dead.forSeq(r.ack.seq)).reason, /^VersionError: unsupported envelope version 2/);
  });

  test("unknown operation, bad signature map, bad inputs, unknown LM option: typed replies naming the field", async () => {
    const cases: Array<[Record<string, unknown>, string, string, RegExp]> = [
      [requestBody({ op: "fly" }), "UnknownOperation", "op", /unknown operation 'fly'/],
      [
        requestBody({ signature: { inputs: [{ name: "question", type: { kind: "string" } }], outputs: [{ name: "answer", type: { kind: "str" } }] } }),
        "ValidationError",
        "signature.inputs[0].type.kind",
        /string/,
      ],
      [requestBody({ inputs: {} }), "ValidationError", "question", /missing input 'question' \(str\)/],
      [requestBody({ inputs: { question: "q", extra: 1 } }), "ValidationError", "extra", /unexpected input 'extra'/],
      [
        requestBody({
          signature: { inputs: [{ name: "n", type: { kind: "int" } }], outputs: [{ name: "answer", type: { kind: "str" } }] },
          inputs: { n: "abc" },
          lm: h.lm,
        }),
        "ValidationError",
        "n",
        /input .n.: Input should be a valid integer/,
      ],
      [requestBody({ lm: { model: "openai/x", bogus: 1 } }), "LMConfigError", "lm.bogus", /unknown LM option\(s\): bogus/],
    ];
    const replies = await Promise.all(cases.map(([body]) => handRequest(h.client.nc, { body }).then((r) => r.reply)));
    cases.forEach(([, type, field, message], i) => {
      const error = errorOf(replies[i]);
      assert.equal(error.type, type, JSON.stringify(error));
      assert.equal(error.field, field, JSON.stringify(error));
      assert.match(error.message, message);
    });
    assert.equal(dead.events.length, 2, "only the two undecodable requests were dead-lettered so far");
  });

  test("an LM map that breaks the contract: ValidationError naming lm.model, nothing published", async () => {
    const before = await lastSeq();
    await assert.rejects(
      h.client.predict("question -> answer", { question: "q" }, { lm: { model: "gpt-4o-mini" } }),
      (err: unknown) => {
        assert.ok(err instanceof ValidationError, String(err));
        assert.equal(err.field, "lm.model");
        assert.match(err.message, /`lm.model` must match pattern/);
        return true;
      },
    );
    assert.equal(await lastSeq(), before);
  });

  test("LM output DSPy cannot parse: LMOutputError, not retried", async () => {
    const seen = h.lmDouble.requests().length;
    h.lmDouble.control.failAll("malformed");
    try {
      await assert.rejects(h.client.predict("question -> answer: int", { question: "q" }), (err: unknown) => {
        assert.ok(err instanceof LMOutputError);
        assert.equal(err.type, "LMOutputError");
        assert.equal(err.retryable, false);
        return true;
      });
    } finally {
      h.lmDouble.control.clearFailure();
    }
    // ChatAdapter, then its JSONAdapter fallback: one attempt, two LM requests, no retry.
    assert.equal(h.lmDouble.requests().length - seen, 2);
  });

  test("an exception in the worker (an LM answer the reply cannot carry): WorkerError naming outputs", async () => {
    h.lmDouble.control.setRules([
      { field: "question", match: "huge", reply: "[[ ## answer ## ]]\n99999999999999999999999999\n\n[[ ## completed ## ]]" },
    ]);
    try {
      await assert.rejects(h.client.predict("question -> answer: int", { question: "huge" }), (err: unknown) => {
        assert.ok(err instanceof WorkerError, String(err));
        assert.equal(err.type, "WorkerError");
        assert.equal(err.field, "outputs");
        assert.match(err.message, /the reply could not be encoded: OverflowError/);
        return true;
      });
    } finally {
      h.lmDouble.control.clearRules();
    }
  });

  test("a timeout_ms of +Infinity (valid msgpack, no integer) is a ValidationError naming it; the worker carries on", async () => {
    // It used to get past the worker's hand-written checks and break decoding (a poison); the envelope is now
    // checked against the schema as a whole.
    const r = await handRequest(h.client.nc, { body: requestBody({ timeout_ms: Number.POSITIVE_INFINITY }) });
    const error = errorOf(await r.reply);
    assert.equal(error.type, "ValidationError");
    assert.equal(error.field, "timeout_ms");
    assert.match(error.message, /must be integer/);
  });

  test("no reply subject: terminated and dead-lettered; replayed from the DLQ it is answered", async () => {
    const body = requestBody({ inputs: { question: "What is 3+4?" }, lm: h.lm });
    const r = await handRequest(h.client.nc, { body, replyTo: null });
    const event = await dead.forSeq(r.ack.seq);
    assert.equal(event.kind, "terminated");
    assert.match(event.reason, /^no Dspex-Reply-To header/);
    const replay = await replayDeadLetter(h.admin, event.dlqSeq, { waitMs: 30_000 });
    assert.equal(replay.subject, "dspex.req.general.any");
    assert.match(replay.id, new RegExp(`^${r.id}#replay-[0-9a-f]{8}$`));
    assert.ok(replay.reply?.ok, JSON.stringify(replay));
    assert.equal(replay.reply.id, replay.id);
    assert.deepEqual((replay.reply as { outputs: unknown }).outputs, { answer: "7" });
  });

  test("dspex dlq list / show / replay from the command line", async () => {
    const cli = join(ROOT, "services/cli/src/cli.ts");
    const env = { ...process.env, NATS_URL: h.fleet.natsUrl, NATS_CREDS: h.fleet.creds.admin };
    const node = [process.execPath, "--conditions=development", "--import", "tsx", cli];
    const { stdout } = await run(node[0]!, [...node.slice(1), "dlq", "list", "--json"], { env, timeout: 30_000 });
    const listed = JSON.parse(stdout) as Array<{ seq: number; kind: string; reason: string }>;
    assert.deepEqual(
      listed.map((e) => e.reason.split(":")[0]),
      ["DecodeError", "VersionError", "no Dspex-Reply-To header"],
    );
    assert.equal((await listDeadLetters(jsm)).length, 3);
    const last = listed.at(-1)!;
    const shown = await run(node[0]!, [...node.slice(1), "dlq", "show", String(last.seq)], { env, timeout: 30_000 });
    assert.match(shown.stdout, /reason: +no Dspex-Reply-To header/);
    assert.match(shown.stdout, /"question": "What is 3\+4\?"/);
    const replayed = await run(node[0]!, [...node.slice(1), "dlq", "replay", String(last.seq), "--wait", "--json"], {
      env,
      timeout: 60_000,
    });
    const [result] = JSON.parse(replayed.stdout) as Array<{ reply?: { ok: boolean; outputs?: unknown } }>;
    assert.equal(result?.reply?.ok, true);
    assert.deepEqual(result?.reply?.outputs, { answer: "7" });
    assert.equal((await jsm.streams.info(STREAMS.deadLetters.name)).state.messages, 3, "replay keeps the dead letter");
  });

  test("after all of it the same worker process is up and answers", async () => {
    const ok = await h.client.predict("question -> answer", { question: "What is 2+2?" });
    assert.equal(ok.outputs.answer, "4");
    assert.equal(h.fleet.workers.length, 1);
    assert.equal(h.fleet.workers[0]?.process.pid, workerPid, "never restarted");
    assert.equal(h.fleet.workers[0]?.process.exitCode, null);
  });
});
