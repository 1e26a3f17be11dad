/**
 * Pool settings in one typed table with documented defaults; each value can be overridden by an
 * environment variable DSPEX_<POOL>_<SETTING> (e.g. DSPEX_GENERAL_ACK_WAIT_MS=60000).
 */
import { DEFAULT_CONCURRENCY, DEFAULT_DEADLINE_MS, POOLS, type Pool } from "@dspex/protocol";

export interface PoolSettings {
  /**
   * Requests one worker process runs at once (schemas/bus.json `defaultConcurrency`: general 256 — LM calls are
   * I/O-bound — optimizer and gpu 1), across both lanes.
   */
  concurrency: number;
  /** JetStream AckWait: how long a delivered request may go without ack or progress before redelivery. */
  ackWaitMs: number;
  /** JetStream MaxAckPending: durable requests in flight across the whole pool (back-pressure: the rest wait stored). */
  maxAckPending: number;
  /** Delivery attempts before a request is given up (dead-lettered). */
  maxDeliver: number;
  /**
   * Default deadline of a call that names none (schemas/bus.json `defaultDeadlines`): the client's timeout, and what a
   * worker allows a request without a Dspex-Deadline header (it reads the same DSPEX_<POOL>_TIMEOUT_MS).
   */
  defaultTimeoutMs: number;
  /** Largest request body accepted, in bytes. */
  maxPayloadBytes: number;
  /** Worker processes per pool in embedded mode. */
  workers: number;
  /**
   * Session partitions of the pool; each is a consumer pinned to one worker at a time. 0 turns affinity
   * off (optimizer and gpu by default: their single-slot workers would otherwise wait on idle partitions).
   */
  partitions: number;
  /** Recycle a worker after this many requests (0: never). */
  maxRequests: number;
  /** Recycle a worker whose Python process exceeds this RSS in MiB (0: never). */
  maxRssMb: number;
}

export const POOL_DEFAULTS: Record<Pool, PoolSettings> = {
  general: {
    concurrency: DEFAULT_CONCURRENCY.general,
    ackWaitMs: 30_000,
    maxAckPending: 1_000,
    maxDeliver: 5,
    defaultTimeoutMs: DEFAULT_DEADLINE_MS.general,
    maxPayloadBytes: 1024 * 1024,
    workers: 2,
    partitions: 16,
    maxRequests: 0,
    maxRssMb: 0,
  },
  optimizer: {
    concurrency: DEFAULT_CONCURRENCY.optimizer,
    ackWaitMs: 120_000,
    maxAckPending: 64,
    maxDeliver: 3,
    defaultTimeoutMs: DEFAULT_DEADLINE_MS.optimizer,
    maxPayloadBytes: 8 * 1024 * 1024,
    workers: 0,
    partitions: 0,
    maxRequests: 0,
    maxRssMb: 0,
  },
  gpu: {
    concurrency: DEFAULT_CONCURRENCY.gpu,
    ackWaitMs: 120_000,
    maxAckPending: 64,
    maxDeliver: 3,
    defaultTimeoutMs: DEFAULT_DEADLINE_MS.gpu,
    maxPayloadBytes: 4 * 1024 * 1024,
    workers: 0,
    partitions: 0,
    maxRequests: 0,
    maxRssMb: 0,
  },
};

const ENV_NAMES: Record<keyof PoolSettings, string> = {
  concurrency: "CONCURRENCY",
  ackWaitMs: "ACK_WAIT_MS",
  maxAckPending: "MAX_ACK_PENDING",
  maxDeliver: "MAX_DELIVER",
  defaultTimeoutMs: "TIMEOUT_MS",
  maxPayloadBytes: "MAX_PAYLOAD_BYTES",
  workers: "WORKERS",
  partitions: "PARTITIONS",
  maxRequests: "MAX_REQUESTS",
  maxRssMb: "MAX_RSS_MB",
};

export function envName(pool: Pool, key: keyof PoolSettings): string {
  return `DSPEX_${pool.toUpperCase()}_${ENV_NAMES[key]}`;
}

/** Settings of every pool: defaults, then environment overrides, then explicit overrides. */
export function poolSettings(
  overrides: Partial<Record<Pool, Partial<PoolSettings>>> = {},
  env: NodeJS.ProcessEnv = process.env,
): Record<Pool, PoolSettings> {
  const out = {} as Record<Pool, PoolSettings>;
  for (const pool of POOLS) {
    const settings = { ...POOL_DEFAULTS[pool] };
    for (const key of Object.keys(settings) as Array<keyof PoolSettings>) {
      const raw = env[envName(pool, key)];
      if (raw === undefined || raw === "") continue;
      const value = Number(raw);
      if (!Number.isInteger(value) || value < 0) {
        throw new RangeError(`${envName(pool, key)} must be a non-negative integer (got ${JSON.stringify(raw)})`);
      }
      settings[key] = value;
    }
    out[pool] = { ...settings, ...overrides[pool] };
  }
  return out;
}
