/**
 * Optimizers as jobs on the optimizer pool, end to end with real dspy 3.4.1 and the LM double: progress
 * events, the optimized program stored as a new version (and run with `execute`), cancellation, and a job that
 * survives its worker being killed.
 *
 * The LM double is scripted so that optimizing is measurable: it answers the capital questions below correctly
 * only when the prompt carries few-shot demos (`when.minMessages`) or instructions other than DSPy's default
 * (`when.instructions`), and otherwise answers "answer to: …" (wrong). The unoptimized program scores 0.
 */
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CompileJob, type OptimizerName } from "@dspex/client";
import { Cancelled, Unsupported, ValidationError, type DspexError, type JobProgress as ProgressEvent } from "@dspex/protocol";
import type { ScriptRule } from "../lm-double/server.js";
import { startHarness, type Harness } from "../integration/harness.js";
import { QA } from "../support/fixtures.js";

const examples = QA.map(([question, answer]) => ({ question, answer }));
const trainset = examples.slice(0, 4);
const valset = examples.slice(4);

const RULES: ScriptRule[] = [
  ...QA.map(([q, a]): ScriptRule => ({ field: "question", match: q, when: { minMessages: 3 }, outputs: { answer: a } })),
  ...QA.map(
    ([q, a]): ScriptRule => ({
      field: "question",
      match: q,
      when: { instructions: { regex: "^(?!Given the fields)" } },
      outputs: { answer: a },
    }),
  ),
  // MIPROv2's instruction proposer gets a real proposal (the double's generic one strips to nothing).
  { field: "basic_instruction", match: { contains: "Given the fields" }, outputs: { proposed_instruction: "Name the capital city." } },
];

const OPTIMIZER_ACK_WAIT_MS = 6_000;

async function collect(job: CompileJob): Promise<ProgressEvent[]> {
  const events: ProgressEvent[] = [];
  for await (const e of job.progress()) events.push(e);
  return events;
}

describe("optimizers as jobs on the optimizer pool", { timeout: 300_000 }, () => {
  let h: Harness;
  const versions: Array<{ id: string; version: number }> = [];

  before(async () => {
    // A short AckWait so the killed worker's job is redelivered within the test; no partition consumers (the
    // optimizer pool's default, spelled out: one job per concurrency-1 worker, docs/dspy-surface.md).
    const pools = { optimizer: { ackWaitMs: OPTIMIZER_ACK_WAIT_MS, partitions: 0 } };
    h = await startHarness({ fleet: { workers: { general: 1, optimizer: 1 }, bus: { pools } }, client: { bus: { pools } } });
  });
  after(async () => {
    await h?.close();
  });
  beforeEach(() => h.lmDouble.control.apply({ reset: true, rules: RULES }));

  test("BootstrapFewShot: a job id at once, progress events, a new version that scores higher", async (t) => {
    const { definition, version: v1 } = await h.client.createProgram({ signature: "question -> answer" });
    const started = performance.now();
    const job = await h.client.compile({
      program: definition.id,
      optimizer: "BootstrapFewShot",
      options: { max_bootstrapped_demos: 2, max_labeled_demos: 2 },
      trainset,
      valset,
      metric: "answer_exact_match",
    });
    assert.match(job.id, /^op-[0-9a-z]+-[0-9a-f]{8}$/, "a job id of the one job model");
    assert.ok(performance.now() - started < 2_000, "compile() returns before the job runs");
    const [events, result] = await Promise.all([collect(job), job.result()]);
    t.diagnostic(`BootstrapFewShot job: ${Math.round(performance.now() - started)} ms, ${events.length} events`);

    assert.deepEqual(result.program, { id: definition.id, version: result.program.version });
    assert.ok(result.program.version > v1);
    assert.equal(result.parent_version, v1);
    assert.equal(result.baseline_score, 0);
    assert.equal(result.score, 100);

    const types = events.map((e) => e.type);
    assert.equal(types[0], "started");
    assert.equal(types.at(-1), "done");
    assert.ok(events.some((e) => e.type === "stage" && e.stage === "compiling"));
    assert.ok(events.some((e) => e.type === "trial" && e.last_score === 100), "the final evaluation is a trial event");
    assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i), "ordered, none lost");
    assert.ok((events.at(-1)!.lm_calls ?? 0) > 0 && (events.at(-1)!.metric_calls ?? 0) > 0);

    const status = await job.status();
    assert.equal(status.status, "succeeded");
    assert.equal(status.runs, 1);
    assert.equal(status.kind, "optimize");
    assert.deepEqual(status.result, result);

    // The stored version: DSPy state, score and lineage.
    const { definition: optimized } = await h.client.programs.get(definition.id, result.program.version);
    const state = optimized.state!.dspy_state as { demos: unknown[]; lm: unknown };
    assert.equal(state.demos.length, 2);
    assert.equal(state.lm, null, "per-predictor LM settings are not stored");
    assert.equal(optimized.score, 100);
    assert.equal((optimized.lineage as { optimizer: string }).optimizer, "BootstrapFewShot");
    assert.equal((optimized.lineage as { job: string }).job, job.id);

    // Measured independently with execute: the latest version answers the held-out questions, version 1 not.
    for (const { question, answer } of valset) {
      const latest = await h.client.execute(definition.id, { question });
      assert.equal(latest.version, result.program.version);
      assert.equal(latest.outputs.answer, answer);
      const original = await h.client.execute(definition.id, { question }, { version: v1 });
      assert.equal(original.outputs.answer, `answer to: ${question}`);
    }
    versions.push(result.program);
  });

  const runs: Array<[OptimizerName, Record<string, unknown>, number | null]> = [
    ["LabeledFewShot", { k: 2 }, 100],
    [
      "BootstrapFewShotWithRandomSearch",
      { max_bootstrapped_demos: 1, max_labeled_demos: 1, num_candidate_programs: 2, num_threads: 1 },
      100,
    ],
    [
      "MIPROv2",
      {
        auto: "off",
        num_candidates: 2,
        num_trials: 3,
        minibatch: false,
        max_bootstrapped_demos: 1,
        max_labeled_demos: 1,
        num_threads: 1,
        data_aware_proposer: false,
      },
      100,
    ],
    ["COPRO", { breadth: 2, depth: 1, num_threads: 1 }, 100],
    ["GEPA", { max_metric_calls: 12, reflection_minibatch_size: 1, num_threads: 1 }, 100],
    ["SIMBA", { bsize: 2, num_candidates: 2, max_steps: 1, max_demos: 1, num_threads: 1 }, null],
  ];
  for (const [optimizer, options, expected] of runs) {
    test(`${optimizer} runs as a job and stores a version`, async (t) => {
      const { definition } = await h.client.createProgram({ signature: "question -> answer" });
      const started = performance.now();
      // LabeledFewShot reads its examples from JSONL (text and a file); the others from arrays.
      const jsonl = optimizer === "LabeledFewShot";
      const file = join(tmpdir(), `dspex-valset-${process.pid}.jsonl`);
      if (jsonl) writeFileSync(file, valset.map((e) => JSON.stringify(e)).join("\n") + "\n");
      const job = await h.client.compile({
        program: definition.id,
        optimizer,
        options,
        trainset: jsonl ? { jsonl: trainset.map((e) => JSON.stringify(e)).join("\n") } : trainset,
        valset: jsonl ? { jsonlFile: file } : valset,
        metric: "answer_exact_match",
      });
      const [events, result] = await Promise.all([collect(job), job.result()]);
      const trials = events.at(-1)!.trials;
      t.diagnostic(
        `${optimizer}: ${Math.round(performance.now() - started)} ms, score ${result.baseline_score} -> ${result.score}, ` +
          `${trials} trials, ${events.at(-1)!.lm_calls} LM calls`,
      );
      assert.equal(events.at(-1)!.type, "done");
      assert.equal(result.baseline_score, 0);
      if (expected !== null) assert.equal(result.score, expected);
      const stored = await h.client.programs.get(definition.id);
      assert.equal(stored.version, result.program.version);
      assert.ok(stored.definition.state?.dspy_state, "dump_state() stored");
      if (expected === 100) {
        const r = await h.client.execute(definition.id, { question: valset[0]!.question });
        assert.equal(r.outputs.answer, valset[0]!.answer);
      }
      versions.push(result.program);
    });
  }

  test("a compile runs with the adapter its `lm.adapter` names", async () => {
    const { definition } = await h.client.createProgram({ signature: "question -> answer" });
    const job = await h.client.compile({
      program: definition.id,
      optimizer: "BootstrapFewShot",
      options: { max_bootstrapped_demos: 1, max_labeled_demos: 1 },
      trainset: trainset.slice(0, 2),
      metric: "answer_exact_match",
      lm: { ...h.lm, adapter: "json" },
    });
    const result = await job.result();
    assert.ok(result.program.version > 1);
    const adapters = new Set(h.lmDouble.requests().map((r) => r.prompt?.adapter));
    assert.deepEqual([...adapters], ["json"], "every LM call of the job was a JSONAdapter prompt");
  });

  test("Ensemble of stored versions votes by majority, stored as an ensemble program", async () => {
    assert.ok(versions.length >= 3, "earlier jobs stored versions");
    const [base, ...rest] = versions;
    const members = [base!, ...rest.slice(0, 2)].map((v) => ({ id: v.id, version: v.version }));
    const { definition } = await h.client.createProgram({ signature: "question -> answer" });
    const job = await h.client.compile({
      program: definition.id,
      optimizer: "Ensemble",
      options: { programs: members },
      valset,
      metric: "answer_exact_match",
    });
    const result = await job.result();
    assert.equal(result.score, 100);
    const stored = await h.client.programs.get(definition.id);
    assert.equal(stored.definition.module, "ensemble");
    const r = await h.client.execute(definition.id, { question: valset[1]!.question });
    assert.equal(r.outputs.answer, valset[1]!.answer);
  });

  test("BootstrapFinetune on a provider without fine-tuning, and bad options, are typed errors", async () => {
    const { definition, version } = await h.client.createProgram({ signature: "question -> answer" });
    const ft = await h.client.compile({ program: definition.id, optimizer: "BootstrapFinetune", trainset, metric: "answer_exact_match" });
    await assert.rejects(ft.result(), (err: unknown) => {
      assert.ok(err instanceof Unsupported, String(err));
      assert.match(err.message, /fine-tuning/);
      return true;
    });
    // Checked in TypeScript before anything is stored or published …
    await assert.rejects(
      h.client.compile({ program: definition.id, optimizer: "COPRO", options: { breadth: 1 }, trainset, metric: "answer_exact_match" }),
      (err: unknown) => err instanceof ValidationError && err.field === "compile.options.breadth",
    );
    await assert.rejects(
      h.client.compile({ program: definition.id, optimizer: "MIPROv2", options: { trials: 3 }, trainset, metric: "answer_exact_match" }),
      (err: unknown) => err instanceof ValidationError && err.field === "compile.options.trials",
    );
    await assert.rejects(
      h.client.compile({ program: definition.id, optimizer: "BootstrapFewShot", trainset }),
      (err: unknown) => err instanceof ValidationError && err.field === "compile.metric",
    );
    await assert.rejects(
      h.client.compile({ program: definition.id, optimizer: "LabeledFewShot", trainset: { jsonl: '{"question": "q"}\nnot json' } }),
      (err: unknown) => err instanceof ValidationError && err.field === "compile.trainset[1]" && /line 2/.test(err.message),
    );
    await assert.rejects(
      h.client.compile({ program: definition.id, optimizer: "Nope" as OptimizerName, trainset }),
      (err: unknown) => err instanceof ValidationError && err.field === "compile.optimizer",
    );
    // … and by the worker for what only it can see.
    const bad = await h.client.compile({
      program: definition.id,
      optimizer: "SIMBA",
      options: { bsize: 10 },
      trainset,
      metric: "answer_exact_match",
    });
    await assert.rejects(bad.result(), (err: unknown) => {
      assert.equal((err as DspexError).type, "ValidationError");
      assert.equal((err as DspexError).field, "compile.options.bsize");
      return true;
    });
    const failed = await bad.status();
    assert.equal(failed.status, "failed", "a job rejected by the worker is recorded as failed");
    assert.equal(failed.error?.field, "compile.options.bsize");
    assert.equal((await collect(bad)).at(-1)!.type, "failed");
    const unknownMetric = await h.client.compile({ program: definition.id, optimizer: "BootstrapFewShot", trainset, metric: "no_such_metric" });
    await assert.rejects(unknownMetric.result(), (err: unknown) => (err as DspexError).field === "compile.metric");
    const badRow = await h.client.compile({
      program: definition.id,
      optimizer: "LabeledFewShot",
      trainset: [{ question: "q", answer: "a" }, { answer: "no question" }],
    });
    await assert.rejects(badRow.result(), (err: unknown) => (err as DspexError).field === "compile.trainset[1].question");
    assert.equal((await h.client.programs.get(definition.id)).version, version, "failed jobs store nothing");
  });

  test("a cancelled compile stops at its next LM call and stores nothing", async (t) => {
    h.lmDouble.control.setLatency(150);
    const { definition, version } = await h.client.createProgram({ signature: "question -> answer" });
    const job = await h.client.compile({
      program: definition.id,
      optimizer: "BootstrapFewShotWithRandomSearch",
      options: { max_bootstrapped_demos: 2, max_labeled_demos: 2, num_candidate_programs: 8, num_threads: 1 },
      trainset,
      valset,
      metric: "answer_exact_match",
    });
    const events: ProgressEvent[] = [];
    for await (const e of job.progress()) {
      events.push(e);
      if ((e.lm_calls ?? 0) >= 3) break;
    }
    const cancelAt = performance.now();
    await job.cancel();
    await assert.rejects(job.result(), (err: unknown) => {
      assert.ok(err instanceof Cancelled, String(err));
      return true;
    });
    const stopMs = performance.now() - cancelAt;
    t.diagnostic(`cancelled after ${events.at(-1)!.lm_calls ?? 0} LM calls; the job stopped ${Math.round(stopMs)} ms after cancel()`);
    assert.ok(stopMs < 5_000);
    const after = await collect(job);
    assert.equal(after.at(-1)!.type, "cancelled");
    assert.equal((await job.status()).status, "cancelled");
    assert.equal((await h.client.programs.get(definition.id)).version, version, "no new version");
    // Another process can follow the job by its id.
    assert.equal((await h.client.optimizer.job(job.id).status()).status, "cancelled");
    await assert.rejects(h.client.optimizer.job(job.id).result(), (err: unknown) => err instanceof Cancelled);
    assert.deepEqual(await collect(h.client.optimizer.job(job.id)), [], "a finished job's progress ends at once");
  });

  test("a job survives its worker being killed: redelivered after AckWait and re-run from the start", async (t) => {
    h.lmDouble.control.setLatency(100);
    const { definition } = await h.client.createProgram({ signature: "question -> answer" });
    const job = await h.client.compile({
      program: definition.id,
      optimizer: "BootstrapFewShotWithRandomSearch",
      options: { max_bootstrapped_demos: 1, max_labeled_demos: 1, num_candidate_programs: 3, num_threads: 1 },
      trainset,
      valset,
      metric: "answer_exact_match",
    });
    for await (const e of job.progress()) if ((e.lm_calls ?? 0) >= 2) break;
    const victim = h.fleet.workers.find((w) => w.pool === "optimizer")!;
    const killedAt = performance.now();
    victim.process.kill("SIGKILL");
    await victim.exited;
    h.lmDouble.control.setLatency(0);
    const result = await job.result();
    t.diagnostic(`finished ${Math.round(performance.now() - killedAt)} ms after the kill (AckWait ${OPTIMIZER_ACK_WAIT_MS} ms)`);
    assert.equal(result.score, 100);
    const status = await job.status();
    assert.equal(status.status, "succeeded");
    assert.equal(status.runs, 2, "re-run once, from the start");
    assert.notEqual(status.owner, victim.id);
    const events = job.events;
    assert.deepEqual(
      events.filter((e) => e.type === "started").map((e) => e.run),
      [1, 2],
    );
  });
});
