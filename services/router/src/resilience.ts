/**
 * The router's resilience layer around each call (docs/reliability.md): circuit breakers (breakers.ts),
 * retries of retryable error replies with derived attempt ids (retry.ts), the `fallback` of an open breaker,
 * and the reply ledger that counts replies the router drops (late, duplicate) so none surfaces twice.
 *
 * `Router.call` hands its single-attempt path to `Resilience.call`, which runs it once per attempt with the
 * attempt's id and the time left until the caller's deadline.
 */
import { randomUUID } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  CircuitOpenError,
  POOLS,
  TimeoutError,
  ValidationError,
  WorkerError,
  isPool,
  resolveSignature,
  validateOutputs,
  type LMConfigWire,
  type Operation,
  type Pool,
  type PoolSettings,
  type SignatureInput,
  type SignatureWire,
} from "@dspex/shared";
import {
  BreakerRegistry,
  admitAll,
  breakerSettings,
  lmOutcome,
  poolOutcome,
  type Breaker,
  type BreakerOptions,
} from "./breakers.js";
import {
  attemptId,
  backoffDelayMs,
  isRetryableReply,
  retryAfterMs,
  retryPolicy,
  sleep,
  type RetryPolicy,
} from "./retry.js";
import type { CallOptions, CallResult } from "./router.js";

/** Header a request carries when its sender confirms replies (the worker then retries an unconfirmed reply). */
export const REPLY_ACK_HEADER = "Dspex-Reply-Ack";

export interface ResilienceOptions {
  /** Circuit breaker settings (defaults + DSPEX_BREAKER_* env, see breakers.ts). */
  breakers?: BreakerOptions;
  /** Retry policy for retryable error replies (defaults + DSPEX_RETRY_* env, see retry.ts). */
  retry?: Partial<RetryPolicy>;
  /** Run a call's `fallback` when a breaker is open (default true; env DSPEX_BREAKER_FALLBACK=0 turns it off). */
  fallbackOnOpen?: boolean;
  /** Calls reusing a caller-given requestId within this time get the first call's result (default 120000). */
  resultMemoryMs?: number;
}

export interface FallbackContext {
  op: Operation;
  pool: Pool;
  lm: LMConfigWire | undefined;
  signature: SignatureWire;
  inputs: Record<string, unknown>;
  /** Why the call did not go to a worker. */
  error: CircuitOpenError;
}

/** Options a call gets from this layer (Router's CallOptions extends this). */
export interface ResilientCallOptions {
  /**
   * A native implementation used while a breaker of this call is open: returns the outputs (validated
   * against the signature like a worker's). The result then has `worker: "fallback"`.
   */
  fallback?: (ctx: FallbackContext) => Record<string, unknown> | Promise<Record<string, unknown>>;
  /** This call's retry policy over the router's (`false`: a single attempt). */
  retry?: Partial<RetryPolicy> | false;
}

/** Replies the router received and did not surface (each would have been a second answer). */
export interface DroppedReplies {
  /** The attempt had already ended without this reply (timed out, publish failed, aborted). */
  late: number;
  /** The attempt had already been answered. */
  duplicate: number;
  /** Not an attempt of this router (or one older than the ledger remembers). */
  unknown: number;
}

/** Remembers how recent attempts ended, to classify replies that arrive for no pending call. */
export class ReplyLedger {
  private readonly ended = new Map<string, "inflight" | "answered" | "ended">();
  readonly dropped: DroppedReplies = { late: 0, duplicate: 0, unknown: 0 };

  constructor(private readonly capacity = 20_000) {}

  /** `inflight` before an attempt is sent; `answered` when its reply is taken (Router.onReply, synchronously). */
  settled(id: string, how: "inflight" | "answered" | "ended"): void {
    this.ended.delete(id);
    this.ended.set(id, how);
    if (this.ended.size > this.capacity) this.ended.delete(this.ended.keys().next().value as string);
  }

  /** A reply arrived for attempt `id`, which has no pending call. */
  drop(id: string): void {
    const how = this.ended.get(id);
    if (how === "answered") this.dropped.duplicate += 1;
    // In flight without a pending call: its timeout (or abort, or failed publish) just removed it.
    else if (how === "ended" || how === "inflight") this.dropped.late += 1;
    else this.dropped.unknown += 1;
  }
}

/** Did this error come with a reply from a worker (as opposed to no reply at all)? */
function answered(err: unknown): boolean {
  return err instanceof WorkerError || (err instanceof TimeoutError && err.details?.source === "worker");
}

type Attempt<T> = (attempt: { requestId: string; timeoutMs: number }) => Promise<T>;

/**
 * Whether the router's NATS connection is up. While it is down (the server restarting, a network cut), a
 * new attempt waits for the reconnect (within its deadline) instead of failing: NoWorkers or a timeout
 * measured while disconnected says nothing about the pool.
 */
export class ConnectionWatch {
  connected = true;
  private waiters = new Set<() => void>();
  private stopped = false;

  constructor(nc: NatsConnection | undefined) {
    if (!nc) return;
    void (async () => {
      for await (const s of nc.status()) {
        if (this.stopped) break;
        if (s.type === "disconnect") this.connected = false;
        else if (s.type === "reconnect") {
          this.connected = true;
          for (const w of this.waiters) w();
          this.waiters.clear();
        }
      }
    })().catch(() => {});
  }

  /** Resolves when connected, or at `deadline` (epoch ms) at the latest. */
  ready(deadline: number): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
      this.waiters.add(done);
    });
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.waiters) w();
  }
}

export class Resilience {
  readonly breakers: BreakerRegistry;
  readonly replies = new ReplyLedger();
  readonly retry: RetryPolicy;
  readonly fallbackOnOpen: boolean;
  /** Counters since the router started. */
  readonly counts = { retries: 0, fallbacks: 0, failedFast: 0, republished: 0 };
  private readonly inflight = new Map<string, Promise<unknown>>();
  private readonly results = new Map<string, { at: number; result: unknown }>();
  private readonly attemptsUsed = new Map<string, number>();
  private readonly resultMemoryMs: number;

  readonly connection: ConnectionWatch;

  constructor(
    options: ResilienceOptions = {},
    private readonly pools: Record<Pool, PoolSettings>,
    nc?: NatsConnection,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.connection = new ConnectionWatch(nc);
    this.breakers = new BreakerRegistry(breakerSettings(options.breakers, env));
    this.retry = retryPolicy(options.retry, env);
    this.fallbackOnOpen = options.fallbackOnOpen ?? env.DSPEX_BREAKER_FALLBACK !== "0";
    this.resultMemoryMs = options.resultMemoryMs ?? 120_000;
  }

  /**
   * One call: the breakers of its pool and LM, attempts (`once`) with derived ids while the error reply is
   * retryable and the deadline allows, the fallback of an open breaker. A caller-given `requestId` that is
   * in flight joins that call; one that succeeded recently gets the same result (idempotent retries).
   */
  call<O>(
    op: Operation,
    signatureInput: SignatureInput,
    rawInputs: Record<string, unknown>,
    options: CallOptions,
    defaultLm: LMConfigWire | undefined,
    once: Attempt<CallResult<O>>,
  ): Promise<CallResult<O>> {
    const given = options.requestId;
    if (given !== undefined) {
      const running = this.inflight.get(given);
      if (running) return running as Promise<CallResult<O>>;
      const recent = this.results.get(given);
      if (recent && Date.now() - recent.at < this.resultMemoryMs) return Promise.resolve(recent.result as CallResult<O>);
    }
    const id = given ?? randomUUID();
    const run = this.attempts(op, signatureInput, rawInputs, options, defaultLm, id, once);
    if (given === undefined) return run;
    this.inflight.set(id, run);
    void run.then(
      (result) => {
        this.results.set(id, { at: Date.now(), result });
        this.trimResults();
      },
      () => {},
    ).finally(() => this.inflight.delete(id));
    return run;
  }

  private trimResults(): void {
    const cutoff = Date.now() - this.resultMemoryMs;
    for (const [key, value] of this.results) {
      if (value.at >= cutoff && this.results.size <= 10_000) break;
      this.results.delete(key);
    }
  }

  private async attempts<O>(
    op: Operation,
    signatureInput: SignatureInput,
    rawInputs: Record<string, unknown>,
    options: CallOptions,
    defaultLm: LMConfigWire | undefined,
    id: string,
    once: Attempt<CallResult<O>>,
  ): Promise<CallResult<O>> {
    const pool = options.pool ?? "general";
    if (!isPool(pool)) {
      throw new ValidationError(`unknown pool ${JSON.stringify(pool)}; pools: ${POOLS.join(", ")}`, {
        field: "pool",
        details: { pool, pools: [...POOLS] },
      });
    }
    const lm = options.lm ?? defaultLm;
    const timeoutMs = options.timeoutMs ?? this.pools[pool]?.defaultTimeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    const policy = options.retry === false ? { ...this.retry, maxAttempts: 1 } : { ...this.retry, ...options.retry };
    const breakers: Breaker[] = [this.breakers.pool(pool), this.breakers.lm(lm)];
    // A caller retrying its own request id after a failure continues the attempt numbering: a reused
    // Nats-Msg-Id would be dropped by JetStream's duplicate window.
    const first = (this.attemptsUsed.get(id) ?? 0) + 1;
    let last: unknown;
    for (let n = first; n < first + Math.max(1, policy.maxAttempts); n++) {
      if (!this.connection.connected) await this.connection.ready(deadline);
      const admission = admitAll(breakers);
      if ("refused" in admission) {
        const b = admission.refused;
        const open = new CircuitOpenError(
          `circuit breaker ${b.name} is ${b.state.replace("_", "-")}: the call was not sent` +
            (last ? ` (after ${n - first} attempt(s); last error: ${String((last as Error).message ?? last)})` : ""),
          { details: { breaker: b.name, state: b.state, pool, since: b.snapshot().since }, cause: last },
        );
        if (options.fallback && this.fallbackOnOpen) {
          return this.fallback(op, signatureInput, rawInputs, options, pool, lm, id, open);
        }
        this.counts.failedFast += 1;
        throw open;
      }
      const attempt = attemptId(id, n);
      this.rememberAttempt(id, n);
      this.replies.settled(attempt, "inflight");
      try {
        const result = await once({ requestId: attempt, timeoutMs: Math.max(1, deadline - Date.now()) });
        this.replies.settled(attempt, "answered");
        for (const t of admission.tickets) t.breaker.record(t, t.breaker.kind === "pool" ? poolOutcome(undefined) : lmOutcome(undefined));
        return attempt === id ? result : { ...result, id };
      } catch (err) {
        this.replies.settled(attempt, answered(err) ? "answered" : "ended");
        for (const t of admission.tickets) t.breaker.record(t, t.breaker.kind === "pool" ? poolOutcome(err) : lmOutcome(err));
        last = err;
        if (!isRetryableReply(err) || n + 1 >= first + policy.maxAttempts) throw err;
        const delay = Math.max(backoffDelayMs(n - first + 1, policy), retryAfterMs(err));
        // Not worth another attempt if it could not even start before the deadline.
        if (Date.now() + delay + 50 >= deadline) throw err;
        this.counts.retries += 1;
        await sleep(delay, options.signal);
      }
    }
    throw last; // unreachable: the loop returns or throws
  }

  private rememberAttempt(id: string, n: number): void {
    this.attemptsUsed.delete(id);
    this.attemptsUsed.set(id, n);
    if (this.attemptsUsed.size > 20_000) this.attemptsUsed.delete(this.attemptsUsed.keys().next().value as string);
  }

  private async fallback<O>(
    op: Operation,
    signatureInput: SignatureInput,
    rawInputs: Record<string, unknown>,
    options: CallOptions,
    pool: Pool,
    lm: LMConfigWire | undefined,
    id: string,
    error: CircuitOpenError,
  ): Promise<CallResult<O>> {
    const started = performance.now();
    const signature = resolveSignature(signatureInput, options.instructions);
    const outputs = await options.fallback!({ op, pool, lm, signature, inputs: rawInputs, error });
    const validated = validateOutputs(signature, outputs, { extra: op === "chain_of_thought" ? ["reasoning"] : [] });
    this.counts.fallbacks += 1;
    const ms = performance.now() - started;
    return {
      id,
      outputs: validated as O,
      lm: "fallback",
      usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
      timings: { queue_ms: 0, exec_ms: ms, total_ms: ms },
      worker: "fallback",
    };
  }

  /** For `dspex status` and tests. */
  snapshot() {
    return {
      breakers: this.breakers.states(),
      droppedReplies: { ...this.replies.dropped },
      ...this.counts,
    };
  }

  shutdown(): void {
    this.connection.stop();
    this.breakers.shutdown();
  }
}
