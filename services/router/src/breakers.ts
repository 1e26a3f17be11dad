/**
 * Circuit breakers (opossum): one per pool and one per LM (provider/model + endpoint), per router.
 *
 * A breaker opens when, over a rolling window, at least `volumeThreshold` calls were recorded and more than
 * `errorThresholdPercentage` of them failed in a way that says the pool or the provider is unhealthy (see
 * `poolOutcome` / `lmOutcome`: timeouts, NoWorkers, transport errors, retryable LM errors — never
 * validation errors or unparseable LM output). While open, calls fail fast with CircuitOpenError (or run
 * the call's `fallback`). After `resetTimeoutMs` it is half-open: exactly one call goes through as a probe;
 * its success closes the breaker (with a fresh window), its failure opens it again.
 *
 * opossum is used as the state machine and rolling window; outcomes are fed to it *after* a call completes,
 * because a call passes two breakers (pool and LM) and an outcome can be evidence about one and say nothing
 * about the other ("ignore": nothing is recorded, and a half-open probe slot is handed on).
 */
import { EventEmitter } from "node:events";
import CircuitBreaker from "opossum";
import {
  CircuitOpenError,
  LMError,
  NoWorkersError,
  PayloadTooLargeError,
  SessionAffinityError,
  SignatureError,
  TimeoutError,
  TransportError,
  ValidationError,
  WorkerError,
  createLogger,
  registerBreakerStateGauge,
  type BreakerState,
  type LMConfigWire,
  type Pool,
  type Stoppable,
} from "@dspex/shared";
import { envInt } from "./retry.js";

export type { BreakerState };
export type BreakerKind = "pool" | "lm";
/** What one finished call says about the thing a breaker protects. */
export type Outcome = "success" | "failure" | "ignore";

export interface BreakerSettings {
  /** false: no breaker of this kind (calls always go through). */
  enabled: boolean;
  /** Open when more than this percentage of the recorded calls in the window failed. */
  errorThresholdPercentage: number;
  /** ...and at least this many calls were recorded in the window. */
  volumeThreshold: number;
  /** Length of the rolling window. */
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
  /** Settings of both kinds (over the defaults and DSPEX_BREAKER_*). */
  all?: Partial<BreakerSettings>;
  /** Pool breakers (over `all` and DSPEX_BREAKER_POOL_*). */
  pool?: Partial<BreakerSettings>;
  /** LM breakers (over `all` and DSPEX_BREAKER_LM_*). */
  lm?: Partial<BreakerSettings>;
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
export function breakerSettings(
  options: BreakerOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): Record<BreakerKind, BreakerSettings> {
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
  };
}

/** Errors raised by the router itself before anything was sent: no evidence about a pool or an LM. */
function raisedBeforeSending(err: unknown): boolean {
  return (
    err instanceof CircuitOpenError ||
    err instanceof ValidationError ||
    err instanceof SignatureError ||
    err instanceof PayloadTooLargeError ||
    err instanceof SessionAffinityError
  );
}

/** What a finished call (`err` undefined: success) says about its pool. */
export function poolOutcome(err: unknown): Outcome {
  if (err === undefined) return "success";
  if (raisedBeforeSending(err)) return "ignore";
  if (err instanceof NoWorkersError || err instanceof TransportError || err instanceof TimeoutError) return "failure";
  if (err instanceof WorkerError) return "success"; // a worker of the pool answered
  return "ignore"; // aborted by the caller, or something unrelated
}

/** What a finished call says about its LM provider. */
export function lmOutcome(err: unknown): Outcome {
  if (err === undefined) return "success";
  if (raisedBeforeSending(err)) return "ignore";
  // No reply in time: the LM hanging is the usual cause (it also counts against the pool: a timeout
  // cannot tell the two apart).
  if (err instanceof TimeoutError) return "failure";
  if (err instanceof LMError) {
    if (err.type === "LMConfigError") return "ignore"; // our configuration, not the provider's health
    if (err.type === "LMError" && err.retryable) return "failure"; // 5xx, 429, connection errors
    return "success"; // the provider answered: LMOutputError, or a non-retryable 4xx
  }
  return "ignore"; // NoWorkers, transport, validation replies, user-code errors: the LM was not (known to be) reached
}

/** Key of an LM breaker: model and endpoint, or the workers' default LM. */
export function lmKey(lm: LMConfigWire | undefined): string {
  if (!lm) return "default";
  return lm.api_base ? `${lm.model}@${lm.api_base}` : lm.model;
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
  /** Calls that failed fast (or fell back) because the breaker was open, since the router started. */
  rejected: number;
  /** Times the breaker opened since the router started. */
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

/** Admission of one call through one breaker; hand it back to `record`. */
export interface Ticket {
  breaker: Breaker;
  probe: boolean;
}

export class Breaker {
  readonly name: string;
  private readonly cb: CircuitBreaker<[Outcome], void>;
  private readonly rotate = new EventEmitter();
  private readonly rotator: NodeJS.Timeout;
  private probing = false;
  private stateValue: BreakerState = "closed";
  private sinceValue = Date.now();
  rejected = 0;
  opened = 0;

  constructor(
    readonly kind: BreakerKind,
    readonly key: string,
    readonly settings: BreakerSettings,
    private readonly onChange: (change: StateChange) => void,
  ) {
    this.name = `${kind}:${key}`;
    this.cb = new CircuitBreaker<[Outcome], void>(
      async (outcome: Outcome) => {
        if (outcome === "failure") throw new Error("failure recorded");
      },
      {
        name: this.name,
        timeout: false, // calls carry their own deadline; a timeout arrives here as a recorded failure
        errorThresholdPercentage: settings.errorThresholdPercentage,
        volumeThreshold: settings.volumeThreshold,
        resetTimeout: settings.resetTimeoutMs,
        rollingCountTimeout: settings.rollingWindowMs,
        rollingCountBuckets: settings.rollingBuckets,
        rollingPercentilesEnabled: false,
        enableSnapshots: false,
        // The window slides on our own timer, so a breaker that closes can start from an empty window.
        rotateBucketController: this.rotate,
      },
    );
    this.rotator = setInterval(
      () => this.rotate.emit("rotate"),
      Math.floor(settings.rollingWindowMs / settings.rollingBuckets),
    );
    this.rotator.unref();
    this.cb.on("open", () => this.transition("open"));
    this.cb.on("halfOpen", () => this.transition("half_open"));
    this.cb.on("close", () => {
      // Failures from before the outage would re-open it at the first new error: start afresh.
      for (let i = 0; i < settings.rollingBuckets; i++) this.rotate.emit("rotate");
      this.transition("closed");
    });
  }

  get state(): BreakerState {
    return this.stateValue;
  }

  private transition(to: BreakerState): void {
    const from = this.stateValue;
    if (from === to) return;
    this.stateValue = to;
    this.sinceValue = Date.now();
    this.probing = false;
    if (to === "open") this.opened += 1;
    this.onChange({ name: this.name, kind: this.kind, key: this.key, from, to, at: this.sinceValue });
  }

  /** Lets a call through (closed, or the one probe of a half-open breaker), or undefined: fail fast. */
  admit(): Ticket | undefined {
    if (!this.settings.enabled || this.stateValue === "closed") return { breaker: this, probe: false };
    if (this.stateValue === "half_open" && !this.probing) {
      this.probing = true;
      return { breaker: this, probe: true };
    }
    this.rejected += 1;
    return undefined;
  }

  /** Gives back an admission that was not used (another breaker refused the call). */
  release(ticket: Ticket): void {
    if (ticket.probe) this.probing = false;
  }

  /** Records what a call admitted by `ticket` found out. */
  record(ticket: Ticket, outcome: Outcome): void {
    if (!this.settings.enabled) return;
    if (outcome === "ignore") {
      this.release(ticket);
      return;
    }
    // A call that started before the breaker opened may end while it is open: it no longer counts.
    if (this.stateValue === "open") return;
    if (this.stateValue === "half_open" && !ticket.probe) {
      // A call admitted before the breaker opened, ending while it is half-open, is as good a probe.
      if (this.probing) return;
      this.probing = true;
    }
    this.cb.fire(outcome).catch(() => {});
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

const registries = new Set<BreakerRegistry>();

/** The breakers of one router. Emits `state` (StateChange) on every transition. */
export class BreakerRegistry extends EventEmitter {
  private readonly breakers = new Map<string, Breaker>();
  private readonly log = createLogger("dspex.breakers");
  private gauge: Stoppable | undefined;

  constructor(readonly settings: Record<BreakerKind, BreakerSettings>) {
    super();
    registries.add(this);
    try {
      this.gauge = registerBreakerStateGauge(() =>
        [...this.breakers.values()].map((b) => ({ name: b.name, state: b.state, attributes: { "dspex.breaker.kind": b.kind } })),
      );
    } catch {
      this.gauge = undefined; // metrics are optional
    }
  }

  private get(kind: BreakerKind, key: string): Breaker {
    const name = `${kind}:${key}`;
    let breaker = this.breakers.get(name);
    if (!breaker) {
      breaker = new Breaker(kind, key, this.settings[kind], (change) => {
        const level = change.to === "open" ? "warn" : "info";
        this.log[level](`circuit breaker ${change.name}: ${change.from} -> ${change.to}`, { ...change });
        this.emit("state", change);
      });
      this.breakers.set(name, breaker);
    }
    return breaker;
  }

  pool(pool: Pool): Breaker {
    return this.get("pool", pool);
  }

  lm(lm: LMConfigWire | undefined): Breaker {
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
    registries.delete(this);
    this.gauge?.stop();
    for (const b of this.breakers.values()) b.shutdown();
    this.breakers.clear();
  }
}

/** Snapshot of every breaker of every router in this process (for `dspex status`). */
export function breakerStates(): BreakerSnapshot[] {
  return [...registries].flatMap((r) => r.states());
}

/**
 * Admits a call through several breakers at once, or names the first that refuses it (its admissions
 * through the others are given back, so a half-open probe is not used up by a call that never ran).
 */
export function admitAll(breakers: Breaker[]): { tickets: Ticket[] } | { refused: Breaker } {
  const tickets: Ticket[] = [];
  for (const b of breakers) {
    const t = b.admit();
    if (!t) {
      for (const given of tickets) given.breaker.release(given);
      return { refused: b };
    }
    tickets.push(t);
  }
  return { tickets };
}
