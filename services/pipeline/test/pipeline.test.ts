/**
 * Pipelines: native TypeScript steps and Python DSPy module steps through the Client (real workers, real
 * dspy, LM double), field mapping, parallel groups, conditional branches, continue_on_error, per-step
 * timing; run as one request (API and dspex.pipeline.run) and as the program of a batch job.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  EVAL_SUBJECTS,
  PipelineClient,
  PipelineService,
  PipelineStepError,
  runPipeline,
  validatePipeline,
  type PipelineSpec,
} from "@dspex/pipeline";
import { startHarness, type Harness } from "../../../test/integration/harness.js";

describe("pipelines: native steps only", () => {
  const noModules = async () => {
    throw new Error("no module step expected");
  };

  test("outputs feed the next steps by name, by mapping and by step path; timings per step", async () => {
    const spec: PipelineSpec = {
      steps: [
        { kind: "native", name: "ask", fn: "template", args: { field: "prompt", template: "Add {a} and {b}" } },
        { kind: "native", name: "sum", fn: (input) => ({ total: Number(input.x) + Number(input.y) }), inputs: { x: "$input.a", y: "b" } },
        { kind: "native", name: "label", fn: "template", args: { field: "label", template: "{p} = {t}" }, inputs: { p: "ask.prompt", t: "total" } },
        { kind: "native", name: "rename", fn: "pick", args: { fields: ["label"] }, outputs: { final: "label" } },
      ],
      output: ["final", "total"],
    };
    const r = await runPipeline(spec, { a: 2, b: 3 }, { callModule: noModules });
    assert.deepEqual(r.outputs, { final: "Add 2 and 3 = 5", total: 5 });
    assert.deepEqual(r.steps.map((s) => [s.name, s.kind, s.status]), [
      ["ask", "native", "ok"],
      ["sum", "native", "ok"],
      ["label", "native", "ok"],
      ["rename", "native", "ok"],
    ]);
    for (const s of r.steps) assert.ok(s.ms >= 0 && s.startMs >= 0);
    assert.ok(r.steps[1]!.startMs >= r.steps[0]!.startMs);
  });

  test("a branch takes then or else; conditions compose", async () => {
    const spec: PipelineSpec = {
      steps: [
        {
          kind: "branch",
          name: "size",
          if: { all: [{ field: "n", gte: 10 }, { not: { field: "tag", equals: "small" } }] },
          then: [{ kind: "native", name: "big", fn: "set", args: { size: "big" } }],
          else: [{ kind: "native", name: "small", fn: "set", args: { size: "small" } }],
        },
      ],
    };
    const big = await runPipeline(spec, { n: 12 }, { callModule: noModules });
    assert.equal(big.outputs.size, "big");
    assert.equal(big.steps[0]!.branch, "then");
    assert.deepEqual(big.steps[0]!.children?.map((c) => c.name), ["big"]);
    const small = await runPipeline(spec, { n: 12, tag: "small" }, { callModule: noModules });
    assert.equal(small.outputs.size, "small");
    assert.equal(small.steps[0]!.branch, "else");
  });

  test("continue_on_error records the failure and goes on; otherwise the step error stops the pipeline", async () => {
    const boom = () => {
      throw new TypeError("bad input");
    };
    const lenient = await runPipeline(
      {
        steps: [
          { kind: "native", name: "flaky", fn: boom, continue_on_error: true },
          { kind: "native", name: "after", fn: "set", args: { ok: true } },
        ],
      },
      {},
      { callModule: noModules },
    );
    assert.deepEqual(lenient.outputs, { ok: true });
    assert.equal(lenient.steps[0]!.status, "failed");
    assert.deepEqual(lenient.steps[0]!.error, { type: "TypeError", message: "bad input" });

    await assert.rejects(
      runPipeline(
        {
          steps: [
            { kind: "native", name: "first", fn: "set", args: { a: 1 } },
            { kind: "parallel", name: "group", steps: [{ kind: "native", name: "inner", fn: boom }, { kind: "native", name: "fine", fn: "set", args: { b: 2 } }] },
            { kind: "native", name: "never", fn: "set", args: { c: 3 } },
          ],
        },
        {},
        { callModule: noModules },
      ),
      (err: unknown) => {
        assert.ok(err instanceof PipelineStepError);
        assert.equal(err.step, "inner", "names the innermost failed step");
        assert.equal(err.type, "TypeError");
        assert.deepEqual(err.timings.map((t) => [t.name, t.status]), [["first", "ok"], ["group", "failed"]]);
        assert.deepEqual(err.timings[1]!.children?.map((t) => [t.name, t.status]), [["inner", "failed"], ["fine", "ok"]]);
        return true;
      },
    );
  });

  test("validation: unique names, known kinds and functions, checked signatures", () => {
    assert.throws(() => validatePipeline({ steps: [] }), /non-empty/);
    assert.throws(
      () => validatePipeline({ steps: [{ kind: "native", name: "a", fn: "set" }, { kind: "native", name: "a", fn: "set" }] }),
      /duplicate step name/,
    );
    assert.throws(() => validatePipeline({ steps: [{ kind: "native", name: "a", fn: "nope" }] }), /unknown native function/);
    assert.throws(() => validatePipeline({ steps: [{ kind: "module", name: "m", signature: "question -> answer: string" }] }), /str/);
    assert.throws(
      () => validatePipeline({ steps: [{ kind: "branch", name: "b", if: { field: "x" } as never, then: [] }] }),
      /needs one of/,
    );
    validatePipeline({ steps: [{ kind: "native", name: "mine", fn: "mine" }] }, new Map([["mine", () => ({})]]));
  });
});

describe("pipelines with Python DSPy module steps", { timeout: 120_000 }, () => {
  let h: Harness;
  let service: PipelineService;
  let client: PipelineClient;

  before(async () => {
    h = await startHarness({ fleet: { workers: { general: 1 } } });
    service = await PipelineService.start({ servers: h.fleet.natsUrl, creds: h.fleet.creds.pipeline, client: h.client, lm: h.lm });
    service.registerStep("shout", (input) => ({ shout: String(input.answer).toUpperCase() }));
    client = await PipelineClient.connect({ servers: h.fleet.natsUrl, creds: h.fleet.creds.client });
  });
  after(async () => {
    await client?.close();
    await service?.close();
    await h?.close();
  });

  const math: PipelineSpec = {
    name: "math",
    inputs: ["a", "b"],
    steps: [
      { kind: "native", name: "ask", fn: "template", args: { field: "question", template: "What is {a}+{b}?" } },
      { kind: "module", name: "solve", signature: "question -> answer" },
      {
        kind: "parallel",
        name: "views",
        steps: [
          { kind: "module", name: "explain", module: "chain_of_thought", signature: "question -> answer", outputs: { cot_answer: "answer", why: "reasoning" } },
          { kind: "native", name: "loud", fn: "shout" },
        ],
      },
      {
        kind: "branch",
        name: "check",
        if: { field: "answer", equals: "5" },
        then: [{ kind: "native", name: "yes", fn: "set", args: { verdict: "five" } }],
        else: [{ kind: "native", name: "no", fn: "set", args: { verdict: "not five" } }],
      },
      { kind: "native", name: "bad", fn: "set", args: { bad_question: "please fail" } },
      { kind: "module", name: "broken", signature: "question -> answer", inputs: { question: "bad_question" }, outputs: {}, continue_on_error: true },
    ],
    output: ["answer", "cot_answer", "why", "shout", "verdict"],
  };

  test("native and module steps, parallel, branch and continue_on_error in one run", async () => {
    h.lmDouble.control.apply({ latencyMs: 150, rules: [{ field: "question", match: "please fail", reply: "garbage" }] });
    try {
      const r = await service.runPipeline(math, { a: 2, b: 3 });
      assert.equal(r.outputs.answer, "5", "the LM double does the arithmetic");
      assert.equal(r.outputs.cot_answer, "5");
      assert.equal(typeof r.outputs.why, "string");
      assert.equal(r.outputs.shout, "5");
      assert.equal(r.outputs.verdict, "five");
      assert.deepEqual(r.steps.map((s) => [s.name, s.status]), [
        ["ask", "ok"],
        ["solve", "ok"],
        ["views", "ok"],
        ["check", "ok"],
        ["bad", "ok"],
        ["broken", "failed"],
      ]);
      assert.equal(r.steps[5]!.error?.type, "LMOutputError");
      assert.match(r.steps[1]!.worker ?? "", /^general-/);
      // The parallel module and native children started together.
      const [explain, loud] = r.steps[2]!.children!;
      assert.ok(loud!.startMs < explain!.startMs + explain!.ms, "children overlap");
      assert.ok(explain!.ms >= 150, "the module step waited for the LM");
      assert.ok(r.usage.total_tokens > 0);
      const other = await service.runPipeline(math, { a: 4, b: 4 });
      assert.equal(other.outputs.verdict, "not five");
    } finally {
      h.lmDouble.control.reset();
    }
  });

  test("one request on dspex.pipeline.run", async () => {
    const r = await client.runPipeline(math, { a: 1, b: 1 });
    assert.equal(r.outputs.answer, "2");
    const reply = (await client.nc.request(EVAL_SUBJECTS.pipelineRun, JSON.stringify({ pipeline: { steps: [{ kind: "native", name: "x", fn: "nope" }] } }))).json<{
      ok: boolean;
      error: { type: string; message: string };
    }>();
    assert.equal(reply.ok, false);
    assert.match(reply.error.message, /unknown native function/);
  });

  test("a pipeline as the program of a batch job, with per-step timing in each result", async () => {
    const data = Array.from({ length: 12 }, (_, i) => ({ a: i, b: 2, answer: String(i + 2 === 5 ? 5 : i + 3) }));
    const job = await client.submit({ program: { pipeline: math }, metrics: ["exact_match"], concurrency: 4 }, data);
    const record = await client.wait(job, { timeoutMs: 60_000 });
    assert.equal(record.status, "succeeded");
    assert.equal(record.result?.score, 8.33); // only a=3 (3+2=5) has the right gold answer: 1 of 12
    const r = (await client.results(job)).get(3)!;
    assert.equal(r.ok, true);
    assert.equal(r.outputs?.verdict, "five");
    assert.deepEqual(r.steps?.map((s) => s.name), ["ask", "solve", "views", "check", "bad", "broken"]);
    assert.ok(r.steps!.every((s) => s.status === "ok" && s.ms >= 0));
  });

  test("a job's pipeline must name its native functions; Python metrics need a module program", async () => {
    await assert.rejects(
      client.submit({ program: { pipeline: math }, metrics: ["py:answer_exact_match"] }, [{ a: 1, b: 2 }]),
      /Python \(py:\) metrics need a module program/,
    );
    await assert.rejects(
      client.submit({ program: { pipeline: { steps: [{ kind: "native", name: "x", fn: "unregistered" }] } }, metrics: ["exact_match"] }, [{ a: 1 }]),
      /unknown native function/,
    );
  });
});
