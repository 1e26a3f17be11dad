/**
 * @dspex/registry — the program registry (docs/api.md): programs with a lifecycle (draft → training → optimized →
 * deployed → deprecated) and immutable versions, datasets, optimizer jobs linked to what they used, execution
 * history recorded once per request id from JetStream; PostgreSQL in production, PGlite embedded.
 */
export { Registry, type RegistryOptions, type Resolved } from "./registry.js";
export { openDatabase, defaultDatabaseUrl, type RegistryDatabase, type OpenOptions } from "./db/open.js";
export { migrate, MIGRATIONS } from "./db/migrations.js";
export { Conflict, Unavailable, isConnectionError } from "./errors.js";
export { ACTIONS, type Action } from "./lifecycle.js";
export { LIFECYCLE_STATES, NAME_PATTERN, REF_PATTERN, KV_PREFIX, kvKey, parseRef, formatRef, type LifecycleState, type ProgramRef } from "./names.js";
export { keepInputs, summarizeInputs, publishExecution, parseExecutionEvent, type ExecutionEvent, type InputsSummary } from "./events.js";
export { Recorder, type RecorderStatus } from "./recorder.js";
export { contentHash, MAX_EXAMPLES } from "./datasets.js";
export { retentionDays, type ExecutionFilters } from "./executions.js";
export { MAX_LIMIT, DEFAULT_LIMIT, type Page, type PageRequest } from "./page.js";
export type { CreateProgramInput, AddVersionInput, ProgramFilters } from "./programs.js";
export type { TrainInput, DeployInput, TransitionResult } from "./transitions.js";
export type { JobFilters } from "./jobs.js";
export type * from "./views.js";
