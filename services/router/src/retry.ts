/**
 * Retries, two kinds (docs/reliability.md):
 *
 * - **Attempts** after an error *reply* marked `retryable` (an LM 5xx/429, …): the previous attempt completed,
 *   so the next one is a new request with a derived id `<id>#2`, `<id>#3`, … — a new `Nats-Msg-Id`, so
 *   JetStream's duplicate window does not drop it. Exponential backoff with full jitter, never past the
 *   caller's deadline.
 * - **Transport re-publishes** of the same attempt when the publish itself failed (no PubAck: NATS
 *   disconnected, JetStream restarting): the same `Nats-Msg-Id`, so a publish that did reach the stream is
 *   stored once. Also bounded by the deadline.
 *
 * Also the consumers' redelivery BackOff (`consumerBackoffMs`), derived from the pool settings.
 */
import type { JetStreamClient, PubAck } from "@nats-io/jetstream";
import type { MsgHdrs } from "@nats-io/transport-node";
import { DspexError, WorkerError, type Pool, type PoolSettings } from "@dspex/shared";

export interface RetryPolicy {
  /** Attempts in all, the first included (1 disables retries). */
  maxAttempts: number;
  /** Backoff base: attempt n waits a random time in [0, min(maxDelayMs, baseDelayMs · 2^(n-1))]. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const RETRY_DEFAULTS: RetryPolicy = { maxAttempts: 3, baseDelayMs: 200, maxDelayMs: 5_000 };

const RETRY_ENV: Record<keyof RetryPolicy, string> = {
  maxAttempts: "DSPEX_RETRY_MAX_ATTEMPTS",
  baseDelayMs: "DSPEX_RETRY_BASE_MS",
  maxDelayMs: "DSPEX_RETRY_MAX_MS",
};

/** A non-negative integer from the environment, or undefined when unset. */
export function envInt(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer (got ${JSON.stringify(raw)})`);
  }
  return value;
}

/** Defaults, then DSPEX_RETRY_* environment variables, then explicit overrides. */
export function retryPolicy(overrides: Partial<RetryPolicy> = {}, env: NodeJS.ProcessEnv = process.env): RetryPolicy {
  const policy = { ...RETRY_DEFAULTS };
  for (const key of Object.keys(RETRY_ENV) as Array<keyof RetryPolicy>) {
    const value = envInt(env, RETRY_ENV[key]);
    if (value !== undefined) policy[key] = value;
  }
  Object.assign(policy, overrides);
  policy.maxAttempts = Math.max(1, policy.maxAttempts);
  return policy;
}

/** Full-jitter exponential backoff after failed attempt number `attempt` (1-based). */
export function backoffDelayMs(
  attempt: number,
  policy: Pick<RetryPolicy, "baseDelayMs" | "maxDelayMs">,
  random: () => number = Math.random,
): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * cap);
}

/** Id of attempt `n` of request `id`: the id itself for the first, `<id>#<n>` after. */
export function attemptId(id: string, attempt: number): string {
  return attempt <= 1 ? id : `${id}#${attempt}`;
}

/** The request id an attempt id belongs to. */
export function baseRequestId(id: string): string {
  const hash = id.lastIndexOf("#");
  return hash > 0 && /^\d+$/.test(id.slice(hash + 1)) ? id.slice(0, hash) : id;
}

/** Retry only what the worker said may succeed when sent again (`retryable` travels in the reply). */
export function isRetryableReply(err: unknown): boolean {
  return err instanceof WorkerError && err.retryable;
}

/** Seconds from an LM error's Retry-After (the worker passes `details.retry_after`), in ms. */
export function retryAfterMs(err: unknown): number {
  if (!(err instanceof DspexError)) return 0;
  const raw = err.details?.retry_after;
  const seconds = typeof raw === "number" ? raw : typeof raw === "string" ? Number(raw) : NaN;
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Errors of a JetStream publish that a re-publish of the same message may get past. */
export function isTransientPublishError(err: unknown): boolean {
  const e = err as { name?: string; status?: number; code?: number } | undefined;
  switch (e?.name) {
    case "TimeoutError": // no PubAck in time (server down, or the ack was lost)
    case "RequestError": // timeout or no responders, wrapped
    case "NoResponders":
    case "JetStreamNotEnabled": // no responders: JetStream not up yet after a restart
    case "ConnectionError":
      return true;
    case "JetStreamApiError":
      return e.status === 503; // JetStream temporarily unavailable
    default:
      return false;
  }
}

export interface PublishRetryOptions {
  msgID: string;
  headers?: MsgHdrs;
  /** Absolute deadline (epoch ms): no publish is tried after it. */
  deadline: number;
  /** Upper bound on one try's wait for the PubAck (default 5000 ms). */
  tryTimeoutMs?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Called before each re-publish (for logs and counters). */
  onRetry?: (err: unknown, tryNumber: number) => void;
  /** Stops retrying (e.g. the call was answered or abandoned). */
  stopped?: () => boolean;
}

/**
 * Publishes to JetStream and re-publishes the *same* message (same Nats-Msg-Id: JetStream stores it once)
 * after transient transport errors until the deadline. Other errors are thrown at once.
 */
export async function publishWithRetry(
  js: JetStreamClient,
  subject: string,
  body: Uint8Array,
  options: PublishRetryOptions,
): Promise<PubAck> {
  const tryTimeout = options.tryTimeoutMs ?? 5_000;
  const policy = { baseDelayMs: options.baseDelayMs ?? 100, maxDelayMs: options.maxDelayMs ?? 1_000 };
  for (let n = 1; ; n++) {
    const remaining = options.deadline - Date.now();
    try {
      return await js.publish(subject, body, {
        msgID: options.msgID,
        headers: options.headers,
        timeout: Math.max(1, Math.min(tryTimeout, remaining)),
      });
    } catch (err) {
      if (!isTransientPublishError(err) || options.stopped?.()) throw err;
      // Wait at least a little between tries: a disconnected client fails fast with no responders.
      const delay = Math.max(50, backoffDelayMs(n, policy));
      if (Date.now() + delay >= options.deadline) throw err;
      options.onRetry?.(err, n + 1);
      await sleep(delay);
    }
  }
}

/**
 * The BackOff of a pool's consumers (JetStream redelivery delays, ms). `DSPEX_<POOL>_BACKOFF_MS` (a
 * comma-separated list) overrides it; by default it doubles from the pool's AckWait: [A, 2A, 4A, …] with
 * MaxDeliver − 1 entries (at most 4; the server requires len(BackOff) ≤ MaxDeliver, and delivery n waits
 * BackOff[n-1], the last entry repeating). Its first value is the first delivery's ack wait, so it starts
 * at AckWait: the ack wait a worker paces its in-progress acks by stays the one configured.
 */
export function consumerBackoffMs(pool: Pool, settings: PoolSettings, env: NodeJS.ProcessEnv = process.env): number[] {
  const name = `DSPEX_${pool.toUpperCase()}_BACKOFF_MS`;
  const raw = env[name];
  if (raw !== undefined && raw.trim() !== "") {
    const values = raw.split(",").map((s) => Number(s.trim()));
    if (values.some((v) => !Number.isInteger(v) || v <= 0)) {
      throw new RangeError(`${name} must be a comma-separated list of positive integers (got ${JSON.stringify(raw)})`);
    }
    if (settings.maxDeliver > 0 && values.length > settings.maxDeliver) {
      throw new RangeError(`${name} has ${values.length} entries; MaxDeliver of pool '${pool}' is ${settings.maxDeliver}`);
    }
    return values;
  }
  const entries = Math.min(4, Math.max(0, settings.maxDeliver - 1));
  return Array.from({ length: entries }, (_, i) => settings.ackWaitMs * 2 ** i);
}
