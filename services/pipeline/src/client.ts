/**
 * Client of a running pipeline service over NATS: submit (uploading large datasets to the data stream first),
 * status, list, cancel, resume, progress events, results (read straight from the results stream).
 */
import { NoRespondersError, RequestError, type NatsConnection } from "@nats-io/transport-node";
import { connectNats, type BusAccess } from "@dspex/bus";
import { ProgressFeed, newJobId, waitForJob } from "@dspex/jobs";
import { TransportError, ValidationError, errorFromWire, type ErrorWire } from "@dspex/protocol";
import type { PipelineResult, PipelineSpec } from "./pipeline.js";
import { EvalStore } from "./store.js";
import { EVAL_SUBJECTS } from "./subjects.js";
import { summarize } from "./summary.js";
import type { ExampleResult, JobRecord, JobSpecInput, JobSummary, ProgressEvent } from "./types.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface SubmitOptions {
  /** Use this job id (e.g. to resume under a known id). */
  job?: string;
  /** Datasets above this JSON size are uploaded to the data stream instead of inline (default 256 KiB). */
  inlineLimitBytes?: number;
}

export interface JobListing extends Omit<JobRecord, "spec" | "result"> {
  name?: string;
  score: number | null;
}

export class PipelineClient {
  private storePromise: Promise<EvalStore> | undefined;

  private constructor(
    readonly nc: NatsConnection,
    private readonly ownsConnection: boolean,
  ) {}

  static async connect(options: BusAccess & { connection?: NatsConnection } = {}): Promise<PipelineClient> {
    if (options.connection) return new PipelineClient(options.connection, false);
    return new PipelineClient(await connectNats({ ...options, name: "dspex-eval-client" }), true);
  }

  /** Direct access to the job streams and bucket (read results without going through the service). */
  store(): Promise<EvalStore> {
    return (this.storePromise ??= EvalStore.open(this.nc));
  }

  /** JSON request/reply to the service; an error reply throws its typed error (the contract's classes). */
  async request<T>(subject: string, body: unknown, timeoutMs = 30_000): Promise<T> {
    let raw: Uint8Array;
    try {
      raw = (await this.nc.request(subject, encoder.encode(JSON.stringify(body)), { timeout: timeoutMs })).data;
    } catch (err) {
      const noService = err instanceof NoRespondersError || (err instanceof RequestError && err.cause instanceof NoRespondersError);
      if (noService) throw new TransportError(`no pipeline service is serving ${subject} (services/pipeline/src/server.ts)`, { cause: err });
      throw new TransportError(`request on ${subject} failed: ${String(err)}`, { cause: err });
    }
    const reply = JSON.parse(decoder.decode(raw)) as { ok: boolean; error?: ErrorWire } & T;
    if (!reply.ok) throw errorFromWire(reply.error ?? { type: "WorkerError", message: "unknown error", retryable: false });
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
  async submit(spec: JobSpecInput, examples: ReadonlyArray<Record<string, unknown>>, options: SubmitOptions = {}): Promise<string> {
    if (examples.length === 0) throw new ValidationError("the dataset is empty", { field: "examples" });
    const size = examples.reduce((n, e) => n + JSON.stringify(e).length + 1, 0);
    if (size <= (options.inlineLimitBytes ?? 256 * 1024)) {
      const r = await this.request<{ job: string }>(EVAL_SUBJECTS.submit, { spec, examples, ...(options.job ? { job: options.job } : {}) });
      return r.job;
    }
    const job = options.job ?? newJobId("eval");
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
    const feed = new ProgressFeed(this.nc, job);
    void (async () => {
      for await (const e of feed) listener(e);
    })();
    return () => feed.end();
  }

  /** Resolves with the job record once the job ended; `onProgress` sees its progress events meanwhile. */
  async wait(job: string, options: { onProgress?: (e: ProgressEvent) => void; timeoutMs?: number; pollMs?: number } = {}): Promise<JobRecord> {
    const store = await this.store();
    const stop = options.onProgress ? this.watch(job, options.onProgress) : undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const done = waitForJob(this.nc, store.jobs, job, options.pollMs ?? 2_000) as unknown as Promise<JobRecord>;
      if (!options.timeoutMs) return await done;
      const limit = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TransportError(`job '${job}' not finished within ${options.timeoutMs} ms`)), options.timeoutMs);
      });
      return await Promise.race([done, limit]);
    } finally {
      clearTimeout(timer);
      stop?.();
    }
  }

  async close(): Promise<void> {
    if (this.ownsConnection) await this.nc.drain();
  }
}
