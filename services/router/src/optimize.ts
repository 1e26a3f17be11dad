/**
 * Optimizers as jobs on the `optimizer` pool (docs/dspy-surface.md, "Optimizer jobs").
 *
 * `compile()` checks the job, records it in the KV bucket `dspex_jobs` as `queued`, subscribes to its progress
 * subject `dspex.optimize.progress.<job>`, publishes the `compile` request (request id = job id) to
 * `dspex.req.optimizer.any` and returns the job handle at once. The worker runs the optimizer, streams progress
 * events, keeps the job record up to date, and stores the optimized program as a new version of the program in
 * KV `dspex_programs` (`state.dspy_state`, `score`, `lineage`); `router.execute(programId)` then runs it.
 *
 * `job.cancel()` writes `<job>.cancel` in `dspex_jobs` and publishes `dspex.optimize.cancel.<job>`: a running job
 * stops at its next LM/module/metric call, a queued one as soon as a worker picks it up; `result()` then
 * rejects with a `Cancelled` error.
 */
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { Kvm, type KV } from "@nats-io/kv";
import type { Subscription } from "@nats-io/transport-node";
import {
  ValidationError,
  WorkerError,
  decode,
  type ErrorWire,
  type LMConfigWire,
  type ReplyOk,
} from "@dspex/shared";
import type { Router } from "./router.js";
import type { CreateProgramOptions, ProgramVersion } from "./programs.js";
import { checkOptions, type Opt } from "./options.js";

export const KV_JOBS = "dspex_jobs";
export const PROGRESS_SUBJECT_PREFIX = "dspex.optimize.progress";
export const CANCEL_SUBJECT_PREFIX = "dspex.optimize.cancel";
const JOBS_TTL_MS = 7 * 24 * 3600 * 1000;
const JOB_ID = /^[-_a-zA-Z0-9]{1,128}$/;

export type OptimizerName =
  | "LabeledFewShot"
  | "BootstrapFewShot"
  | "BootstrapFewShotWithRandomSearch"
  | "MIPROv2"
  | "COPRO"
  | "GEPA"
  | "SIMBA"
  | "Ensemble"
  | "BootstrapFinetune";

const int = (min = 0, max?: number): Opt => ({ kind: "int", min, max });
const num = (min?: number, max?: number): Opt => ({ kind: "float", min, max });
const bool: Opt = { kind: "bool" };
const demos = { max_bootstrapped_demos: int(), max_labeled_demos: int() };

/** Options per optimizer (constructor and compile() arguments, DSPy's names), as the worker checks them. */
export const OPTIMIZER_OPTIONS: Record<OptimizerName, Record<string, Opt>> = {
  LabeledFewShot: { k: int(), sample: bool },
  BootstrapFewShot: { ...demos, metric_threshold: num(), max_rounds: int(1), max_errors: int(1) },
  BootstrapFewShotWithRandomSearch: {
    ...demos,
    max_rounds: int(1),
    num_candidate_programs: int(1),
    num_threads: int(1, 64),
    max_errors: int(1),
    stop_at_score: num(),
    metric_threshold: num(),
    labeled_sample: bool,
  },
  MIPROv2: {
    ...demos,
    auto: { kind: "enum", choices: ["light", "medium", "heavy", "off"] },
    num_candidates: int(1),
    num_threads: int(1, 64),
    max_errors: int(1),
    seed: int(),
    init_temperature: num(0, 2),
    metric_threshold: num(),
    num_trials: int(1),
    minibatch: bool,
    minibatch_size: int(1),
    minibatch_full_eval_steps: int(1),
    program_aware_proposer: bool,
    data_aware_proposer: bool,
    view_data_batch_size: int(1),
    tip_aware_proposer: bool,
    fewshot_aware_proposer: bool,
  },
  COPRO: { breadth: int(2), depth: int(1), init_temperature: num(0, 2), num_threads: int(1, 64) },
  GEPA: {
    auto: { kind: "enum", choices: ["light", "medium", "heavy"] },
    max_full_evals: int(1),
    max_metric_calls: int(1),
    reflection_minibatch_size: int(1),
    candidate_selection_strategy: { kind: "enum", choices: ["pareto", "current_best"] },
    skip_perfect_score: bool,
    use_merge: bool,
    max_merge_invocations: int(),
    num_threads: int(1, 64),
    failure_score: num(),
    perfect_score: num(),
    seed: int(),
    add_format_failure_as_feedback: bool,
  },
  SIMBA: {
    bsize: int(1),
    num_candidates: int(1),
    max_steps: int(1),
    max_demos: int(),
    num_threads: int(1, 64),
    temperature_for_sampling: num(0, 2),
    temperature_for_candidates: num(0, 2),
    demo_input_field_maxlen: int(1),
    seed: int(),
  },
  Ensemble: { size: int(1), programs: { kind: "list", required: true } },
  BootstrapFinetune: { multitask: bool, train_kwargs: { kind: "map" } },
};
const NEEDS_METRIC = new Set<OptimizerName>([
  "BootstrapFewShot",
  "BootstrapFewShotWithRandomSearch",
  "MIPROv2",
  "COPRO",
  "GEPA",
  "SIMBA",
]);

/** Examples: an array of field maps, or JSONL (`{jsonl: text}` or `{jsonlFile: path}`), one example per line. */
export type Dataset = Array<Record<string, unknown>> | { jsonl: string } | { jsonlFile: string };

export interface CompileOptions {
  /** The program to optimize: its id (latest version), `{id, version}`, or a definition to store first. */
  program: string | { id: string; version?: number } | CreateProgramOptions;
  optimizer: OptimizerName;
  /** The optimizer's constructor and compile() options, by DSPy's names (e.g. `max_bootstrapped_demos`). */
  options?: Record<string, unknown>;
  trainset?: Dataset;
  /** Held-out examples: optimizers that take a valset get it, and the scores are measured on it. */
  valset?: Dataset;
  /** A named Python metric of the worker (`answer_exact_match`, …, see docs/evaluation.md). */
  metric?: string | { name: string; args?: Record<string, unknown> };
  /** The task LM (default: the router's). */
  lm?: LMConfigWire;
  /** MIPROv2/COPRO/SIMBA's prompt model, the bootstrap teacher's LM, GEPA's reflection LM (default: `lm`). */
  promptLm?: LMConfigWire;
  teacherLm?: LMConfigWire;
  reflectionLm?: LMConfigWire;
  /** Score the program before and after on the valset (else the trainset); default true when there is a metric. */
  evaluate?: boolean;
  /** How long the caller waits for the result (default: the optimizer pool's, 1 h). The job id doubles as request id. */
  timeoutMs?: number;
  jobId?: string;
}

export type ProgressType = "started" | "stage" | "trial" | "heartbeat" | "done" | "failed" | "cancelled";

export interface ProgressEvent {
  v: number;
  job: string;
  seq: number;
  type: ProgressType;
  ts: number;
  attempt: number;
  /** baseline | compiling | final | storing */
  stage: string;
  /** Evaluations run so far (dspy.Evaluate calls: candidate programs, minibatches, baseline and final). */
  trials: number;
  lm_calls: number;
  metric_calls: number;
  metric_mean: number | null;
  /** Best evaluation score while compiling (dspy.Evaluate's percentage, 0–100). */
  best_score: number | null;
  last_score: number | null;
  elapsed_ms: number;
  /** trial: this evaluation's score. done: the optimized program's. */
  score?: number | null;
  baseline_score?: number | null;
  program?: { id: string; version: number };
  error?: ErrorWire;
}

export interface JobResult {
  program: { id: string; version: number };
  parent_version: number;
  /** The optimized program's score (dspy.Evaluate percentage) on the valset, else the trainset. */
  score: number | null;
  baseline_score: number | null;
}

export interface JobRecord {
  id: string;
  status: "queued" | "running" | "succeeded" | "failed" | "cancelled";
  optimizer: OptimizerName;
  program: { id: string; version: number };
  attempts?: number;
  worker?: string;
  created_at: number;
  started_at?: number;
  updated_at?: number;
  finished_at?: number;
  progress?: Omit<ProgressEvent, "v" | "job" | "seq" | "type" | "ts" | "attempt">;
  result?: JobResult;
  error?: ErrorWire | null;
}

const TERMINAL = new Set<ProgressType>(["done", "failed", "cancelled"]);

function readDataset(data: Dataset | undefined, field: string): Array<Record<string, unknown>> | undefined {
  if (data === undefined) return undefined;
  if (Array.isArray(data)) {
    data.forEach((row, i) => {
      if (typeof row !== "object" || row === null || Array.isArray(row)) {
        throw new ValidationError(`${field}[${i}] must be an object of fields`, { field: `${field}[${i}]` });
      }
    });
    return data;
  }
  let text: string;
  if ("jsonlFile" in data) {
    try {
      text = readFileSync(data.jsonlFile, "utf8");
    } catch (err) {
      throw new ValidationError(`cannot read ${field} file ${data.jsonlFile}: ${String(err)}`, { field });
    }
  } else if ("jsonl" in data && typeof data.jsonl === "string") {
    text = data.jsonl;
  } else {
    throw new ValidationError(`${field} must be an array of examples, {jsonl} or {jsonlFile}`, { field });
  }
  const rows: Array<Record<string, unknown>> = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (err) {
      throw new ValidationError(`${field}: line ${i + 1} is not JSON (${(err as Error).message})`, { field: `${field}[${rows.length}]` });
    }
    if (typeof row !== "object" || row === null || Array.isArray(row)) {
      throw new ValidationError(`${field}: line ${i + 1} is not a JSON object`, { field: `${field}[${rows.length}]` });
    }
    rows.push(row as Record<string, unknown>);
  });
  return rows;
}

/** Checks a compile's optimizer and options before anything is stored or published. */
export function checkCompile(options: CompileOptions): void {
  const spec = OPTIMIZER_OPTIONS[options.optimizer];
  if (!spec) {
    throw new ValidationError(
      `optimizer must be one of ${Object.keys(OPTIMIZER_OPTIONS).join(", ")} (got ${JSON.stringify(options.optimizer)})`,
      { field: "compile.optimizer" },
    );
  }
  checkOptions(spec, options.options ?? {}, "compile.options", options.optimizer);
  if (NEEDS_METRIC.has(options.optimizer) && options.metric === undefined) {
    throw new ValidationError(`${options.optimizer} needs a metric`, { field: "compile.metric" });
  }
  if (options.jobId !== undefined && !JOB_ID.test(options.jobId)) {
    throw new ValidationError(`jobId must match ${JOB_ID}`, { field: "compile.job" });
  }
}

/** A live view of progress events: replays what arrived so far, then waits for more until the job ends. */
class ProgressFeed {
  readonly events: ProgressEvent[] = [];
  private waiters: Array<() => void> = [];
  ended = false;
  private sub: Subscription | undefined;

  constructor(router: Router, job: string) {
    this.sub = router.nc.subscribe(`${PROGRESS_SUBJECT_PREFIX}.${job}`, {
      callback: (err, msg) => {
        if (err) return;
        try {
          this.push(decode(msg.data) as ProgressEvent);
        } catch {
          /* not a progress event */
        }
      },
    });
  }

  push(event: ProgressEvent): void {
    this.events.push(event);
    if (TERMINAL.has(event.type)) this.end();
    this.wake();
  }

  end(): void {
    this.ended = true;
    this.sub?.unsubscribe();
    this.sub = undefined;
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  async *iterate(): AsyncGenerator<ProgressEvent> {
    let i = 0;
    while (true) {
      while (i < this.events.length) yield this.events[i++]!;
      if (this.ended) return;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
}

export class CompileJob {
  private readonly feed: ProgressFeed;
  private resultPromise: Promise<JobResult> | undefined;

  constructor(
    readonly id: string,
    private readonly optimizer: Optimizer,
    reply?: Promise<JobResult>,
  ) {
    this.feed = new ProgressFeed(optimizer.router, id);
    if (reply) {
      this.resultPromise = reply;
      reply.then(
        () => setTimeout(() => this.feed.end(), 1_000).unref(),
        () => setTimeout(() => this.feed.end(), 1_000).unref(),
      );
    }
  }

  /** Progress events (replayed from when this handle was made), ending with done, failed or cancelled. */
  progress(): AsyncIterable<ProgressEvent> {
    return { [Symbol.asyncIterator]: () => this.feed.iterate() };
  }

  /** Events received so far. */
  get events(): readonly ProgressEvent[] {
    return this.feed.events;
  }

  /** The job's record in KV `dspex_jobs` (status, attempt, progress, result, error). */
  async status(): Promise<JobRecord> {
    const record = await this.optimizer.record(this.id);
    if (!record) throw new ValidationError(`no job ${JSON.stringify(this.id)}`, { field: "job" });
    return record;
  }

  /** The stored program version and scores; rejects with the job's error (`Cancelled`, ValidationError, …). */
  result(): Promise<JobResult> {
    this.resultPromise ??= this.watch();
    return this.resultPromise;
  }

  /** Ends `progress()` (for handles of jobs that had already finished when the handle was made). */
  endProgress(): void {
    this.feed.end();
  }

  /** Asks the job to stop: a running job ends at its next LM/module/metric call, a queued one when picked up. */
  cancel(): Promise<void> {
    return this.optimizer.cancel(this.id);
  }

  /** For handles of jobs started elsewhere: waits for the record to reach an end state. */
  private async watch(): Promise<JobResult> {
    for (;;) {
      const record = await this.status();
      if (record.status === "succeeded" && record.result) return record.result;
      if (record.status === "failed" || record.status === "cancelled") {
        const error = record.error ?? { type: "Cancelled", message: `job ${this.id} was cancelled`, retryable: false };
        throw new WorkerError(error);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

export class Optimizer {
  private kv: Promise<KV> | undefined;

  constructor(readonly router: Router) {}

  /** The jobs bucket, created on first use (history 5, entries kept 7 days). */
  bucket(): Promise<KV> {
    this.kv ??= (async () => {
      const kvm = new Kvm(this.router.nc);
      try {
        return await kvm.create(KV_JOBS, { history: 5, ttl: JOBS_TTL_MS }); // binds when it exists
      } catch {
        return await kvm.open(KV_JOBS); // exists with another configuration
      }
    })();
    return this.kv;
  }

  async record(id: string): Promise<JobRecord | undefined> {
    const entry = await (await this.bucket()).get(id);
    if (!entry || entry.operation !== "PUT" || entry.length === 0) return undefined;
    return entry.json<JobRecord>();
  }

  private async resolveProgram(program: CompileOptions["program"]): Promise<ProgramVersion> {
    if (typeof program === "string") return this.router.programs.get(program);
    if ("signature" in program) return this.router.programs.create(program);
    if (typeof program.id === "string") return this.router.programs.get(program.id, program.version);
    throw new ValidationError("program must be an id, {id, version} or a program definition", { field: "compile.program" });
  }

  async compile(options: CompileOptions): Promise<CompileJob> {
    checkCompile(options);
    const trainset = readDataset(options.trainset, "compile.trainset");
    const valset = readDataset(options.valset, "compile.valset");
    const { definition, version } = await this.resolveProgram(options.program);
    const id = options.jobId ?? randomUUID();
    const record: JobRecord = {
      id,
      status: "queued",
      optimizer: options.optimizer,
      program: { id: definition.id, version },
      created_at: Date.now(),
    };
    await (await this.bucket()).put(id, JSON.stringify(record));
    const metric = typeof options.metric === "string" ? { name: options.metric } : options.metric;
    const compile: Record<string, unknown> = {
      job: id,
      optimizer: options.optimizer,
      options: options.options ?? {},
      program: { id: definition.id, version },
      trainset: trainset ?? [],
      ...(valset ? { valset } : {}),
      ...(metric ? { metric } : {}),
      ...(options.promptLm ? { prompt_lm: options.promptLm } : {}),
      ...(options.teacherLm ? { teacher_lm: options.teacherLm } : {}),
      ...(options.reflectionLm ? { reflection_lm: options.reflectionLm } : {}),
      ...(options.evaluate === undefined ? {} : { evaluate: options.evaluate }),
    };
    let jobResult: JobResult | undefined;
    const handle = new CompileJob(
      id,
      this,
      // Subscribed to progress (in the handle) before the request is published.
      this.router.nc.flush().then(() =>
        this.router
          .call<Record<string, unknown>>("compile", definition.signature, {}, {
            pool: "optimizer",
            requestId: id,
            retry: false,
            timeoutMs: options.timeoutMs,
            ...(options.lm ? { lm: options.lm } : {}),
            rawInputs: true,
            rawOutputs: true,
            envelope: { compile },
            onReply: (reply: ReplyOk) => {
              const job = (reply.extra?.job ?? {}) as JobRecord;
              jobResult = job.result;
            },
          })
          .then(() => {
            if (!jobResult) throw new WorkerError({ type: "WorkerError", message: `job ${id} ended without a result`, retryable: false });
            return jobResult;
          }),
      ),
    );
    return handle;
  }

  job(id: string): CompileJob {
    const handle = new CompileJob(id, this);
    void this.record(id)
      .then((record) => {
        if (!record || ["succeeded", "failed", "cancelled"].includes(record.status)) handle.endProgress();
      })
      .catch(() => handle.endProgress());
    return handle;
  }

  async cancel(id: string): Promise<void> {
    await (await this.bucket()).put(`${id}.cancel`, JSON.stringify({ at: Date.now() }));
    this.router.nc.publish(`${CANCEL_SUBJECT_PREFIX}.${id}`);
    await this.router.nc.flush();
  }

  close(): void {
    /* subscriptions end with their jobs */
  }
}
