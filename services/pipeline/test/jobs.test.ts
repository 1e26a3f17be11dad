/**
 * Job state handling on a real nats-server with real Python workers (real dspy; the LM is the HTTP double):
 * submit over NATS by hand, cancel and resume, error budget, a dead owner's job taken over, Python and
 * TypeScript custom metrics, exactly-once result storage, validation errors.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import {
  EVAL_SUBJECTS,
  EvalStore,
  PipelineClient,
  PipelineService,
  datasetHash,
  type ExampleResult,
  type JobRecord,
  type ProgressEvent,
} from "@dspex/pipeline";
import { Client, lmKey } from "@dspex/client";
import { startHarness, type Harness } from "../../../test/integration/harness.js";

const QA = "question -> answer";

function examples(n: number, prefix = "question") {
  return Array.from({ length: n }, (_, i) => ({ question: `${prefix} ${i}`, answer: "yes" }));
}

describe("evaluation jobs: state handling", { timeout: 180_000 }, () => {
  let h: Harness;
  let service: PipelineService;
  let client: PipelineClient;

  before(async () => {
    h = await startHarness({ fleet: { workers: { general: 1 } } });
    service = await PipelineService.start({ servers: h.fleet.natsUrl, creds: h.fleet.creds.pipeline, client: h.client, lm: h.lm, leaseMs: 1_500 });
    client = await PipelineClient.connect({ servers: h.fleet.natsUrl, creds: h.fleet.creds.client });
  });
  after(async () => {
    await client?.close();
    await service?.close();
    await h?.close();
  });

  function rules(latencyMs = 0) {
    h.lmDouble.control.apply({
      latencyMs,
      rules: [
        { field: "question", match: { regex: "fail" }, reply: "garbage" },
        { field: "question", match: { regex: "[0-4]$" }, outputs: { answer: "yes" } },
        { field: "question", match: { regex: "[5-9]$" }, outputs: { answer: "no" } },
      ],
    });
  }

  function waitEvent(job: string, pred: (e: ProgressEvent) => boolean, timeoutMs = 30_000): Promise<ProgressEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => (stop(), reject(new Error("no matching progress event"))), timeoutMs);
      const stop = client.watch(job, (e) => {
        if (pred(e)) {
          clearTimeout(timer);
          stop();
          resolve(e);
        }
      });
    });
  }

  test("a job submitted by hand on dspex.eval.submit runs to completion; status and list answer", async () => {
    rules();
    const reply = await client.nc.request(
      EVAL_SUBJECTS.submit,
      JSON.stringify({ spec: { program: { signature: QA }, metrics: ["exact_match", "f1"], concurrency: 4 }, examples: examples(20) }),
      { timeout: 10_000 },
    );
    const { ok, job } = reply.json<{ ok: boolean; job: string }>();
    assert.equal(ok, true);
    const record = await client.wait(job, { timeoutMs: 60_000 });
    assert.equal(record.status, "succeeded");
    assert.equal(record.result?.score, 50); // last digit 0-4 -> "yes"
    assert.deepEqual(record.result?.metrics, { exact_match: 50, f1: 50 });
    assert.equal(record.runs, 1);
    assert.equal(record.dataset_hash, datasetHash(examples(20)));
    const status = (await client.nc.request(EVAL_SUBJECTS.status, JSON.stringify({ job }))).json<{ ok: boolean; record: JobRecord }>();
    assert.equal(status.record.status, "succeeded");
    const list = await client.list();
    assert.ok(list.some((j) => j.id === job && j.score === 50));
    const page = (await client.nc.request(EVAL_SUBJECTS.results, JSON.stringify({ job, offset: 5, limit: 3 }))).json<{
      total: number;
      results: ExampleResult[];
    }>();
    assert.equal(page.total, 20);
    assert.deepEqual(page.results.map((r) => r.index), [5, 6, 7]);
  });

  test("bad specs are rejected at submit with a typed error", async () => {
    const bad = async (spec: unknown) =>
      (await client.nc.request(EVAL_SUBJECTS.submit, JSON.stringify({ spec, examples: examples(2) }))).json<{
        ok: boolean;
        error: { type: string; message: string };
      }>();
    let r = await bad({ program: { signature: QA }, metrics: ["no_such_metric"] });
    assert.equal(r.ok, false);
    assert.equal(r.error.type, "ValidationError");
    assert.match(r.error.message, /unknown metric/);
    r = await bad({ program: { signature: "question -> answer: string" }, metrics: ["exact_match"] });
    assert.equal(r.error.type, "SignatureError");
    r = await bad({ program: { signature: QA }, metrics: ["exact_match"], concurrency: 0 });
    assert.match(r.error.message, /concurrency/);
    const notJson = (await client.nc.request(EVAL_SUBJECTS.submit, "{oops")).json<{ ok: boolean; error: { type: string } }>();
    assert.equal(notJson.error.type, "DecodeError");
  });

  test("cancel stops a running job with its results so far; resume finishes it without redoing any", async () => {
    rules(150);
    const job = await client.submit({ program: { signature: QA }, metrics: ["exact_match"], concurrency: 2 }, examples(40, "slow"));
    await waitEvent(job, (e) => (e.done ?? 0) >= 4);
    const cancelled = await client.cancel(job);
    assert.equal(cancelled.cancel_requested, true);
    const stopped = await client.wait(job, { timeoutMs: 30_000 });
    assert.equal(stopped.status, "cancelled");
    const partial = await client.results(job);
    assert.ok(partial.size >= 4 && partial.size < 40, `results after cancel: ${partial.size}`);
    assert.equal(stopped.result?.done, partial.size);

    rules(0);
    const seen = h.lmDouble.requests().length;
    await client.resume(job);
    const done = await client.wait(job, { timeoutMs: 60_000 });
    assert.equal(done.status, "succeeded");
    assert.equal(done.runs, 2);
    const all = await client.results(job);
    assert.equal(all.size, 40);
    for (const [i, r] of partial) assert.deepEqual(all.get(i), r, `example ${i} kept its first result`);
    const asked = new Set(h.lmDouble.requests().slice(seen).map((r) => r.prompt?.inputs.question));
    for (const i of partial.keys()) assert.ok(!asked.has(`slow ${i}`), `example ${i} was not run again`);
    assert.equal(done.result?.score, 50);
  });

  test("the error budget stops a job as failed; failed examples carry their error", async () => {
    rules();
    const data = examples(30).map((e, i) => (i >= 5 ? { ...e, question: `fail ${i}` } : e));
    const job = await client.submit({ program: { signature: QA }, metrics: ["exact_match"], concurrency: 1, max_errors: 3 }, data);
    const record = await client.wait(job, { timeoutMs: 60_000 });
    assert.equal(record.status, "failed");
    assert.equal(record.error?.type, "ErrorBudgetExceeded");
    assert.equal(record.result?.failed, 4);
    assert.equal(record.result?.done, 9);
    const r = (await client.results(job)).get(5)!;
    assert.equal(r.ok, false);
    assert.equal(r.error?.type, "LMOutputError");
    assert.equal(r.attempts, 1, "not retried: LMOutputError is not retryable");
  });

  test("without a budget failures do not stop the job and score 0 (DSPy's failure_score)", async () => {
    rules();
    const data = examples(10).map((e, i) => (i % 5 === 0 ? { ...e, question: `fail ${i}` } : e));
    const job = await client.submit({ program: { signature: QA }, metrics: ["exact_match"] }, data);
    const record = await client.wait(job, { timeoutMs: 60_000 });
    assert.equal(record.status, "succeeded");
    assert.equal(record.result?.failed, 2);
    assert.equal(record.result?.score, 40); // 1,2,3,4 right; 0 and 5 failed
  });

  test("Python metrics run in the worker (op evaluate); custom TypeScript metrics run here", async () => {
    rules();
    service.registerMetric("starts_with_y", (_example, pred) => String(pred.answer).startsWith("y"));
    const job = await client.submit(
      {
        program: { signature: QA, module: "chain_of_thought" },
        metrics: ["py:answer_exact_match", "starts_with_y", { name: "exact_match", as: "ts_em", args: { frac: 1.0 } }],
      },
      examples(10),
    );
    const record = await client.wait(job, { timeoutMs: 60_000 });
    assert.equal(record.status, "succeeded", JSON.stringify(record.error));
    const results = await client.results(job);
    const first = results.get(0)!;
    assert.equal(first.ok, true, JSON.stringify(first.error));
    assert.equal(typeof first.outputs?.reasoning, "string", "chain of thought");
    assert.equal(first.scores["py:answer_exact_match"], true);
    assert.equal(first.scores.starts_with_y, true);
    assert.equal(first.scores.ts_em, true);
    assert.equal(record.result?.metrics["py:answer_exact_match"], 50);
    assert.equal(record.result?.metrics.ts_em, 50);
    assert.equal(record.result?.metrics.starts_with_y, 50);
    assert.deepEqual(record.result?.errors_by_type, {});
  });

  test("a Python metric that raises fails the example with the worker's error", async () => {
    rules();
    const job = await client.submit({ program: { signature: QA }, metrics: ["py:answer_passage_match"] }, examples(3));
    const record = await client.wait(job, { timeoutMs: 60_000 });
    assert.equal(record.status, "succeeded");
    const r = (await client.results(job)).get(0)!;
    assert.equal(r.ok, false);
    assert.equal(r.error?.type, "WorkerError");
    assert.match(r.error?.message ?? "", /answer_passage_match/);
  });

  test("a job whose owner died is taken over once its lease lapses, keeping the owner's results", async () => {
    rules();
    const store = await EvalStore.open(h.admin); // plays a pipeline instance (the role that writes results)
    const job = `ev-orphan-${randomUUID().slice(0, 8)}`;
    const data = examples(12);
    await store.writeDataset(job, data);
    const now = Date.now();
    await store.createJob({
      v: 1,
      kind: "eval",
      id: job,
      spec: { program: { signature: QA }, metrics: [{ name: "exact_match" }], concurrency: 3 },
      status: "running",
      total: data.length,
      dataset_hash: datasetHash(data),
      created_at: now,
      updated_at: now,
      started_at: now,
      owner: "ghost-instance",
      lease_until: now + 1_000,
      runs: 1,
    });
    // The dead owner had stored three results before it died.
    const ghost = (i: number): ExampleResult => ({ job, index: i, ok: true, outputs: { answer: "ghost" }, scores: { exact_match: true }, score: 1, ms: 1, attempts: 1, at: now });
    for (const i of [0, 1, 2]) assert.equal(await store.recordResult(ghost(i)), "stored");
    const record = await client.wait(job, { timeoutMs: 30_000 });
    assert.equal(record.status, "succeeded");
    assert.equal(record.owner, service.id);
    assert.equal(record.runs, 2);
    const results = await client.results(job);
    assert.equal(results.size, 12);
    assert.equal(results.get(1)?.outputs?.answer, "ghost", "the stored result stays");
    assert.equal(record.result?.score, 58.33); // 0-2 the ghost's; 3, 4, 10, 11 answered "yes": 7 of 12
  });

  test("an open circuit breaker pauses the examples instead of failing them", async () => {
    rules();
    // A client whose LM breaker opens after 5 calls and lets a probe through after 1 s.
    const client = await Client.connect({
      connection: h.client.nc,
      lm: h.lm,
      breakers: { all: { volumeThreshold: 5, resetTimeoutMs: 1_000 } },
      retry: { maxAttempts: 1 },
    });
    const local = await PipelineService.start({ servers: h.fleet.natsUrl, creds: h.fleet.creds.pipeline, client, lm: h.lm, serve: false, resume: false });
    try {
      h.lmDouble.control.failAll("http500");
      const job = await local.submit({
        spec: { program: { signature: QA }, metrics: ["exact_match"], concurrency: 4, retries: 8 },
        examples: examples(20, "breaker"),
      });
      await client.breakers.waitFor(`lm:${lmKey(h.lm)}`, "open", 30_000);
      h.lmDouble.control.clearFailure();
      const record = await local.waitFor(job);
      assert.equal(record.status, "succeeded");
      assert.equal(record.result?.failed, 0, JSON.stringify(record.result?.errors_by_type));
      assert.equal(record.result?.score, 50);
    } finally {
      h.lmDouble.control.clearFailure();
      await local.close();
      await client.close();
    }
  });

  test("a result can be stored once per example, whatever the Nats-Msg-Id window", async () => {
    const store = await EvalStore.open(h.admin); // plays a pipeline instance (the role that writes results)
    const job = `ev-once-${randomUUID().slice(0, 8)}`;
    const r = (tag: string): ExampleResult => ({ job, index: 7, ok: true, outputs: { tag }, scores: {}, score: 1, ms: 1, attempts: 1, at: Date.now() });
    assert.equal(await store.recordResult(r("first")), "stored");
    assert.equal(await store.recordResult(r("second")), "duplicate"); // Nats-Msg-Id dedup
    await assert.rejects(store.js.publish(`dspex.eval.result.${job}.7`, JSON.stringify(r("third"))), /maximum messages per subject/);
    assert.equal(await store.countResults(job), 1);
    assert.equal((await store.readResults(job)).get(7)?.outputs?.tag, "first");
  });
});
