/**
 * The data model of batch evaluation jobs: the eval kind of the one job model (job.schema.json) with its spec
 * typed, per-example results, summaries. Records and progress events are the protocol's (@dspex/protocol).
 */
import type { EvalSpec, JobProgress, JobRecord as WireJobRecord, JobStatus, LMConfig, Pool, SignatureWire, Usage } from "@dspex/protocol";
import type { PipelineSpec, StepTiming } from "./pipeline.js";

export type ModuleKind = "predict" | "chain_of_thought";

/** One DSPy module run through the client. */
export interface ModuleProgram {
  /** DSPy signature string (`"question -> answer"`) or its wire JSON. */
  signature: string | SignatureWire;
  instructions?: string;
  /** `predict` (default) or `chain_of_thought`. */
  module?: ModuleKind;
  demos?: Array<Record<string, unknown>>;
  lm?: LMConfig;
  pool?: Pool;
  /** Per-call timeout (default: the pool's). */
  timeout_ms?: number;
}

/** A pipeline of steps (see pipeline.ts) as the program of a job. */
export interface PipelineProgram {
  pipeline: PipelineSpec;
}

/**
 * A user's packaged program the fleet serves (docs/programs.md) as a job's program: the example's fields named by
 * its advertised inputs go in and every output comes back for the metrics. With TypeScript/native metrics only, a
 * job runs it as a one-step pipeline (`packagedPipeline`: the record holds that pipeline); with Python metrics the
 * record keeps `{package}` and each example is one `evaluate` op on a worker (the program, then the metrics).
 */
export interface PackagedProgram {
  package: string;
  lm?: LMConfig;
  timeout_ms?: number;
}

export type ProgramSpec = ModuleProgram | PipelineProgram | PackagedProgram;

export function isPackagedProgram(p: unknown): p is PackagedProgram {
  return typeof p === "object" && p !== null && typeof (p as PackagedProgram).package === "string";
}

/** The one-step pipeline a packaged program runs as in a job. */
export function packagedPipeline(p: PackagedProgram): PipelineProgram {
  return {
    pipeline: {
      name: `program ${p.package}`,
      steps: [{ kind: "program", name: "program", program: p.package, ...(p.lm ? { lm: p.lm } : {}), ...(p.timeout_ms ? { timeout_ms: p.timeout_ms } : {}) }],
    },
  };
}

export function isPipelineProgram(p: ProgramSpec | PackagedProgram): p is PipelineProgram {
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

/** What a job is asked to do (job.schema.json EvalSpec, with its program and metrics typed); plain JSON. */
export interface JobSpec extends Omit<EvalSpec, "program" | "metrics"> {
  program: ProgramSpec;
  /** The first metric is the job's score; the others are reported alongside. */
  metrics: MetricSpec[];
}

/** A spec as submitted: metrics may be given by name (normalized into MetricSpecs when the job is created). */
export interface JobSpecInput extends Omit<JobSpec, "metrics" | "program"> {
  program: ProgramSpec | PackagedProgram;
  metrics: Array<string | MetricSpec>;
}

export type { JobStatus };
export { TERMINAL as TERMINAL_STATUSES } from "@dspex/jobs";

export interface ErrorInfo {
  type: string;
  message: string;
}

/** An eval job's record in KV `dspex_jobs`: the job model's record, its spec and result typed. */
export interface JobRecord extends Omit<WireJobRecord, "spec" | "result" | "total" | "dataset_hash"> {
  kind: "eval";
  spec: JobSpec;
  total: number;
  /** sha256 of the dataset (canonical JSON lines): jobs are comparable when it matches. */
  dataset_hash: string;
  /** The summary, once the job ended. */
  result?: JobSummary;
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
  /** The model that answered (module programs). */
  lm?: string;
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
  primary_metric: string;
  errors_by_type: Record<string, number>;
  latency_ms: LatencyStats | null;
  usage: Usage;
  started_at?: number;
  finished_at?: number;
  /** Examples per second over the run's wall time. */
  rate?: number;
  dataset_hash: string;
}

/** A progress event of a job (job.schema.json JobProgress). */
export type ProgressEvent = JobProgress;
