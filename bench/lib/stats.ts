/** Latency statistics and a closed-loop load generator (the same fields as bench/py/common.py). */
import { loadavg } from "node:os";
import { percentile } from "@dspex/pipeline";

export interface LoadResult {
  concurrency: number;
  requests: number;
  errors: number;
  wall_s: number;
  rps: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  mean_ms: number;
  max_ms: number;
  load_avg_1m: number;
  firstError?: string;
}

const round = (x: number, digits = 4) => Number(x.toFixed(digits));

export function summarize(samplesMs: number[], wallS: number, errors = 0): Omit<LoadResult, "concurrency" | "load_avg_1m"> {
  const xs = [...samplesMs].sort((a, b) => a - b);
  const n = xs.length;
  const pct = (p: number) => (n ? percentile(xs, p) : NaN); // nearest rank
  return {
    requests: n,
    errors,
    wall_s: round(wallS),
    rps: n && wallS > 0 ? round(n / wallS, 1) : 0,
    p50_ms: round(pct(50)),
    p95_ms: round(pct(95)),
    p99_ms: round(pct(99)),
    mean_ms: n ? round(xs.reduce((a, b) => a + b, 0) / n) : NaN,
    max_ms: n ? round(xs[n - 1]!) : NaN,
  };
}

export interface LoadOptions {
  concurrency: number;
  durationMs: number;
  warmupMs: number;
  maxRequests: number;
}

/**
 * `concurrency` virtual users, each calling `op` back to back: a warm-up (discarded), then the measured run
 * until `durationMs` or `maxRequests`. Throughput is completed requests over the measured wall time.
 */
export async function closedLoop(op: () => Promise<unknown>, options: LoadOptions): Promise<LoadResult> {
  let firstError: string | undefined;
  const run = async (ms: number, record: boolean) => {
    const samples: number[] = [];
    let errors = 0;
    const started = performance.now();
    const end = started + ms;
    const user = async () => {
      while (performance.now() < end && samples.length + errors < options.maxRequests) {
        const t0 = performance.now();
        try {
          await op();
        } catch (err) {
          errors += 1;
          firstError ??= String(err);
          if (errors > 50 && errors > samples.length) throw new Error(`load aborted, ${errors} errors; first: ${firstError}`);
          continue;
        }
        if (record) samples.push(performance.now() - t0);
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, user));
    return { samples, errors, wallS: (performance.now() - started) / 1000 };
  };
  if (options.warmupMs > 0) await run(options.warmupMs, false);
  const load = loadavg()[0]!;
  const { samples, errors, wallS } = await run(options.durationMs, true);
  return {
    concurrency: options.concurrency,
    ...summarize(samples, wallS, errors),
    load_avg_1m: round(load, 2),
    ...(firstError ? { firstError } : {}),
  };
}

/** Per-call time of a synchronous function, in microseconds (after a short warm-up). */
export function perCallUs(fn: () => unknown, n: number): number {
  for (let i = 0; i < Math.min(50, n); i++) fn();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn();
  return round(((performance.now() - t0) / n) * 1000, 3);
}
