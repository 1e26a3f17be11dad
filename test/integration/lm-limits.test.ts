/**
 * An LM profile's limits on a real worker (workers/dspex_worker/lm/limits.py, schemas/lm-profiles.schema.json):
 * the worker holds hundreds of requests, but a profile with `max_concurrency: 1` reaches its LM one request at a
 * time, and after the provider answered 429 with Retry-After the profile's next request waits that long. The
 * LM double is the provider; the order and arrival times of its requests are what is checked.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { LMError, type LMConfig } from "@dspex/protocol";
import { startLmDouble, type LmDouble } from "../lm-double/server.js";
import { startHarness, type Harness } from "./harness.js";

describe("LM profile limits on a worker", { timeout: 120_000 }, () => {
  let h: Harness;
  let provider: LmDouble;
  const limited: LMConfig = { profile: "limited", model: "openai/test-model" };

  before(async () => {
    provider = await startLmDouble();
    h = await startHarness({
      fleet: {
        workerEnv: {
          DSPEX_LM_PROFILES: JSON.stringify({
            profiles: { limited: { model: "openai/test-model", api_base: provider.url, num_retries: 0, max_concurrency: 1 } },
          }),
        },
      },
      client: { retry: { maxAttempts: 1 } },
    });
  });
  after(async () => {
    await h?.close();
    await provider?.close();
  });

  const ask = (lm: LMConfig, i: number) => h.client.predict("question -> answer", { question: `What is ${i}+1?` }, { lm, timeoutMs: 30_000 });

  test("max_concurrency 1: the profile's LM gets one request at a time; the default profile's get them together", async () => {
    const latency = 400;
    provider.control.setLatency(latency);
    h.lmDouble.control.setLatency(latency);
    try {
      const seen = provider.requests().length;
      const results = await Promise.all([1, 2, 3, 4].map((i) => ask(limited, i)));
      assert.deepEqual(results.map((r) => r.outputs.answer), ["2", "3", "4", "5"]);
      const arrivals = provider.requests().slice(seen).map((r) => r.receivedAt).sort((a, b) => a - b);
      assert.equal(arrivals.length, 4);
      for (let i = 1; i < arrivals.length; i++) {
        // the next request starts only after the previous one's answer, which the LM holds `latency` ms
        assert.ok(arrivals[i]! - arrivals[i - 1]! >= latency - 5, `arrivals ${arrivals.map((a) => a - arrivals[0]!).join(", ")} ms`);
      }
      const unlimitedSeen = h.lmDouble.requests().length;
      await Promise.all([1, 2, 3, 4].map((i) => ask(h.lm, i)));
      const together = h.lmDouble.requests().slice(unlimitedSeen).map((r) => r.receivedAt);
      assert.ok(Math.max(...together) - Math.min(...together) < latency, "no limit: all four were at the LM at once");
    } finally {
      provider.control.setLatency(0);
      h.lmDouble.control.setLatency(0);
    }
  });

  test("after a 429 with Retry-After, the profile's next request waits that long before it reaches the LM", async () => {
    const seen = provider.requests().length;
    provider.control.failNext("http429", 1, { retryAfterSeconds: 2 }); // not the 1 s the backoff starts at
    await assert.rejects(ask(limited, 7), (err: unknown) => {
      assert.ok(err instanceof LMError, String(err));
      assert.equal(err.retryable, true);
      return true;
    });
    const ok = await ask(limited, 8);
    assert.equal(ok.outputs.answer, "9");
    const [first, second] = provider.requests().slice(seen).map((r) => r.receivedAt);
    assert.ok(second! - first! >= 2_000 - 5, `the second request came ${second! - first!} ms after the 429`);
    const status = (await h.client.nc.request(`dspex.worker.${h.fleet.workers[0]!.id}.status`, undefined, { timeout: 2_000 })).json<{
      lm_limits: Record<string, { rate_limited: number }>;
    }>();
    assert.equal(status.lm_limits.limited?.rate_limited, 1);
  });
});
