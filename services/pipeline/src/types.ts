/** The data model of batch evaluation jobs: specs, persisted job records, per-example results, events. */
import type { LMConfigWire, Pool, SignatureWire, Usage } from "@dspex/shared";
import type { PipelineSpec, StepTiming } from "./pipeline.js";

export type ModuleKind = "predict" | "chain_of_thought";

/** One DSPy module run through the Router. */
export interface ModuleProgram {
  /** DSPy signature string (`"question -> answer"`) or its wire JSON. */
  signature: string | SignatureWire;
  instructions?: string;
  /** `predict` (default) or `chain_of_thought`. */
  module?: ModuleKind;
  demos?: Array<Record<string, unknown>>;
  lm?: LMConfigWire;
  pool?: Pool;
  /** Per-call timeout (default: the pool's). */
  timeoutMs?: number;
}

/** A pipeline of steps (see pipeline.ts) as the program of a job. */
export interface PipelineProgram {
  pipeline: PipelineSpec;
}

export type ProgramSpec = ModuleProgram | PipelineProgram;

export function isPipelineProgram(p: ProgramSpec): p is PipelineProgram {
  return typeof (p as PipelineProgram).pipeline === "object" && (p as PipelineProgram).pipeline !== null;
}

/**
 * A metric, serialisable form. `name` is one of the native metrics (`exact_match`, `f1`, `passage_match`),
 * `py:<name>` for a Python metric evaluated by the worker (`py:answer_exact_match`,
 * `py:answer_passage_match`, `py:package.module:function`), or the name of a TypeScript metric registered
 * in the process that runs the job.
 */
export interface MetricSpec {
  name: string;
  /** Key of this metric in the scores (default: `name`). */
  as?: string;
  /** Prediction field the native metric reads (default `answer`; `context` for passage_match). */
  pred?: string;
  /** Example (gold) field the native metric reads (default `answer`). */
  gold?: string;
  /** Extra arguments: `frac` for exact_match / py:answer_exact_match, anything for custom metrics. */
  args?: Record<string, unknown>;
}

/** A TypeScript metric function: DSPy's `metric(example, pred)` with plain objects. */
export type MetricFunction = (
  example: Record<string, unknown>,
  prediction: Record<string, unknown>,
  args: Record<string, unknown>,
) => number | boolean | Promise<number | boolean>;

/** What a job is asked to do; stored with the job, so it must be plain JSON. */
export interface JobSpec {
  /** Free-form label shown in listings. */
  name?: string;
  program: ProgramSpec;
  /** The first metric is the job's score; the others are reported alongside. */
  metrics: MetricSpec[];
  /** Examples in flight at once (default 8). */
  concurrency?: number;
  /** Stop the job (status `failed`) once more than this many examples failed; unset: never. */
  maxErrors?: number | null;
  /** Retries of an example after a retryable error (timeout, LM 5xx/429, no workers; default 2). */
  retries?: number;
  /** Example fields passed to the program (default: the signature's input fields; every field for a pipeline). */
  inputKeys?: string[];
}

export type JobStatus = "queued" | "running" | "completed" | "failed" | "cancelled";
export const TERMINAL_STATUSES: readonly JobStatus[] = ["completed", "failed", "cancelled"];

export interface ErrorInfo {
  type: string;
  message: string;
}

/** The job record in the KV bucket (key = job id). */
export interface JobRecord {
  id: string;
  spec: JobSpec;
  status: JobStatus;
  total: number;
  /** sha256 of the dataset (canonical JSON lines): jobs are comparable when it matches. */
  datasetHash: string;
  createdAt: number;
  updatedAt: number;
  startedAt?: number;
  finishedAt?: number;
  /** Service instance running the job and until when its lease holds. */
  owner?: string;
  leaseUntil?: number;
  /** How many times a service picked the job up (1 + resumes). */
  runs: number;
  /** Checkpoint of the counters (the results stream is the truth). */
  progress?: { done: number; failed: number; score: number | null };
  summary?: JobSummary;
  error?: ErrorInfo;
  /** A cancel was asked for. */
  cancelRequested?: boolean;
}

/** One example's result, stored once in the results stream. */
export interface ExampleResult {
  job: string;
  index: number;
  ok: boolean;
  outputs?: Record<string, unknown>;
  /** Per metric (by key); empty when the example failed. */
  scores: Record<string, number | boolean>;
  /** The primary metric as a number; a failed example scores 0 (DSPy's failure_score). */
  score: number;
  error?: ErrorInfo & { retryable?: boolean };
  /** Wall time of the example, retries included. */
  ms: number;
  attempts: number;
  worker?: string;
  usage?: Usage;
  steps?: StepTiming[];
  at: number;
}

export interface LatencyStats {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export interface JobSummary {
  job: string;
  name?: string;
  status: JobStatus;
  total: number;
  /** Examples with a result (succeeded + failed). */
  done: number;
  ok: number;
  failed: number;
  /** The job's score: DSPy's round(100 * sum(scores) / n, 2) over the primary metric, failures as 0. */
  score: number | null;
  /** Per metric key, the same aggregate over the examples that have a result. */
  metrics: Record<string, number | null>;
  primaryMetric: string;
  errorsByType: Record<string, number>;
  latencyMs: LatencyStats | null;
  usage: Usage;
  startedAt?: number;
  finishedAt?: number;
  /** Examples per second over the run's wall time. */
  rate?: number;
  datasetHash: string;
}

/** A progress event on `dspex.eval.progress.<job>` (JSON). */
export interface ProgressEvent {
  job: string;
  status: JobStatus;
  total: number;
  done: number;
  ok: number;
  failed: number;
  /** Running score: round(100 * sum / done, 2). */
  score: number | null;
  /** Examples per second (recent). */
  rate: number;
  /** Seconds to go at the current rate (null when unknown). */
  eta_s: number | null;
  elapsed_s: number;
  at: number;
  error?: ErrorInfo;
}
