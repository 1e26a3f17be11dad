/**
 * Unit tests of the resilience pieces that need no processes: backoff and attempt ids, the consumers'
 * BackOff, settings from the environment, what counts against a breaker, and the breaker state machine.
 * (The fault tests in test/faults run them against real processes.)
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  CircuitOpenError,
  LMError,
  NoWorkersError,
  POOL_DEFAULTS,
  PayloadTooLargeError,
  SignatureError,
  TimeoutError,
  TransportError,
  ValidationError,
  WorkerError,
} from "@dspex/shared";
import {
  BreakerRegistry,
  ReplyLedger,
  admitAll,
  attemptId,
  backoffDelayMs,
  baseRequestId,
  breakerSettings,
  consumerBackoffMs,
  isRetryableReply,
  isTransientPublishError,
  lmKey,
  lmOutcome,
  poolOutcome,
  retryAfterMs,
  retryPolicy,
} from "../src/index.js";

describe("retry", () => {
  test("full jitter: a random share of min(max, base * 2^(n-1))", () => {
    const policy = { baseDelayMs: 100, maxDelayMs: 1_000 };
    assert.equal(backoffDelayMs(1, policy, () => 0.999), 99);
    assert.equal(backoffDelayMs(3, policy, () => 0.5), 200);
    assert.equal(backoffDelayMs(10, policy, () => 0.5), 500, "capped");
    assert.equal(backoffDelayMs(2, policy, () => 0), 0);
  });

  test("attempt ids: the id, then <id>#2, <id>#3; and back", () => {
    assert.equal(attemptId("abc", 1), "abc");
    assert.equal(attemptId("abc", 2), "abc#2");
    assert.equal(baseRequestId("abc#3"), "abc");
    assert.equal(baseRequestId("abc#replay-1f"), "abc#replay-1f");
    assert.equal(baseRequestId("abc"), "abc");
  });

  test("only error replies marked retryable are retried", () => {
    assert.equal(isRetryableReply(new LMError({ type: "LMError", message: "500", retryable: true })), true);
    assert.equal(isRetryableReply(new LMError({ type: "LMOutputError", message: "x", retryable: false })), false);
    assert.equal(isRetryableReply(new TimeoutError("t", { retryable: true })), false, "not a reply");
    assert.equal(isRetryableReply(new NoWorkersError("n")), false);
    assert.equal(retryAfterMs(new LMError({ type: "LMError", message: "429", retryable: true, details: { retry_after: 2 } })), 2_000);
  });

  test("transient publish errors are the transport's, not JetStream's answers", () => {
    for (const name of ["TimeoutError", "RequestError", "NoResponders", "JetStreamNotEnabled", "ConnectionError"]) {
      assert.equal(isTransientPublishError(Object.assign(new Error("x"), { name })), true, name);
    }
    assert.equal(isTransientPublishError(Object.assign(new Error("x"), { name: "JetStreamApiError", status: 503 })), true);
    assert.equal(isTransientPublishError(Object.assign(new Error("x"), { name: "JetStreamApiError", status: 400 })), false);
    assert.equal(isTransientPublishError(Object.assign(new Error("x"), { name: "ClosedConnectionError" })), false);
  });

  test("policy from DSPEX_RETRY_* and overrides", () => {
    assert.deepEqual(retryPolicy({}, {}), { maxAttempts: 3, baseDelayMs: 200, maxDelayMs: 5_000 });
    assert.deepEqual(retryPolicy({ maxDelayMs: 7 }, { DSPEX_RETRY_MAX_ATTEMPTS: "5", DSPEX_RETRY_BASE_MS: "10" }), {
      maxAttempts: 5,
      baseDelayMs: 10,
      maxDelayMs: 7,
    });
    assert.throws(() => retryPolicy({}, { DSPEX_RETRY_MAX_ATTEMPTS: "-1" }), RangeError);
  });

  test("consumer BackOff doubles from AckWait, MaxDeliver - 1 entries (at most 4), or DSPEX_<POOL>_BACKOFF_MS", () => {
    assert.deepEqual(consumerBackoffMs("general", POOL_DEFAULTS.general, {}), [30_000, 60_000, 120_000, 240_000]);
    assert.deepEqual(consumerBackoffMs("gpu", POOL_DEFAULTS.gpu, {}), [120_000, 240_000]);
    assert.deepEqual(consumerBackoffMs("general", { ...POOL_DEFAULTS.general, maxDeliver: 1 }, {}), []);
    assert.deepEqual(consumerBackoffMs("general", POOL_DEFAULTS.general, { DSPEX_GENERAL_BACKOFF_MS: "1000, 5000" }), [1_000, 5_000]);
    assert.throws(() => consumerBackoffMs("general", POOL_DEFAULTS.general, { DSPEX_GENERAL_BACKOFF_MS: "1,2,3,4,5,6" }), /MaxDeliver/);
    assert.throws(() => consumerBackoffMs("general", POOL_DEFAULTS.general, { DSPEX_GENERAL_BACKOFF_MS: "1,x" }), RangeError);
  });
});

describe("breakers", () => {
  test("settings: defaults, DSPEX_BREAKER_*, per kind", () => {
    const s = breakerSettings(
      { lm: { resetTimeoutMs: 5 } },
      { DSPEX_BREAKER_VOLUME: "7", DSPEX_BREAKER_POOL_ENABLED: "0", DSPEX_BREAKER_LM_ERROR_PERCENT: "30" },
    );
    assert.equal(s.pool.volumeThreshold, 7);
    assert.equal(s.pool.enabled, false);
    assert.equal(s.pool.errorThresholdPercentage, 50);
    assert.equal(s.lm.enabled, true);
    assert.equal(s.lm.errorThresholdPercentage, 30);
    assert.equal(s.lm.resetTimeoutMs, 5);
    assert.equal(s.lm.rollingWindowMs, 10_000);
  });

  test("what counts: unhealthy pool or provider only", () => {
    const lm500 = new LMError({ type: "LMError", message: "500", retryable: true });
    const lm400 = new LMError({ type: "LMError", message: "400", retryable: false });
    const parse = new LMError({ type: "LMOutputError", message: "x", retryable: false });
    const config = new LMError({ type: "LMConfigError", message: "x", retryable: false });
    const reply = new WorkerError({ type: "ValidationError", message: "x", retryable: false });
    const workerTimeout = new TimeoutError("t", { details: { source: "worker" } });
    const cases: Array<[unknown, string, string]> = [
      [undefined, "success", "success"],
      [new NoWorkersError("n"), "failure", "ignore"],
      [new TransportError("t"), "failure", "ignore"],
      [new TimeoutError("t"), "failure", "failure"],
      [workerTimeout, "failure", "failure"],
      [lm500, "success", "failure"],
      [lm400, "success", "success"],
      [parse, "success", "success"],
      [config, "success", "ignore"],
      [reply, "success", "ignore"],
      [new ValidationError("v"), "ignore", "ignore"],
      [new SignatureError("s"), "ignore", "ignore"],
      [new PayloadTooLargeError("p"), "ignore", "ignore"],
      [new CircuitOpenError("o"), "ignore", "ignore"],
      [new Error("aborted"), "ignore", "ignore"],
    ];
    for (const [err, pool, lm] of cases) {
      assert.equal(poolOutcome(err), pool, `pool: ${String(err)}`);
      assert.equal(lmOutcome(err), lm, `lm: ${String(err)}`);
    }
    assert.equal(lmKey(undefined), "default");
    assert.equal(lmKey({ model: "openai/x", api_base: "http://h/v1" }), "openai/x@http://h/v1");
  });

  test("opens on the error rate, fails fast, half-open lets one probe through, closes afresh on success", async () => {
    const registry = new BreakerRegistry(
      breakerSettings({ all: { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeoutMs: 50, rollingWindowMs: 1_000 } }, {}),
    );
    try {
      const b = registry.pool("general");
      const record = (outcome: "success" | "failure" | "ignore") => b.record(b.admit()!, outcome);
      const opened = registry.waitFor("pool:general", "open", 2_000);
      record("success");
      record("failure");
      record("ignore"); // not recorded
      record("failure");
      assert.equal(b.state, "closed", "3 recorded calls: below the volume threshold");
      record("failure");
      await opened;
      assert.equal(b.admit(), undefined, "fails fast");
      assert.equal(b.snapshot().rejected, 1);
      await registry.waitFor("pool:general", "half_open", 2_000);
      const probe = b.admit();
      assert.equal(probe?.probe, true);
      assert.equal(b.admit(), undefined, "one probe at a time");
      b.record(probe!, "ignore"); // said nothing: the next call probes
      const probe2 = b.admit()!;
      assert.equal(probe2.probe, true);
      const closed = registry.waitFor("pool:general", "closed", 2_000);
      b.record(probe2, "success");
      await closed;
      assert.equal(b.snapshot().window.calls, 0, "a fresh window");
      // A failed probe opens it again.
      for (const o of ["failure", "failure", "failure", "failure"] as const) record(o);
      await registry.waitFor("pool:general", "open", 2_000);
      await registry.waitFor("pool:general", "half_open", 2_000);
      const reopened = registry.waitFor("pool:general", "open", 2_000);
      b.record(b.admit()!, "failure");
      await reopened;
      assert.equal(b.snapshot().opened, 3, "opened, re-opened after the window, re-opened by the failed probe");
    } finally {
      registry.shutdown();
    }
  });

  test("admitAll gives back what it took when a later breaker refuses", async () => {
    const registry = new BreakerRegistry(
      breakerSettings({ all: { volumeThreshold: 1 }, pool: { resetTimeoutMs: 30 }, lm: { resetTimeoutMs: 60_000 } }, {}),
    );
    try {
      const pool = registry.pool("general");
      const lm = registry.lm({ model: "openai/x" });
      pool.record(pool.admit()!, "failure");
      lm.record(lm.admit()!, "failure");
      await registry.waitFor("pool:general", "half_open", 2_000);
      assert.equal(lm.state, "open");
      const res = admitAll([pool, lm]);
      assert.ok("refused" in res && res.refused === lm);
      assert.equal(pool.admit()?.probe, true, "the pool's probe slot was given back");
    } finally {
      registry.shutdown();
    }
  });

  test("the reply ledger classifies dropped replies", () => {
    const ledger = new ReplyLedger(3);
    ledger.settled("a", "answered");
    ledger.settled("b", "ended");
    ledger.settled("c", "inflight");
    ledger.drop("a");
    ledger.drop("b");
    ledger.drop("c");
    ledger.drop("zzz");
    assert.deepEqual(ledger.dropped, { duplicate: 1, late: 2, unknown: 1 });
    ledger.settled("d", "answered"); // evicts "a"
    ledger.drop("a");
    assert.equal(ledger.dropped.unknown, 2);
  });
});
