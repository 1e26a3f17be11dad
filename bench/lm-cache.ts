/**
 * The fleet-wide LM cache (issue 19, `npm run bench:cache`): the same eval job run twice on 2 general workers
 * with an LM whose answers take `--latency-ms` (default 500, a hosted model's order of magnitude; the in-process
 * `dspex/echo` LM, so what is measured is DSPy + DSPex, never a provider). The first run fills the cache; the
 * second must make no LM call — every example a hit, in a worker's memory or in the shared tier (the other
 * worker's responses) — and the ratio of the two wall times is the speed-up. Writes bench/results/lm-cache.json.
 *
 * Options: --examples=N (default 400), --concurrency=C (default 16), --latency-ms=L, --out=path.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { applyBus, busSettings, busSpec, connectNats, workerStatuses, type WorkerStatus } from "@dspex/bus";
import { Client } from "@dspex/client";
import { startFleet, startNatsServer } from "@dspex/embedded";
import type { LMConfig } from "@dspex/protocol";
import { machineFacts } from "./lib/machine.js";
import { RESULTS_DIR } from "./lib/paths.js";
import { WORKER_ENV } from "./lib/proc.js";

const argv = process.argv.slice(2);
const opt = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const EXAMPLES = Number(opt("examples") ?? 400);
const CONCURRENCY = Number(opt("concurrency") ?? 16);
const LATENCY_MS = Number(opt("latency-ms") ?? 500);
const OUT = opt("out") ?? join(RESULTS_DIR, "lm-cache.json");
const log = (text: string) => process.stderr.write(`[bench:cache] ${text}\n`);
const r2 = (x: number) => Number(x.toFixed(2));

interface Hits {
  memory: number;
  fleet: number;
  fleet_misses: number;
}

function hits(statuses: WorkerStatus[]): Hits {
  return statuses.reduce(
    (t, s) => ({
      memory: t.memory + (s.lm_cache?.memory_hits ?? 0),
      fleet: t.fleet + (s.lm_cache?.fleet?.hits ?? 0),
      fleet_misses: t.fleet_misses + (s.lm_cache?.fleet?.misses ?? 0),
    }),
    { memory: 0, fleet: 0, fleet_misses: 0 },
  );
}

async function main(): Promise<void> {
  const nats = await startNatsServer();
  const results: Record<string, unknown> = { machine: machineFacts(), options: { examples: EXAMPLES, concurrency: CONCURRENCY, lm_latency_ms: LATENCY_MS, workers: 2 } };
  try {
    const admin = await connectNats({ servers: nats.url, creds: nats.creds.admin, name: "bench-apply" });
    await applyBus(admin, busSpec(busSettings()));
    await admin.close();
    const fleet = await startFleet({ natsUrl: nats.url, creds: nats.creds, workers: { general: 2 }, workerEnv: WORKER_ENV });
    const client = await Client.connect({ servers: nats.url, creds: nats.creds.pipeline, name: "bench-cache" });
    const { PipelineService } = await import("@dspex/pipeline");
    const service = await PipelineService.start({ connection: client.nc, client, serve: false, resume: false });
    try {
      const lm: LMConfig = { model: `dspex/echo?latency_ms=${LATENCY_MS}`, cache: true };
      const examples = Array.from({ length: EXAMPLES }, (_, i) => ({ question: `question ${i}`, answer: `answer: question ${i}` }));
      const runs: Array<{ wall_s: number; per_s: number; score: number | null; hits: Hits }> = [];
      for (const name of ["first", "second"]) {
        const before = hits(await workerStatuses(client.nc));
        const t0 = performance.now();
        const job = await service.submit({
          spec: { name: `bench-cache-${name}`, program: { signature: "question -> answer", lm }, metrics: [{ name: "exact_match" }], concurrency: CONCURRENCY },
          examples,
        });
        const record = await service.waitFor(job, 50);
        if (record.status !== "succeeded") throw new Error(`job ${job}: ${record.status}`);
        const wall = (performance.now() - t0) / 1000;
        const after = hits(await workerStatuses(client.nc));
        const summary = (await service.summary(job)) as { score?: number } | null;
        const run = {
          wall_s: r2(wall),
          per_s: Math.round(EXAMPLES / wall),
          score: summary?.score ?? null,
          hits: { memory: after.memory - before.memory, fleet: after.fleet - before.fleet, fleet_misses: after.fleet_misses - before.fleet_misses },
        };
        runs.push(run);
        log(`${name} run: ${run.wall_s} s (${run.per_s}/s), hits memory ${run.hits.memory} + fleet ${run.hits.fleet}`);
      }
      const [first, second] = runs as [(typeof runs)[0], (typeof runs)[0]];
      const lmCalls = EXAMPLES - second.hits.memory - second.hits.fleet;
      results.runs = { first, second };
      results.second_run_lm_calls = lmCalls;
      results.speedup = r2(first.wall_s / second.wall_s);
      results.target = { speedup_at_least: 10, no_lm_calls: true, met: results.speedup as number >= 10 && lmCalls === 0 };
      log(`second run ÷ first: ${results.speedup}× faster, ${lmCalls} LM calls (target ≥ 10× and 0: ${(results.target as { met: boolean }).met ? "met" : "NOT met"})`);
    } finally {
      await service.close();
      await client.close();
      await fleet.stop();
    }
  } finally {
    await nats.stop();
  }
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(OUT, JSON.stringify(results, null, 2) + "\n");
  process.stdout.write(JSON.stringify(results, null, 2) + "\n");
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`[bench:cache] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
