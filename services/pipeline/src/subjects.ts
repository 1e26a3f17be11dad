/** Subjects, streams and buckets of batch evaluation (docs/evaluation.md). */
import { randomBytes } from "node:crypto";

/** Request/reply subjects served by the pipeline service (queue group `dspex-pipeline`), JSON bodies. */
export const EVAL_SUBJECTS = {
  submit: "dspex.eval.submit",
  status: "dspex.eval.status",
  list: "dspex.eval.list",
  cancel: "dspex.eval.cancel",
  resume: "dspex.eval.resume",
  delete: "dspex.eval.delete",
  results: "dspex.eval.results",
  pipelineRun: "dspex.pipeline.run",
} as const;

export const SERVICE_QUEUE = "dspex-pipeline";

/** Progress events of a job (core NATS, JSON). */
export function progressSubject(job: string): string {
  return `dspex.eval.progress.${job}`;
}

/** Control messages to the service instance running a job (cancel), core NATS. */
export function controlSubject(job: string): string {
  return `dspex.eval.control.${job}`;
}

/** Stream of job datasets: one message per example on `dspex.eval.data.<job>.<index>`. */
export const DATA_STREAM = "DSPEX_EVAL_DATA";
export const DATA_PREFIX = "dspex.eval.data";
/** Stream of per-example results: at most one message per `dspex.eval.result.<job>.<index>`. */
export const RESULTS_STREAM = "DSPEX_EVAL_RESULTS";
export const RESULTS_PREFIX = "dspex.eval.result";
/** KV bucket of job records (key = job id). */
export const JOBS_BUCKET = "dspex_eval_jobs";

export function dataSubject(job: string, index: number): string {
  return `${DATA_PREFIX}.${job}.${index}`;
}

export function resultSubject(job: string, index: number): string {
  return `${RESULTS_PREFIX}.${job}.${index}`;
}

/** `Nats-Msg-Id` of an example's result: a re-run example is dropped as a duplicate. */
export function resultMsgId(job: string, index: number): string {
  return `${job}:${index}`;
}

const JOB_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function isJobId(value: unknown): value is string {
  return typeof value === "string" && JOB_ID.test(value);
}

/** A new job id: time-ordered and subject-safe, e.g. `ev-mf3k2p1a-7c1d9e04`. */
export function newJobId(): string {
  return `ev-${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;
}
