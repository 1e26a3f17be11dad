/**
 * Sustained load on a local fleet, for profiling the hot path (docs/performance.md, "Profiling"):
 *
 *   node --conditions=development --import tsx bench/load.ts --workers=1 --concurrency=16 --seconds=15
 *
 * Starts nats-server and the workers, prints their pids as JSON on stderr once warm (attach
 * `py-spy record -p <worker pid> --gil` now; run this file under `node --cpu-prof` for the client), then
 * drives Client.predict on the `dspex/echo` LM and prints throughput, latency and the CPU each component
 * used per request. `--partitions=0` provisions the pool without session partitions.
 */
import { Client } from "@dspex/client";
import { startFleet, startNatsServer } from "@dspex/embedded";
import { WORKER_ENV, cpuSeconds } from "./lib/proc.js";
import { closedLoop } from "./lib/stats.js";

const opt = (name: string, fallback: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const workers = opt("workers", 1);
const concurrency = opt("concurrency", 16);
const seconds = opt("seconds", 10);
const partitions = process.argv.find((a) => a.startsWith("--partitions="));
const SIGNATURE = "review: str -> sentiment: Literal['positive', 'negative', 'neutral'], confidence: float";

const pools = partitions ? { general: { partitions: Number(partitions.split("=")[1]) } } : undefined;
const nats = await startNatsServer();
const fleet = await startFleet({ natsUrl: nats.url, creds: nats.creds, workers: { general: workers }, workerEnv: WORKER_ENV, ...(pools ? { bus: { pools } } : {}) });
const client = await Client.connect({ servers: nats.url, creds: nats.creds.client, lm: { model: "dspex/echo" }, ...(pools ? { bus: { pools } } : {}) });
try {
  const call = () => client.predict(SIGNATURE, { review: "Battery lasts two days." });
  await closedLoop(call, { concurrency, durationMs: 1_500, warmupMs: 0, maxRequests: 1e9 });
  const pids = { nats: nats.process.pid!, workers: fleet.workers.map((w) => w.process.pid!), client: process.pid };
  process.stderr.write(`${JSON.stringify(pids)}\n`);
  const all = [pids.nats, ...pids.workers];
  const before = all.map(cpuSeconds);
  const node0 = process.cpuUsage();
  const r = await closedLoop(call, { concurrency, durationMs: seconds * 1_000, warmupMs: 0, maxRequests: 1e9 });
  const after = all.map(cpuSeconds);
  const node = process.cpuUsage(node0);
  const perReq = (s: number) => Number(((s * 1000) / r.requests).toFixed(3));
  const workerCpu = after.slice(1).reduce((a, b) => a + b, 0) - before.slice(1).reduce((a, b) => a + b, 0);
  process.stdout.write(
    `${JSON.stringify({
      ...r,
      cpu_ms_per_req: {
        "nats-server": perReq(after[0]! - before[0]!),
        "workers (python)": perReq(workerCpu),
        "client + load generator (node)": perReq((node.user + node.system) / 1e6),
      },
    })}\n`,
  );
} finally {
  await client.close();
  await fleet.stop();
  await nats.stop();
}
process.exit(0);
