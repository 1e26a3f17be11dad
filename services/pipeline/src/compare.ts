/**
 * Comparison of two or more jobs on the same dataset: scores side by side and, for every pair, per-example
 * wins, losses and ties on the primary metric (a failed example scores 0, as in DSPy).
 */
import { ValidationError } from "@dspex/protocol";
import { summarize } from "./summary.js";
import type { ExampleResult, JobRecord, JobSummary } from "./types.js";

export interface JobData {
  record: JobRecord;
  results: ReadonlyMap<number, ExampleResult>;
}

export interface PairComparison {
  a: string;
  b: string;
  /** Examples where b scores higher than a. */
  wins: number;
  /** Examples where b scores lower than a. */
  losses: number;
  ties: number;
  /** Examples missing a result in either job (incomplete jobs). */
  missing: number;
  /** Score difference b - a (percentage points). */
  delta: number | null;
  /** Examples whose score differs: index, score in a, score in b. */
  changed: Array<{ index: number; a: number; b: number }>;
}

export interface Comparison {
  dataset_hash: string;
  total: number;
  jobs: JobSummary[];
  pairs: PairComparison[];
  /** Per example, the primary score of each job (null: no result), in job order. */
  perExample: Array<{ index: number; scores: Array<number | null> }>;
}

/** Compares jobs; throws ValidationError when their datasets differ (unless `force`). */
export function compareJobs(jobs: ReadonlyArray<JobData>, options: { force?: boolean } = {}): Comparison {
  if (jobs.length < 2) throw new ValidationError("comparison needs at least two jobs", { field: "jobs" });
  const first = jobs[0]!.record;
  for (const j of jobs.slice(1)) {
    if (j.record.dataset_hash !== first.dataset_hash && !options.force) {
      throw new ValidationError(
        `jobs '${first.id}' and '${j.record.id}' ran on different datasets (${first.dataset_hash.slice(0, 12)} vs ${j.record.dataset_hash.slice(0, 12)})`,
        { field: "jobs" },
      );
    }
  }
  const total = Math.max(...jobs.map((j) => j.record.total));
  const perExample: Comparison["perExample"] = [];
  for (let index = 0; index < total; index++) {
    perExample.push({ index, scores: jobs.map((j) => j.results.get(index)?.score ?? null) });
  }
  const summaries = jobs.map((j) => summarize(j.record, j.results));
  const pairs: PairComparison[] = [];
  for (let x = 0; x < jobs.length; x++) {
    for (let y = x + 1; y < jobs.length; y++) {
      const pair: PairComparison = {
        a: jobs[x]!.record.id,
        b: jobs[y]!.record.id,
        wins: 0,
        losses: 0,
        ties: 0,
        missing: 0,
        delta: null,
        changed: [],
      };
      for (const row of perExample) {
        const sa = row.scores[x];
        const sb = row.scores[y];
        if (sa === null || sb === null || sa === undefined || sb === undefined) {
          pair.missing++;
          continue;
        }
        if (sb > sa) pair.wins++;
        else if (sb < sa) pair.losses++;
        else pair.ties++;
        if (sa !== sb) pair.changed.push({ index: row.index, a: sa, b: sb });
      }
      const scoreA = summaries[x]!.score;
      const scoreB = summaries[y]!.score;
      pair.delta = scoreA === null || scoreB === null ? null : Math.round((scoreB - scoreA) * 100) / 100;
      pairs.push(pair);
    }
  }
  return { dataset_hash: first.dataset_hash, total, jobs: summaries, pairs, perExample };
}

/** A plain-text table of a comparison (for the CLI). */
export function formatComparison(c: Comparison): string {
  const lines = [`dataset ${c.dataset_hash.slice(0, 12)}…, ${c.total} examples`, ""];
  for (const s of c.jobs) {
    lines.push(`  ${s.job.padEnd(28)} ${(s.score === null ? "—" : s.score.toFixed(2)).padStart(7)}  (${s.ok} ok, ${s.failed} failed, ${s.status})${s.name ? `  ${s.name}` : ""}`);
  }
  lines.push("");
  for (const p of c.pairs) {
    lines.push(
      `  ${p.b} vs ${p.a}: ${p.wins} wins, ${p.losses} losses, ${p.ties} ties${p.missing ? `, ${p.missing} missing` : ""}` +
        (p.delta === null ? "" : ` (${p.delta >= 0 ? "+" : ""}${p.delta} points)`),
    );
  }
  return lines.join("\n");
}
