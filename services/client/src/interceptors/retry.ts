/**
 * Retries, the client's one retry policy (docs/reliability.md): after an error *reply* the worker marked
 * `retryable` (an LM 5xx/429, …) the call is sent again as a new attempt with a derived id `<id>#2`, `<id>#3`,
 * … — a new Nats-Msg-Id, so JetStream's duplicate window does not drop it — after a full-jitter
 * exponential backoff (or the provider's Retry-After), never past the caller's deadline. The workers' LM
 * clients do not retry on their own (their num_retries is 0 unless a request says otherwise), so one
 * policy decides.
 *
 * Also the idempotency of a caller-given request id: a call reusing an id that is in flight joins it, one
 * that succeeded recently gets the same result.
 */
import { randomUUID } from "node:crypto";
import { DspexError, NoWorkersError, type ReplyOk } from "@dspex/protocol";
import type { CallInput, Interceptor, RetryPolicy } from "../call.js";
import { isAnswered } from "../answered.js";
import type { Transport } from "../transport.js";

export type { RetryPolicy };

export const RETRY_DEFAULTS: RetryPolicy = { maxAttempts: 3, baseDelayMs: 200, maxDelayMs: 5_000 };

type NumericSetting = "maxAttempts" | "baseDelayMs" | "maxDelayMs";

const RETRY_ENV: Record<NumericSetting, string> = {
  maxAttempts: "DSPEX_RETRY_MAX_ATTEMPTS",
  baseDelayMs: "DSPEX_RETRY_BASE_MS",
  maxDelayMs: "DSPEX_RETRY_MAX_MS",
};

/** A non-negative integer from the environment, or undefined when unset. */
export function envInt(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer (got ${JSON.stringify(raw)})`);
  return value;
}

/** Defaults, then DSPEX_RETRY_* environment variables, then explicit overrides. */
export function retryPolicy(overrides: Partial<RetryPolicy> = {}, env: NodeJS.ProcessEnv = process.env): RetryPolicy {
  const policy = { ...RETRY_DEFAULTS };
  for (const key of Object.keys(RETRY_ENV) as NumericSetting[]) {
    const value = envInt(env, RETRY_ENV[key]);
    if (value !== undefined) policy[key] = value;
  }
  Object.assign(policy, overrides);
  policy.maxAttempts = Math.max(1, policy.maxAttempts);
  return policy;
}

/** Full-jitter exponential backoff after failed attempt number `attempt` (1-based). */
export function backoffDelayMs(attempt: number, policy: Pick<RetryPolicy, "baseDelayMs" | "maxDelayMs">, random: () => number = Math.random): number {
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

/** Retry only what a worker (or the native engine) said may succeed when sent again (`retryable` travels in the reply). */
export function isRetryableReply(err: unknown): boolean {
  return err instanceof DspexError && err.retryable && isAnswered(err);
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

export interface RetryCounts {
  retries: number;
}

/**
 * Attempts while the error reply is retryable and the deadline allows. A caller retrying its own request id
 * after a failure continues the attempt numbering: a reused Nats-Msg-Id would be dropped by JetStream.
 */
export function retryInterceptor(policy: RetryPolicy, transport: Pick<Transport, "ready" | "settled">, counts: RetryCounts): Interceptor {
  const attemptsUsed = new Map<string, number>();
  return async (input, next) => {
    const p = input.options.retry === false ? { ...policy, maxAttempts: 1 } : { ...policy, ...input.options.retry };
    const id = input.requestId;
    const first = (attemptsUsed.get(id) ?? 0) + 1;
    for (let n = first; ; n++) {
      await transport.ready(input.deadline);
      const attempt = attemptId(id, n);
      attemptsUsed.delete(id);
      attemptsUsed.set(id, n);
      if (attemptsUsed.size > 20_000) attemptsUsed.delete(attemptsUsed.keys().next().value as string);
      transport.settled(attempt, "inflight");
      try {
        const reply = await next({ ...input, requestId: attempt });
        transport.settled(attempt, "answered");
        return attempt === id ? reply : { ...reply, id };
      } catch (err) {
        transport.settled(attempt, isAnswered(err) ? "answered" : "ended");
        const again = isRetryableReply(err) || (p.noWorkers === true && err instanceof NoWorkersError);
        if (!again || n + 1 >= first + p.maxAttempts) throw err;
        const delay = Math.max(backoffDelayMs(n - first + 1, p), retryAfterMs(err));
        // not worth another attempt if it could not even start before the deadline
        if (Date.now() + delay + 50 >= input.deadline) throw err;
        counts.retries += 1;
        await sleep(delay, input.options.signal);
      }
    }
  };
}

/** Calls reusing a caller-given requestId: join the one in flight, or get a recent success again. */
export function idempotencyInterceptor(resultMemoryMs = 120_000): Interceptor {
  const inflight = new Map<string, Promise<ReplyOk>>();
  const results = new Map<string, { at: number; reply: ReplyOk }>();
  return (input: CallInput, next) => {
    if (input.options.requestId === undefined) return next(input);
    const id = input.requestId;
    const running = inflight.get(id);
    if (running) return running;
    const recent = results.get(id);
    if (recent && Date.now() - recent.at < resultMemoryMs) return Promise.resolve(recent.reply);
    const run = next(input);
    inflight.set(id, run);
    void run
      .then(
        (reply) => {
          results.set(id, { at: Date.now(), reply });
          const cutoff = Date.now() - resultMemoryMs;
          for (const [key, value] of results) {
            if (value.at >= cutoff && results.size <= 10_000) break;
            results.delete(key);
          }
        },
        () => {},
      )
      .finally(() => inflight.delete(id));
    return run;
  };
}

/** A fresh request id when the caller gave none. */
export function newRequestId(): string {
  return randomUUID();
}
