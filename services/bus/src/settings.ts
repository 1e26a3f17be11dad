/**
 * The deployment's bus settings: replicas, storage, limits, the pools' consumer settings. Read by the one
 * actor that provisions the bus (`dspex bus apply`, the embedded fleet, the Kubernetes Job) and by the
 * components that compare the live bus with what their deployment says (drift), never to change it.
 *
 * Environment (all optional):
 *   DSPEX_BUS_REPLICAS (alias DSPEX_STREAM_REPLICAS)  replicas of every stream and bucket (3 on a cluster)
 *   DSPEX_BUS_STORAGE                                  file (default) | memory
 *   DSPEX_BUS_<NAME>_MAX_BYTES, DSPEX_BUS_<NAME>_MAX_AGE_MS, DSPEX_BUS_<NAME>_MAX_MSGS_PER_SUBJECT
 *                                                      limits of one stream or bucket (a bucket's history), NAME one of
 *       REQUESTS, DEAD_LETTERS, ADVISORIES, EVAL_DATA, EVAL_RESULTS, MEMBERS, PROGRAMS, SESSIONS, JOBS
 *   DSPEX_SESSION_TTL_MS                               idle time after which a session expires (30 min)
 *   DSPEX_PIN_TIMEOUT_MS                               how long a partition stays with a silent worker (3 s)
 *   DSPEX_<POOL>_<SETTING>                             the pools' settings (pools.ts)
 */
import { poolSettings, type PoolSettings } from "./pools.js";
import { BUCKETS, POOLS, STREAMS, type Pool } from "@dspex/protocol";

/** What one stream or bucket may hold. 0 = unlimited. */
export interface Limits {
  maxBytes: number;
  maxAgeMs: number;
  /** Messages kept per subject (a bucket's history: versions kept per key, 1–64). */
  maxMsgsPerSubject: number;
}

export type LimitName =
  | "requests"
  | "deadLetters"
  | "advisories"
  | "evalData"
  | "evalResults"
  | "executions"
  | "members"
  | "programs"
  | "sessions"
  | "jobs"
  | "lmCache";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const DAY = 24 * 3600_000;

/** Messages per subject as schemas/bus.json describes them (a bucket's history; one result per example). */
const PER_SUBJECT: Record<LimitName, number> = {
  requests: 0, // every request of a pool shares a subject: never limited per subject
  deadLetters: 0,
  advisories: 0,
  evalData: (STREAMS.evalData as { maxMsgsPerSubject?: number }).maxMsgsPerSubject ?? 0,
  evalResults: (STREAMS.evalResults as { maxMsgsPerSubject?: number }).maxMsgsPerSubject ?? 0,
  executions: 0,
  members: BUCKETS.members.history,
  programs: BUCKETS.programs.history,
  sessions: BUCKETS.sessions.history,
  jobs: BUCKETS.jobs.history,
  lmCache: BUCKETS.lmCache.history,
};

/**
 * Defaults sized for one node: nothing grows without bound. Requests older than a day have no caller
 * left; dead letters are kept a week; programs never expire by age (versions are the history).
 */
export const LIMIT_DEFAULTS: Record<LimitName, Limits> = {
  requests: { maxBytes: 1 * GiB, maxAgeMs: DAY, maxMsgsPerSubject: PER_SUBJECT.requests },
  deadLetters: { maxBytes: 1 * GiB, maxAgeMs: 7 * DAY, maxMsgsPerSubject: PER_SUBJECT.deadLetters },
  advisories: { maxBytes: 64 * MiB, maxAgeMs: DAY, maxMsgsPerSubject: PER_SUBJECT.advisories },
  evalData: { maxBytes: 4 * GiB, maxAgeMs: 30 * DAY, maxMsgsPerSubject: PER_SUBJECT.evalData },
  evalResults: { maxBytes: 4 * GiB, maxAgeMs: 30 * DAY, maxMsgsPerSubject: PER_SUBJECT.evalResults },
  // executions wait here until the registry's database took them: a week covers an outage
  executions: { maxBytes: 1 * GiB, maxAgeMs: 7 * DAY, maxMsgsPerSubject: PER_SUBJECT.executions },
  members: { maxBytes: 16 * MiB, maxAgeMs: 30_000, maxMsgsPerSubject: PER_SUBJECT.members },
  programs: { maxBytes: 1 * GiB, maxAgeMs: 0, maxMsgsPerSubject: PER_SUBJECT.programs },
  sessions: { maxBytes: 256 * MiB, maxAgeMs: 30 * 60_000, maxMsgsPerSubject: PER_SUBJECT.sessions },
  jobs: { maxBytes: 256 * MiB, maxAgeMs: 7 * DAY, maxMsgsPerSubject: PER_SUBJECT.jobs },
  // LM responses: the oldest go first when the bucket is full (every worker also replicates it, bounded)
  lmCache: { maxBytes: 256 * MiB, maxAgeMs: BUCKETS.lmCache.ttlMs, maxMsgsPerSubject: PER_SUBJECT.lmCache },
};

export interface BusSettings {
  replicas: number;
  storage: "file" | "memory";
  /** Window in which a repeated Nats-Msg-Id is dropped as a duplicate (requests). */
  duplicateWindowMs: number;
  /** How long a pinned partition stays with a worker that stopped pulling before another takes it. */
  pinTimeoutMs: number;
  limits: Record<LimitName, Limits>;
  pools: Record<Pool, PoolSettings>;
}

const LIMIT_ENV: Record<LimitName, string> = {
  requests: "REQUESTS",
  deadLetters: "DEAD_LETTERS",
  advisories: "ADVISORIES",
  evalData: "EVAL_DATA",
  evalResults: "EVAL_RESULTS",
  executions: "EXECUTIONS",
  members: "MEMBERS",
  programs: "PROGRAMS",
  sessions: "SESSIONS",
  jobs: "JOBS",
  lmCache: "LM_CACHE",
};

function envNumber(env: NodeJS.ProcessEnv, name: string, min: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(`${name} must be an integer ≥ ${min} (got ${JSON.stringify(raw)})`);
  }
  return value;
}

export interface BusSettingsOverrides extends Partial<Omit<BusSettings, "limits" | "pools">> {
  limits?: Partial<Record<LimitName, Partial<Limits>>>;
  pools?: Partial<Record<Pool, Partial<PoolSettings>>>;
  sessionTtlMs?: number;
}

/** Defaults, then the environment, then explicit overrides. */
export function busSettings(overrides: BusSettingsOverrides = {}, env: NodeJS.ProcessEnv = process.env): BusSettings {
  const limits = {} as Record<LimitName, Limits>;
  for (const name of Object.keys(LIMIT_DEFAULTS) as LimitName[]) {
    limits[name] = {
      maxBytes: envNumber(env, `DSPEX_BUS_${LIMIT_ENV[name]}_MAX_BYTES`, 0) ?? LIMIT_DEFAULTS[name].maxBytes,
      maxAgeMs: envNumber(env, `DSPEX_BUS_${LIMIT_ENV[name]}_MAX_AGE_MS`, 0) ?? LIMIT_DEFAULTS[name].maxAgeMs,
      maxMsgsPerSubject: envNumber(env, `DSPEX_BUS_${LIMIT_ENV[name]}_MAX_MSGS_PER_SUBJECT`, 0) ?? LIMIT_DEFAULTS[name].maxMsgsPerSubject,
      ...overrides.limits?.[name],
    };
    const isBucket = name in BUCKETS;
    const perSubject = limits[name].maxMsgsPerSubject;
    if (isBucket && (perSubject < 1 || perSubject > 64)) {
      throw new RangeError(`DSPEX_BUS_${LIMIT_ENV[name]}_MAX_MSGS_PER_SUBJECT: a bucket's history must be 1–64 (got ${perSubject})`);
    }
  }
  const sessionTtl = overrides.sessionTtlMs ?? envNumber(env, "DSPEX_SESSION_TTL_MS", 1);
  if (sessionTtl !== undefined) limits.sessions = { ...limits.sessions, maxAgeMs: sessionTtl };
  const storage = overrides.storage ?? env.DSPEX_BUS_STORAGE ?? "file";
  if (storage !== "file" && storage !== "memory") {
    throw new RangeError(`DSPEX_BUS_STORAGE must be file or memory (got ${JSON.stringify(storage)})`);
  }
  return {
    replicas: overrides.replicas ?? envNumber(env, "DSPEX_BUS_REPLICAS", 1) ?? envNumber(env, "DSPEX_STREAM_REPLICAS", 1) ?? 1,
    storage,
    duplicateWindowMs: overrides.duplicateWindowMs ?? 120_000,
    pinTimeoutMs: overrides.pinTimeoutMs ?? envNumber(env, "DSPEX_PIN_TIMEOUT_MS", 1) ?? 3_000,
    limits,
    pools: poolSettings(overrides.pools, env),
  };
}

/** Each pool's session partition count: what workers' NATS permissions list (auth/roles.ts). */
export function partitionCounts(settings: BusSettings = busSettings()): Record<Pool, number> {
  return Object.fromEntries(POOLS.map((p) => [p, settings.pools[p].partitions])) as Record<Pool, number>;
}
