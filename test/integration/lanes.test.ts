/**
 * The two delivery lanes (services/client/src/lanes, docs/performance.md, docs/reliability.md) on a real fleet:
 * two general workers running real dspy, the LM double as their default profile. Each lane is shown to do the
 * same things — success, a typed error reply, no workers, a deadline with no reply, the LM breaker — and to be
 * the lane it says: a durable call is stored in DSPEX_REQ, a direct one is not. Then what only the direct lane
 * does: heartbeats keep a long call alive, a killed worker fails its caller with TransportError (details.lost)
 * long before the deadline, sessions reach the worker owning their partition, and a pool whose workers vanished
 * after discovery saw them answers NoWorkersError.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import {
  CircuitOpenError,
  DeadlineExceeded,
  LMError,
  LMOutputError,
  NoWorkersError,
  STREAMS,
  TransportError,
  ValidationError,
  partitionOf,
} from "@dspex/protocol";
import { Client, lmKey, type Lane } from "@dspex/client";
import type { WorkerProcess } from "@dspex/embedded";
import { startHarness, type Harness } from "./harness.js";

const LANES: Lane[] = ["durable", "direct"];

describe("delivery lanes", { timeout: 240_000 }, () => {
  let h: Harness;
  let jsm: JetStreamManager;
  const clients: Client[] = [];

  before(async () => {
    h = await startHarness({
      fleet: { workers: { general: 2 } },
      client: { direct: { heartbeatMs: 200, lostAfterMs: 1_500 }, retry: { maxAttempts: 1 } },
    });
    jsm = await jetstreamManager(h.admin);
    // both workers answer discovery, and the partition assignment counts them both
    await h.client.discovery.refresh();
  });
  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await h?.close();
  });

  const lastSeq = async () => (await jsm.streams.info(STREAMS.requests.name)).state.last_seq;
  const ask = (lane: Lane, question: string, extra: Record<string, unknown> = {}) =>
    h.client.predict<{ answer: string }>("question -> answer", { question }, { lane, ...extra });

  for (const lane of LANES) {
    describe(`${lane} lane`, () => {
      test("success, and the lane is the one asked for (a durable call is stored, a direct one is not)", async () => {
        const seq = await lastSeq();
        const result = await ask(lane, "What is 2+2?");
        assert.equal(result.outputs.answer, "4");
        assert.ok(h.fleet.workers.some((w) => w.id === result.worker), result.worker);
        assert.equal((await lastSeq()) - seq, lane === "durable" ? 1 : 0);
      });

      test("an error reply is its typed error; a bad input is refused before anything is sent", async () => {
        h.lmDouble.control.failAll("malformed"); // every answer: DSPy's JSONAdapter fallback gets one too
        try {
          await assert.rejects(ask(lane, "unparseable"), (err: unknown) => err instanceof LMOutputError && err.type === "LMOutputError");
        } finally {
          h.lmDouble.control.clearFailure();
        }
        const seq = await lastSeq();
        await assert.rejects(h.client.predict("question -> answer", {}, { lane }), (err: unknown) => {
          assert.ok(err instanceof ValidationError);
          assert.equal(err.field, "question");
          return true;
        });
        assert.equal(await lastSeq(), seq);
      });

      test("a pool without workers: NoWorkersError at once", async () => {
        await assert.rejects(ask(lane, "anyone?", { pool: "optimizer" }), NoWorkersError);
      });

      test("no reply before the deadline: DeadlineExceeded", async () => {
        const dropped = h.client.snapshot().droppedReplies.late;
        h.lmDouble.control.failNext("hang");
        await assert.rejects(ask(lane, "hangs", { timeoutMs: 1_000 }), (err: unknown) => {
          assert.ok(err instanceof DeadlineExceeded, String(err));
          assert.match(err.message, /no reply within 1000 ms/);
          return true;
        });
        // the worker's own DeadlineExceeded reply comes after and is dropped as late
        const start = Date.now();
        while (h.client.snapshot().droppedReplies.late === dropped && Date.now() - start < 10_000) await new Promise((r) => setTimeout(r, 50));
        assert.equal(h.client.snapshot().droppedReplies.late, dropped + 1);
      });

      test("the LM breaker opens on failing LM calls; open, it fails fast and sends nothing", async () => {
        const client = await Client.connect({
          servers: h.fleet.natsUrl,
          creds: h.fleet.creds.client,
          lm: h.lm,
          lane,
          retry: { maxAttempts: 1 },
          breakers: { all: { volumeThreshold: 3, errorThresholdPercentage: 50 }, lm: { resetTimeoutMs: 60_000 } },
        });
        clients.push(client);
        const name = `lm:${lmKey(h.lm)}`;
        h.lmDouble.control.failAll("http500");
        try {
          for (let i = 0; client.breakers.find(name)?.state !== "open"; i++) {
            assert.ok(i < 10, "the breaker never opened");
            await assert.rejects(client.predict("question -> answer", { question: `failing ${i}` }), LMError);
          }
          const seen = h.lmDouble.requests().length;
          const seq = await lastSeq();
          await assert.rejects(client.predict("question -> answer", { question: "while open" }), (err: unknown) => {
            assert.ok(err instanceof CircuitOpenError);
            assert.equal(err.details?.breaker, name);
            return true;
          });
          assert.equal(h.lmDouble.requests().length, seen, "the LM saw nothing");
          assert.equal(await lastSeq(), seq, "nothing was stored");
        } finally {
          h.lmDouble.control.clearFailure();
        }
      });
    });
  }

  test("auto: predict and chain_of_thought without a session go direct; a session goes durable", async () => {
    assert.equal(h.client.lane, "auto");
    const seq = await lastSeq();
    await h.client.predict("question -> answer", { question: "What is 1+1?" });
    await h.client.chainOfThought("question -> answer", { question: "What is 1+2?" });
    assert.equal(await lastSeq(), seq, "interactive calls were not stored");
    await h.client.predict("question -> answer", { question: "What is 1+3?" }, { session: "auto-session" });
    assert.equal((await lastSeq()) - seq, 1, "the session's call was");
    await assert.rejects(h.client.predict("question -> answer", { question: "x" }, { lane: "carrier-pigeon" as Lane }), (err: unknown) => {
      assert.ok(err instanceof ValidationError);
      assert.equal(err.field, "lane");
      return true;
    });
  });

  test("direct: heartbeats keep a call that runs longer than the silence window alive", async () => {
    h.lmDouble.control.setLatency(3_000); // twice the client's 1.5 s silence window, heartbeats every 200 ms
    try {
      const result = await ask("direct", "What is 3+4?", { timeoutMs: 20_000 });
      assert.equal(result.outputs.answer, "7");
      assert.ok(result.timings.exec_ms >= 3_000);
    } finally {
      h.lmDouble.control.setLatency(0);
    }
  });

  test("direct: sessions reach the worker that owns their partition, the same worker the durable lane reaches", async () => {
    const partitions = h.client.pools.general.partitions;
    // two sessions in different partitions, so that with two workers both owners are exercised
    const sessions = Array.from({ length: 40 }, (_, i) => `lane-session-${i}`);
    const byPartition = new Map<number, string>();
    for (const s of sessions) byPartition.set(partitionOf(s, partitions), s);
    for (const session of [...byPartition.values()].slice(0, 6)) {
      const durable = await ask("durable", "What is 5+5?", { session });
      for (let i = 0; i < 3; i++) {
        const direct = await ask("direct", "What is 5+5?", { session });
        assert.equal(direct.worker, durable.worker, `session ${session}: the partition's owner answers on both lanes`);
      }
    }
  });

  test("direct: a worker killed mid-request fails its caller with TransportError (lost) long before the deadline", async () => {
    h.lmDouble.control.setLatency(60_000);
    const seen = h.lmDouble.requests().length;
    let killed: WorkerProcess | undefined;
    try {
      const call = ask("direct", "What is 9+9?", { timeoutMs: 60_000 });
      call.catch(() => {});
      await h.lmDouble.waitForRequests(seen + 1);
      for (const w of h.fleet.workers) {
        const status = (await h.client.nc.request(`dspex.worker.${w.id}.status`, undefined, { timeout: 2_000 })).json<{ inflight: number }>();
        if (status.inflight > 0) killed = w;
      }
      assert.ok(killed, "a worker runs the request");
      const t0 = Date.now();
      killed.process.kill("SIGKILL");
      await assert.rejects(call, (err: unknown) => {
        assert.ok(err instanceof TransportError, String(err));
        assert.equal(err.details?.lost, true);
        assert.equal(err.details?.lane, "direct");
        // named once a heartbeat came (the kill may come before the first one)
        if (err.details?.worker !== undefined) assert.equal(err.details.worker, killed!.id);
        return true;
      });
      assert.ok(Date.now() - t0 < 30_000, "well before the 60 s deadline");
      assert.equal(h.client.snapshot().lostDirect, 1);
    } finally {
      h.lmDouble.control.setLatency(0);
    }
    // the supervisor restarts it; the other worker serves meanwhile
    const ok = await ask("direct", "What is 1+6?");
    assert.equal(ok.outputs.answer, "7");
    assert.notEqual(ok.worker, killed!.id);
  });

  test("direct: workers gone since discovery saw them: NoWorkersError from the server's no-responders, and discovery asks again", async () => {
    const ghost = `ghost-${process.pid}`;
    h.client.discovery.sawWorker(ghost, "optimizer"); // presumed alive: discovery lets the call through
    await assert.rejects(ask("direct", "anyone?", { pool: "optimizer" }), (err: unknown) => {
      assert.ok(err instanceof NoWorkersError, String(err));
      assert.equal(err.details?.lane, "direct");
      return true;
    });
    assert.equal(await h.client.discovery.hasWorkers("optimizer"), false, "the ghost was forgotten");
  });
});
