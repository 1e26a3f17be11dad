/**
 * @dspex/bus — the bus as a described, applied and inspected thing: connecting to NATS (one way for every
 * component), the declarative description of every stream, consumer and KV bucket with the deployment's
 * replicas and limits, `applyBus` (the one writer), `requireBus`/`inspectBus` (everyone else: verify,
 * report drift), the pools' settings, and what `dspex status` shows.
 */
export { connectNats, connectionSecurity, newInbox, serverList, type BusAccess, type ConnectOptions, type TlsFiles } from "./connect.js";
export { issueAuth, MAX_CONTROL_LINE, type IssuedAuth, type IssueOptions } from "./auth/issue.js";
export { readCreds, type CredsInfo } from "./auth/creds.js";
export { ROLES, WORKER_ROLES, inboxPrefix, isRole, rolePermissions, workerRole, type Role, type RolePermissions } from "./auth/roles.js";
export { busSettings, partitionCounts, LIMIT_DEFAULTS, type BusSettings, type BusSettingsOverrides, type Limits, type LimitName } from "./settings.js";
export { busSpec, BUS_METADATA_KEY, type BusSpec, type BusNeeds, type StreamSpec, type ConsumerSpec, type BucketSpec } from "./spec.js";
export { applyBus, formatApplyReport, type ApplyReport } from "./apply.js";
export { inspectBus, requireBus, formatDrift, type BusInspection, type StreamState } from "./inspect.js";
export type { Difference } from "./diff.js";
export { collectStatus, formatStatus, servedPrograms, workerStatuses, type BusStatus, type PoolStatus, type WorkerStatus, type BreakerSnapshot, type AdvertisedProgram, type ProgramAdvertisement, type LmCacheStatus } from "./status.js";
export { mermaid, type ModuleNode } from "./graph.js";
export { poolSettings, POOL_DEFAULTS, envName, type PoolSettings } from "./pools.js";
export { consumerBackoffMs } from "./backoff.js";
export { jsCode, JS_CODES, isStreamNotFound, isConsumerNotFound, isWrongLastSequence, isPermissionViolation, forbiddenOr } from "./jserrors.js";
export { publishWithRetry, isTransientPublishError, type PublishRetryOptions } from "./publish.js";
export { busTroubleReason, isTransientBusError, retryOnBus, type BusWaitOptions } from "./transient.js";
export { LazyBucket, isLive, type BucketName } from "./buckets.js";
