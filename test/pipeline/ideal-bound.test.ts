/** The bound `dspex eval` reports at the end: c ÷ mean example latency (Little's law), and the fraction reached. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { idealBound } from "@dspex/pipeline";

const latency = (mean: number) => ({ p50: mean, p90: mean, p99: mean, max: mean, mean });

test("ideal = c ÷ mean latency; the fraction is the run's rate over it", () => {
  // 128 in flight at 100 ms each can complete at most 1,280/s
  const b = idealBound({ rate: 1152, latency_ms: latency(100), done: 3000 }, 128);
  assert.ok(b);
  assert.equal(b.ideal, 1280);
  assert.equal(b.fraction, 0.9);
});

test("fewer examples than c bound the slots that can be busy", () => {
  const b = idealBound({ rate: 40, latency_ms: latency(100), done: 5 }, 128);
  assert.ok(b);
  assert.equal(b.ideal, 50);
});

test("no bound without a rate or a latency", () => {
  assert.equal(idealBound({ latency_ms: latency(100), done: 3 }, 8), null);
  assert.equal(idealBound({ rate: 10, latency_ms: null, done: 0 }, 8), null);
});
