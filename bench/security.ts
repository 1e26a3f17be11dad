/**
 * What authentication and TLS cost on the request path (`npm run bench:security`, docs/security.md): the same
 * predict through client -> JetStream -> worker -> reply on three embedded servers, started side by side —
 * no authentication (the baseline, the only place a server runs without it), JWT users with permissions (the
 * default), and JWT + TLS on the client port — measured in interleaved rounds (A B C, A B C, …) so that the
 * machine's state weighs on each the same. Prints p50 at c=1 and throughput at c=16 with ratios to the
 * baseline; writes bench/results/security.json.
 *
 * Options: --rounds=N (3), --duration=ms (2000), --warmup=ms (500).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { Client } from "@dspex/client";
import { startFleet, startNatsServer, type EmbeddedNats, type Fleet } from "@dspex/embedded";
import type { LMConfig } from "@dspex/protocol";
import { machineFacts } from "./lib/machine.js";
import { PROJECT_ROOT, RESULTS_DIR } from "./lib/paths.js";
import { WORKER_ENV } from "./lib/proc.js";
import { closedLoop, type LoadResult } from "./lib/stats.js";

const argv = process.argv.slice(2);
const opt = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const ROUNDS = Number(opt("rounds") ?? 3);
const DURATION_MS = Number(opt("duration") ?? 2_000);
const WARMUP_MS = Number(opt("warmup") ?? 500);
const SIGNATURE = "review: str -> sentiment: Literal['positive', 'negative', 'neutral'], confidence: float";
const INPUTS = { review: "Battery lasts two days and the screen is bright, but the speaker is weak." };
const ECHO: LMConfig = { model: "dspex/echo" };

type Mode = "none" | "jwt" | "jwt+tls";
const MODES: Mode[] = ["none", "jwt", "jwt+tls"];

interface Setup {
  mode: Mode;
  nats: EmbeddedNats;
  fleet: Fleet;
  client: Client;
}

const log = (text: string) => process.stderr.write(`[bench:security] ${text}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function setUp(mode: Mode, certs: string): Promise<Setup> {
  const tls = mode === "jwt+tls";
  const nats = await startNatsServer({
    auth: mode !== "none",
    ...(tls ? { tls: { cert: join(certs, "tls.crt"), key: join(certs, "tls.key") } } : {}),
  });
  const security = tls ? { tls: { ca: join(certs, "ca.crt") } } : {};
  // the fleet's own connections and its workers read the CA from the environment, as on a deployment
  const env = tls ? { NATS_CA: join(certs, "ca.crt") } : {};
  Object.assign(process.env, env);
  try {
    const fleet = await startFleet({ natsUrl: nats.url, creds: nats.creds, workers: { general: 1 }, workerEnv: { ...WORKER_ENV, ...env }, dlq: false });
    const client = await Client.connect({ servers: nats.url, creds: nats.creds.client, ...security, lm: ECHO });
    return { mode, nats, fleet, client };
  } finally {
    delete process.env.NATS_CA;
  }
}

async function main(): Promise<void> {
  const certs = mkdtempSync(join(tmpdir(), "dspex-bench-certs-"));
  execFileSync("bash", [join(PROJECT_ROOT, "scripts/dev-certs.sh"), certs, "localhost", "127.0.0.1"], { stdio: "ignore" });
  const setups: Setup[] = [];
  try {
    for (const mode of MODES) setups.push(await setUp(mode, certs));
    const p50: Record<Mode, number[]> = { none: [], jwt: [], "jwt+tls": [] };
    const rps: Record<Mode, number[]> = { none: [], jwt: [], "jwt+tls": [] };
    const runs: Array<{ round: number; mode: Mode; c1: LoadResult; c16: LoadResult }> = [];
    for (let round = 1; round <= ROUNDS; round++) {
      for (const s of setups) {
        const call = () => s.client.predict(SIGNATURE, INPUTS);
        const c1 = await closedLoop(call, { concurrency: 1, durationMs: DURATION_MS, warmupMs: WARMUP_MS, maxRequests: 1e6 });
        const c16 = await closedLoop(call, { concurrency: 16, durationMs: DURATION_MS, warmupMs: WARMUP_MS, maxRequests: 1e6 });
        if (c1.errors + c16.errors > 0) throw new Error(`${s.mode}: ${c1.errors + c16.errors} errors: ${c1.firstError ?? c16.firstError}`);
        p50[s.mode].push(c1.p50_ms);
        rps[s.mode].push(c16.rps);
        runs.push({ round, mode: s.mode, c1, c16 });
        log(`round ${round} ${s.mode.padEnd(8)} c=1 p50 ${c1.p50_ms.toFixed(3)} ms   c=16 ${c16.rps} req/s`);
      }
    }
    const summary = MODES.map((mode) => ({
      mode,
      p50_ms_c1: median(p50[mode]),
      rps_c16: median(rps[mode]),
      p50_ratio: Number((median(p50[mode]) / median(p50.none)).toFixed(3)),
      rps_ratio: Number((median(rps[mode]) / median(rps.none)).toFixed(3)),
    }));
    const out = { at: new Date().toISOString(), machine: machineFacts(), options: { rounds: ROUNDS, duration_ms: DURATION_MS, warmup_ms: WARMUP_MS }, summary, runs };
    writeFileSync(join(RESULTS_DIR, "security.json"), `${JSON.stringify(out, null, 2)}\n`);
    process.stdout.write("\nmode       c=1 p50 (ms)  vs none   c=16 req/s  vs none\n");
    for (const r of summary) {
      process.stdout.write(
        `${r.mode.padEnd(10)} ${r.p50_ms_c1.toFixed(3).padStart(12)}  ${r.p50_ratio.toFixed(2).padStart(6)}×  ${String(r.rps_c16).padStart(10)}  ${r.rps_ratio.toFixed(2).padStart(6)}×\n`,
      );
    }
  } finally {
    for (const s of setups) {
      await s.client.close();
      await s.fleet.stop();
      await s.nats.stop();
    }
    rmSync(certs, { recursive: true, force: true });
  }
}

await main();
