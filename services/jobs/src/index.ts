/**
 * @dspex/jobs — one job model for everything long-running (job.schema.json): records in KV `dspex_jobs`
 * with compare-and-set, progress events and cancel notices. Eval jobs (the pipeline service) and optimize
 * jobs (optimizer-pool workers) are two kinds of it; `dspex jobs` lists both.
 */
export { JobStore, TERMINAL, isJobId, isTerminal, newJobId, queuedRecord, type Stored } from "./store.js";
export { ProgressFeed, publishProgress, requestCancel, waitForJob } from "./progress.js";
