/** Aggregates of a job's results: DSPy's score, per-metric scores, errors by type, latency, usage. */
import type { Usage } from "@dspex/protocol";
import { evaluateScore } from "@dspex/native";
import { scoreNumber } from "./metrics.js";
import type { ExampleResult, JobRecord, JobSummary, LatencyStats } from "./types.js";

/** DSPy's `round(100 * sum(scores) / n, 2)`, or null with no results. */
export function aggregate(scores: ReadonlyArray<number | boolean>): number | null {
  return scores.length === 0 ? null : evaluateScore(scores);
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function latencyStats(ms: readonly number[]): LatencyStats | null {
  if (ms.length === 0) return null;
  const sorted = [...ms].sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return {
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1]!,
    mean,
  };
}

export function primaryKey(record: Pick<JobRecord, "spec">): string {
  const m = record.spec.metrics[0];
  return m ? (m.as ?? m.name) : "score";
}

/** The summary of a job from its record and its stored results (in index order). */
export function summarize(record: JobRecord, results: ReadonlyMap<number, ExampleResult>): JobSummary {
  const ordered = [...results.values()].sort((a, b) => a.index - b.index);
  const keys = record.spec.metrics.map((m) => m.as ?? m.name);
  const primary = primaryKey(record);
  const errors_by_type: Record<string, number> = {};
  const usage: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  let failed = 0;
  for (const r of ordered) {
    if (!r.ok) {
      failed++;
      const type = r.error?.type ?? "Error";
      errors_by_type[type] = (errors_by_type[type] ?? 0) + 1;
    }
    if (r.usage) {
      usage.prompt_tokens += r.usage.prompt_tokens ?? 0;
      usage.completion_tokens += r.usage.completion_tokens ?? 0;
      usage.total_tokens += r.usage.total_tokens ?? 0;
    }
  }
  const metrics: Record<string, number | null> = {};
  for (const key of keys) metrics[key] = aggregate(ordered.map((r) => (r.ok ? scoreNumber(r.scores[key]) : 0)));
  const started_at = record.started_at;
  const finished_at = record.finished_at;
  const wall = started_at !== undefined ? ((finished_at ?? Date.now()) - started_at) / 1000 : undefined;
  return {
    job: record.id,
    ...(record.spec.name ? { name: record.spec.name } : {}),
    status: record.status,
    total: record.total,
    done: ordered.length,
    ok: ordered.length - failed,
    failed,
    score: aggregate(ordered.map((r) => r.score)),
    metrics,
    primary_metric: primary,
    errors_by_type,
    latency_ms: latencyStats(ordered.map((r) => r.ms)),
    usage,
    ...(started_at !== undefined ? { started_at } : {}),
    ...(finished_at !== undefined ? { finished_at } : {}),
    ...(wall !== undefined && wall > 0 ? { rate: ordered.length / wall } : {}),
    dataset_hash: record.dataset_hash,
  };
}

/** How close a finished run came to the concurrency bound (what `dspex eval` prints at the end). */
export interface IdealBound {
  /** Examples per second over the run's wall time. */
  rate: number;
  /** c ÷ mean per-example latency: by Little's law no run holding at most c examples in flight can go faster. */
  ideal: number;
  /** rate ÷ ideal, 0–1: the fraction of the c slots that were busy on average. */
  fraction: number;
}

/**
 * The throughput bound the CLI can know: c ÷ the mean latency of an example as measured by the pipeline (LM
 * call plus bus plus worker CPU). It is the min(c ÷ LM latency, cores ÷ CPU-s per example) seen from
 * the caller: when the fleet's CPU saturates, per-example latency rises and the bound falls with it, so the
 * fraction shows idle slots (dispatch gaps, retries, stragglers at the end), not CPU saturation; the
 * benchmark (bench/) measures the full bound with the LM latency and CPU seconds known. Null without a rate
 * or latency (an empty or unfinished run).
 */
export function idealBound(summary: Pick<JobSummary, "rate" | "latency_ms" | "done">, concurrency: number): IdealBound | null {
  const rate = summary.rate;
  const mean = summary.latency_ms?.mean;
  if (rate === undefined || mean === undefined || mean <= 0 || summary.done === 0) return null;
  // fewer examples than c can never fill c slots
  const inFlight = Math.max(1, Math.min(concurrency, summary.done));
  const ideal = inFlight / (mean / 1000);
  return { rate, ideal, fraction: rate / ideal };
}
