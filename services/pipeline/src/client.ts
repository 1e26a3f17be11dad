/**
 * Client of a running pipeline service over NATS: submit (uploading large datasets to the data stream first),
 * status, list, cancel, resume, progress events, results (read straight from the results stream).
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { DspexError, TransportError, ValidationError } from "@dspex/shared";
import type { PipelineResult, PipelineSpec } from "./pipeline.js";
import { EvalStore } from "./store.js";
import { EVAL_SUBJECTS, newJobId, progressSubject } from "./subjects.js";
import { summarize } from "./summary.js";
import { TERMINAL_STATUSES, type ExampleResult, type JobRecord, type JobSpec, type JobSummary, type ProgressEvent } from "./types.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An error reply of the pipeline service, with the remote error's type. */
export class ServiceError extends DspexError {
  override readonly type: string;
  constructor(error: { type: string; message: string; field?: string }) {
    super(error.message, error.field ? { field: error.field } : {});
    this.type = error.type;
  }
}

export interface SubmitOptions {
  /** Use this job id (e.g. to resume under a known id). */
  job?: string;
  /** Datasets above this JSON size are uploaded to the data stream instead of inline (default 256 KiB). */
  inlineLimitBytes?: number;
}

export interface JobListing extends Omit<JobRecord, "spec" | "summary"> {
  name?: string;
  score: number | null;
}

export class PipelineClient {
  private storePromise: Promise<EvalStore> | undefined;

  private constructor(
    readonly nc: NatsConnection,
    private readonly ownsConnection: boolean,
  ) {}

  static async connect(options: { servers?: string | string[]; connection?: NatsConnection } = {}): Promise<PipelineClient> {
    if (options.connection) return new PipelineClient(options.connection, false);
    const servers = options.servers ?? process.env.NATS_URL ?? "nats://127.0.0.1:4222";
    try {
      return new PipelineClient(await connect({ servers, name: "dspex-pipeline-client" }), true);
    } catch (err) {
      throw new TransportError(`cannot connect to NATS at ${String(servers)}: ${String(err)}`, { cause: err });
    }
  }

  /** Direct access to the job streams and bucket (read results without going through the service). */
  store(): Promise<EvalStore> {
    return (this.storePromise ??= EvalStore.open(this.nc));
  }

  /** JSON request/reply to the service; throws ServiceError for an error reply. */
  async request<T>(subject: string, body: unknown, timeoutMs = 30_000): Promise<T> {
    let raw: Uint8Array;
    try {
      raw = (await this.nc.request(subject, encoder.encode(JSON.stringify(body)), { timeout: timeoutMs })).data;
    } catch (err) {
      const text = String(err);
      if (/no responders|503/i.test(text)) {
        throw new TransportError(`no pipeline service is serving ${subject} (start services/pipeline/src/server.ts)`, { cause: err });
      }
      throw new TransportError(`request on ${subject} failed: ${text}`, { cause: err });
    }
    const reply = JSON.parse(decoder.decode(raw)) as { ok: boolean; error?: { type: string; message: string; field?: string } } & T;
    if (!reply.ok) throw new ServiceError(reply.error ?? { type: "Error", message: "unknown error" });
    return reply;
  }

  /** Is a pipeline service answering on this bus? */
  async ping(timeoutMs = 1_000): Promise<boolean> {
    try {
      await this.request(EVAL_SUBJECTS.list, {}, timeoutMs);
      return true;
    } catch {
      return false;
    }
  }

  /** Submits a job; returns its id as soon as the job and its dataset are persisted. */
  async submit(spec: JobSpec, examples: ReadonlyArray<Record<string, unknown>>, options: SubmitOptions = {}): Promise<string> {
    if (examples.length === 0) throw new ValidationError("the dataset is empty", { field: "examples" });
    const size = examples.reduce((n, e) => n + JSON.stringify(e).length + 1, 0);
    if (size <= (options.inlineLimitBytes ?? 256 * 1024)) {
      const r = await this.request<{ job: string }>(EVAL_SUBJECTS.submit, { spec, examples, ...(options.job ? { job: options.job } : {}) });
      return r.job;
    }
    const job = options.job ?? newJobId();
    await (await this.store()).writeDataset(job, examples);
    const r = await this.request<{ job: string }>(EVAL_SUBJECTS.submit, { spec, job, dataset: { uploaded: examples.length } });
    return r.job;
  }

  async status(job: string): Promise<{ record: JobRecord; progress?: ProgressEvent }> {
    return this.request(EVAL_SUBJECTS.status, { job });
  }

  async list(): Promise<JobListing[]> {
    return (await this.request<{ jobs: JobListing[] }>(EVAL_SUBJECTS.list, {})).jobs;
  }

  async cancel(job: string): Promise<JobRecord> {
    return (await this.request<{ record: JobRecord }>(EVAL_SUBJECTS.cancel, { job })).record;
  }

  async resume(job: string): Promise<JobRecord> {
    return (await this.request<{ record: JobRecord }>(EVAL_SUBJECTS.resume, { job })).record;
  }

  async delete(job: string): Promise<boolean> {
    return (await this.request<{ deleted: boolean }>(EVAL_SUBJECTS.delete, { job })).deleted;
  }

  async runPipeline(pipeline: PipelineSpec, inputs: Record<string, unknown>, timeoutMs = 120_000): Promise<PipelineResult> {
    return (await this.request<{ result: PipelineResult }>(EVAL_SUBJECTS.pipelineRun, { pipeline, inputs }, timeoutMs)).result;
  }

  async record(job: string): Promise<JobRecord | null> {
    return (await (await this.store()).getJob(job))?.record ?? null;
  }

  /** Every stored per-example result, by index. */
  async results(job: string): Promise<Map<number, ExampleResult>> {
    return (await this.store()).readResults(job);
  }

  async dataset(job: string): Promise<Array<Record<string, unknown>>> {
    return (await this.store()).readDataset(job);
  }

  async summary(job: string): Promise<JobSummary | null> {
    const rec = await this.record(job);
    return rec ? summarize(rec, await this.results(job)) : null;
  }

  /** Calls `listener` with each progress event of the job; returns a function that stops listening. */
  watch(job: string, listener: (event: ProgressEvent) => void): () => void {
    const sub = this.nc.subscribe(progressSubject(job), {
      callback: (err, msg) => {
        if (err) return;
        try {
          listener(JSON.parse(decoder.decode(msg.data)) as ProgressEvent);
        } catch {
          /* not an event */
        }
      },
    });
    return () => sub.unsubscribe();
  }

  /**
   * Resolves with the job record once the job is completed, failed or cancelled. Progress events drive it;
   * the record is also checked every `pollMs` in case an event was missed.
   */
  async wait(job: string, options: { onProgress?: (e: ProgressEvent) => void; timeoutMs?: number; pollMs?: number } = {}): Promise<JobRecord> {
    const store = await this.store();
    return new Promise<JobRecord>((resolve, reject) => {
      let settled = false;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        stop();
        clearInterval(poll);
        clearTimeout(timer);
        fn();
      };
      const check = async () => {
        try {
          const rec = (await store.getJob(job))?.record;
          if (!rec) finish(() => reject(new ValidationError(`no job '${job}'`, { field: "job" })));
          else if (TERMINAL_STATUSES.includes(rec.status)) finish(() => resolve(rec));
        } catch {
          /* try again at the next poll */
        }
      };
      const stop = this.watch(job, (e) => {
        options.onProgress?.(e);
        if (TERMINAL_STATUSES.includes(e.status)) void check();
      });
      const poll = setInterval(() => void check(), options.pollMs ?? 2_000);
      const timer = options.timeoutMs
        ? setTimeout(() => finish(() => reject(new TransportError(`job '${job}' not finished within ${options.timeoutMs} ms`))), options.timeoutMs)
        : undefined;
      void check();
    });
  }

  async close(): Promise<void> {
    if (this.ownsConnection) await this.nc.drain();
  }
}
