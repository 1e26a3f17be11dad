/**
 * Batch evaluation and worker memory at scale (issue 17, `npm run bench:batch`), every ratio against a baseline
 * measured in the same run:
 *   1. batch   N examples (default 3,000) at 100 ms LM latency, at c = 16, 128, 256 examples in flight:
 *              the fleet through an eval job of the pipeline service (results persisted per example, as
 *              `dspex eval` runs it) with the default settings — 2 general workers, their default concurrency,
 *              no env tuning — vs `dspy.Evaluate(num_threads=c)` in one process, vs the bound
 *              min(c ÷ latency, cores ÷ CPU-seconds per example), with CPU seconds per example on each side;
 *   2. memory  one worker's RSS as its in-flight LM calls rise to 256 (the LM waits long enough that they are
 *              all held at once): the slope in KiB per in-flight request;
 *   3. cold start: worker spawn → `ready`, vs `import dspy` in a fresh interpreter.
 * The LM is `dspex/echo?latency_ms=…` (workers/dspex_worker/lm/echo.py, allowed by the benchmark's test flag):
 * what is measured is DSPy + DSPex, never a provider.
 *
 * Options: --examples=N, --concurrency=16,128,256, --inflight=64,128,256, --only=batch,memory,coldstart,
 * --out=path. Writes bench/results/batch.json and prints the tables docs/performance.md quotes.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { applyBus, busSettings, busSpec, connectNats } from "@dspex/bus";
import { Client } from "@dspex/client";
import { spawnWorker, startFleet, startNatsServer, type EmbeddedNats, type Fleet } from "@dspex/embedded";
import type { LMConfig } from "@dspex/protocol";
import { machineFacts } from "./lib/machine.js";
import { RESULTS_DIR } from "./lib/paths.js";
import { CpuMeter, PYTHON, WORKER_ENV, runPython } from "./lib/proc.js";
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

const argv = process.argv.slice(2);
const opt = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const EXAMPLES = Number(opt("examples") ?? 3_000);
const CONCURRENCY = (opt("concurrency") ?? "16,128,256").split(",").map(Number);
const INFLIGHT = (opt("inflight") ?? "64,128,256").split(",").map(Number);
const ONLY = new Set((opt("only") ?? "batch,memory,coldstart").split(","));
const OUT = opt("out") ?? join(RESULTS_DIR, "batch.json");
const LM_LATENCY_MS = 100;
const CORES = cpus().length;

const log = (text: string) => process.stderr.write(`[bench:batch] ${text}\n`);
const la = () => Number(loadavg()[0]!.toFixed(2));
const r2 = (x: number) => Number(x.toFixed(2));
const r3 = (x: number) => Number(x.toFixed(3));

interface BatchRow {
  concurrency: number;
  ideal_s: number;
  fleet: { wall_s: number; per_s: number; cpu_s_per_example: number; cpu_ms_by_process: Record<string, number>; score: number | null; status: string; load_avg_1m: number };
  evaluate: { wall_s: number; per_s: number; cpu_s_per_example: number; score: number; load_avg_1m: number };
  /** min(c ÷ latency, cores ÷ CPU s per example) for each side, from its own CPU cost. */
  bound_fleet_per_s: number;
  fleet_vs_evaluate: number;
  fleet_pct_of_bound: number;
}

/** Waits (polling the worker's status endpoint) until `check` holds; a benchmark's condition, with a timeout. */
async function waitForStatus(nc: NatsConnection, workerId: string, check: (s: Record<string, number>) => boolean, timeoutMs: number): Promise<Record<string, number>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = (await nc.request(`dspex.worker.${workerId}.status`, undefined, { timeout: 5_000 })).json<Record<string, number>>();
    if (check(status)) return status;
    if (Date.now() > deadline) throw new Error(`worker ${workerId}: condition not reached in ${timeoutMs} ms (status ${JSON.stringify(status)})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function batch(nats: EmbeddedNats): Promise<BatchRow[]> {
  // the defaults: 2 general workers (dspex up's), each with the pool's default concurrency
  const fleet = await startFleet({ natsUrl: nats.url, creds: nats.creds, workers: { general: 2 }, workerEnv: WORKER_ENV });
  // the pipeline service's own identity (it writes the jobs' results), as `dspex eval` runs it
  const client = await Client.connect({ servers: nats.url, creds: nats.creds.pipeline, name: "bench-pipeline" });
  const { PipelineService } = await import("@dspex/pipeline");
  const service = await PipelineService.start({ connection: client.nc, client, serve: false, resume: false });
  const lm: LMConfig = { model: `dspex/echo?latency_ms=${LM_LATENCY_MS}` };
  const examples = Array.from({ length: EXAMPLES }, (_, i) => ({ question: `question ${i}`, answer: `answer: question ${i}` }));
  const rows: BatchRow[] = [];
  try {
    for (const c of CONCURRENCY) {
      const ideal = (EXAMPLES * LM_LATENCY_MS) / 1000 / c;
      const meter = new CpuMeter(() => ({ "nats-server": [nats.process.pid!], workers: fleet.workers.map((w) => w.process.pid!) }));
      const load = la();
      meter.begin();
      const t0 = performance.now();
      const job = await service.submit({
        spec: { name: `bench-c${c}`, program: { signature: "question -> answer", lm }, metrics: [{ name: "exact_match" }], concurrency: c },
        examples,
      });
      const record = await service.waitFor(job, 50);
      const wall = (performance.now() - t0) / 1000;
      const cpu = meter.end(EXAMPLES); // ms per example, per process group (this process included: the service)
      const cpuPerExample = Object.values(cpu).reduce((a, b) => a + b, 0) / 1000;
      const summary = (await service.summary(job)) as { score?: number } | null;
      const evLoad = la();
      const ev = await runPython<{ wall_s: number; score: number; cpu_s: number }>("evaluate.py", [
        "--examples",
        String(EXAMPLES),
        "--threads",
        String(c),
        "--latency-ms",
        String(LM_LATENCY_MS),
      ]);
      const bound = Math.min(c / (LM_LATENCY_MS / 1000), CORES / cpuPerExample);
      const row: BatchRow = {
        concurrency: c,
        ideal_s: r2(ideal),
        fleet: { wall_s: r2(wall), per_s: Math.round(EXAMPLES / wall), cpu_s_per_example: r3(cpuPerExample * 1000) / 1000, cpu_ms_by_process: cpu, score: summary?.score ?? null, status: record.status, load_avg_1m: load },
        evaluate: { wall_s: r2(ev.wall_s), per_s: Math.round(EXAMPLES / ev.wall_s), cpu_s_per_example: Number((ev.cpu_s / EXAMPLES).toFixed(6)), score: ev.score, load_avg_1m: evLoad },
        bound_fleet_per_s: Math.round(bound),
        fleet_vs_evaluate: r2(ev.wall_s / wall),
        fleet_pct_of_bound: Math.round((100 * (EXAMPLES / wall)) / bound),
      };
      rows.push(row);
      log(
        `c=${c}: fleet ${row.fleet.wall_s} s (${row.fleet.per_s}/s, ${(cpuPerExample * 1000).toFixed(2)} ms CPU/example, ${row.fleet_pct_of_bound} % of bound ${row.bound_fleet_per_s}/s), ` +
          `Evaluate ${row.evaluate.wall_s} s (${row.evaluate.per_s}/s) → fleet ÷ Evaluate ${row.fleet_vs_evaluate}×`,
      );
    }
  } finally {
    await service.close();
    await client.close();
    await fleet.stop();
  }
  return rows;
}

async function memory(nats: EmbeddedNats): Promise<Record<string, unknown>> {
  const fleet: Fleet = await startFleet({ natsUrl: nats.url, creds: nats.creds, workers: { general: 1 }, workerEnv: WORKER_ENV });
  const client = await Client.connect({ servers: nats.url, creds: nats.creds.client });
  const worker = fleet.workers[0]!;
  // long enough that every request of the largest step is still waiting on its LM when the RSS is read
  const lm: LMConfig = { model: "dspex/echo?latency_ms=30000" };
  const samples: Array<{ inflight: number; rss_mb: number }> = [];
  const pending: Array<Promise<unknown>> = [];
  try {
    // warm: one call, so the baseline includes the loaded signature, module and LM client
    await client.predict("question -> answer", { question: "warm" }, { lm: { model: "dspex/echo" } });
    const base = await waitForStatus(client.nc, worker.id, (s) => s.inflight === 0, 10_000);
    samples.push({ inflight: 0, rss_mb: base.rss_mb! });
    let sent = 0;
    for (const target of INFLIGHT) {
      for (; sent < target; sent++) {
        pending.push(client.predict("question -> answer", { question: `held ${sent}` }, { lm, timeoutMs: 120_000, lane: "durable" }).catch(() => undefined));
      }
      const s = await waitForStatus(client.nc, worker.id, (st) => (st.inflight ?? 0) >= target, 60_000);
      samples.push({ inflight: s.inflight!, rss_mb: s.rss_mb! });
      log(`memory: ${s.inflight} in flight → RSS ${s.rss_mb} MiB`);
    }
    await Promise.all(pending);
  } finally {
    await client.close();
    await fleet.stop();
  }
  const first = samples[0]!;
  const last = samples[samples.length - 1]!;
  return {
    samples,
    concurrency_limit: "the general pool's default",
    growth_mib: r2(last.rss_mb - first.rss_mb),
    kib_per_inflight: r2(((last.rss_mb - first.rss_mb) * 1024) / Math.max(1, last.inflight - first.inflight)),
  };
}

async function coldStart(nats: EmbeddedNats): Promise<Record<string, unknown>> {
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const w = spawnWorker({ natsUrl: nats.url, creds: nats.creds["worker-general"], pool: "general", id: `cold-${i}-${process.pid}`, env: WORKER_ENV });
    await w.ready;
    samples.push(Math.round(performance.now() - t0));
    await w.stop(5_000);
  }
  // the baseline: a fresh interpreter that imports dspy and exits (interpreter start included on both sides)
  const imports: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await run(PYTHON, ["-c", "import dspy"], { env: { ...process.env, ...WORKER_ENV } });
    imports.push(Math.round(performance.now() - t0));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { worker_ready_ms: samples, import_dspy_ms: imports, ratio: r2(median(samples) / median(imports)) };
}

async function main(): Promise<void> {
  const started = performance.now();
  const results: Record<string, unknown> = { machine: machineFacts(), options: { examples: EXAMPLES, concurrency: CONCURRENCY, inflight: INFLIGHT, lm_latency_ms: LM_LATENCY_MS } };
  const nats = await startNatsServer();
  try {
    // the bus, applied once by the operator's identity (fleets started below would apply it too; a bare worker waits for it)
    const admin = await connectNats({ servers: nats.url, creds: nats.creds.admin, name: "bench-apply" });
    await applyBus(admin, busSpec(busSettings()));
    await admin.close();
    if (ONLY.has("batch")) results.batch = await batch(nats);
    if (ONLY.has("memory")) results.memory = await memory(nats);
    if (ONLY.has("coldstart")) results.coldstart = await coldStart(nats);
  } finally {
    await nats.stop();
  }
  results.duration_s = r2((performance.now() - started) / 1000);
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(OUT, JSON.stringify(results, null, 2) + "\n");
  process.stdout.write(JSON.stringify(results, null, 2) + "\n");
  log(`wrote ${OUT} (${results.duration_s} s)`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`[bench:batch] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
