/**
 * Long work and deadlines against real processes (docs/reliability.md). AckWait is 2 s here
 * (DSPEX_GENERAL_ACK_WAIT_MS), far shorter than the work:
 *  - in-progress acks keep a 5 s LM call from being redelivered (exactly one LM request);
 *  - a redelivery that arrives while the first delivery still runs on the same worker joins it (one LM call);
 *  - the deadline travels in Dspex-Deadline: work whose deadline passed before it started, or while it ran,
 *    is answered DeadlineExceeded;
 *  - a worker slowed past the caller's deadline: the caller gets DeadlineExceeded, the late reply is dropped.
 */
process.env.DSPEX_GENERAL_ACK_WAIT_MS = "2000";

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { STREAMS, DeadlineExceeded, type ReplyErr } from "@dspex/protocol";
import { startHarness, type Harness } from "../integration/harness.js";
import { handRequest, requestBody, until } from "./helpers.js";

describe("long work and deadlines (AckWait 2 s)", { timeout: 120_000 }, () => {
  let h: Harness;

  before(async () => {
    h = await startHarness({ client: { lane: "durable" } }); // the durable lane's guarantees (lanes.test.ts: both)
  });
  after(async () => {
    await h?.close();
  });

  const consumer = async () => (await jetstreamManager(h.admin)).consumers.info(STREAMS.requests.name, "general");
  const workerStatus = async () => {
    const w = h.fleet.workers[0]!;
    const reply = await h.client.nc.request(`dspex.worker.${w.id}.status`, undefined, { timeout: 2_000 });
    return reply.json<{ reliability: { redelivered: number; memory: { hits: number; joined: number } } }>();
  };

  test("the consumer's ack wait is 2 s and BackOff starts at it", async () => {
    const c = (await consumer()).config;
    assert.equal(c.ack_wait, 2_000_000_000);
    assert.deepEqual(c.backoff, [2e9, 4e9, 8e9, 16e9]);
    assert.equal(c.max_deliver, 5);
  });

  test("in-progress acks: a 5 s LM call under a 2 s AckWait is not redelivered", async () => {
    h.lmDouble.control.setLatency(5_000);
    try {
      const seen = h.lmDouble.requests().length;
      const redelivered = (await consumer()).num_redelivered;
      const result = await h.client.predict("question -> answer", { question: "What is 6+1?" }, { timeoutMs: 20_000 });
      assert.equal(result.outputs.answer, "7");
      assert.ok(result.timings.exec_ms >= 5_000, `exec ${result.timings.exec_ms} ms`);
      assert.equal(h.lmDouble.requests().length - seen, 1, "exactly one LM call");
      assert.equal((await consumer()).num_redelivered, redelivered, "no redelivery");
    } finally {
      h.lmDouble.control.setLatency(0);
    }
  });

  test("a redelivery that arrives while the request still runs on the same worker joins it, not rerun", async () => {
    const worker = h.fleet.workers[0]!;
    const before = await workerStatus();
    const dropped = { ...h.client.snapshot().droppedReplies };
    const seen = h.lmDouble.requests().length;
    h.lmDouble.control.setLatency(6_000);
    try {
      const call = h.client.predict("question -> answer", { question: "What is 8+1?" }, { timeoutMs: 30_000 });
      await h.lmDouble.waitForRequests(seen + 1);
      // Freeze the worker past AckWait: no in-progress acks, so JetStream redelivers the request (when the
      // worker pulls again: nothing is observable before that, hence a plain wait of AckWait + 1 s).
      worker.process.kill("SIGSTOP");
      await new Promise((r) => setTimeout(r, 3_000));
      worker.process.kill("SIGCONT");
      const result = await call;
      assert.equal(result.outputs.answer, "9");
      const afterStatus = await workerStatus();
      assert.equal(afterStatus.reliability.redelivered - before.reliability.redelivered, 1, "one redelivery");
      assert.equal(afterStatus.reliability.memory.joined - before.reliability.memory.joined, 1, "joined the running one");
      assert.equal(afterStatus.reliability.memory.hits - before.reliability.memory.hits, 1, "answered from memory");
      assert.equal(h.lmDouble.requests().length - seen, 1, "the LM was called once");
      // Both deliveries answered (the second from memory): the client surfaced one, dropped the other.
      await until(() => h.client.snapshot().droppedReplies.duplicate === dropped.duplicate + 1, 10_000);
    } finally {
      worker.process.kill("SIGCONT");
      h.lmDouble.control.setLatency(0);
    }
  });

  test("a deadline that passed before the work started: DeadlineExceeded, the LM is not called", async () => {
    const seen = h.lmDouble.requests().length;
    const r = await handRequest(h.client.nc, { body: requestBody({ lm: h.lm }), deadline: Date.now() - 1_000 });
    const reply = (await r.reply) as ReplyErr;
    assert.equal(reply.ok, false);
    assert.equal(reply.error.type, "DeadlineExceeded");
    assert.equal(reply.error.retryable, false);
    assert.match(reply.error.message, /^deadline passed \d+ ms before the work started$/);
    assert.equal(h.lmDouble.requests().length, seen);
  });

  test("a deadline that passes while the program runs: DeadlineExceeded at the deadline", async () => {
    h.lmDouble.control.setLatency(10_000);
    try {
      const t0 = Date.now();
      const r = await handRequest(h.client.nc, { body: requestBody({ lm: h.lm }), deadline: t0 + 1_500 });
      const reply = (await r.reply) as ReplyErr;
      const elapsed = Date.now() - t0;
      assert.equal(reply.error.type, "DeadlineExceeded");
      assert.equal(reply.error.message, "deadline passed while the program was running");
      assert.ok(elapsed >= 1_400 && elapsed < 4_000, `answered after ${elapsed} ms`);
    } finally {
      h.lmDouble.control.setLatency(0);
    }
  });

  test("a worker slowed past the caller's deadline: DeadlineExceeded, and its late reply is dropped", async () => {
    const worker = h.fleet.workers[0]!;
    const dropped = { ...h.client.snapshot().droppedReplies };
    const seen = h.lmDouble.requests().length;
    h.lmDouble.control.failAll("hang");
    try {
      const call = h.client.predict("question -> answer", { question: "slow" }, { timeoutMs: 800, retry: false });
      await h.lmDouble.waitForRequests(seen + 1);
      worker.process.kill("SIGSTOP"); // the worker can do nothing until after the deadline
      await assert.rejects(call, (err: unknown) => {
        assert.ok(err instanceof DeadlineExceeded, String(err));
        assert.match(err.message, /^no reply within 8\d\d ms/);
        assert.notEqual(err.details?.source, "worker", "the client's own timeout");
        return true;
      });
      worker.process.kill("SIGCONT");
      // The worker wakes up past the deadline and answers DeadlineExceeded: the client drops it as late.
      await until(() => h.client.snapshot().droppedReplies.late === dropped.late + 1, 10_000);
      assert.equal(h.client.snapshot().droppedReplies.duplicate, dropped.duplicate);
    } finally {
      worker.process.kill("SIGCONT");
      h.lmDouble.control.clearFailure();
    }
    const ok = await h.client.predict("question -> answer", { question: "What is 2+2?" });
    assert.equal(ok.outputs.answer, "4");
  });
});
