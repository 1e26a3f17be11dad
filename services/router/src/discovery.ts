/**
 * Knows which workers are alive in each pool, from the NATS service API: workers register as the micro
 * service `dspex-worker` with their pool in the metadata and answer `$SRV.PING.dspex-worker`.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { isPool, type Pool } from "@dspex/shared";

export const WORKER_SERVICE = "dspex-worker";

export interface WorkerInfo {
  id: string;
  worker: string;
  pool: Pool;
  pid?: number;
  lastSeen: number;
}

interface PingResponse {
  id: string;
  name: string;
  metadata?: Record<string, string>;
}

export class WorkerDiscovery {
  private readonly workers = new Map<string, WorkerInfo>();
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private lastRefresh = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly options: { intervalMs: number; staleMs: number; pingWaitMs: number } = {
      intervalMs: 1_000,
      staleMs: 3_500,
      pingWaitMs: 300,
    },
  ) {}

  start(): Promise<void> {
    this.timer = setInterval(() => void this.refresh(), this.options.intervalMs);
    this.timer.unref();
    return this.refresh();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Pings the service; resolves when the ping window closed. Concurrent callers share one ping. */
  refresh(): Promise<void> {
    this.inFlight ??= this.ping().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async ping(): Promise<void> {
    if (this.nc.isClosed()) return;
    try {
      const replies = await this.nc.requestMany(`$SRV.PING.${WORKER_SERVICE}`, undefined, {
        strategy: "timer",
        maxWait: this.options.pingWaitMs,
      });
      const now = Date.now();
      for await (const msg of replies) {
        const info = msg.json<PingResponse>();
        const pool = info.metadata?.pool;
        if (!isPool(pool)) continue;
        this.workers.set(info.id, {
          id: info.id,
          worker: info.metadata?.worker ?? info.id,
          pool,
          pid: info.metadata?.pid ? Number(info.metadata.pid) : undefined,
          lastSeen: now,
        });
      }
      this.lastRefresh = now;
    } catch {
      // No responders or a closing connection: the stale check below treats workers as gone in time.
    }
  }

  /** Workers of a pool seen recently. */
  live(pool: Pool): WorkerInfo[] {
    const cutoff = Date.now() - this.options.staleMs;
    return [...this.workers.values()].filter((w) => w.pool === pool && w.lastSeen >= cutoff);
  }

  /** A reply from a worker proves it is alive, without waiting for the next ping. */
  sawWorker(worker: string, pool: Pool): void {
    for (const w of this.workers.values()) {
      if (w.worker === worker && w.pool === pool) w.lastSeen = Date.now();
    }
  }

  /** Live workers of a pool, re-pinging once first if none are known (so a just-started worker counts). */
  async ensureLive(pool: Pool): Promise<WorkerInfo[]> {
    let live = this.live(pool);
    if (live.length === 0 && Date.now() - this.lastRefresh > 100) {
      await this.refresh();
      live = this.live(pool);
    }
    return live;
  }
}
