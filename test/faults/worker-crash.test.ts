/**
 * Worker crashes against real processes (docs/reliability.md): `kill -9` of the worker running a request
 * (two workers, AckWait 1.5 s, MaxDeliver 2). The request is redelivered to another worker and the caller
 * gets exactly one answer; a request that crashes every worker that takes it exhausts its deliveries, is
 * dead-lettered (copied to DSPEX_DLQ with its reason, deleted from the work queue) and its caller told at once.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { STREAMS, WorkerError, decode } from "@dspex/protocol";
import type { PoolSettings } from "@dspex/bus";
import { getDeadLetter, replayDeadLetter } from "@dspex/dlq";
import type { WorkerProcess } from "@dspex/embedded";
import { startHarness, type Harness } from "../integration/harness.js";
import { DeadLetters, until } from "./helpers.js";

const POOLS = { general: { ackWaitMs: 1_500, maxDeliver: 2 } satisfies Partial<PoolSettings> };

describe("worker crashes (kill -9)", { timeout: 150_000 }, () => {
  let h: Harness;
  const dead = new DeadLetters();

  before(async () => {
    h = await startHarness({
      fleet: { workers: { general: 2 }, bus: { pools: POOLS }, dlq: { onDeadLetter: dead.onDeadLetter } },
      client: { bus: { pools: POOLS }, lane: "durable" }, // redelivery is the durable lane's (lanes.test.ts: the direct lane's)
    });
  });
  after(async () => {
    await h?.close();
  });

  /** The worker process that is running a request right now (from the workers' own status endpoints). */
  async function busyWorker(): Promise<WorkerProcess> {
    for (let i = 0; i < 100; i++) {
      for (const w of [...h.fleet.workers]) {
        try {
          const reply = await h.client.nc.request(`dspex.worker.${w.id}.status`, undefined, { timeout: 1_000 });
          if (reply.json<{ inflight: number }>().inflight > 0) return w;
        } catch {
          // starting or gone
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error("no worker is running a request");
  }

  async function killBusy(): Promise<string> {
    const w = await busyWorker();
    w.process.kill("SIGKILL");
    await w.exited;
    return w.id;
  }

  test("kill -9 mid-request: redelivered to another worker, the caller gets exactly one answer", async () => {
    const seen = h.lmDouble.requests().length;
    const dropped = { ...h.client.snapshot().droppedReplies };
    h.lmDouble.control.setLatency(3_000);
    try {
      const call = h.client.predict("question -> answer", { question: "What is 7*6?" }, { timeoutMs: 30_000 });
      await h.lmDouble.waitForRequests(seen + 1);
      const killed = await killBusy();
      const result = await call;
      assert.equal(result.outputs.answer, "42");
      assert.notEqual(result.worker, killed, "answered by another worker");
      const asked = h.lmDouble.requests().slice(seen).map((r) => r.prompt?.inputs.question);
      assert.deepEqual(asked, ["What is 7*6?", "What is 7*6?"], "run once per delivery: the killed one never replied");
      assert.deepEqual(h.client.snapshot().droppedReplies, dropped, "no second reply reached the client");
    } finally {
      h.lmDouble.control.setLatency(0);
    }
  });

  test("a request that crashes every worker that takes it: MaxDeliver, dead-lettered, its caller told at once", async () => {
    const jsm = await jetstreamManager(h.admin);
    const seen = h.lmDouble.requests().length;
    h.lmDouble.control.failAll("hang");
    const t0 = Date.now();
    try {
      const call = h.client.predict("question -> answer", { question: "poison" }, { timeoutMs: 60_000 });
      call.catch(() => {});
      await h.lmDouble.waitForRequests(seen + 1, { timeoutMs: 30_000 });
      await killBusy(); // delivery 1
      await h.lmDouble.waitForRequests(seen + 2, { timeoutMs: 30_000 });
      await killBusy(); // delivery 2 = MaxDeliver
      await assert.rejects(call, (err: unknown) => {
        assert.ok(err instanceof WorkerError, String(err));
        assert.equal(err.type, "WorkerError");
        assert.equal(err.retryable, false);
        assert.match(err.message, /^request dead-lettered: delivered 2 times \(MaxDeliver of consumer general\) without being acknowledged/);
        return true;
      });
      assert.ok(Date.now() - t0 < 30_000, "told well before its own 60 s timeout");
      const event = dead.events.find((e) => e.kind === "max_deliveries");
      assert.ok(event, "dead-letter event");
      assert.equal(event.recorded, true);
      const entry = await getDeadLetter(jsm, event.dlqSeq);
      assert.ok(entry);
      assert.equal(entry.kind, "max_deliveries");
      assert.equal(entry.deliveries, 2);
      assert.equal(entry.consumer, "general");
      assert.equal(entry.originalSubject, "dspex.req.general.any");
      // by default the DLQ keeps the request's shape, not what it said (docs/security.md)
      assert.equal(entry.redacted, true);
      assert.ok(!Buffer.from(entry.body).includes("poison"), "the input's text is not in the DLQ");
      const body = decode(entry.body) as { redacted: boolean; id: string; op: string; pool: string; fields: Record<string, { type: string; bytes: number }> };
      assert.deepEqual(body.fields, { question: { type: "str", bytes: 1 + "poison".length } });
      assert.equal(body.op, "predict");
      assert.equal(body.pool, "general");
      assert.equal(entry.requestId, body.id);
      await assert.rejects(replayDeadLetter(h.admin, event.dlqSeq), (err: Error & { field?: string }) => err.field === "seq" && /DSPEX_DLQ_KEEP_INPUTS/.test(err.message));
      assert.equal(await jsm.streams.getMessage(STREAMS.requests.name, { seq: event.originalSeq }), null, "deleted from the work queue");
      assert.equal(h.lmDouble.requests().length - seen, 2, "never run a third time");
    } finally {
      h.lmDouble.control.clearFailure();
    }
    // The supervisor replaced the killed workers; the pool serves again.
    await until(() => h.fleet.workers.length >= 2, 30_000);
    await Promise.all(h.fleet.workers.map((w) => w.ready));
    const ok = await h.client.predict("question -> answer", { question: "What is 1+2?" }, { timeoutMs: 60_000 });
    assert.equal(ok.outputs.answer, "3");
  });
});
