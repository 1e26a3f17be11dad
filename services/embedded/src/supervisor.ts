/**
 * Keeps the embedded fleet's worker processes running: restarts a crashed worker with exponential backoff,
 * and recycles a worker that asks for it (after N requests or above its RSS limit) by starting the
 * replacement first and then draining the old one, so no request is lost or waits for a cold start.
 */
import { EventEmitter } from "node:events";
import type { Pool } from "@dspex/protocol";
import { workerRole, type IssuedAuth, type PoolSettings } from "@dspex/bus";
import { spawnWorker, type WorkerEvent, type WorkerProcess } from "./workers.js";

export interface SupervisorOptions {
  natsUrl: string;
  /** Credentials files by role: each worker gets its pool's worker role's. */
  creds?: Partial<IssuedAuth["creds"]>;
  settings: Record<Pool, PoolSettings>;
  workerEnv?: Record<string, string | undefined>;
  echoLogs?: boolean;
  /** Restart backoff: first delay, cap, and how long a worker must live for its slot's count to reset. */
  backoff?: { initialMs: number; maxMs: number; resetAfterMs: number };
}

export interface SupervisorEvents {
  ready: [WorkerProcess];
  exit: [WorkerProcess, number | null];
  restart: [{ old: WorkerProcess; delayMs: number; crashes: number }];
  recycled: [{ old: WorkerProcess; replacement: WorkerProcess; reason: string }];
  /** A restart or recycle that failed (e.g. the replacement could not start). */
  failure: [Error];
}

interface Slot {
  pool: Pool;
  crashes: number;
  /** Environment of this slot's worker only (kept across its restarts), e.g. hosting the local model. */
  env?: Record<string, string>;
}

export class Supervisor extends EventEmitter<SupervisorEvents> {
  readonly workers: WorkerProcess[] = [];
  private stopping = false;
  private seq = 0;
  private readonly retiring = new WeakSet<WorkerProcess>();
  private readonly slots = new WeakMap<WorkerProcess, Slot>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly backoff: { initialMs: number; maxMs: number; resetAfterMs: number };

  constructor(private readonly options: SupervisorOptions) {
    super();
    this.backoff = options.backoff ?? { initialMs: 250, maxMs: 10_000, resetAfterMs: 30_000 };
  }

  /** Spawns a worker (with `env` of its own, kept across restarts) and resolves when it is ready. */
  add(pool: Pool, slot: Slot = { pool, crashes: 0 }, env?: Record<string, string>): Promise<WorkerProcess> {
    if (env) slot.env = { ...slot.env, ...env };
    const s = this.options.settings[pool];
    const worker = spawnWorker({
      natsUrl: this.options.natsUrl,
      creds: this.options.creds?.[workerRole(pool)],
      pool,
      id: `${pool}-${++this.seq}-${process.pid}`,
      concurrency: s.concurrency,
      env: {
        DSPEX_EXIT_WITH_PARENT: "1",
        DSPEX_SUPERVISED: "1",
        DSPEX_WORKER_MAX_REQUESTS: String(s.maxRequests),
        DSPEX_WORKER_MAX_RSS_MB: String(s.maxRssMb),
        ...this.options.workerEnv,
        ...slot.env,
      },
      echoLogs: this.options.echoLogs,
    });
    const started = Date.now();
    this.slots.set(worker, slot);
    this.workers.push(worker);
    worker.onEvent((e) => this.onEvent(worker, e));
    void worker.exited.then((code) => this.onExit(worker, code, started));
    return worker.ready.then(() => {
      this.emit("ready", worker);
      return worker;
    });
  }

  private onEvent(worker: WorkerProcess, event: WorkerEvent): void {
    if (event.event === "recycle" && !this.retiring.has(worker) && !this.stopping) {
      this.recycle(worker, String(event.reason ?? "requested")).catch((err: unknown) => {
        if (!this.stopping) this.emit("failure", err as Error);
      });
    }
  }

  /**
   * Starts the replacement, then drains and stops the old worker. `env` changes the replacement's environment
   * (a rolling upgrade: a new package version on its PYTHONPATH, new options); its requests in flight finish on
   * the old worker, new ones go to the replacement.
   */
  async recycle(worker: WorkerProcess, reason: string, env?: Record<string, string>): Promise<WorkerProcess> {
    this.retiring.add(worker);
    const replacement = await this.add(worker.pool, { pool: worker.pool, crashes: 0, ...(env ? { env } : {}) });
    await worker.stop();
    this.emit("recycled", { old: worker, replacement, reason });
    return replacement;
  }

  private onExit(worker: WorkerProcess, code: number | null, started: number): void {
    const i = this.workers.indexOf(worker);
    if (i >= 0) this.workers.splice(i, 1);
    this.emit("exit", worker, code);
    if (this.stopping || this.retiring.has(worker)) return;
    const slot = this.slots.get(worker) ?? { pool: worker.pool, crashes: 0 };
    slot.crashes = Date.now() - started > this.backoff.resetAfterMs ? 1 : slot.crashes + 1;
    const delayMs = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** (slot.crashes - 1));
    this.emit("restart", { old: worker, delayMs, crashes: slot.crashes });
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.stopping) return;
      this.add(worker.pool, slot).catch((err: unknown) => {
        if (!this.stopping) this.emit("failure", err as Error);
      });
    }, delayMs);
    this.timers.add(timer);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    await Promise.allSettled(this.workers.map((w) => w.stop()));
  }
}
