// Optimizing users' packaged programs on the real fleet (a general and an optimizer worker): a stored version of
// the program is what an optimizer job starts from; the job tunes the program's own predictors and stores the
// result as the next version; calling that version runs the program with the learned demos in its prompts. A
// version whose state no longer matches the program's predictors is refused, naming them.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { ValidationError } from "@dspex/protocol";
import { startHarness, type Harness } from "../integration/harness.js";

describe("program packages: optimize and version", { timeout: 180_000 }, () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ fleet: { workers: { general: 1, optimizer: 1 } } });
  });
  after(async () => {
    await h?.close();
  });

  const trainset = [
    { question: "What is the capital of Italy?", answer: "Rome", confidence: 0.9 },
    { question: "What is the capital of Spain?", answer: "Madrid", confidence: 0.8 },
  ];

  test("an optimizer job tunes a packaged program's predictors; the new version's prompts carry the demos", async () => {
    const qa = h.client.program<{ question: string }, { answer: string; confidence: number }>("qa");
    const stored = await qa.store();
    assert.equal(stored.definition.module, "program");
    assert.equal(stored.definition.package, "qa");
    const job = await h.client.compile({
      program: { id: stored.definition.id, version: stored.version },
      optimizer: "LabeledFewShot",
      options: { k: 2 },
      trainset,
      evaluate: false,
    });
    const result = await job.result();
    assert.ok(result.program.version > stored.version);
    const { definition } = await h.client.programs.get(stored.definition.id, result.program.version);
    const state = definition.state!.dspy_state as Record<string, { demos: unknown[] }>;
    assert.deepEqual(Object.keys(state).sort(), ["draft", "refine"], "the program's own predictors were tuned");
    assert.equal(state.refine!.demos.length, 2);
    assert.equal(definition.package, "qa");

    const before = h.lmDouble.requests().length;
    const out = await qa.call({ question: "What is the capital of France?" }, { stored: result.program });
    assert.equal(typeof out.outputs.answer, "string");
    const prompts = h.lmDouble.requests().slice(before).map((r) => JSON.stringify(r.body));
    assert.equal(prompts.length, 2);
    // the refine predictor's prompt carries its learned demos (DSPy leaves out the draft predictor's: its demos
    // have no `draft` output, and ChatAdapter formats only demos with an input and an output of the predictor)
    assert.ok(prompts.some((p) => p.includes("capital of Italy") && p.includes("capital of Spain")), "the learned demos reach the prompt");

    const viaExecute = await h.client.execute(stored.definition.id, { question: "What is the capital of Peru?" });
    assert.equal(viaExecute.version, result.program.version);
    assert.equal(typeof viaExecute.outputs.answer, "string");

    // the unoptimized program, for contrast: no demos in its prompts
    const plainBefore = h.lmDouble.requests().length;
    await qa.call({ question: "What is the capital of France?" });
    assert.ok(h.lmDouble.requests().slice(plainBefore).every((r) => !JSON.stringify(r.body).includes("capital of Italy")));
  });

  test("BootstrapFewShot on the optimizer worker runs the program to collect demos for both predictors; the general worker runs that version", async () => {
    const qa = h.client.program<{ question: string }, { answer: string; confidence: number }>("qa");
    const stored = await qa.store();
    // the double answers the trainset right, so every trace passes the metric and becomes a demo
    h.lmDouble.control.setRules([
      { field: "question", match: { contains: "Italy" }, outputs: { answer: "Rome", confidence: 0.9 } },
      { field: "question", match: { contains: "Spain" }, outputs: { answer: "Madrid", confidence: 0.8 } },
    ]);
    const before = h.lmDouble.requests().length;
    const job = await h.client.compile({
      program: { id: stored.definition.id, version: stored.version },
      optimizer: "BootstrapFewShot",
      options: { max_bootstrapped_demos: 2, max_labeled_demos: 0 },
      trainset,
      metric: "answer_exact_match",
      evaluate: false,
    });
    const result = await job.result().finally(() => h.lmDouble.control.setRules([]));
    assert.ok(h.lmDouble.requests().length - before >= 2 * trainset.length, "the program ran on the trainset (two predictors per example)");
    const { definition } = await h.client.programs.get(stored.definition.id, result.program.version);
    const state = definition.state!.dspy_state as Record<string, { demos: Array<Record<string, unknown>> }>;
    assert.equal(state.draft!.demos.length, 2, "bootstrapped traces of the first predictor");
    assert.equal(state.refine!.demos.length, 2);
    assert.ok(state.draft!.demos.every((d) => typeof d.draft === "string" && typeof d.question === "string"), JSON.stringify(state.draft!.demos));

    const out = await qa.call({ question: "What is the capital of France?" }, { stored: result.program });
    const optimizer = h.fleet.workers.find((w) => w.pool === "optimizer")!;
    assert.notEqual(out.worker, optimizer.id);
    assert.equal(out.worker, h.fleet.workers.find((w) => w.pool === "general")!.id, "another worker than the one that optimized it");
  });

  test("a version whose state names predictors the program no longer has is refused, naming them", async () => {
    const qa = h.client.program("qa");
    const stored = await qa.store();
    const stale = await h.client.programs.put({
      ...stored.definition,
      state: { dspy_state: { draft: { demos: [] }, critique: { demos: [] } } },
    });
    await assert.rejects(qa.call({ question: "q" }, { stored: { id: stale.definition.id, version: stale.version } }), (err: unknown) => {
      assert.ok(err instanceof ValidationError, String(err));
      assert.equal(err.field, "program");
      assert.match(err.message, /gone: critique; not in the stored state: refine/);
      return true;
    });
  });
});
