/**
 * The pipeline service: serves the evaluation subjects, runs the jobs it owns, and picks up unfinished jobs
 * (its own after a restart, and other instances' once their lease lapsed).
 *
 * Ownership is a lease in the job record (`owner`, `lease_until`), taken and renewed with compare-and-set.
 * The lease only avoids wasted work: correctness does not depend on it, because each example's result can
 * be stored only once (see store.ts), so even two instances running the same job produce one result per
 * example.
 */
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Client, type ClientOptions } from "@dspex/client";
import { connectNats, type BusAccess } from "@dspex/bus";
import { isJobId, newJobId, requestCancel } from "@dspex/jobs";
import { NotFound, ValidationError, jobCancelSubject, type LMConfig } from "@dspex/protocol";
import { createLogger, type Logger } from "@dspex/observability";
import { EvaluateCaller } from "./evaluate-op.js";
import { customMetricNames, normalizeMetrics, resolveMetrics } from "./metrics.js";
import { collectFunctionNames, hasInlineFunctions, runPipeline, validatePipeline, type NativeFunction, type PipelineResult, type PipelineSpec } from "./pipeline.js";
import { serveJobsApi, type JobsBackend, type SubmitRequest } from "./api.js";
import { callModule, programCaller } from "./call-module.js";
import { JobRun } from "./runner.js";
import { inputKeysOf } from "./example-fields.js";
import { EvalStore, datasetHash } from "./store.js";
import { summarize } from "./summary.js";
import {
  TERMINAL_STATUSES,
  isPackagedProgram,
  isPipelineProgram,
  packagedPipeline,
  type ExampleResult,
  type JobRecord,
  type JobSpec,
  type JobSpecInput,
  type ProgramSpec,
  type JobSummary,
  type MetricFunction,
  type MetricSpec,
  type ProgressEvent,
} from "./types.js";

export interface PipelineServiceOptions extends BusAccess {
  /** NATS server(s) (default $NATS_URL), credentials (default $NATS_CREDS: the pipeline role's); ignored with `connection`. */
  connection?: NatsConnection;
  /** Client to call the fleet with (default: one on the same connection). */
  client?: Client;
  clientOptions?: ClientOptions;
  /** Default LM of jobs that name none (default: the workers' own). */
  lm?: LMConfig;
  /** Instance id (lease owner); default DSPEX_PIPELINE_ID, else host name + random suffix. */
  id?: string;
  /** Lease of a running job (default DSPEX_PIPELINE_LEASE_MS or 15 s); renewed every third of it. */
  leaseMs?: number;
  /** How often to look for jobs to pick up (default half the lease). */
  scanIntervalMs?: number;
  /** Serve the NATS subjects (default true); false for a purely in-process service. */
  serve?: boolean;
  /** Pick up unfinished jobs on start and periodically (default true). */
  resume?: boolean;
  progressIntervalMs?: number;
  /** Where the service logs (default: the JSON logger `dspex.pipeline`). */
  logger?: Logger;
}

function envInt(name: string): number | undefined {
  const v = process.env[name];
  return v ? Number(v) : undefined;
}

const DEFAULT_LOGGER = createLogger("dspex.pipeline");

export class PipelineService implements JobsBackend {
  readonly id: string;
  readonly leaseMs: number;
  private readonly runs = new Map<string, JobRun>();
  /** Jobs a claim is under way for (a scan and a submit may race for the same job). */
  private readonly claiming = new Set<string>();
  private readonly metricFns = new Map<string, MetricFunction>();
  private readonly stepFns = new Map<string, NativeFunction>();
  readonly subs: Subscription[] = [];
  private scanTimer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private closed = false;

  private constructor(
    readonly nc: NatsConnection,
    private readonly ownsConnection: boolean,
    readonly client: Client,
    private readonly ownsClient: boolean,
    readonly store: EvalStore,
    readonly evaluator: EvaluateCaller,
    private readonly options: PipelineServiceOptions,
  ) {
    this.id = options.id ?? process.env.DSPEX_PIPELINE_ID ?? `${hostname()}-${randomBytes(3).toString("hex")}`;
    this.leaseMs = options.leaseMs ?? envInt("DSPEX_PIPELINE_LEASE_MS") ?? 15_000;
  }

  static async start(options: PipelineServiceOptions = {}): Promise<PipelineService> {
    const owns = options.connection === undefined;
    const nc = options.connection ?? (await connectNats({ servers: options.servers, creds: options.creds, tls: options.tls, name: "dspex-pipeline" }));
    const client =
      options.client ?? (await Client.connect({ ...options.clientOptions, connection: nc, ...(options.lm ? { lm: options.lm } : {}) }));
    const store = await EvalStore.open(nc);
    const service = new PipelineService(nc, owns, client, !options.client, store, new EvaluateCaller(client), options);
    if (options.serve !== false) {
      service.subs.push(...serveJobsApi(service));
      await nc.flush(); // the server knows the subscriptions before anyone is told the service is up
    }
    if (options.resume !== false) {
      await service.scan();
      const every = options.scanIntervalMs ?? Math.max(500, Math.floor(service.leaseMs / 2));
      service.scanTimer = setInterval(() => void service.scan(), every);
    }
    return service;
  }

  /** A TypeScript metric usable by name in jobs this process runs. */
  registerMetric(name: string, fn: MetricFunction): this {
    this.metricFns.set(name, fn);
    return this;
  }

  /** A native pipeline step function usable by name (`{kind: "native", fn: name}`). */
  registerStep(name: string, fn: NativeFunction): this {
    this.stepFns.set(name, fn);
    return this;
  }

  private get logger(): Logger {
    return this.options.logger ?? DEFAULT_LOGGER;
  }

  private log(event: string, fields: Record<string, unknown>): void {
    this.logger.info(event, { service: this.id, ...fields });
  }

  // ----- submit / status / cancel --------------------------------------------------------------------

  /**
   * A job's default concurrency: what the general pool's live workers advertise they hold (the `concurrency`
   * in their service metadata), so a default job fills the fleet rather than 8 slots of it; 8 when no worker
   * answers (the job waits for one), at most the 1,024 a spec may ask for.
   */
  private async fleetConcurrency(): Promise<number> {
    await this.client.discovery.refresh();
    const total = this.client.discovery.live("general").reduce((sum, w) => sum + (Number(w.metadata.concurrency) || 0), 0);
    return total > 0 ? Math.min(1024, Math.floor(total)) : 8;
  }

  /** Checks a spec against what this process can run; throws ValidationError. */
  validateSpec(spec: JobSpecInput): JobSpec {
    if (!spec || typeof spec !== "object") throw new ValidationError("spec must be an object", { field: "spec" });
    if (!spec.program || typeof spec.program !== "object") throw new ValidationError("spec.program is required", { field: "program" });
    const metrics = normalizeMetrics((spec.metrics as Array<string | MetricSpec> | undefined) ?? []);
    const resolved = resolveMetrics(metrics, this.metricFns);
    const python = resolved.filter((m) => m.python);
    let program: ProgramSpec;
    if (isPackagedProgram(spec.program)) {
      const extra = Object.keys(spec.program).filter((k) => !["package", "lm", "timeout_ms"].includes(k));
      if (extra.length > 0) throw new ValidationError(`program.${extra[0]}: a packaged program takes package, lm and timeout_ms`, { field: `program.${extra[0]}` });
      // Python metrics score on the worker, beside the program (op evaluate); otherwise a one-step pipeline
      program = python.length > 0 ? { ...spec.program } : packagedPipeline(spec.program);
    } else program = spec.program;
    if (isPackagedProgram(program)) {
      // nothing to compile here: the fleet knows the program (UnknownProgram per example otherwise)
    } else if (isPipelineProgram(program)) {
      validatePipeline(program.pipeline, this.stepFns);
      if (python.length > 0) {
        throw new ValidationError("Python (py:) metrics need a module program; a pipeline job can use TypeScript metrics", { field: "metrics" });
      }
      if (hasInlineFunctions(program.pipeline.steps)) {
        throw new ValidationError("a job's pipeline must name its native functions (registerStep), not inline them", { field: "program" });
      }
    } else {
      const m = program.module ?? "predict";
      if (m !== "predict" && m !== "chain_of_thought") {
        throw new ValidationError("program.module must be predict or chain_of_thought", { field: "program.module" });
      }
      inputKeysOf({ spec: { ...spec, program } } as JobRecord); // compiles the signature (SignatureError when bad)
    }
    if (new Set(python.map((m) => m.pythonName)).size !== python.length) {
      throw new ValidationError("each Python metric can appear once per job", { field: "metrics" });
    }
    const concurrency = spec.concurrency ?? 8;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024) {
      throw new ValidationError("concurrency must be an integer from 1 to 1024", { field: "concurrency" });
    }
    if (spec.max_errors !== undefined && spec.max_errors !== null && (!Number.isInteger(spec.max_errors) || spec.max_errors < 0)) {
      throw new ValidationError("max_errors must be a non-negative integer", { field: "max_errors" });
    }
    if (spec.retries !== undefined && (!Number.isInteger(spec.retries) || spec.retries < 0 || spec.retries > 10)) {
      throw new ValidationError("retries must be an integer from 0 to 10", { field: "retries" });
    }
    return { ...spec, program, metrics, concurrency };
  }

  /**
   * Creates a job (dataset and record persisted) and starts it here; returns its id at once. With
   * `request.dataset.uploaded` the examples are already in the data stream under `request.job`.
   */
  async submit(request: SubmitRequest): Promise<string> {
    const input = request.spec && typeof request.spec === "object" && request.spec.concurrency === undefined ? { ...request.spec, concurrency: await this.fleetConcurrency() } : request.spec;
    const spec = this.validateSpec(input);
    let job: string;
    let examples: Array<Record<string, unknown>>;
    if (request.dataset?.uploaded !== undefined) {
      if (!isJobId(request.job)) throw new ValidationError("an uploaded dataset needs its `job` id", { field: "job" });
      job = request.job;
      const stored = await this.store.countExamples(job);
      if (stored !== request.dataset.uploaded) {
        throw new ValidationError(`the data stream holds ${stored} examples for job '${job}', expected ${request.dataset.uploaded}`, {
          field: "dataset",
        });
      }
      examples = await this.store.readDataset(job);
    } else {
      if (!Array.isArray(request.examples)) throw new ValidationError("`examples` must be a list", { field: "examples" });
      if (request.job !== undefined && !isJobId(request.job)) throw new ValidationError("bad job id", { field: "job" });
      job = request.job ?? newJobId("eval");
      examples = request.examples;
    }
    if (examples.length === 0) throw new ValidationError("the dataset is empty", { field: "examples" });
    examples.forEach((e, i) => {
      if (!e || typeof e !== "object" || Array.isArray(e)) {
        throw new ValidationError(`example ${i} must be an object`, { field: `examples[${i}]` });
      }
    });
    if (await this.store.jobs.get(job)) throw new ValidationError(`job '${job}' already exists`, { field: "job" });
    // the examples as stored: read from the stream when uploaded, else as this call stores them
    const stored = request.dataset?.uploaded === undefined ? await this.store.writeDataset(job, examples) : examples;
    const now = Date.now();
    await this.store.createJob({
      v: 1,
      id: job,
      kind: "eval",
      ...(spec.name ? { name: spec.name } : {}),
      spec,
      status: "queued",
      total: examples.length,
      dataset_hash: datasetHash(examples),
      created_at: now,
      updated_at: now,
      runs: 0,
    });
    this.log("job-submitted", { job, total: examples.length });
    // the run starts on the examples as stored instead of reading the data stream back
    void this.claimAndRun(job, stored);
    return job;
  }

  async status(job: string): Promise<{ record: JobRecord; progress?: ProgressEvent } | null> {
    const found = await this.store.getJob(job);
    if (!found) return null;
    const run = this.runs.get(job);
    return run ? { record: found.record, progress: run.progress() } : { record: found.record };
  }

  async list(): Promise<JobRecord[]> {
    return this.store.listJobs();
  }

  /** Asks a job to stop; it ends as `cancelled` with the results so far. */
  async cancel(job: string): Promise<JobRecord | null> {
    if (!(await this.store.getJob(job))) return null;
    await requestCancel(this.nc, this.store.jobs, job);
    this.runs.get(job)?.stop("cancel");
    // nobody is running it: finish it here
    const rec = await this.store.updateJob(job, (cur) => {
      if (TERMINAL_STATUSES.includes(cur.status)) return null;
      if (cur.status !== "queued" && cur.owner && (cur.lease_until ?? 0) >= Date.now() && !this.runs.has(job)) return null;
      return { ...cur, status: "cancelled", finished_at: Date.now() };
    });
    if (rec && rec.status === "cancelled" && !rec.result) {
      const results = await this.store.readResults(job);
      return this.store.updateJob(job, (cur) => ({ ...cur, result: summarize(cur, results) }));
    }
    return rec;
  }

  /**
   * Continues a job: a failed or cancelled one is re-opened (examples without a result run; stored results
   * stay), and an unfinished one is taken over here if its lease is free. A completed job is left alone.
   */
  async resume(job: string): Promise<JobRecord | null> {
    const found = await this.store.getJob(job);
    if (!found) return null;
    let rec: JobRecord | null = found.record;
    if (rec.status === "failed" || rec.status === "cancelled") {
      rec = await this.store.updateJob(job, (cur) => {
        if (cur.status !== "failed" && cur.status !== "cancelled") return null;
        const next: JobRecord = { ...cur, status: "queued", cancel_requested: false };
        delete next.error;
        delete next.finished_at;
        delete next.owner;
        delete next.lease_until;
        return next;
      });
    }
    if (rec && !TERMINAL_STATUSES.includes(rec.status)) void this.claimAndRun(job);
    return rec;
  }

  async delete(job: string): Promise<boolean> {
    const found = await this.store.getJob(job);
    if (!found) return false;
    if (!TERMINAL_STATUSES.includes(found.record.status)) {
      throw new ValidationError(`job '${job}' is ${found.record.status}; cancel it first`, { field: "job" });
    }
    await this.store.deleteJob(job);
    return true;
  }

  async results(job: string): Promise<Map<number, ExampleResult>> {
    return this.store.readResults(job);
  }

  async summary(job: string): Promise<JobSummary | null> {
    const found = await this.store.getJob(job);
    if (!found) return null;
    return summarize(found.record, await this.store.readResults(job));
  }

  /** Resolves when the job reaches a terminal status (a job this instance runs, or any job by polling). */
  async waitFor(job: string, pollMs = 500): Promise<JobRecord> {
    for (;;) {
      const run = this.runs.get(job);
      if (run) await run.finished;
      const found = await this.store.getJob(job);
      if (!found) throw new NotFound(`no job '${job}'`, { field: "job" });
      if (TERMINAL_STATUSES.includes(found.record.status)) return found.record;
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /** Runs a pipeline once on one set of inputs. */
  runPipeline(spec: PipelineSpec, inputs: Record<string, unknown>, signal?: AbortSignal): Promise<PipelineResult> {
    validatePipeline(spec, this.stepFns);
    return runPipeline(spec, inputs, {
      callModule: (step, stepInputs, s) => callModule(this.client, step, stepInputs, s),
      programs: programCaller(this.client),
      functions: this.stepFns,
      ...(signal ? { signal } : {}),
    });
  }

  // ----- running ---------------------------------------------------------------------------------------

  /** Can this process run the job (custom metrics and native step functions registered)? */
  private canRun(record: JobRecord): boolean {
    if (customMetricNames(record.spec.metrics).some((n) => !this.metricFns.has(n))) return false;
    if (isPipelineProgram(record.spec.program)) {
      const names: string[] = [];
      collectFunctionNames(record.spec.program.pipeline.steps, names);
      return names.every((n) => this.stepFns.has(n) || ["template", "set", "pick", "join"].includes(n));
    }
    return true;
  }

  private async claimAndRun(job: string, dataset?: ReadonlyArray<Record<string, unknown>>): Promise<void> {
    if (this.closed || this.runs.has(job) || this.claiming.has(job)) return;
    this.claiming.add(job);
    let claimed = false;
    try {
      const now = Date.now();
      const flags = { claimed: false, cancelledUnowned: false };
      const rec = await this.store.updateJob(job, (cur) => {
        flags.claimed = false;
        flags.cancelledUnowned = false;
        if (TERMINAL_STATUSES.includes(cur.status)) return null;
        const leased = cur.owner !== undefined && cur.owner !== this.id && (cur.lease_until ?? 0) > now;
        if (leased || !this.canRun(cur)) return null;
        if (cur.cancel_requested) {
          flags.cancelledUnowned = true;
          return { ...cur, status: "cancelled", finished_at: now, lease_until: 0 };
        }
        flags.claimed = true;
        return { ...cur, status: "running", owner: this.id, lease_until: now + this.leaseMs, started_at: cur.started_at ?? now, runs: cur.runs + 1 };
      });
      if (flags.cancelledUnowned && rec) {
        const results = await this.store.readResults(job);
        await this.store.updateJob(job, (cur) => ({ ...cur, result: summarize(cur, results) }));
        return;
      }
      if (!flags.claimed || !rec || this.runs.has(job) || this.closed) return;
      claimed = true;
      this.claiming.delete(job);
      this.log("job-claimed", { job, run: rec.runs });
      const run = new JobRun(
        {
          store: this.store,
          client: this.client,
          evaluator: this.evaluator,
          nc: this.nc,
          owner: this.id,
          leaseMs: this.leaseMs,
          metrics: this.metricFns,
          functions: this.stepFns,
          ...(this.options.lm ? { defaultLm: this.options.lm } : {}),
          ...(this.options.progressIntervalMs !== undefined ? { progressIntervalMs: this.options.progressIntervalMs } : {}),
          busWaitMs: envInt("DSPEX_BUS_WAIT_MS") ?? 120_000,
          log: (event, fields) => this.log(event, fields),
          ...(dataset ? { dataset } : {}),
        },
        rec,
      );
      this.runs.set(job, run);
      const control = this.nc.subscribe(jobCancelSubject(job), {
        callback: (err) => {
          if (!err) run.stop("cancel");
        },
      });
      try {
        await run.finished;
      } finally {
        control.unsubscribe();
        this.runs.delete(job);
      }
    } catch (err) {
      this.log("claim-error", { job, error: String(err) });
    } finally {
      if (!claimed) this.claiming.delete(job);
    }
  }

  /** Picks up every unfinished job this instance may run (start-up and periodic). */
  scan(): Promise<void> {
    if (this.scanning) return this.scanning;
    this.scanning = (async () => {
      try {
        const now = Date.now();
        for (const rec of await this.store.listJobs()) {
          if (this.closed) break;
          if (TERMINAL_STATUSES.includes(rec.status) || this.runs.has(rec.id) || this.claiming.has(rec.id)) continue;
          const free = !rec.owner || rec.owner === this.id || (rec.lease_until ?? 0) <= now;
          if (free) void this.claimAndRun(rec.id);
        }
      } catch (err) {
        this.log("scan-error", { error: String(err) });
      } finally {
        this.scanning = undefined;
      }
    })();
    return this.scanning;
  }

  /** Ready = NATS connected and JetStream answering. */
  async ready(): Promise<{ ok: boolean; detail?: Record<string, unknown> }> {
    if (this.closed || this.nc.isClosed()) return { ok: false, detail: { nats: "closed" } };
    try {
      const jsm = await jetstreamManager(this.nc, { timeout: 2_000 });
      await jsm.getAccountInfo();
      return { ok: true, detail: { nats: "connected", jetstream: "ok", running: [...this.runs.keys()] } };
    } catch (err) {
      return { ok: false, detail: { nats: "connected", jetstream: String(err) } };
    }
  }

  /** Stops serving; running jobs give their lease back so the next instance resumes them at once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.scanTimer);
    for (const s of this.subs) s.unsubscribe();
    const runs = [...this.runs.values()];
    for (const r of runs) r.stop("shutdown");
    await Promise.allSettled(runs.map((r) => r.finished));
    await this.scanning;
    if (this.ownsClient) await this.client.close();
    if (this.ownsConnection) await this.nc.drain();
  }
}
