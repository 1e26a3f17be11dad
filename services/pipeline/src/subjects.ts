/** The jobs API the pipeline service serves (request/reply, JSON bodies, queue group `dspex-jobs`). */
import { QUEUES, jobsApiSubject, pipelineRunSubject } from "@dspex/protocol";

export const EVAL_SUBJECTS = {
  submit: jobsApiSubject("submit"),
  status: jobsApiSubject("status"),
  list: jobsApiSubject("list"),
  cancel: jobsApiSubject("cancel"),
  resume: jobsApiSubject("resume"),
  delete: jobsApiSubject("delete"),
  results: jobsApiSubject("results"),
  pipelineRun: pipelineRunSubject(),
} as const;

export const SERVICE_QUEUE = QUEUES.jobs;
