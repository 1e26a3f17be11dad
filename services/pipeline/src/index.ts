export { PipelineService, type PipelineServiceOptions } from "./service.js";
export { serveJobsApi, type JobsBackend, type SubmitRequest } from "./api.js";
export { PipelineClient, type SubmitOptions, type JobListing } from "./client.js";
export { EvalStore, datasetHash, resultMsgId, type RecordOutcome } from "./store.js";
export { JobRun, type RunnerDeps, type StopReason } from "./runner.js";
export { inputKeysOf } from "./example-fields.js";
export { Stats } from "./stats.js";
export { callModule, programCaller } from "./call-module.js";
export { EvaluateCaller, type EvaluateCallOptions, type EvaluateCallResult } from "./evaluate-op.js";
export { NATIVE_METRICS, PY_PREFIX, resolveMetrics, normalizeMetrics, scoreNative, scoreNumber, type ResolvedMetric } from "./metrics.js";
export { summarize, aggregate, latencyStats, percentile, primaryKey, idealBound, type IdealBound } from "./summary.js";
export { renderReport, renderComparisonReport, barChart, scoreBars, esc, type ReportInput } from "./report.js";
export { compareJobs, formatComparison, type Comparison, type PairComparison, type JobData } from "./compare.js";
export {
  runPipeline,
  validatePipeline,
  evaluateCondition,
  PipelineStepError,
  BUILTIN_FUNCTIONS,
  type PipelineSpec,
  type PipelineResult,
  type PipelineContext,
  type Step,
  type ModuleStep,
  type ProgramStep,
  type ProgramCaller,
  type NativeStep,
  type ParallelStep,
  type BranchStep,
  type Condition,
  type FieldMapping,
  type NativeFunction,
  type ModuleCaller,
  type StepTiming,
} from "./pipeline.js";
export { parseJsonl, readDatasetFile, toJsonl } from "./dataset.js";
export * from "./subjects.js";
export * from "./types.js";
