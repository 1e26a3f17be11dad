/**
 * Circuit breakers and retries against real processes (docs/reliability.md): the LM provider failing
 * (the LM double answering HTTP 500) opens the LM breaker, calls then fail fast with CircuitOpenError and
 * reach neither the bus nor the LM, a half-open probe closes it once the provider recovers; errors that say
 * nothing about the provider's health do not count; a pool with no workers opens its pool breaker; an open
 * breaker falls back to a native implementation when the call has one; retryable error replies are retried
 * with derived ids. Breaker timings are configured short, and the tests wait on state-change events.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { CircuitOpenError, LMError, LMOutputError, NoWorkersError, STREAMS, ValidationError } from "@dspex/protocol";
import { lmKey } from "@dspex/client";
import { startHarness, type Harness } from "../integration/harness.js";

describe("circuit breakers and retries", { timeout: 120_000 }, () => {
  let h: Harness;
  let jsm: JetStreamManager;
  let lmName: string;

  before(async () => {
    h = await startHarness({
      client: {
        breakers: {
          all: { volumeThreshold: 4, errorThresholdPercentage: 50, rollingWindowMs: 10_000, rollingBuckets: 10 },
          lm: { resetTimeoutMs: 1_500 },
          pool: { resetTimeoutMs: 60_000 },
        },
        retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100 },
        lane: "durable", // what was published is read from the stream; lanes.test.ts runs the breakers on both lanes
      },
    });
    jsm = await jetstreamManager(h.admin);
    lmName = `lm:${lmKey(h.lm)}`;
  });
  after(async () => {
    await h?.close();
  });

  const ask = (question: string, extra: Record<string, unknown> = {}) =>
    h.client.predict("question -> answer", { question }, { retry: false, ...extra });
  const lastSeq = async () => (await jsm.streams.info(STREAMS.requests.name).then((i) => i.state.last_seq));

  test("a retryable error reply is retried as new attempts <id>#2, <id>#3 until it succeeds", async () => {
    const published: string[] = [];
    const spy = h.admin.subscribe("dspex.req.general.any", {
      callback: (_e, m) => void published.push(m.headers?.get("Nats-Msg-Id") ?? "?"),
    });
    await h.admin.flush(); // the spy is subscribed before the client publishes
    const seen = h.lmDouble.requests().length;
    const retries = h.client.counts.retries;
    h.lmDouble.control.failNext("http500", 2);
    const result = await h.client.predict("question -> answer", { question: "What is 5+5?" });
    spy.unsubscribe();
    assert.equal(result.outputs.answer, "10");
    assert.equal(h.lmDouble.requests().length - seen, 3, "three LM calls: two failed, one answered");
    assert.deepEqual(published, [result.id, `${result.id}#2`, `${result.id}#3`]);
    assert.equal(h.client.counts.retries - retries, 2);
  });

  test("errors that say nothing about the provider's health do not count", async () => {
    const before = h.client.breakers.find(lmName)!.snapshot();
    for (let i = 0; i < 6; i++) {
      await assert.rejects(h.client.predict("question -> answer", {}), ValidationError);
    }
    h.lmDouble.control.failAll("malformed");
    try {
      for (let i = 0; i < 5; i++) {
        await assert.rejects(ask(`unparseable ${i}`), (err: unknown) => err instanceof LMOutputError);
      }
    } finally {
      h.lmDouble.control.clearFailure();
    }
    const lm = h.client.breakers.find(lmName)!.snapshot();
    assert.equal(lm.state, "closed");
    assert.equal(lm.window.failures, before.window.failures, "no failure recorded");
    assert.equal(lm.window.calls - before.window.calls, 5, "validation errors are not recorded; LMOutputError is the LM answering");
  });

  test("LM provider failing: the breaker opens, calls fail fast without reaching the bus or the LM, a probe closes it", async () => {
    const breakers = h.client.breakers;
    const opened = breakers.waitFor(lmName, "open", 30_000);
    h.lmDouble.control.failAll("http500");
    let failures = 0;
    try {
      // The window holds successes from the tests before; failures are recorded until more than half fail.
      while (breakers.find(lmName)?.state !== "open") {
        await assert.rejects(ask(`failing ${failures}`), (err: unknown) => {
          assert.ok(err instanceof LMError, String(err));
          assert.equal(err.retryable, true);
          return true;
        });
        failures += 1;
        assert.ok(failures < 50, "the breaker never opened");
      }
      await opened;
      const snap = breakers.find(lmName)!.snapshot();
      assert.ok(snap.window.failures * 100 > snap.window.calls * 50, JSON.stringify(snap));

      const lmSeen = h.lmDouble.requests().length;
      const seq = await lastSeq();
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        await assert.rejects(ask(`while open ${i}`), (err: unknown) => {
          assert.ok(err instanceof CircuitOpenError, String(err));
          assert.equal(err.type, "CircuitOpenError");
          assert.equal(err.details?.breaker, lmName);
          assert.equal(err.details?.state, "open");
          return true;
        });
        assert.ok(performance.now() - t0 < 50, "fails fast");
      }
      assert.equal(h.lmDouble.requests().length, lmSeen, "the LM saw no request while the breaker was open");
      assert.equal(await lastSeq(), seq, "nothing was published while the breaker was open");
      assert.equal(h.client.breakers.states().find((b) => b.name === lmName)?.state, "open", "the states a router reports to dspex status");

      // An open breaker falls back to a native implementation when the call has one.
      const native = await ask("What is 1+1?", {
        fallback: ({ inputs, error }: { inputs: Record<string, unknown>; error: CircuitOpenError }) => {
          assert.equal(error.details?.breaker, lmName);
          return { answer: `native answer to ${String(inputs.question)}` };
        },
      });
      assert.equal(native.worker, "fallback");
      assert.deepEqual(native.outputs, { answer: "native answer to What is 1+1?" });
      assert.equal(h.lmDouble.requests().length, lmSeen);
    } finally {
      h.lmDouble.control.clearFailure(); // the provider recovers
    }

    await breakers.waitFor(lmName, "half_open", 30_000);
    // a call that never reaches a worker says nothing about the LM: the LM breaker stays half-open
    await assert.rejects(ask("no worker takes this", { pool: "optimizer" }), NoWorkersError);
    assert.equal(breakers.find(lmName)?.state, "half_open", "a NoWorkersError is not an LM success");
    const lmSeen = h.lmDouble.requests().length;
    const closed = breakers.waitFor(lmName, "closed", 30_000);
    // Half-open lets exactly one probe through; calls made while it runs still fail fast.
    const probe = ask("What is 2+3?");
    const during = await Promise.allSettled([ask("during probe 1"), ask("during probe 2")]);
    for (const r of during) {
      assert.equal(r.status, "rejected");
      assert.ok(r.reason instanceof CircuitOpenError && r.reason.details?.state === "half_open", String(r.reason));
    }
    assert.equal((await probe).outputs.answer, "5");
    await closed;
    assert.equal(h.lmDouble.requests().length - lmSeen, 1, "one probe request");
    const after = breakers.find(lmName)!.snapshot();
    assert.equal(after.state, "closed");
    assert.equal(after.window.calls, 0, "a closed breaker starts from a fresh window");
    assert.equal(after.opened, 1);
    assert.equal((await ask("What is 3+3?")).outputs.answer, "6");
  });

  test("a pool with no workers opens its pool breaker; then calls fail fast with CircuitOpenError", async () => {
    const breakers = h.client.breakers;
    const opened = breakers.waitFor("pool:optimizer", "open", 30_000);
    // NoWorkersError until the window holds enough of them (the LM test above already recorded one)
    for (let i = 0; breakers.find("pool:optimizer")?.state !== "open"; i++) {
      assert.ok(i < 10, "the pool breaker never opened");
      await assert.rejects(ask("q", { pool: "optimizer" }), NoWorkersError);
    }
    await opened;
    await assert.rejects(ask("q", { pool: "optimizer" }), (err: unknown) => {
      assert.ok(err instanceof CircuitOpenError);
      assert.equal(err.details?.breaker, "pool:optimizer");
      return true;
    });
    // Other pools are not affected.
    assert.equal(breakers.find("pool:general")?.state, "closed");
    assert.equal((await ask("What is 4+4?")).outputs.answer, "8");
  });
});
