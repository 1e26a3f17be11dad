/**
 * Runs one job: fans the examples that have no stored result yet out to the fleet with bounded concurrency,
 * scores them, stores each result once, publishes progress, keeps the owner lease alive, and finishes the
 * job record. Everything it needs to resume is in JetStream, so a run can stop at any point (crash, kill,
 * lost lease, shutdown) and a later run continues with exactly the examples that are still missing.
 */
import { setMaxListeners } from "node:events";
import type { NatsConnection } from "@nats-io/transport-node";
import { ValidationError, isPool, type ErrorWire, type LMConfig, type Usage } from "@dspex/protocol";
import type { Client } from "@dspex/client";
import { publishProgress } from "@dspex/jobs";
import { retryOnBus } from "@dspex/bus";
import { callModule, programCaller } from "./call-module.js";
import { Stats } from "./stats.js";
import type { EvaluateCaller } from "./evaluate-op.js";
import { pythonScores, resolveMetrics, scoreNative, scoreNumber, type ResolvedMetric } from "./metrics.js";
import { errorInfo, PipelineStepError, runPipeline, type NativeFunction, type StepTiming } from "./pipeline.js";
import type { EvalStore } from "./store.js";
import { primaryKey, summarize } from "./summary.js";
import { inputKeysOf, omit, pick } from "./example-fields.js";
import {
  isPackagedProgram,
  isPipelineProgram,
  type ExampleResult,
  type JobRecord,
  type JobStatus,
  type MetricFunction,
  type ProgressEvent,
} from "./types.js";

export interface RunnerDeps {
  store: EvalStore;
  client: Client;
  evaluator: EvaluateCaller;
  nc: NatsConnection;
  /** This service instance (lease owner id). */
  owner: string;
  leaseMs: number;
  metrics: ReadonlyMap<string, MetricFunction>;
  functions: ReadonlyMap<string, NativeFunction>;
  defaultLm?: LMConfig;
  /** Minimum interval between progress events (default 250 ms). */
  progressIntervalMs?: number;
  /** How long a store operation waits for the bus through transient trouble before the job is released (120 s). */
  busWaitMs?: number;
  log?: (event: string, fields: Record<string, unknown>) => void;
  /**
   * The job's examples when this process has just stored them (its own submit): the run starts on them instead of
   * reading the data stream back. A resumed or taken-over job reads the stream.
   */
  dataset?: ReadonlyArray<Record<string, unknown>>;
}

/** Why a run stopped early. */
export type StopReason = "cancel" | "shutdown" | "lost-lease" | "budget" | "error";

interface Outcome {
  outputs: Record<string, unknown>;
  scores: Record<string, number | boolean>;
  worker?: string;
  lm?: string;
  usage?: Usage;
  steps?: StepTiming[];
}

/** How long one example waits in total for an open circuit breaker before it is recorded as failed. */
const CIRCUIT_PAUSE_MAX_MS = 10 * 60_000;

function isCircuitOpen(err: unknown): boolean {
  const e = err instanceof PipelineStepError ? err.cause : err;
  return (e as { type?: string })?.type === "CircuitOpenError";
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

export class JobRun {
  readonly controller = new AbortController();
  stopReason: StopReason | undefined;
  readonly stats: Stats;
  private record: JobRecord;
  private lastEvent = 0;
  private eventTimer: NodeJS.Timeout | undefined;
  readonly finished: Promise<JobRecord>;

  constructor(
    private readonly deps: RunnerDeps,
    record: JobRecord,
  ) {
    this.record = record;
    this.stats = new Stats(record.total);
    // Every example in flight listens for the stop signal.
    setMaxListeners(0, this.controller.signal);
    this.finished = this.run().finally(() => clearTimeout(this.eventTimer));
  }

  get id(): string {
    return this.record.id;
  }

  stop(reason: StopReason): void {
    if (this.controller.signal.aborted) return;
    this.stopReason = reason;
    this.controller.abort(new Error(`job ${this.record.id} stopped: ${reason}`));
  }

  private seq = 0;

  progress(type: ProgressEvent["type"] = "progress", error?: ErrorWire): ProgressEvent {
    return this.stats.event(this.record.id, this.record.status, this.record.started_at, {
      type,
      seq: this.seq++,
      run: this.record.runs,
      ...(error ? { error } : {}),
      ...(this.waiting ? { waiting: this.waiting } : {}),
    });
  }

  /** Why the job is waiting for the bus (a node lost, a stream electing a leader), while it is. */
  private waiting: string | undefined;

  /**
   * A store operation through bus trouble: tried again until the bus is back (DSPEX_BUS_WAIT_MS, default 120 s),
   * with "waiting for the bus: <reason>" in the progress events meanwhile; then it fails and the job is
   * released, resumable (docs/reliability.md).
   */
  private bus<T>(op: () => Promise<T>): Promise<T> {
    return retryOnBus(op, {
      deadline: Date.now() + (this.deps.busWaitMs ?? 120_000),
      stopped: () => this.controller.signal.aborted,
      onWait: (reason) => {
        if (reason !== undefined && this.waiting === undefined) this.deps.log?.("bus-wait", { job: this.record.id, reason });
        this.waiting = reason;
        this.lastEvent = Date.now();
        this.publish(this.progress());
      },
    });
  }

  private publish(event: ProgressEvent): void {
    try {
      publishProgress(this.deps.nc, event);
    } catch {
      /* progress is best effort; the job record and the results stream are the truth */
    }
  }

  /** Publishes a progress event now or within the throttle interval. */
  private tick(): void {
    const interval = this.deps.progressIntervalMs ?? 250;
    const due = this.lastEvent + interval - Date.now();
    if (due <= 0) {
      this.lastEvent = Date.now();
      this.publish(this.progress());
    } else if (!this.eventTimer) {
      this.eventTimer = setTimeout(() => {
        this.eventTimer = undefined;
        this.tick();
      }, due);
    }
  }

  private async run(): Promise<JobRecord> {
    const { store } = this.deps;
    const job = this.record.id;
    const signal = this.controller.signal;
    const heartbeat = setInterval(() => void this.renewLease(), Math.max(200, Math.floor(this.deps.leaseMs / 3)));
    try {
      const metrics = resolveMetrics(this.record.spec.metrics, this.deps.metrics);
      const dataset = this.deps.dataset ?? (await this.bus(() => store.readDataset(job)));
      const missingExamples = dataset.length !== this.record.total || dataset.some((e) => e === undefined);
      if (missingExamples) {
        return await this.finish("failed", {
          type: "DatasetError",
          message: `the stored dataset has ${dataset.filter(Boolean).length} of ${this.record.total} examples`,
          retryable: false,
        });
      }
      const existing = await this.bus(() => store.readResults(job));
      for (const r of existing.values()) this.stats.add(r, false);
      this.deps.log?.("job-start", { job, total: this.record.total, done: existing.size, run: this.record.runs });
      this.publish(this.progress("started"));
      // Normally one pass; a second one only re-runs examples whose result did not make it to the stream.
      for (let pass = 0; pass < 3 && !signal.aborted; pass++) {
        const todo: number[] = [];
        for (let i = 0; i < this.record.total; i++) if (!existing.has(i)) todo.push(i);
        if (todo.length === 0) break;
        await this.runExamples(todo, dataset, metrics, existing);
        if (signal.aborted || existing.size === this.record.total) break; // every result stored and known here
        for (const [i, r] of await this.bus(() => store.readResults(job))) {
          if (existing.has(i)) continue;
          existing.set(i, r); // stored by another run of the job meanwhile
          this.stats.add(r, false);
        }
      }
      if (signal.aborted) {
        if (this.stopReason === "cancel") return await this.finish("cancelled");
        if (this.stopReason === "budget") {
          return await this.finish("failed", {
            type: "ErrorBudgetExceeded",
            message: `${this.stats.failed} examples failed; the job allows at most ${this.record.spec.max_errors}`,
            retryable: false,
          });
        }
        return await this.release();
      }
      if (existing.size < this.record.total) {
        return await this.finish("failed", {
          type: "IncompleteJob",
          message: `${this.record.total - existing.size} examples have no stored result after 3 passes`,
          retryable: true,
        });
      }
      return await this.finish("succeeded", undefined, existing);
    } catch (err) {
      if (signal.aborted && this.stopReason !== "cancel" && this.stopReason !== "budget") return this.release();
      this.deps.log?.("job-error", { job, error: String(err) });
      if (err instanceof ValidationError) return this.finish("failed", err.toWire());
      // Store or bus trouble: keep the job for a later run (the lease lapses and a scan picks it up).
      return this.release();
    } finally {
      clearInterval(heartbeat);
    }
  }

  private async runExamples(
    todo: number[],
    dataset: ReadonlyArray<Record<string, unknown>>,
    metrics: ResolvedMetric[],
    existing: Map<number, ExampleResult>,
  ): Promise<void> {
    const signal = this.controller.signal;
    const concurrency = Math.max(1, Math.min(this.record.spec.concurrency ?? 8, todo.length));
    const max_errors = this.record.spec.max_errors;
    let next = 0;
    const lane = async () => {
      try {
        await drain();
      } catch (err) {
        this.stop("error"); // e.g. JetStream unreachable: stop the other lanes too; the job stays resumable
        throw err;
      }
    };
    const record = async (result: ExampleResult) => {
      const outcome = await this.bus(() => this.deps.store.recordResult(result));
      const stored = outcome === "stored" ? result : ((await this.bus(() => this.deps.store.getResult(result.job, result.index))) ?? result);
      existing.set(result.index, stored);
      this.stats.add(stored, true);
      this.tick();
      if (!stored.ok && max_errors !== undefined && max_errors !== null && this.stats.failed > max_errors) {
        this.stop("budget");
      }
    };
    // Each lane stores an example's result while it runs its next example (the store's round trip is off the
    // example's path), with at most one write of its own outstanding: a store in trouble slows the lane down
    // instead of piling up writes. An example counts as done only once its result is stored (`existing`).
    const drain = async () => {
      let writing: Promise<unknown> | undefined;
      let failed: { err: unknown } | undefined;
      const settle = async () => {
        await writing;
        if (failed) throw failed.err;
      };
      try {
        while (!signal.aborted && next < todo.length) {
          const index = todo[next++]!;
          const result = await this.runExample(index, dataset[index]!, metrics);
          if (!result) return; // stopped meanwhile: the example stays without a result and runs again on resume
          await settle();
          writing = record(result).catch((err: unknown) => {
            failed = { err }; // held for settle(): a write failing while the lane runs its next example
          });
        }
      } finally {
        await settle();
      }
    };
    await Promise.all(Array.from({ length: concurrency }, lane));
  }

  /**
   * One example. Retries are the client's (its one retry policy, with the job's `retries`, also after a pool
   * had no worker: nothing was sent then); an open circuit breaker pauses the example instead of failing it,
   * without using up retries. Null when the run was stopped meanwhile.
   */
  private async runExample(
    index: number,
    example: Record<string, unknown>,
    metrics: ResolvedMetric[],
  ): Promise<ExampleResult | null> {
    const signal = this.controller.signal;
    const keys = inputKeysOf(this.record);
    const inputs = pick(example, keys);
    const started = performance.now();
    const base = { job: this.record.id, index };
    let pausedMs = 0;
    let outcome: Outcome;
    for (;;) {
      try {
        outcome = await this.execute(inputs, omit(example, keys), metrics, signal);
        break;
      } catch (err) {
        if (signal.aborted) return null;
        if (isCircuitOpen(err) && pausedMs < CIRCUIT_PAUSE_MAX_MS) {
          // the client's breaker for the pool or the LM is open: nothing was sent; wait for its probe
          const wait = Math.min(10_000, 1_000 * 2 ** Math.min(4, Math.floor(pausedMs / 10_000)));
          pausedMs += wait;
          await sleep(wait, signal);
          if (signal.aborted) return null;
          continue;
        }
        const info = errorInfo(err);
        return {
          ...base,
          ok: false,
          scores: {},
          score: 0,
          error: info,
          ms: performance.now() - started,
          attempts: 1,
          ...(err instanceof PipelineStepError ? { steps: err.timings } : {}),
          at: Date.now(),
        };
      }
    }
    // TypeScript metrics on the prediction; a metric that throws fails the example (as in dspy.Evaluate)
    const scores = { ...outcome.scores };
    try {
      for (const m of metrics) if (!m.python) scores[m.key] = await scoreNative(m, example, outcome.outputs);
    } catch (err) {
      const info = errorInfo(err);
      return {
        ...base,
        ok: false,
        outputs: outcome.outputs,
        scores: {},
        score: 0,
        error: { type: "MetricError", message: `${info.type}: ${info.message}`, retryable: false },
        ms: performance.now() - started,
        attempts: 1,
        ...(outcome.worker ? { worker: outcome.worker } : {}),
        at: Date.now(),
      };
    }
    return {
      ...base,
      ok: true,
      outputs: outcome.outputs,
      scores,
      score: scoreNumber(scores[primaryKey(this.record)]),
      ms: performance.now() - started,
      attempts: 1,
      ...(outcome.worker ? { worker: outcome.worker } : {}),
      ...(outcome.lm ? { lm: outcome.lm } : {}),
      ...(outcome.usage ? { usage: outcome.usage } : {}),
      ...(outcome.steps ? { steps: outcome.steps } : {}),
      at: Date.now(),
    };
  }

  /** Runs the program on one example; Python metrics come back from the worker with the outputs. */
  private async execute(
    inputs: Record<string, unknown>,
    gold: Record<string, unknown>,
    metrics: ResolvedMetric[],
    signal: AbortSignal,
  ): Promise<Outcome> {
    const { client, evaluator } = this.deps;
    const program = this.record.spec.program;
    const retry = { maxAttempts: (this.record.spec.retries ?? 2) + 1, noWorkers: true };
    if (isPipelineProgram(program)) {
      const r = await runPipeline(program.pipeline, inputs, {
        callModule: (step, stepInputs, s) => callModule(client, step, stepInputs, s, retry),
        programs: programCaller(client, retry),
        functions: this.deps.functions,
        signal,
      });
      return { outputs: r.outputs, scores: {}, worker: r.workers[0], usage: r.usage, steps: r.steps };
    }
    const python = metrics.filter((m) => m.python);
    if (isPackagedProgram(program)) {
      // the program and its Python metrics in one `evaluate` op, on its inputs (the rest of the example is gold)
      const advert = await client.program(program.package).describe();
      const names = new Set(advert.inputs.map((f) => f.name));
      const picked = Object.fromEntries(Object.entries(inputs).filter(([k]) => names.has(k)));
      const r = await evaluator.evaluate({ inputs: advert.inputs, outputs: advert.outputs }, picked, {
        module: "program",
        program: program.package,
        metrics: python.map((m) => ({ name: m.pythonName!, ...(m.spec.args ? { args: m.spec.args } : {}) })),
        example: gold,
        ...(program.lm ? { lm: program.lm } : {}),
        ...(isPool(advert.pool) ? { pool: advert.pool } : {}),
        ...(program.timeout_ms ? { timeoutMs: program.timeout_ms } : {}),
        signal,
        retry,
      });
      return { outputs: r.outputs, scores: pythonScores(python, r.scores), worker: r.worker, lm: r.lm, usage: r.usage };
    }
    if (python.length > 0) {
      const lm = program.lm ?? this.deps.defaultLm;
      const r = await evaluator.evaluate(program.signature, inputs, {
        module: program.module ?? "predict",
        metrics: python.map((m) => ({ name: m.pythonName!, ...(m.spec.args ? { args: m.spec.args } : {}) })),
        example: gold,
        ...(program.instructions !== undefined ? { instructions: program.instructions } : {}),
        ...(program.demos ? { demos: program.demos } : {}),
        ...(lm ? { lm } : {}),
        ...(program.pool ? { pool: program.pool } : {}),
        ...(program.timeout_ms ? { timeoutMs: program.timeout_ms } : {}),
        signal,
        retry,
      });
      return { outputs: r.outputs, scores: pythonScores(python, r.scores), worker: r.worker, lm: r.lm, usage: r.usage };
    }
    const r = await callModule(client, program, inputs, signal, retry);
    return { outputs: r.outputs, scores: {}, worker: r.worker, lm: r.lm, usage: r.usage };
  }

  /** Lease renewal + checkpoint; notices a cancel or a lost lease. */
  private async renewLease(): Promise<void> {
    if (this.controller.signal.aborted) return;
    try {
      let lost = false;
      let cancelled = false;
      const updated = await this.deps.store.updateJob(this.record.id, (cur) => {
        if (cur.owner !== this.deps.owner || cur.status !== "running") {
          lost = cur.status !== "cancelled";
          cancelled = cur.status === "cancelled";
          return null;
        }
        if (cur.cancel_requested) {
          cancelled = true;
          return null;
        }
        cur.lease_until = Date.now() + this.deps.leaseMs;
        cur.progress = { done: this.stats.done, total: this.stats.total, failed: this.stats.failed, score: this.stats.score };
        return cur;
      });
      if (cancelled) this.stop("cancel");
      else if (lost || !updated) this.stop("lost-lease");
      else this.record = updated;
    } catch (err) {
      this.deps.log?.("lease-error", { job: this.record.id, error: String(err) });
    }
  }

  /** Stopped without finishing (shutdown, lost lease): give the lease back so another run resumes at once. */
  private async release(): Promise<JobRecord> {
    try {
      const rec = await this.deps.store.updateJob(this.record.id, (cur) => {
        if (cur.owner !== this.deps.owner) return null;
        cur.lease_until = 0;
        cur.progress = { done: this.stats.done, total: this.stats.total, failed: this.stats.failed, score: this.stats.score };
        return cur;
      });
      if (rec) this.record = rec;
    } catch {
      /* the lease simply lapses */
    }
    this.deps.log?.("job-released", { job: this.record.id, reason: this.stopReason, done: this.stats.done });
    return this.record;
  }

  /** Ends the job with its summary, from `known` results when the run holds every one, else from the stream. */
  private async finish(status: JobStatus, error?: ErrorWire, known?: ReadonlyMap<number, ExampleResult>): Promise<JobRecord> {
    const { store } = this.deps;
    const results = known?.size === this.record.total ? known : await this.bus(() => store.readResults(this.record.id));
    const now = Date.now();
    const rec = await this.bus(() => store.updateJob(this.record.id, (cur) => {
      if (cur.owner !== this.deps.owner && cur.status === "running") return null;
      const next: JobRecord = { ...cur, status: cur.cancel_requested && status !== "succeeded" ? "cancelled" : status };
      next.finished_at = now;
      next.lease_until = 0;
      if (error) next.error = error;
      next.result = summarize(next, results);
      next.progress = { done: next.result.done, total: next.total, failed: next.result.failed, score: next.result.score };
      return next;
    }));
    if (rec) this.record = rec;
    const s = this.record.result;
    const type = this.record.status === "succeeded" ? "done" : this.record.status === "cancelled" ? "cancelled" : "failed";
    const event = this.progress(type, this.record.error);
    if (s) Object.assign(event, { done: s.done, ok: s.ok, failed: s.failed, score: s.score });
    this.publish(event);
    this.deps.log?.("job-finished", { job: this.record.id, status: this.record.status, score: s?.score, done: s?.done });
    return this.record;
  }
}
