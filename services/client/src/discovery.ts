/**
 * Which workers are alive in each pool, asked only when needed: the NATS service API (`$SRV.PING` of the
 * `dspex-worker` service, pool in its metadata). There is no background loop. A call goes ahead when a worker
 * of its pool answered within `presumeMs` (any reply proves a worker alive, so a busy pool never pings);
 * otherwise it pings, and the first answer from the pool is enough. A pool that never answers costs one ping
 * window (300 ms) before NoWorkersError. A ping that finds nobody while the connection is stalled would be a
 * false "empty": presuming recently seen workers alive keeps such a moment from failing calls that the
 * stream would hold until a worker takes them anyway.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { NoWorkersError, SERVICES, isPool, type Pool } from "@dspex/protocol";
import type { Interceptor } from "./call.js";

export interface WorkerInfo {
  id: string;
  worker: string;
  pool: Pool;
  pid?: number;
  /** Service metadata (e.g. lm_url, lm_model of a worker hosting the local model). */
  metadata: Record<string, string>;
  lastSeen: number;
}

interface PingResponse {
  id: string;
  metadata?: Record<string, string>;
}

export interface DiscoveryOptions {
  /** How long what was learnt about a worker counts as current (default 3 s). */
  freshMs?: number;
  /** How long a pool whose worker was seen counts as not empty without asking again (default 30 s). */
  presumeMs?: number;
  /** How long a full ping waits for answers (default 300 ms). */
  pingWaitMs?: number;
}

export class WorkerDiscovery {
  private readonly workers = new Map<string, WorkerInfo>();
  private readonly freshMs: number;
  private readonly presumeMs: number;
  private readonly pingWaitMs: number;
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly nc: NatsConnection,
    options: DiscoveryOptions = {},
  ) {
    this.freshMs = options.freshMs ?? 3_000;
    this.presumeMs = options.presumeMs ?? 30_000;
    this.pingWaitMs = options.pingWaitMs ?? 300;
  }

  /** Pings every worker and waits the full window; concurrent callers share one ping. */
  refresh(): Promise<void> {
    this.inFlight ??= this.ping(this.pingWaitMs).finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async ping(maxWait: number, until?: (info: WorkerInfo) => boolean): Promise<void> {
    if (this.nc.isClosed()) return;
    try {
      const replies = await this.nc.requestMany(`$SRV.PING.${SERVICES.worker}`, undefined, { strategy: "timer", maxWait });
      for await (const msg of replies) {
        const info = msg.json<PingResponse>();
        const pool = info.metadata?.pool;
        if (!isPool(pool)) continue;
        const w: WorkerInfo = {
          id: info.id,
          worker: info.metadata?.worker ?? info.id,
          pool,
          ...(info.metadata?.pid ? { pid: Number(info.metadata.pid) } : {}),
          metadata: info.metadata ?? {},
          lastSeen: Date.now(),
        };
        this.workers.set(w.worker, w);
        if (until?.(w)) break;
      }
    } catch {
      // no responders, or a closing connection: nobody is there
    }
  }

  /** Workers of a pool seen within the freshness window. */
  live(pool: Pool): WorkerInfo[] {
    const cutoff = Date.now() - this.freshMs;
    return [...this.workers.values()].filter((w) => w.pool === pool && w.lastSeen >= cutoff);
  }

  /** All known workers (after `refresh()`: all that answered). */
  all(): WorkerInfo[] {
    return [...this.workers.values()];
  }

  /** A reply from a worker proves it alive, without a ping. */
  sawWorker(worker: string, pool: Pool): void {
    const known = this.workers.get(worker);
    if (known) known.lastSeen = Date.now();
    else this.workers.set(worker, { id: worker, worker, pool, metadata: {}, lastSeen: Date.now() });
  }

  /** Forgets what was seen of a pool's workers (a direct request found none): the next call asks again. */
  forget(pool: Pool): void {
    for (const [key, w] of this.workers) if (w.pool === pool) this.workers.delete(key);
  }

  /** Whether the pool has a worker: one seen within `presumeMs`, else one that answers a ping now. */
  async hasWorkers(pool: Pool): Promise<boolean> {
    const cutoff = Date.now() - this.presumeMs;
    for (const w of this.workers.values()) if (w.pool === pool && w.lastSeen >= cutoff) return true;
    return (await this.ensureLive(pool)).length > 0;
  }

  /** Live workers of a pool; pings (until the first worker of the pool answers) when nothing is current. */
  async ensureLive(pool: Pool): Promise<WorkerInfo[]> {
    const live = this.live(pool);
    if (live.length > 0) return live;
    await this.ping(this.pingWaitMs, (w) => w.pool === pool);
    return this.live(pool);
  }
}

/** Fails a call at once with NoWorkersError when its pool has no live worker (nothing is published). */
export function discoveryInterceptor(discovery: WorkerDiscovery): Interceptor {
  return async (input, next) => {
    if (!(await discovery.hasWorkers(input.pool))) throw new NoWorkersError(`no live workers in pool '${input.pool}'`, { details: { pool: input.pool } });
    const reply = await next(input);
    discovery.sawWorker(reply.worker, input.pool);
    return reply;
  };
}
