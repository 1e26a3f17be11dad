/** The running counters of an eval job (results of earlier runs included), and its progress events. */
import { pythonRound } from "@dspex/native";
import type { ErrorWire } from "@dspex/protocol";
import type { ExampleResult, JobStatus, ProgressEvent } from "./types.js";

/** Running counters of a job (results of earlier runs included). */
export class Stats {
  done = 0;
  ok = 0;
  failed = 0;
  sum = 0;
  private readonly recent: number[] = [];

  constructor(
    readonly total: number,
    private readonly runStarted = Date.now(),
  ) {}

  add(result: ExampleResult, live: boolean): void {
    this.done++;
    if (result.ok) this.ok++;
    else this.failed++;
    this.sum += result.score;
    if (live) {
      this.recent.push(Date.now());
      if (this.recent.length > 5_000) this.recent.splice(0, this.recent.length - 5_000);
    }
  }

  get score(): number | null {
    return this.done === 0 ? null : pythonRound((100 * this.sum) / this.done, 2);
  }

  /** Examples per second over the last 10 s of this run. */
  rate(now = Date.now()): number {
    const windowStart = Math.max(now - 10_000, this.runStarted);
    const span = (now - windowStart) / 1000;
    if (span <= 0) return 0;
    let n = 0;
    for (let i = this.recent.length - 1; i >= 0 && this.recent[i]! >= windowStart; i--) n++;
    return n / span;
  }

  event(
    job: string,
    status: JobStatus,
    started_at: number | undefined,
    extra: { type?: ProgressEvent["type"]; seq?: number; run?: number; error?: ErrorWire } = {},
  ): ProgressEvent {
    const now = Date.now();
    const rate = this.rate(now);
    const left = this.total - this.done;
    return {
      v: 1,
      job,
      kind: "eval",
      type: extra.type ?? "progress",
      status,
      at: now,
      ...(extra.seq !== undefined ? { seq: extra.seq } : {}),
      ...(extra.run !== undefined ? { run: extra.run } : {}),
      total: this.total,
      done: this.done,
      ok: this.ok,
      failed: this.failed,
      score: this.score,
      rate: Math.round(rate * 100) / 100,
      eta_s: left === 0 ? 0 : rate > 0 ? Math.round((left / rate) * 10) / 10 : null,
      elapsed_ms: started_at === undefined ? 0 : now - started_at,
      ...(extra.error ? { error: extra.error } : {}),
    };
  }
}

