/**
 * The fleet-wide LM cache (workers/dspex_worker/lm/fleet_cache.py) on a real fleet, counted at the LM double: a
 * response one worker got is a hit on a worker started after it (its replica loads the bucket dspex_lm_cache);
 * a sampled request (temperature > 0, no rollout) is never shared; an eval job run a second time makes no LM
 * calls; the worker's status shows the hits.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { workerStatuses, type WorkerStatus } from "@dspex/bus";
import { BUCKETS } from "@dspex/protocol";
import { PipelineClient, PipelineService } from "@dspex/pipeline";
import type { LMConfig } from "@dspex/protocol";
import { startHarness, type Harness } from "./harness.js";

describe("the fleet-wide LM cache", { timeout: 180_000 }, () => {
  let h: Harness;
  let cached: LMConfig;

  before(async () => {
    h = await startHarness({ fleet: { workers: { general: 1 } } });
    cached = { ...h.lm, cache: true };
  });
  after(async () => {
    await h?.close();
  });

  const general = () => h.fleet.workers.find((w) => w.pool === "general")!;
  const calls = () => h.lmDouble.requests().length;
  async function status(id: string): Promise<WorkerStatus> {
    const found = (await workerStatuses(h.client.nc)).find((s) => s.worker === id);
    assert.ok(found, `worker ${id} answers its status`);
    return found;
  }

  /** Resolves once the shared bucket holds `count` entries (a watch on it: the writes are asynchronous). */
  async function bucketHolds(count: number): Promise<void> {
    const kv = await new Kvm(h.admin).open(BUCKETS.lmCache.name);
    const watch = await kv.watch();
    const keys = new Set<string>();
    const timer = setTimeout(() => watch.stop(), 15_000);
    for await (const entry of watch) {
      if (entry.operation === "PUT") keys.add(entry.key);
      if (keys.size >= count) break;
    }
    clearTimeout(timer);
    watch.stop();
    assert.equal(keys.size, count, `the bucket holds ${keys.size} entries`);
  }

  test("another worker gets the hit; a sampled request is not shared", async () => {
    const first = general();
    let n = calls();
    const a = await h.client.predict("question -> answer", { question: "What does the fleet cache keep?" }, { lm: cached });
    assert.equal(calls(), n + 1, "a miss calls the LM");
    const again = await h.client.predict("question -> answer", { question: "What does the fleet cache keep?" }, { lm: cached });
    assert.equal(calls(), n + 1, "the same request again: a memory hit");
    assert.deepEqual(again.outputs, a.outputs);
    n = calls();
    await h.client.predict("question -> answer", { question: "Sampled?" }, { lm: { ...cached, temperature: 0.7 } });
    assert.equal(calls(), n + 1);
    await bucketHolds(1);
    assert.equal((await status(first.id)).lm_cache?.fleet?.shared, 1, "only the deterministic response was shared");

    // a new worker replaces the first: it never saw these requests
    const second = await h.fleet.supervisor.recycle(first, "cache test");
    n = calls();
    const b = await h.client.predict("question -> answer", { question: "What does the fleet cache keep?" }, { lm: cached });
    assert.equal(b.worker, second.id);
    assert.equal(calls(), n, "no LM call: the other worker's response, from the shared tier");
    assert.deepEqual(b.outputs, a.outputs);
    const st = await status(second.id);
    assert.equal(st.lm_cache?.mode, "fleet");
    assert.equal(st.lm_cache?.fleet?.hits, 1);
    assert.ok((st.lm_cache?.fleet?.entries ?? 0) >= 1 && (st.lm_cache?.fleet?.bytes ?? 0) > 0);

    await h.client.predict("question -> answer", { question: "Sampled?" }, { lm: { ...cached, temperature: 0.7 } });
    assert.equal(calls(), n + 1, "the sampled request asks the LM again on another worker");
  });

  test("an eval job run again makes no LM calls", async () => {
    const service = await PipelineService.start({ servers: h.fleet.natsUrl, creds: h.fleet.creds.pipeline, resume: false });
    const jobs = await PipelineClient.connect({ servers: h.fleet.natsUrl, creds: h.fleet.creds.client });
    try {
      const examples = Array.from({ length: 24 }, (_, i) => ({ question: `What is ${i} + ${i}?`, answer: String(2 * i) }));
      const spec = { program: { signature: "question -> answer", lm: cached }, metrics: ["exact_match"], concurrency: 8 };
      let n = calls();
      const first = await jobs.submit(spec, examples);
      assert.equal((await jobs.wait(first)).status, "succeeded");
      assert.equal(calls(), n + examples.length);
      n = calls();
      const second = await jobs.submit(spec, examples);
      assert.equal((await jobs.wait(second)).status, "succeeded");
      assert.equal(calls(), n, "every example answered from the cache");
      const [s1, s2] = [(await jobs.summary(first))!, (await jobs.summary(second))!];
      assert.equal(s2.score, s1.score, "the same answers, so the same score");
      assert.equal(s2.usage.total_tokens, 0, "no tokens spent on cached answers");
    } finally {
      await jobs.close();
      await service.close();
    }
  });
});
