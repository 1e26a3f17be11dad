/**
 * The `embed` op through the bus: a real nats-server, a real gpu-pool worker running the real WordLlama model.
 * Vectors arrive as float32, concurrent requests are joined into fewer model calls, bad texts are typed errors.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { PayloadTooLarge, ValidationError } from "@dspex/protocol";
import { startHarness, type Harness } from "../integration/harness.js";

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

describe("embed on the gpu pool", { timeout: 180_000 }, () => {
  let h: Harness;
  before(async () => {
    // an embedding gpu pool holds several requests at once (the default 1 suits the local LM): docs/retrieval.md
    h = await startHarness({ fleet: { workers: { general: 0, gpu: 1 }, bus: { pools: { gpu: { concurrency: 16 } } } } });
  });
  after(async () => {
    await h?.close();
  });

  test("texts become unit float32 vectors in order, similar texts closer", async () => {
    const texts = ["how do I start the fleet", "dspex up starts nats-server and the workers", "pgvector builds an HNSW index"];
    const result = await h.client.embed(texts);
    assert.equal(result.model, "wordllama/l2_supercat_256");
    assert.equal(result.dim, 256);
    assert.equal(result.vectors.length, 3);
    for (const v of result.vectors) assert.ok(Math.abs(dot(v, v) - 1) < 1e-4);
    assert.ok(dot(result.vectors[0]!, result.vectors[1]!) > dot(result.vectors[0]!, result.vectors[2]!));
    const again = await h.client.embed([texts[2]!]);
    assert.deepEqual([...again.vectors[0]!], [...result.vectors[2]!]);
    assert.ok(result.usage.prompt_tokens > 0);
  });

  test("bad texts are typed errors naming the field", async () => {
    await assert.rejects(h.client.embed(["fine", " "]), (e: unknown) => e instanceof ValidationError && e.field === "inputs.texts[1]");
    await assert.rejects(h.client.embed([]), (e: unknown) => e instanceof ValidationError && e.field === "inputs.texts");
    await assert.rejects(h.client.embed(["word ".repeat(600)]), (e: unknown) => e instanceof ValidationError && e.field === "inputs.texts[0]");
    await assert.rejects(h.client.embed(Array.from({ length: 600 }, (_, i) => `t${i}`)), (e: unknown) => e instanceof PayloadTooLarge && e.field === "inputs.texts");
    await assert.rejects(h.client.embed(["x"], { module: { model: "nope" as never } }), (e: unknown) => e instanceof ValidationError && e.field === "module.model");
    const cut = await h.client.embed(["word ".repeat(600), "short"], { module: { truncate: true } });
    assert.deepEqual(cut.truncated, [0]);
  });

  test("concurrent requests share model calls on the worker", async () => {
    const before = await workerEmbedStats(h);
    const results = await Promise.all(Array.from({ length: 48 }, (_, i) => h.client.embed([`passage number ${i}`, `another text ${i}`])));
    assert.equal(results.length, 48);
    const after = await workerEmbedStats(h);
    assert.equal(after.texts - before.texts, 96);
    assert.ok(after.calls - before.calls < 48, `48 requests took ${after.calls - before.calls} model calls`);
  });
});

async function workerEmbedStats(h: Harness): Promise<{ calls: number; texts: number }> {
  const gpu = h.fleet.workers.find((w) => w.pool === "gpu")!;
  const reply = await h.admin.request(`dspex.worker.${gpu.id}.status`, "", { timeout: 5000 });
  const status = reply.json<{ embed?: { calls: number; texts: number } }>();
  assert.ok(status.embed, "the worker's status reports its embedding batches");
  return status.embed;
}

describe("embed with a provider model through the operator's LM profiles", { timeout: 180_000 }, () => {
  let h: Harness;
  before(async () => {
    // the double is the workers' default profile (harness); its `models` list allows the embedding model
    h = await startHarness({ fleet: { workers: { general: 0, gpu: 1 } } });
  });
  after(async () => {
    await h?.close();
  });

  test("dspy.Embedder calls the profile's endpoint; vectors come back as float32, normalized", async () => {
    const before = h.lmDouble.requests().length;
    const result = await h.client.embed(["alpha", "beta", "alpha"], { module: { model: "lm" } });
    assert.equal(result.dim, 8);
    assert.equal(result.model, h.profile.model);
    assert.deepEqual([...result.vectors[0]!], [...result.vectors[2]!]);
    assert.notDeepEqual([...result.vectors[0]!], [...result.vectors[1]!]);
    assert.ok(Math.abs(dot(result.vectors[1]!, result.vectors[1]!) - 1) < 1e-4);
    const calls = h.lmDouble.requests().slice(before).filter((r) => r.path.endsWith("/embeddings"));
    assert.equal(calls.length, 1, "one provider call for the batch");
    assert.deepEqual((calls[0]!.body as { input: string[] }).input, ["alpha", "beta", "alpha"]);
  });
});
