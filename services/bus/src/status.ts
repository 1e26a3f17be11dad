/**
 * What `dspex status` shows: the bus (each stream's and bucket's replicas, leader, fill and limits; what is
 * missing; drift from the deployment's description), per pool the consumers' lag and in-flight work, the
 * live workers with their own stats (NATS service API), and — when routers run — their circuit breakers and
 * engine split (calls run by the native engine, by Python, and fallbacks to Python with their reasons).
 * Nothing here needs a router: routers only add their breakers and split when they answer.
 */
import type { ModuleNode } from "./graph.js";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { POOLS, SERVICES, STREAMS, poolConsumer, routerStatusSubject, workerStatusSubject, type FieldWire, type Pool } from "@dspex/protocol";
import { formatDrift, inspectBus, type BusInspection } from "./inspect.js";
import type { BusSpec } from "./spec.js";

/** A breaker as routers report it (the client's breaker snapshot). */
export interface BreakerSnapshot {
  name: string;
  state: string;
  since: number;
  opened: number;
  rejected: number;
  [key: string]: unknown;
}

/** A router's execution-router split (the client's engine snapshot): calls by route, fallbacks by reason. */
export interface EngineSplit {
  default: string;
  counts: { native: number; python: number; fallback: number };
  reasons: Record<string, number>;
  [key: string]: unknown;
}

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
  /** DSPy's LM cache on this worker (docs/dspy-surface.md, "LM cache"): `mode` fleet | memory | off. */
  lm_cache?: LmCacheStatus;
  /** Users' packaged programs the worker serves, and those it could not load (docs/programs.md). */
  programs?: ProgramAdvertisement;
}

export interface LmCacheStatus {
  mode: "fleet" | "memory" | "off";
  /** Hits of the worker's in-process memory tier. */
  memory_hits?: number;
  /** The shared tier: this worker's replica of the bucket dspex_lm_cache. */
  fleet?: { hits: number; misses: number; entries: number; bytes: number; max_bytes: number; shared: number; share_errors: number; evicted: number };
}

/** A program as a worker advertises it: fields as wire type expressions (schemas/signature.schema.json). */
export interface AdvertisedProgram {
  name: string;
  path: string;
  version: string | null;
  pool: Pool | string;
  inputs: FieldWire[];
  outputs: FieldWire[];
  predictors: string[];
  /** Its module tree (workers from this version on advertise it). */
  graph?: ModuleNode;
}

export interface ProgramAdvertisement {
  programs: AdvertisedProgram[];
  /** Declared programs that failed to import or to describe, with the reason. */
  failures: Array<{ name: string; path: string; error: string }>;
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
  /** Circuit breakers of each running router (they live in the routers' processes); empty without routers. */
  routers: Array<{ router: string; breakers: BreakerSnapshot[]; engines?: EngineSplit }>;
  stream: { messages: number; bytes: number; consumers: number } | undefined;
  /** Streams and buckets against the deployment's description. */
  bus: BusInspection;
  pools: PoolStatus[];
}

/**
 * Every live worker's status: the worker service is pinged (answers within `waitMs`), then each worker's own
 * status endpoint is asked. A worker that does not answer its status is listed with pool "unknown".
 */
export async function workerStatuses(nc: NatsConnection, waitMs = 500): Promise<WorkerStatus[]> {
  // Each worker answers its own status endpoint; ping the service first to learn who is there.
  const ids: string[] = [];
  try {
    const replies = await nc.requestMany(`$SRV.PING.${SERVICES.worker}`, undefined, { strategy: "timer", maxWait: waitMs });
    for await (const msg of replies) {
      const info = msg.json<{ metadata?: Record<string, string> }>();
      if (info.metadata?.worker) ids.push(info.metadata.worker);
    }
  } catch {
    // no responders: no worker runs
  }
  return Promise.all(
    ids.map(async (id) => {
      try {
        const reply = await nc.request(workerStatusSubject(id), undefined, { timeout: 2_000 });
        return reply.json<WorkerStatus>();
      } catch {
        return { worker: id, pool: "unknown" } as WorkerStatus;
      }
    }),
  );
}

/**
 * The programs the given workers serve, one advertisement per name: during a rollout two versions may be
 * served, and the one most workers advertise is taken (ties: the first seen).
 */
export function servedPrograms(statuses: readonly WorkerStatus[]): Map<string, AdvertisedProgram> {
  const byName = new Map<string, Map<string, { advert: AdvertisedProgram; workers: number }>>();
  for (const p of statuses.flatMap((s) => s.programs?.programs ?? [])) {
    const versions = byName.get(p.name) ?? new Map<string, { advert: AdvertisedProgram; workers: number }>();
    const seen = versions.get(p.version ?? "");
    if (seen) seen.workers += 1;
    else versions.set(p.version ?? "", { advert: p, workers: 1 });
    byName.set(p.name, versions);
  }
  const served = new Map<string, AdvertisedProgram>();
  for (const [name, versions] of byName) {
    served.set(name, [...versions.values()].reduce((best, v) => (v.workers > best.workers ? v : best)).advert);
  }
  return served;
}

export async function collectStatus(nc: NatsConnection, spec: BusSpec, waitMs = 500): Promise<BusStatus> {
  const jsm = await jetstreamManager(nc);
  const pools: PoolStatus[] = POOLS.map((pool) => ({ pool, lag: 0, inflight: 0, redelivered: 0, consumers: 0, workers: [] }));
  let stream: BusStatus["stream"];
  try {
    const info = await jsm.streams.info(STREAMS.requests.name);
    stream = { messages: info.state.messages, bytes: info.state.bytes, consumers: info.state.consumer_count };
    for await (const c of jsm.consumers.list(STREAMS.requests.name)) {
      const pool = pools.find((p) => c.name === poolConsumer(p.pool) || c.name.startsWith(`${p.pool}-p`));
      if (!pool) continue;
      pool.consumers += 1;
      pool.lag += c.num_pending;
      pool.inflight += c.num_ack_pending;
      pool.redelivered += c.num_redelivered;
    }
  } catch {
    stream = undefined; // not provisioned yet
  }
  const stats = await workerStatuses(nc, waitMs);
  for (const s of stats.sort((a, b) => a.worker.localeCompare(b.worker))) {
    pools.find((p) => p.pool === s.pool)?.workers.push(s);
  }
  const routers: BusStatus["routers"] = [];
  try {
    for await (const msg of await nc.requestMany(routerStatusSubject(), undefined, { strategy: "timer", maxWait: waitMs })) {
      routers.push(msg.json<BusStatus["routers"][number]>());
    }
  } catch {
    // no router answered: routers are optional (their breakers are all they add)
  }
  return { server: nc.getServer(), routers, stream, bus: await inspectBus(nc, spec), pools };
}

export function formatStatus(status: BusStatus): string {
  const lines = [`NATS ${status.server} — stream ${STREAMS.requests.name}: ${status.stream ? `${status.stream.messages} stored, ${status.stream.consumers} consumers` : "not provisioned (run `dspex bus apply`)"}`];
  lines.push("\nbus:");
  for (const st of status.bus.streams) {
    const limit = st.maxBytes > 0 ? `${(st.bytes / st.maxBytes * 100).toFixed(1)}% of ${mib(st.maxBytes)}` : "no byte limit";
    lines.push(
      `  ${st.kind.padEnd(6)} ${st.name.padEnd(20)} replicas ${st.replicas}  leader ${st.leader ?? "-"}` +
        `${st.lagging.length ? `  lagging ${st.lagging.join(",")}` : ""}  ${st.messages} msgs, ${mib(st.bytes)} (${limit})` +
        `${st.maxAgeMs > 0 ? `, max age ${duration(st.maxAgeMs)}` : ", no age limit"}` +
        `${st.maxMsgsPerSubject > 0 ? `, ${st.maxMsgsPerSubject} per subject` : ""}`,
    );
  }
  for (const m of status.bus.missing) lines.push(`  MISSING ${m} (run \`dspex bus apply\`)`);
  for (const d of formatDrift(status.bus.drift)) lines.push(`  DRIFT ${d}`);
  for (const p of status.pools) {
    lines.push(`\npool ${p.pool}: ${p.workers.length} worker(s), lag ${p.lag}, in flight ${p.inflight}, redelivered ${p.redelivered}`);
    for (const w of p.workers) {
      lines.push(
        `  ${w.worker.padEnd(28)} pid ${String(w.pid ?? "?").padEnd(7)} up ${String(w.uptime_s ?? "?").padStart(7)} s  ` +
          `in flight ${w.inflight ?? "?"}  handled ${w.handled ?? "?"}  failed ${w.failed ?? "?"}  rss ${w.rss_mb ?? "?"} MiB  ` +
          `partitions ${(w.partitions ?? []).length}`,
      );
      for (const prog of w.programs?.programs ?? []) {
        const fields = (fs: AdvertisedProgram["inputs"]) => fs.map((f) => f.name).join(", ");
        lines.push(`    program ${prog.name} ${prog.version ?? "?"} (${prog.pool}): ${fields(prog.inputs)} -> ${fields(prog.outputs)}`);
      }
      for (const f of w.programs?.failures ?? []) lines.push(`    program ${f.name} NOT SERVED (${f.path}): ${f.error}`);
      const cache = w.lm_cache;
      if (cache?.fleet) {
        const f = cache.fleet;
        const lookups = f.hits + f.misses;
        lines.push(
          `    lm cache fleet: ${f.hits} hits of ${lookups} shared lookups (${lookups ? ((100 * f.hits) / lookups).toFixed(0) : "—"} %), ` +
            `${cache.memory_hits ?? 0} memory hits, replica ${f.entries} entries ${(f.bytes / 2 ** 20).toFixed(1)}/${(f.max_bytes / 2 ** 20).toFixed(0)} MiB, shared ${f.shared}` +
            (f.share_errors ? `, ${f.share_errors} NOT SHARED` : ""),
        );
      } else if (cache) lines.push(`    lm cache ${cache.mode}`);
    }
  }
  const breakers = status.routers.flatMap((r) => r.breakers);
  lines.push(
    status.routers.length === 0
      ? "\nrouters: none answered (breakers live in routers' processes)"
      : `\nbreakers (${status.routers.length} router(s)): ${breakers.length === 0 ? "none yet" : ""}`,
  );
  for (const b of breakers) {
    lines.push(`  ${b.name.padEnd(32)} ${b.state.padEnd(9)} since ${new Date(b.since).toISOString()}  opened ${b.opened}, rejected ${b.rejected}`);
  }
  const split = status.routers.filter((r) => r.engines);
  if (split.length > 0) lines.push(`\nengines (${split.length} router(s)): calls by where they ran`);
  for (const r of split) {
    const e = r.engines!;
    const reasons = Object.entries(e.reasons)
      .sort(([, a], [, b]) => b - a)
      .map(([code, n]) => `${code} ${n}`)
      .join(", ");
    lines.push(
      `  ${r.router.padEnd(12)} default ${e.default.padEnd(7)} native ${e.counts.native}, python ${e.counts.python}, fallback ${e.counts.fallback}` +
        (reasons ? ` (${reasons})` : ""),
    );
  }
  return lines.join("\n");
}

function mib(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

function duration(ms: number): string {
  if (ms % (24 * 3600_000) === 0) return `${ms / (24 * 3600_000)} d`;
  if (ms % 3600_000 === 0) return `${ms / 3600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}
