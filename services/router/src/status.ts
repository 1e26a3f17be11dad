/**
 * What `dspex status` shows: per pool, the consumers' lag and in-flight work (JetStream consumer info) and
 * the live workers with their own stats (NATS service API: `$SRV.STATS`/`status` endpoints of dspex-worker).
 */
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { POOLS, REQUEST_STREAM, consumerName, type Pool } from "@dspex/shared";
import { WORKER_SERVICE } from "./discovery.js";
import type { BreakerSnapshot } from "./breakers.js";

/** Every router answers a request here with its breaker states. */
export const ROUTER_STATUS_SUBJECT = "dspex.router.status";

export interface WorkerStatus {
  worker: string;
  pool: Pool | string;
  pid?: number;
  uptime_s?: number;
  inflight?: number;
  handled?: number;
  failed?: number;
  rss_mb?: number;
  partitions?: string[];
  signature_cache?: { hits: number; misses: number };
}

export interface PoolStatus {
  pool: Pool;
  /** Requests stored and not yet delivered, over the pool's consumers. */
  lag: number;
  /** Delivered and not yet acknowledged. */
  inflight: number;
  redelivered: number;
  consumers: number;
  workers: WorkerStatus[];
}

export interface BusStatus {
  server: string;
  /** Circuit breakers of each running router (they live in the routers' processes). */
  routers: Array<{ router: string; breakers: BreakerSnapshot[] }>;
  stream: { messages: number; bytes: number; consumers: number } | undefined;
  pools: PoolStatus[];
}

export async function collectStatus(nc: NatsConnection, waitMs = 500): Promise<BusStatus> {
  const jsm = await jetstreamManager(nc);
  const pools: PoolStatus[] = POOLS.map((pool) => ({ pool, lag: 0, inflight: 0, redelivered: 0, consumers: 0, workers: [] }));
  let stream: BusStatus["stream"];
  try {
    const info = await jsm.streams.info(REQUEST_STREAM);
    stream = { messages: info.state.messages, bytes: info.state.bytes, consumers: info.state.consumer_count };
    for await (const c of jsm.consumers.list(REQUEST_STREAM)) {
      const pool = pools.find((p) => c.name === consumerName(p.pool) || c.name.startsWith(`${p.pool}-p`));
      if (!pool) continue;
      pool.consumers += 1;
      pool.lag += c.num_pending;
      pool.inflight += c.num_ack_pending;
      pool.redelivered += c.num_redelivered;
    }
  } catch {
    stream = undefined; // not provisioned yet
  }
  // Each worker answers its own status endpoint; ping the service first to learn who is there.
  const replies = await nc.requestMany(`$SRV.PING.${WORKER_SERVICE}`, undefined, { strategy: "timer", maxWait: waitMs });
  const ids: string[] = [];
  for await (const msg of replies) {
    const info = msg.json<{ metadata?: Record<string, string> }>();
    if (info.metadata?.worker) ids.push(info.metadata.worker);
  }
  const stats = await Promise.all(
    ids.map(async (id) => {
      try {
        const reply = await nc.request(`dspex.worker.${id}.status`, undefined, { timeout: 2_000 });
        return reply.json<WorkerStatus>();
      } catch {
        return { worker: id, pool: "unknown" } as WorkerStatus;
      }
    }),
  );
  for (const s of stats.sort((a, b) => a.worker.localeCompare(b.worker))) {
    pools.find((p) => p.pool === s.pool)?.workers.push(s);
  }
  const routers: BusStatus["routers"] = [];
  for await (const msg of await nc.requestMany(ROUTER_STATUS_SUBJECT, undefined, { strategy: "timer", maxWait: waitMs })) {
    routers.push(msg.json<BusStatus["routers"][number]>());
  }
  return { server: nc.getServer(), routers, stream, pools };
}

export function formatStatus(status: BusStatus): string {
  const lines = [`NATS ${status.server} — stream ${REQUEST_STREAM}: ${status.stream ? `${status.stream.messages} stored, ${status.stream.consumers} consumers` : "not provisioned"}`];
  for (const p of status.pools) {
    lines.push(`\npool ${p.pool}: ${p.workers.length} worker(s), lag ${p.lag}, in flight ${p.inflight}, redelivered ${p.redelivered}`);
    for (const w of p.workers) {
      lines.push(
        `  ${w.worker.padEnd(28)} pid ${String(w.pid ?? "?").padEnd(7)} up ${String(w.uptime_s ?? "?").padStart(7)} s  ` +
          `in flight ${w.inflight ?? "?"}  handled ${w.handled ?? "?"}  failed ${w.failed ?? "?"}  rss ${w.rss_mb ?? "?"} MiB  ` +
          `partitions ${(w.partitions ?? []).length}`,
      );
    }
  }
  const breakers = status.routers.flatMap((r) => r.breakers);
  lines.push(`\nbreakers (${status.routers.length} router(s)): ${breakers.length === 0 ? "none yet" : ""}`);
  for (const b of breakers) {
    lines.push(`  ${b.name.padEnd(32)} ${b.state.padEnd(9)} since ${new Date(b.since).toISOString()}  opened ${b.opened}, rejected ${b.rejected}`);
  }
  return lines.join("\n");
}
