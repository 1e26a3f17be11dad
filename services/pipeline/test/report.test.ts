/** Summaries, the HTML report and job comparison, on job data shaped exactly as the service stores it. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  compareJobs,
  formatComparison,
  renderComparisonReport,
  renderReport,
  scoreBars,
  summarize,
  Stats,
  type ExampleResult,
  type JobRecord,
} from "@dspex/pipeline";
import { formatProgress } from "../../cli/src/commands/progress.js";

function record(id: string, total: number, overrides: Partial<JobRecord> = {}): JobRecord {
  return {
    v: 1,
    kind: "eval",
    id,
    spec: { name: `job ${id}`, program: { signature: "question -> answer" }, metrics: [{ name: "exact_match" }, { name: "f1" }] },
    status: "succeeded",
    total,
    dataset_hash: "a".repeat(64),
    created_at: 1_700_000_000_000,
    updated_at: 1_700_000_010_000,
    started_at: 1_700_000_000_000,
    finished_at: 1_700_000_010_000,
    runs: 1,
    ...overrides,
  };
}

function ok(job: string, index: number, em: boolean, f1: number, ms = 100): ExampleResult {
  return {
    job,
    index,
    ok: true,
    outputs: { answer: `answer <${index}>` },
    scores: { exact_match: em, f1 },
    score: em ? 1 : 0,
    ms,
    attempts: 1,
    worker: "general-1",
    usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 },
    at: 1_700_000_001_000,
  };
}

function failed(job: string, index: number, type: string, message: string): ExampleResult {
  return { job, index, ok: false, scores: {}, score: 0, error: { type, message }, ms: 50, attempts: 3, at: 1_700_000_001_000 };
}

function results(list: ExampleResult[]): Map<number, ExampleResult> {
  return new Map(list.map((r) => [r.index, r]));
}

describe("summary", () => {
  test("DSPy's score over all examples with failures as 0, per metric, errors by type, latency, usage", () => {
    const rs = results([ok("j", 0, true, 1), ok("j", 1, false, 0.5, 300), ok("j", 2, true, 1), failed("j", 3, "LMError", "boom")]);
    const s = summarize(record("j", 4), rs);
    assert.equal(s.score, 50); // 2 of 4
    assert.deepEqual(s.metrics, { exact_match: 50, f1: 62.5 }); // (1 + 0.5 + 1 + 0) / 4
    assert.equal(s.primary_metric, "exact_match");
    assert.deepEqual(s.errors_by_type, { LMError: 1 });
    assert.equal(s.ok, 3);
    assert.equal(s.failed, 1);
    assert.equal(s.latency_ms?.max, 300);
    assert.equal(s.usage.total_tokens, 36);
    assert.equal(s.rate, 0.4); // 4 examples in 10 s
  });

  test("score rounding is Python's round(x, 2)", () => {
    const rs = results([ok("j", 0, true, 1), ok("j", 1, false, 0), ok("j", 2, false, 0)]);
    assert.equal(summarize(record("j", 3), rs).score, 33.33);
    const s = summarize(record("j", 0), new Map());
    assert.equal(s.score, null);
  });

  test("running stats and the progress line", () => {
    const stats = new Stats(10, Date.now() - 1000);
    stats.add(ok("j", 0, true, 1), false);
    stats.add(ok("j", 1, false, 0), true);
    stats.add(failed("j", 2, "LMError", "x"), true);
    assert.equal(stats.score, 33.33);
    const e = stats.event("j", "running", Date.now() - 1000);
    assert.equal(e.done, 3);
    assert.equal(e.failed, 1);
    assert.ok((e.rate ?? 0) > 0);
    assert.ok(e.eta_s !== null && e.eta_s !== undefined && e.eta_s > 0);
    assert.match(formatProgress(e), /^\[#+\.+\] 3\/10 +30% .*score 33\.33 +failed 1$/);
  });
});

describe("HTML report", () => {
  const job = "ev-report";
  const list = [
    ...Array.from({ length: 40 }, (_, i) => ok(job, i, i % 3 !== 0, i % 3 === 0 ? 0.25 : 1, 100 + i * 10)),
    failed(job, 40, "LMOutputError", "could not parse <garbage> & more"),
    failed(job, 41, "LMOutputError", "could not parse again"),
    failed(job, 42, "DeadlineExceeded", "no reply within 10000 ms"),
  ];
  const dataset = list.map((r) => ({ question: `question <b>${r.index}</b>`, answer: "yes" }));
  const html = renderReport({ record: record(job, 43), results: results(list), dataset, generatedAt: new Date(0) });

  test("is one self-contained document with every section", () => {
    assert.match(html, /^<!doctype html>/);
    for (const id of ["summary", "distribution", "errors", "failed", "slowest", "examples"]) {
      assert.ok(html.includes(`<section id="${id}">`), `section ${id}`);
    }
    assert.ok(!/<script|<link|src=|url\(/i.test(html), "no scripts or external assets");
    assert.equal((html.match(/<svg /g) ?? []).length, 2, "score and latency charts");
  });

  test("shows the score, the errors grouped by type, failed and slowest examples, escaped", () => {
    const s = summarize(record(job, 43), results(list));
    assert.ok(html.includes(`>${s.score!.toFixed(2)}<`), "the score");
    assert.match(html, /<code class="err">LMOutputError<\/code><\/td><td class="num">2<\/td>/);
    assert.match(html, /<code class="err">DeadlineExceeded<\/code><\/td><td class="num">1<\/td>/);
    assert.ok(html.includes("could not parse &lt;garbage&gt; &amp; more"));
    assert.ok(html.includes("question &lt;b&gt;40&lt;/b&gt;"), "inputs of failed examples, escaped");
    assert.ok(!html.includes("<b>40</b>"));
    // The slowest example (index 39, 490 ms) heads the slowest table.
    const slowest = html.slice(html.indexOf('<section id="slowest">'));
    assert.match(slowest, /<tbody><tr><td class="num">39<\/td><td class="num">490 ms<\/td>/);
  });

  test("distribution bars: hits, misses and failures for a 0/1 metric; bins otherwise", () => {
    const bars = scoreBars(list);
    assert.deepEqual(
      bars.map((b) => [b.label, b.count]),
      [["0 (miss)", 14], ["1 (hit)", 26], ["failed", 3]],
    );
    const graded = [0, 0.05, 0.5, 0.55, 1].map((score, index) => ({ ...ok(job, index, false, score), score }));
    const bins = scoreBars(graded);
    assert.equal(bins.length, 11);
    assert.equal(bins.reduce((n, b) => n + b.count, 0), 5);
    assert.equal(bins[9]!.count, 1, "1.0 falls in the last bin");
  });
});

describe("comparison", () => {
  const a = { record: record("ev-a", 4), results: results([ok("ev-a", 0, true, 1), ok("ev-a", 1, false, 0), ok("ev-a", 2, true, 1), failed("ev-a", 3, "LMError", "x")]) };
  const b = { record: record("ev-b", 4), results: results([ok("ev-b", 0, true, 1), ok("ev-b", 1, true, 1), ok("ev-b", 2, false, 0), ok("ev-b", 3, true, 1)]) };
  const c = { record: record("ev-c", 4, { status: "cancelled" }), results: results([ok("ev-c", 0, false, 0), ok("ev-c", 1, true, 1)]) };

  test("per-example wins, losses and ties for every pair", () => {
    const cmp = compareJobs([a, b, c]);
    assert.equal(cmp.pairs.length, 3);
    const ab = cmp.pairs[0]!;
    assert.deepEqual([ab.a, ab.b, ab.wins, ab.losses, ab.ties, ab.missing], ["ev-a", "ev-b", 2, 1, 1, 0]);
    assert.equal(ab.delta, 25); // 50 -> 75
    assert.deepEqual(ab.changed.map((x) => x.index), [1, 2, 3]);
    const ac = cmp.pairs[1]!;
    assert.deepEqual([ac.wins, ac.losses, ac.ties, ac.missing], [1, 1, 0, 2]);
    assert.deepEqual(cmp.perExample[3]!.scores, [0, 1, null]);
    assert.match(formatComparison(cmp), /ev-b vs ev-a: 2 wins, 1 losses, 1 ties \(\+25 points\)/);
  });

  test("refuses different datasets unless forced", () => {
    const other = { record: record("ev-d", 4, { dataset_hash: "b".repeat(64) }), results: new Map() };
    assert.throws(() => compareJobs([a, other]), /different datasets/);
    assert.equal(compareJobs([a, other], { force: true }).pairs.length, 1);
    assert.throws(() => compareJobs([a]), /at least two/);
  });

  test("HTML comparison report", () => {
    const html = renderComparisonReport(compareJobs([a, b]), { generatedAt: new Date(0) });
    for (const id of ["comparison", "pairs", "changed"]) assert.ok(html.includes(`<section id="${id}">`), id);
    assert.match(html, /<td class="num win">2<\/td><td class="num loss">1<\/td><td class="num">1<\/td>/);
    assert.ok(html.includes("+25.00"));
    assert.ok(!/<script|<link|src=/i.test(html));
  });
});
