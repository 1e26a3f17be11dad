/**
 * Optimizers as jobs on the `optimizer` pool (docs/dspy-surface.md, "Optimizer jobs"), one kind of the one
 * job model (@dspex/jobs, job.schema.json).
 *
 * `compile()` checks the job against optimizers.schema.json, records it in KV `dspex_jobs` as a queued
 * `optimize` job, subscribes to its progress (`dspex.jobs.progress.<job>`), publishes the `compile` request
 * (request id = job id) to the optimizer pool and returns the job's handle at once. A worker runs the
 * optimizer, keeps the record up to date (owner, lease, progress, result), and stores the optimized program as
 * a new version in KV `dspex_programs`; `client.execute(programId)` then runs it. `cancel()` sets the record's
 * `cancel_requested` and notifies the worker, which stops at its next LM, module or metric call.
 */
import { readFileSync } from "node:fs";
import { JobStore, ProgressFeed, isJobId, isTerminal, newJobId, queuedRecord, requestCancel, waitForJob } from "@dspex/jobs";
import {
  Cancelled,
  ValidationError,
  WorkerError,
  checkCompile,
  errorFromWire,
  type JobProgress,
  type JobRecord,
  type LMConfig,
  type OptimizeResult,
  type OptimizerName,
  type OptimizerOptionsByName,
} from "@dspex/protocol";
import type { Caller } from "./call.js";
import type { CreateProgramOptions, ProgramVersion } from "./programs.js";

export type { OptimizerName, OptimizeResult };

/** Examples: an array of field maps, or JSONL (`{jsonl: text}` or `{jsonlFile: path}`), one example per line. */
export type Dataset = Array<Record<string, unknown>> | { jsonl: string } | { jsonlFile: string };

export interface CompileOptions {
  /** The program to optimize: its id (latest version), `{id, version}`, or a definition to store first. */
  program: string | { id: string; version?: number } | CreateProgramOptions;
  optimizer: OptimizerName;
  /** The optimizer's constructor and compile() options, by DSPy's names (e.g. `max_bootstrapped_demos`). */
  options?: OptimizerOptionsByName[OptimizerName] | Record<string, unknown>;
  trainset?: Dataset;
  /** Held-out examples: optimizers that take a valset get it, and the scores are measured on it. */
  valset?: Dataset;
  /** A named Python metric of the worker (`answer_exact_match`, …, see docs/evaluation.md). */
  metric?: string | { name: string; args?: Record<string, unknown> };
  /** The task LM (default: the client's). */
  lm?: LMConfig;
  /** MIPROv2/COPRO/SIMBA's prompt model, the bootstrap teacher's LM, GEPA's reflection LM (default: `lm`). */
  promptLm?: LMConfig;
  teacherLm?: LMConfig;
  reflectionLm?: LMConfig;
  /** Score the program before and after on the valset (else the trainset); default true when there is a metric. */
  evaluate?: boolean;
  /** How long the caller waits for the result (default: the optimizer pool's, 1 h). The job id doubles as request id. */
  timeoutMs?: number;
  jobId?: string;
}


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


/** A handle on an optimize job: its progress events, record, result, and cancel. */
export class CompileJob {
  private readonly feed: ProgressFeed;
  private resultPromise: Promise<OptimizeResult> | undefined;

  constructor(
    readonly id: string,
    private readonly optimizer: Optimizer,
    reply?: Promise<OptimizeResult>,
  ) {
    this.feed = new ProgressFeed(optimizer.client.nc, id, undefined);
    if (reply) {
      this.resultPromise = reply;
      // the last events may arrive just after the reply
      const end = () => setTimeout(() => this.feed.end(), 1_000).unref();
      reply.then(end, end);
    }
  }

  /** Progress events (replayed from when this handle was made), ending with done, failed or cancelled. */
  progress(): AsyncIterable<JobProgress> {
    return this.feed;
  }

  /** Events received so far. */
  get events(): readonly JobProgress[] {
    return this.feed.events;
  }

  /** The job's record in KV `dspex_jobs` (status, runs, progress, result, error). */
  async status(): Promise<JobRecord> {
    return (await this.optimizer.store()).require(this.id);
  }

  /** The stored program version and scores; rejects with the job's error (`Cancelled`, ValidationError, …). */
  result(): Promise<OptimizeResult> {
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

  /** For handles of jobs started elsewhere: the record once final. */
  private async watch(): Promise<OptimizeResult> {
    const record = await waitForJob(this.optimizer.client.nc, await this.optimizer.store(), this.id);
    if (record.status === "succeeded" && record.result) return record.result as unknown as OptimizeResult;
    throw errorFromWire(record.error ?? { type: "Cancelled", message: `job ${this.id} was cancelled`, retryable: false });
  }
}

export class Optimizer {
  private jobs: Promise<JobStore> | undefined;

  constructor(readonly client: Caller) {}

  store(): Promise<JobStore> {
    this.jobs ??= JobStore.open(this.client.nc);
    return this.jobs;
  }

  private async resolveProgram(program: CompileOptions["program"]): Promise<ProgramVersion> {
    if (typeof program === "string") return this.client.programs.get(program);
    if ("signature" in program) return this.client.programs.create(program);
    if (typeof program.id === "string") return this.client.programs.get(program.id, program.version);
    throw new ValidationError("program must be an id, {id, version} or a program definition", { field: "compile.program" });
  }

  async compile(options: CompileOptions): Promise<CompileJob> {
    if (options.jobId !== undefined && !isJobId(options.jobId)) {
      throw new ValidationError(`jobId must be letters, digits, '-' and '_' (at most 128)`, { field: "compile.job" });
    }
    const trainset = readDataset(options.trainset, "compile.trainset");
    const valset = readDataset(options.valset, "compile.valset");
    const metric = typeof options.metric === "string" ? { name: options.metric } : options.metric;
    const compile: Record<string, unknown> = {
      optimizer: options.optimizer,
      options: options.options ?? {},
      program: { id: "-", version: 1 }, // checked with a placeholder; the resolved program replaces it below
      trainset: trainset ?? [],
      ...(valset ? { valset } : {}),
      ...(metric ? { metric } : {}),
      ...(options.promptLm ? { prompt_lm: options.promptLm } : {}),
      ...(options.teacherLm ? { teacher_lm: options.teacherLm } : {}),
      ...(options.reflectionLm ? { reflection_lm: options.reflectionLm } : {}),
      ...(options.evaluate === undefined ? {} : { evaluate: options.evaluate }),
    };
    checkCompile(compile); // before anything is stored or published
    const { definition, version } = await this.resolveProgram(options.program);
    const id = options.jobId ?? newJobId("optimize");
    compile.job = id;
    compile.program = { id: definition.id, version };
    const store = await this.store();
    await store.create(
      queuedRecord(id, "optimize", {
        optimizer: options.optimizer,
        options: compile.options as Record<string, unknown>,
        program: { id: definition.id, version },
        ...(metric ? { metric } : {}),
        evaluate: options.evaluate ?? true,
        trainset_size: (trainset ?? []).length,
        valset_size: valset ? valset.length : null,
      }),
    );
    // the handle subscribes to progress before the request is published
    const handle = new CompileJob(
      id,
      this,
      this.client.nc.flush().then(async () => {
        const result = await this.client.send<Record<string, unknown>>(
          { op: "compile", signature: definition.signature, inputs: {}, compile, rawInputs: true, rawOutputs: true },
          { pool: "optimizer", requestId: id, retry: false, ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}), ...(options.lm ? { lm: options.lm } : {}) },
        );
        const job = (result.extra?.job ?? {}) as JobRecord;
        if (!job.result) throw new WorkerError(`job ${id} ended without a result`);
        return job.result as unknown as OptimizeResult;
      }),
    );
    return handle;
  }

  /** A handle on an existing job (from its id), e.g. in another process. */
  job(id: string): CompileJob {
    const handle = new CompileJob(id, this);
    void this.store()
      .then((s) => s.get(id))
      .then((found) => {
        if (!found || isTerminal(found.record.status)) handle.endProgress();
      })
      .catch(() => handle.endProgress());
    return handle;
  }

  async cancel(id: string): Promise<void> {
    const record = await requestCancel(this.client.nc, await this.store(), id);
    if (!record) throw new ValidationError(`no job ${JSON.stringify(id)}`, { field: "job" });
  }
}

/** A job's error as a typed error (Cancelled for a cancelled job). */
export function jobError(record: JobRecord): Error {
  return record.error ? errorFromWire(record.error) : new Cancelled(`job ${record.id} was cancelled`);
}
