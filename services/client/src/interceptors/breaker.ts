/**
 * Circuit breakers (opossum, used as its authors intend: `fire` wraps the real call, its half-open state
 * lets exactly one probe through, its events drive our logs and metrics). One breaker per pool and one per
 * LM (model + endpoint), per client. Each attempt goes through its pool's breaker and, inside it, its LM's.
 * A vector store gets one too (kind `store`, @dspex/retrieval's Retriever): only StoreUnavailable counts.
 *
 * A breaker opens when, over its rolling window, at least `volumeThreshold` calls were recorded and more than
 * `errorThresholdPercentage` of them failed in a way that is evidence against what it protects (opossum's
 * `errorFilter`): a pool breaker counts no workers, transport failures and calls that got no reply before the
 * deadline; an LM breaker counts calls with no reply and retryable LM errors (5xx, 429, connection). Every
 * other outcome — a validation error reply, unparseable LM output, the caller aborting — is not a failure,
 * which opossum records as a success (its model has no "neither"). While open, calls fail fast with
 * CircuitOpenError (or run the call's `fallback`); after `resetTimeoutMs` one probe goes through, and its
 * outcome closes or re-opens the breaker.
 */
import { EventEmitter } from "node:events";
import CircuitBreaker from "opossum";
import {
  CircuitOpenError,
  DeadlineExceeded,
  LMError,
  NoWorkersError,
  StoreUnavailable,
  TransportError,
  type LMConfig,
  type Pool,
  type ReplyOk,
} from "@dspex/protocol";
import { createLogger, registerBreakerStateGauge, type BreakerState, type Stoppable } from "@dspex/observability";
import type { CallInput, Interceptor } from "../call.js";
import { isAnswered } from "../answered.js";
import { envInt } from "./retry.js";

export type BreakerKind = "pool" | "lm" | "store";

export interface BreakerSettings {
  /** false: no breaker of this kind (calls always go through). */
  enabled: boolean;
  /** Open when more than this percentage of the recorded calls in the window failed. */
  errorThresholdPercentage: number;
  /** ...and at least this many calls were recorded in the window. */
  volumeThreshold: number;
  rollingWindowMs: number;
  /** Buckets the window is divided into (it slides by one bucket at a time). */
  rollingBuckets: number;
  /** Time an open breaker waits before letting one probe call through (half-open). */
  resetTimeoutMs: number;
}

export const BREAKER_DEFAULTS: BreakerSettings = {
  enabled: true,
  errorThresholdPercentage: 50,
  volumeThreshold: 20, // as Hystrix: no verdict on fewer than 20 calls in the window
  rollingWindowMs: 10_000,
  rollingBuckets: 10,
  resetTimeoutMs: 10_000,
};

const BREAKER_ENV: Record<keyof BreakerSettings, string> = {
  enabled: "ENABLED",
  errorThresholdPercentage: "ERROR_PERCENT",
  volumeThreshold: "VOLUME",
  rollingWindowMs: "WINDOW_MS",
  rollingBuckets: "BUCKETS",
  resetTimeoutMs: "RESET_MS",
};

export interface BreakerOptions {
  all?: Partial<BreakerSettings>;
  pool?: Partial<BreakerSettings>;
  lm?: Partial<BreakerSettings>;
  store?: Partial<BreakerSettings>;
}

function fromEnv(prefix: string, env: NodeJS.ProcessEnv): Partial<BreakerSettings> {
  const out: Partial<BreakerSettings> = {};
  for (const key of Object.keys(BREAKER_ENV) as Array<keyof BreakerSettings>) {
    const value = envInt(env, `${prefix}${BREAKER_ENV[key]}`);
    if (value === undefined) continue;
    if (key === "enabled") out.enabled = value !== 0;
    else out[key] = value;
  }
  return out;
}

/**
 * Settings of each kind: defaults, DSPEX_BREAKER_<SETTING>, options.all, DSPEX_BREAKER_<KIND>_<SETTING>,
 * options.<kind>. Settings: ENABLED (0/1), ERROR_PERCENT, VOLUME, WINDOW_MS, BUCKETS, RESET_MS.
 */
export function breakerSettings(options: BreakerOptions = {}, env: NodeJS.ProcessEnv = process.env): Record<BreakerKind, BreakerSettings> {
  const base = { ...BREAKER_DEFAULTS, ...fromEnv("DSPEX_BREAKER_", env), ...options.all };
  const check = (s: BreakerSettings, kind: BreakerKind): BreakerSettings => {
    if (s.rollingBuckets < 1 || s.rollingWindowMs < s.rollingBuckets) {
      throw new RangeError(`${kind} breaker: the window (${s.rollingWindowMs} ms) needs at least one ms per bucket`);
    }
    return s;
  };
  return {
    pool: check({ ...base, ...fromEnv("DSPEX_BREAKER_POOL_", env), ...options.pool }, "pool"),
    lm: check({ ...base, ...fromEnv("DSPEX_BREAKER_LM_", env), ...options.lm }, "lm"),
    store: check({ ...base, ...fromEnv("DSPEX_BREAKER_STORE_", env), ...options.store }, "store"),
  };
}

/** No reply at all before the deadline (as opposed to a worker's DeadlineExceeded reply). */
function noReply(err: unknown): boolean {
  return err instanceof DeadlineExceeded && !isAnswered(err);
}

/** Is this outcome evidence that the pool is unhealthy? */
export function poolFailure(err: unknown): boolean {
  return err instanceof NoWorkersError || err instanceof TransportError || noReply(err);
}

/** Is this outcome evidence that the LM provider is unhealthy? A hanging LM is the usual cause of no reply. */
export function lmFailure(err: unknown): boolean {
  return noReply(err) || (err instanceof LMError && err.retryable);
}

/** Is this outcome evidence that a vector store is unhealthy? Only "cannot reach it": a bad filter is the caller's. */
export function storeFailure(err: unknown): boolean {
  return err instanceof StoreUnavailable;
}

const FAILURES: Record<BreakerKind, (err: unknown) => boolean> = { pool: poolFailure, lm: lmFailure, store: storeFailure };

/**
 * Key of an LM breaker: the model and where it is served — an allow-listed endpoint (`<model>@<api_base>`) or an
 * operator's profile (`<model>@profile:<name>`, `profile:<name>`) — a model of the default profile alone, or
 * `default` for the workers' default LM.
 */
export function lmKey(lm: LMConfig | undefined): string {
  if (!lm) return "default";
  const where = lm.api_base ?? (lm.profile ? `profile:${lm.profile}` : undefined);
  return [lm.model, where].filter((part) => part).join("@") || "default";
}

export interface BreakerSnapshot {
  name: string;
  kind: BreakerKind;
  key: string;
  state: BreakerState;
  /** When the state last changed (epoch ms). */
  since: number;
  /** Counts in the current rolling window. */
  window: { calls: number; failures: number; successes: number };
  /** Calls that failed fast (or fell back) because the breaker was open. */
  rejected: number;
  /** Times the breaker opened. */
  opened: number;
}

export interface StateChange {
  name: string;
  kind: BreakerKind;
  key: string;
  from: BreakerState;
  to: BreakerState;
  at: number;
}

type Thunk = () => Promise<unknown>;

export class Breaker {
  readonly name: string;
  private readonly cb: CircuitBreaker<[Thunk], unknown>;
  private readonly rotate = new EventEmitter();
  private readonly rotator: NodeJS.Timeout;
  private stateValue: BreakerState = "closed";
  private sinceValue = Date.now();
  rejected = 0;
  opened = 0;

  constructor(
    readonly kind: BreakerKind,
    readonly key: string,
    readonly settings: BreakerSettings,
    onChange: (change: StateChange) => void,
  ) {
    this.name = `${kind}:${key}`;
    const isFailure = FAILURES[kind];
    this.cb = new CircuitBreaker<[Thunk], unknown>((thunk) => thunk(), {
      name: this.name,
      enabled: settings.enabled,
      timeout: false, // calls carry their own deadline; a call with no reply arrives here as a failure
      errorThresholdPercentage: settings.errorThresholdPercentage,
      volumeThreshold: settings.volumeThreshold,
      resetTimeout: settings.resetTimeoutMs,
      rollingCountTimeout: settings.rollingWindowMs,
      rollingCountBuckets: settings.rollingBuckets,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      // A NoWorkersError inside an LM breaker comes from the direct lane (no responder although discovery had
      // seen a worker): it says nothing about the LM, but opossum records every outcome, and as a success it would
      // close a half-open breaker. While half-open it counts as a failure instead (open again, another probe later).
      errorFilter: (err: unknown) => !(isFailure(err) || (kind === "lm" && err instanceof NoWorkersError && this.cb.halfOpen)),
      // the window slides on this emitter, so a breaker that closes can start from an empty window
      rotateBucketController: this.rotate,
    });
    this.rotator = setInterval(() => this.rotate.emit("rotate"), Math.floor(settings.rollingWindowMs / settings.rollingBuckets));
    this.rotator.unref();
    const change = (to: BreakerState) => {
      const from = this.stateValue;
      if (from === to) return;
      this.stateValue = to;
      this.sinceValue = Date.now();
      if (to === "open") this.opened += 1;
      onChange({ name: this.name, kind, key, from, to, at: this.sinceValue });
    };
    this.cb.on("open", () => change("open"));
    this.cb.on("halfOpen", () => change("half_open"));
    this.cb.on("close", () => {
      // failures from before the outage would re-open it at the first new error: start afresh
      for (let i = 0; i < settings.rollingBuckets; i++) this.rotate.emit("rotate");
      change("closed");
    });
    this.cb.on("reject", () => void (this.rejected += 1));
  }

  get state(): BreakerState {
    return this.stateValue;
  }

  /** Would `fire` refuse now? Open, or half-open with its one probe already out. */
  refuses(): boolean {
    if (!this.settings.enabled) return false;
    return this.cb.opened || (this.cb.halfOpen && !this.cb.pendingClose);
  }

  /** Runs the call through the breaker. */
  fire<T>(thunk: () => Promise<T>): Promise<T> {
    return this.cb.fire(thunk) as Promise<T>;
  }

  snapshot(): BreakerSnapshot {
    const stats = this.cb.stats;
    return {
      name: this.name,
      kind: this.kind,
      key: this.key,
      state: this.stateValue,
      since: this.sinceValue,
      window: { calls: stats.fires, failures: stats.failures, successes: stats.successes },
      rejected: this.rejected,
      opened: this.opened,
    };
  }

  shutdown(): void {
    clearInterval(this.rotator);
    this.cb.shutdown();
  }
}

/** The breakers of one client. Emits `state` (StateChange) on every transition. */
export class Breakers extends EventEmitter {
  private readonly breakers = new Map<string, Breaker>();
  private readonly log = createLogger("dspex.breakers");
  private gauge: Stoppable | undefined;

  constructor(readonly settings: Record<BreakerKind, BreakerSettings>) {
    super();
    this.gauge = registerBreakerStateGauge(() =>
      [...this.breakers.values()].map((b) => ({ name: b.name, state: b.state, attributes: { "dspex.breaker.kind": b.kind } })),
    );
  }

  private get(kind: BreakerKind, key: string): Breaker {
    const name = `${kind}:${key}`;
    let breaker = this.breakers.get(name);
    if (!breaker) {
      breaker = new Breaker(kind, key, this.settings[kind], (change) => {
        this.log[change.to === "open" ? "warn" : "info"](`circuit breaker ${change.name}: ${change.from} -> ${change.to}`, { ...change });
        this.emit("state", change);
      });
      this.breakers.set(name, breaker);
    }
    return breaker;
  }

  pool(pool: Pool): Breaker {
    return this.get("pool", pool);
  }

  lm(lm: LMConfig | undefined): Breaker {
    return this.get("lm", lmKey(lm));
  }

  find(name: string): Breaker | undefined {
    return this.breakers.get(name);
  }

  states(): BreakerSnapshot[] {
    return [...this.breakers.values()].map((b) => b.snapshot()).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Resolves when breaker `name` (e.g. `lm:openai/gpt-4o-mini`, `pool:general`) reaches `state`. */
  waitFor(name: string, state: BreakerState, timeoutMs = 30_000): Promise<StateChange | undefined> {
    if (this.breakers.get(name)?.state === state) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off("state", onState);
        reject(new Error(`breaker ${name} did not become ${state} within ${timeoutMs} ms (now ${this.breakers.get(name)?.state ?? "absent"})`));
      }, timeoutMs);
      const onState = (change: StateChange) => {
        if (change.name !== name || change.to !== state) return;
        clearTimeout(timer);
        this.off("state", onState);
        resolve(change);
      };
      this.on("state", onState);
    });
  }

  shutdown(): void {
    this.gauge?.stop();
    for (const b of this.breakers.values()) b.shutdown();
    this.breakers.clear();
  }
}

export interface BreakerCounts {
  failedFast: number;
  fallbacks: number;
}

/**
 * One kind of breaker around the rest of the chain. The pool's wraps worker discovery (no live worker is
 * evidence against the pool); the LM's comes after discovery, so a call that never reached a worker is not
 * recorded for the LM (the native lane has no pool: only the LM's) — opossum counts every outcome it does not call a failure as a success, and a
 * NoWorkersError must not close a half-open LM breaker.
 */
export function breakerInterceptor(breakers: Breakers, counts: BreakerCounts, fallbackOnOpen: boolean, kind: "pool" | "lm"): Interceptor {
  return async (input: CallInput, next) => {
    const breaker = kind === "pool" ? breakers.pool(input.pool) : breakers.lm(input.lm);
    if (breaker.refuses()) {
      const open = new CircuitOpenError(`circuit breaker ${breaker.name} is ${breaker.state.replace("_", "-")}: the call was not sent`, {
        details: { breaker: breaker.name, state: breaker.state, pool: input.pool, since: breaker.snapshot().since },
      });
      breaker.rejected += 1;
      if (input.options.fallback && fallbackOnOpen) {
        counts.fallbacks += 1;
        return runFallback(input, open);
      }
      counts.failedFast += 1;
      throw open;
    }
    return breaker.fire(() => next(input));
  };
}

async function runFallback(input: CallInput, error: CircuitOpenError): Promise<ReplyOk> {
  const started = performance.now();
  const outputs = await input.options.fallback!({ op: input.op, pool: input.pool, lm: input.lm, signature: input.signature, inputs: input.inputs, error });
  return {
    v: 1,
    id: input.requestId,
    ok: true,
    outputs,
    lm: "fallback",
    usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    timings: { queue_ms: 0, exec_ms: performance.now() - started },
    worker: "fallback",
  };
}
