/**
 * The jobs API the pipeline service serves on `dspex.jobs.api.<action>` (JSON request/reply, queue group
 * `dspex-jobs`, so several instances share it) and `dspex.pipeline.run`. Every answer is `{ok: true, …}` or
 * `{ok: false, error}` with the contract's error (error.schema.json), naming the field when there is one.
 */
import type { Msg, Subscription } from "@nats-io/transport-node";
import { isJobId } from "@dspex/jobs";
import { DspexError, NotFound, ValidationError } from "@dspex/protocol";
import type { NatsConnection } from "@nats-io/transport-node";
import { errorInfo, hasInlineFunctions, type PipelineResult, type PipelineSpec } from "./pipeline.js";
import type { EvalStore } from "./store.js";
import { EVAL_SUBJECTS, SERVICE_QUEUE } from "./subjects.js";
import type { JobRecord, JobSpecInput, ProgressEvent } from "./types.js";

/** A job submission: a spec and its examples inline, or uploaded to the data stream under `job` first. */
export interface SubmitRequest {
  spec: JobSpecInput;
  /** Inline examples (small datasets; a NATS message is at most 1 MiB by default). */
  examples?: Array<Record<string, unknown>>;
  /** The dataset was uploaded to `dspex.eval.data.<job>.<index>` beforehand under this job id. */
  job?: string;
  dataset?: { uploaded: number };
}

/** What the API serves from (the pipeline service). */
export interface JobsBackend {
  readonly nc: NatsConnection;
  readonly store: EvalStore;
  submit(request: SubmitRequest): Promise<string>;
  status(job: string): Promise<{ record: JobRecord; progress?: ProgressEvent } | null>;
  list(): Promise<JobRecord[]>;
  cancel(job: string): Promise<JobRecord | null>;
  resume(job: string): Promise<JobRecord | null>;
  delete(job: string): Promise<boolean>;
  runPipeline(spec: PipelineSpec, inputs: Record<string, unknown>): Promise<PipelineResult>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function serveJobsApi(service: JobsBackend): Subscription[] {
  const subs: Subscription[] = [];
  const handle = (subject: string, fn: (body: Record<string, unknown>) => Promise<unknown>) => {
    subs.push(
      service.nc.subscribe(subject, {
        queue: SERVICE_QUEUE,
        callback: (err, msg) => {
          if (err) return;
          void answer(msg, fn);
        },
      }),
    );
  };
  handle(EVAL_SUBJECTS.submit, async (body) => ({ job: await service.submit(body as unknown as SubmitRequest) }));
  handle(EVAL_SUBJECTS.status, async (body) => {
    const s = await service.status(requireJob(body));
    if (!s) throw new NotFound(`no job '${String(body.job)}'`, { field: "job" });
    return s;
  });
  handle(EVAL_SUBJECTS.list, async () => ({
    jobs: (await service.list()).map(({ spec, result, ...rest }) => ({
      ...rest,
      name: spec.name,
      score: result?.score ?? rest.progress?.score ?? null,
    })),
  }));
  handle(EVAL_SUBJECTS.cancel, async (body) => {
    const rec = await service.cancel(requireJob(body));
    if (!rec) throw new NotFound(`no job '${String(body.job)}'`, { field: "job" });
    return { record: rec };
  });
  handle(EVAL_SUBJECTS.resume, async (body) => {
    const job = requireJob(body);
    const rec = await service.resume(job);
    if (!rec) throw new NotFound(`no job '${job}'`, { field: "job" });
    return { record: rec };
  });
  handle(EVAL_SUBJECTS.delete, async (body) => ({ deleted: await service.delete(requireJob(body)) }));
  handle(EVAL_SUBJECTS.results, async (body) => {
    const job = requireJob(body);
    const offset = Number(body.offset ?? 0);
    const limit = Math.min(Number(body.limit ?? 100), 1000);
    const all = [...(await service.store.readResults(job)).values()].sort((a, b) => a.index - b.index);
    return { total: all.length, offset, results: all.slice(offset, offset + limit) };
  });
  handle(EVAL_SUBJECTS.pipelineRun, async (body) => {
    const spec = body.pipeline as PipelineSpec;
    if (!spec) throw new ValidationError("`pipeline` is required", { field: "pipeline" });
    if (hasInlineFunctions(spec.steps ?? [])) throw new ValidationError("native steps must name a function", { field: "pipeline" });
    return { result: await service.runPipeline(spec, (body.inputs as Record<string, unknown>) ?? {}) };
  });
  return subs;
}

async function answer(msg: Msg, fn: (body: Record<string, unknown>) => Promise<unknown>): Promise<void> {
  let reply: unknown;
  try {
    const body = msg.data.length === 0 ? {} : (JSON.parse(decoder.decode(msg.data)) as unknown);
    if (!body || typeof body !== "object" || Array.isArray(body)) throw new ValidationError("the request body must be a JSON object");
    reply = { ok: true, ...(await fn(body as Record<string, unknown>) as object) };
  } catch (err) {
    reply = {
      ok: false,
      error:
        err instanceof SyntaxError
          ? { type: "DecodeError", message: `request body is not JSON: ${err.message}`, retryable: false }
          : err instanceof DspexError
            ? err.toWire()
            : { ...errorInfo(err), retryable: false },
    };
  }
  if (msg.reply) msg.respond(encoder.encode(JSON.stringify(reply)));
}

function requireJob(body: Record<string, unknown>): string {
  if (!isJobId(body.job)) throw new ValidationError("`job` must be a job id", { field: "job" });
  return body.job;
}
