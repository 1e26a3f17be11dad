/**
 * DSPex benchmarks: what the bus costs, side by side with the alternatives, in one run (`npm run bench`).
 *
 * Every scenario is measured beside its baseline in the same run, on the same machine state:
 *   1. floor      NATS core request-reply Node -> Python (nats-py responder), DSPex's payload sizes, no DSPy
 *   2. inprocess  dspy.Predict in one Python process (sync loop; asyncio acall at 1/16/64; the worker's Executor)
 *   3. dspex      client -> JetStream -> worker -> reply, concurrency 1/16/64 with 1/2/4 workers
 *   4. fastapi    the same program behind FastAPI + uvicorn as DSPy's deployment guide does, 1/2/4 processes
 *   5. batch      N examples at 100 ms LM latency: the fleet vs dspy.Evaluate(num_threads=K) vs N*latency/K
 *   6. native     TS signature parse/validate, Python signature class build (cold/cached), worker cold start,
 *                 signature-cache hit rate during (3)
 * The LM is `dspex/echo` (workers/dspex_worker/lm/echo.py) everywhere: in-process, zero latency (scenario 5:
 * a fixed 100 ms), so what is measured is DSPy + transport, never a provider.
 *
 * Options: --quick (shorter runs), --only=a,b (scenarios), --duration=ms, --warmup=ms, --concurrency=1,16,64,
 * --workers=1,2,4, --examples=N, --threads=K, --out=path; --report=path prints the table of a saved run.
 * Writes bench/results/latest.json and prints a table.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { createServer } from "node:net";
import { loadavg } from "node:os";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats } from "@dspex/bus";
import { Client } from "@dspex/client";
import { spawnWorker, startFleet, startNatsServer, stopChild, type EmbeddedNats, type Fleet } from "@dspex/embedded";
import { ENVELOPE_VERSION, decode, encode, type LMConfig } from "@dspex/protocol";
import { clearSignatureCache, compileSignature, resolveSignature, validateInputs } from "@dspex/native";
import { machineFacts } from "./lib/machine.js";
import { RESULTS_DIR, PROJECT_ROOT } from "./lib/paths.js";
import { CpuMeter, PYTHON, WORKER_ENV, childPids, runPython, startPython } from "./lib/proc.js";
import { closedLoop, perCallUs, type LoadResult } from "./lib/stats.js";
import { spawn, type ChildProcess } from "node:child_process";

// ---------------------------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const opt = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const QUICK = flag("quick");
const DURATION_MS = Number(opt("duration") ?? (QUICK ? 1_500 : 3_000));
const WARMUP_MS = Number(opt("warmup") ?? (QUICK ? 500 : 1_000));
const MAX_REQUESTS = 100_000;
const CONCURRENCY = (opt("concurrency") ?? "1,16,64").split(",").map(Number);
const WORKER_COUNTS = (opt("workers") ?? "1,2,4").split(",").map(Number);
/** The delivery lanes measured in scenario 3 (services/client/src/lanes; docs/reliability.md). */
const LANES = (opt("lanes") ?? "direct,durable").split(",") as Array<"direct" | "durable">;
const EXAMPLES = Number(opt("examples") ?? 200);
const THREADS = Number(opt("threads") ?? 16);
const LM_LATENCY_MS = 100;
const ALL = ["native", "inprocess", "floor", "dspex", "coldstart", "fastapi", "batch"] as const;
type Scenario = (typeof ALL)[number];
const ONLY = new Set<string>(opt("only")?.split(",") ?? ALL);
const enabled = (s: Scenario) => ONLY.has(s);
const OUT = opt("out") ?? join(RESULTS_DIR, "latest.json");

// ---------------------------------------------------------------------------------------------------------
// The program every scenario runs

const SIGNATURE = "review: str -> sentiment: Literal['positive', 'negative', 'neutral'], confidence: float";
const INPUTS = { review: "Battery lasts two days and the screen is bright, but the speaker is weak." };
const ECHO: LMConfig = { model: "dspex/echo" };
/** A "complex" signature for the native costs: nested generics, Optional, Literal, several fields. */
const COMPLEX =
  "context: list[str], question: str, history: Optional[list[dict[str, str]]], max_words: int -> " +
  "answer: str, citations: list[int], confidence: float, verdict: Literal['supported', 'refuted', 'not enough info'], notes: Optional[str]";
const COMPLEX_INPUTS = {
  context: ["Paris is the capital of France.", "France is in Europe."],
  question: "What is the capital of France?",
  history: [{ role: "user", content: "hi" }],
  max_words: 50,
};

const log = (text: string) => process.stderr.write(`[bench] ${text}\n`);
const la = () => Number(loadavg()[0]!.toFixed(2));
const r2 = (x: number) => Number(x.toFixed(2));

interface Results {
  machine: ReturnType<typeof machineFacts>;
  options: Record<string, unknown>;
  payload: { request_bytes: number; reply_bytes: number };
  lm: Record<string, string>;
  native?: Record<string, unknown>;
  inprocess?: { modes: Array<LoadResult & { mode: string }>; import_dspy_s: number; load_avg_1m: number };
  floor?: Array<LoadResult & { cpu_ms_per_req: Record<string, number> }>;
  dspex?: Array<
    LoadResult & { workers: number; lane?: "direct" | "durable"; cpu_ms_per_req: Record<string, number>; worker_exec_ms: number; worker_queue_ms: number }
  >;
  cache?: { hits: number; misses: number; hit_rate: number; per_worker: Array<Record<string, unknown>> };
  coldstart?: { samples_ms: number[]; median_ms: number; load_avg_1m: number };
  fastapi?: Array<LoadResult & { processes: number; cpu_ms_per_req: Record<string, number> }>;
  batch?: Record<string, unknown>;
  targets?: Array<{ target: string; measured: string; met: boolean | null }>;
  duration_s?: number;
}

// ---------------------------------------------------------------------------------------------------------

function payloadSizes() {
  const wire = resolveSignature(SIGNATURE);
  const request = encode({ v: ENVELOPE_VERSION, id: randomUUID(), op: "predict", signature: wire, inputs: INPUTS, timeout_ms: 60_000, lm: ECHO });
  const reply = encode({
    v: 1,
    id: randomUUID(),
    ok: true,
    outputs: { sentiment: "positive", confidence: 0.5 },
    lm: "dspex/echo",
    usage: { prompt_tokens: 120, completion_tokens: 11, total_tokens: 131 },
    timings: { queue_ms: 0.512, exec_ms: 2.345 },
    worker: `general-1-${process.pid}`,
  });
  return { request, reply };
}

async function nativeCosts(): Promise<Record<string, unknown>> {
  log("native: TS signature parse/validate, codec; Python signature class build");
  const wire = resolveSignature(COMPLEX);
  const ts = {
    parse_cold_us: perCallUs(() => {
      clearSignatureCache();
      compileSignature(COMPLEX);
    }, 2_000),
    parse_cached_us: perCallUs(() => compileSignature(COMPLEX), 50_000),
    validate_inputs_us: perCallUs(() => validateInputs(COMPLEX, COMPLEX_INPUTS), 50_000),
    parse_and_validate_cold_us: perCallUs(() => {
      clearSignatureCache();
      validateInputs(COMPLEX, COMPLEX_INPUTS);
    }, 2_000),
  };
  const { request, reply } = payloadSizes();
  const envelope = decode(request);
  const codec = {
    encode_request_us: perCallUs(() => encode(envelope), 50_000),
    decode_reply_us: perCallUs(() => decode(reply), 50_000),
  };
  const py = await runPython<Record<string, unknown>>("native.py", ["--wire", JSON.stringify(wire), "--inputs", JSON.stringify(COMPLEX_INPUTS)]);
  log("native: the worker's own per-request cost (Worker._handle without the network)");
  const worker = await runPython<Record<string, number>>("worker_overhead.py", [
    "--wire", JSON.stringify(resolveSignature(SIGNATURE)),
    "--inputs", JSON.stringify(INPUTS),
    "--n", QUICK ? "1000" : "3000",
  ]);
  return { signature: COMPLEX, ts, codec, python: py, worker, load_avg_1m: la() };
}

async function inProcess(): Promise<Results["inprocess"]> {
  log("inprocess: dspy.Predict in one Python process");
  const load = la();
  const out = await runPython<{ modes: Array<LoadResult & { mode: string }>; import_dspy_s: number }>(
    "inprocess.py",
    [
      "--signature", SIGNATURE,
      "--wire", JSON.stringify(resolveSignature(SIGNATURE)),
      "--inputs", JSON.stringify(INPUTS),
      "--concurrency", CONCURRENCY.join(","),
      "--duration", String(DURATION_MS / 1000),
      "--warmup", String(WARMUP_MS / 1000),
    ],
    { echo: true },
  );
  for (const m of out.modes) m.load_avg_1m = load;
  return { ...out, load_avg_1m: load };
}

async function floor(nats: EmbeddedNats, sizes: { request: Uint8Array; reply: Uint8Array }): Promise<Results["floor"]> {
  log("floor: NATS core request-reply Node -> nats-py responder");
  // the bench subject belongs to no role: both ends use the admin identity
  const responder = await startPython("floor_responder.py", ["--nats-url", nats.url, "--reply-size", String(sizes.reply.byteLength)], {
    NATS_CREDS: nats.creds.admin,
  });
  const nc = await connectNats({ servers: nats.url, creds: nats.creds.admin, name: "bench-floor" });
  const results: NonNullable<Results["floor"]> = [];
  try {
    const meter = new CpuMeter(() => ({ "nats-server": [nats.process.pid!], "responder (python)": [responder.pid!] }));
    for (const c of CONCURRENCY) {
      meter.begin();
      const r = await closedLoop(() => nc.request("bench.floor", sizes.request, { timeout: 10_000 }), opts(c));
      results.push({ ...r, cpu_ms_per_req: meter.end(r.requests) });
      log(`  floor c=${c}: ${r.rps} req/s p50 ${r.p50_ms} ms p99 ${r.p99_ms} ms (load ${r.load_avg_1m})`);
    }
  } finally {
    await nc.close();
    await stopChild(responder);
  }
  return results;
}

function opts(concurrency: number) {
  return { concurrency, durationMs: DURATION_MS, warmupMs: WARMUP_MS, maxRequests: MAX_REQUESTS };
}

async function settle(client: Client, fleet: Fleet, workers: number): Promise<void> {
  while (fleet.workers.length < workers) await fleet.addWorker("general");
  // Wait until discovery sees them and partition assignment has settled (the membership protocol's rounds).
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    await client.discovery.refresh();
    if (client.discovery.live("general").length >= workers) break;
  }
  await new Promise((r) => setTimeout(r, 1_500));
}

async function dspexE2e(
  nats: EmbeddedNats,
  results: Results,
): Promise<{ fleet: Fleet; client: Client }> {
  log("dspex: client -> JetStream -> worker -> reply");
  const fleet = await startFleet({ natsUrl: nats.url, creds: nats.creds, workers: { general: 1 }, workerEnv: WORKER_ENV });
  const client = await Client.connect({ servers: nats.url, creds: nats.creds.client, lm: ECHO });
  results.dspex = [];
  for (const workers of WORKER_COUNTS) {
    await settle(client, fleet, workers);
    const meter = new CpuMeter(() => ({
      "nats-server": [nats.process.pid!],
      "workers (python)": fleet.workers.map((w) => w.process.pid!),
    }));
    for (const lane of LANES) for (const c of CONCURRENCY) {
      let exec = 0;
      let queue = 0;
      let n = 0;
      meter.begin();
      const r = await closedLoop(async () => {
        const res = await client.predict(SIGNATURE, INPUTS, { lane });
        exec += res.timings.exec_ms;
        queue += res.timings.queue_ms;
        n += 1;
      }, opts(c));
      const cpu = meter.end(r.requests);
      results.dspex.push({ ...r, workers, lane, cpu_ms_per_req: cpu, worker_exec_ms: r2(exec / n), worker_queue_ms: r2(queue / n) });
      log(
        `  dspex workers=${workers} lane=${lane} c=${c}: ${r.rps} req/s p50 ${r.p50_ms} ms p99 ${r.p99_ms} ms ` +
          `(worker exec ${r2(exec / n)} ms, queue ${r2(queue / n)} ms; load ${r.load_avg_1m})`,
      );
    }
  }
  results.cache = await cacheStats(client.nc, fleet);
  return { fleet, client };
}

async function cacheStats(nc: NatsConnection, fleet: Fleet): Promise<NonNullable<Results["cache"]>> {
  const perWorker: Array<Record<string, unknown>> = [];
  let hits = 0;
  let misses = 0;
  for (const w of fleet.workers) {
    try {
      const msg = await nc.request(`dspex.worker.${w.id}.status`, undefined, { timeout: 5_000 });
      const status = msg.json<{ handled: number; signature_cache: { hits: number; misses: number } }>();
      hits += status.signature_cache.hits;
      misses += status.signature_cache.misses;
      perWorker.push({ worker: w.id, handled: status.handled, ...status.signature_cache });
    } catch (err) {
      perWorker.push({ worker: w.id, error: String(err) });
    }
  }
  return { hits, misses, hit_rate: hits + misses ? Number((hits / (hits + misses)).toFixed(4)) : 0, per_worker: perWorker };
}

async function coldStart(nats: EmbeddedNats): Promise<NonNullable<Results["coldstart"]>> {
  log("coldstart: spawnWorker -> ready");
  const load = la();
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const w = spawnWorker({ natsUrl: nats.url, creds: nats.creds["worker-general"], pool: "general", id: `bench-cold-${i}-${process.pid}`, env: WORKER_ENV });
    await w.ready;
    samples.push(r2(performance.now() - t0));
    await w.stop(5_000);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  log(`  cold start: ${samples.join(", ")} ms`);
  return { samples_ms: samples, median_ms: sorted[1]!, load_avg_1m: load };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function startUvicorn(processes: number): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const child = spawn(
    PYTHON,
    ["-m", "uvicorn", "fastapi_app:app", "--app-dir", join(PROJECT_ROOT, "bench/py"), "--host", "127.0.0.1", "--port", String(port),
      "--workers", String(processes), "--log-level", "info", "--no-access-log"],
    {
      cwd: join(PROJECT_ROOT, "bench/py"),
      env: { ...process.env, BENCH_SIGNATURE: SIGNATURE, BENCH_ASYNC_MAX_WORKERS: "8", LITELLM_LOCAL_MODEL_COST_MAP: "true", PYTHONWARNINGS: "ignore" },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let err = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`uvicorn not ready in 120 s:\n${err.slice(-2000)}`)), 120_000);
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      if ((err.match(/Application startup complete/g) ?? []).length >= processes) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`uvicorn exited (${code}):\n${err.slice(-2000)}`));
    });
  });
  return { child, port };
}

function post(agent: http.Agent, port: number, body: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, path: "/predict", method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 300)}`));
          const parsed = JSON.parse(text) as { data: Record<string, unknown> };
          // The client validates outputs; do the same here so both sides hand the caller typed outputs.
          resolve(compileSignature(SIGNATURE).validateOutputs(parsed.data));
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

async function fastapi(): Promise<NonNullable<Results["fastapi"]>> {
  log("fastapi: FastAPI + uvicorn per DSPy's deployment guide");
  const results: NonNullable<Results["fastapi"]> = [];
  const body = JSON.stringify(INPUTS);
  for (const processes of WORKER_COUNTS) {
    const { child, port } = await startUvicorn(processes);
    try {
      const meter = new CpuMeter(() => ({ "uvicorn (python)": [child.pid!, ...childPids(child.pid!)] }));
      for (const c of CONCURRENCY) {
        const agent = new http.Agent({ keepAlive: true, maxSockets: c });
        meter.begin();
        const r = await closedLoop(() => post(agent, port, body), opts(c));
        results.push({ ...r, processes, cpu_ms_per_req: meter.end(r.requests) });
        agent.destroy();
        log(`  fastapi processes=${processes} c=${c}: ${r.rps} req/s p50 ${r.p50_ms} ms p99 ${r.p99_ms} ms (load ${r.load_avg_1m})`);
      }
    } finally {
      await stopChild(child, 10_000);
    }
  }
  return results;
}

/**
 * The fleet side through the batch-evaluation service (services/pipeline): a job with `concurrency` K,
 * run by an in-process PipelineService on the same client; every example's result is persisted (resumable
 * jobs), which is part of what is measured. Reported as an error, not a failed run, if the service is
 * unusable in this checkout.
 */
async function batchViaPipeline(
  fleet: Fleet,
  lm: LMConfig,
  examples: Array<Record<string, unknown>>,
  ideal: number,
): Promise<Record<string, unknown>> {
  const load = la();
  try {
    const { PipelineService } = await import("@dspex/pipeline");
    // the pipeline service's own identity: it writes the jobs' results, which a caller's may not
    const client = await Client.connect({ servers: fleet.natsUrl, creds: fleet.creds.pipeline, name: "bench-pipeline" });
    const service = await PipelineService.start({ connection: client.nc, client, serve: false, resume: false });
    try {
      const t0 = performance.now();
      const job = await service.submit({
        spec: { name: "bench", program: { signature: "question -> answer", lm }, metrics: [{ name: "exact_match" }], concurrency: THREADS },
        examples,
      });
      const record = await service.waitFor(job, 50);
      const wall = (performance.now() - t0) / 1000;
      const summary = (await service.summary(job)) as { score?: number } | null;
      log(`  pipeline service: ${r2(wall)} s (ideal ${r2(ideal)} s), status ${record.status}`);
      return {
        method: `services/pipeline job (PipelineService.submit + waitFor), concurrency ${THREADS}, results persisted per example`,
        status: record.status,
        wall_s: r2(wall),
        score: summary?.score ?? null,
        vs_ideal: r2(wall / ideal),
        load_avg_1m: load,
      };
    } finally {
      await service.close();
      await client.close();
    }
  } catch (err) {
    log(`  pipeline service unusable here: ${String(err).split("\n")[0]}`);
    return { error: String(err).split("\n")[0] };
  }
}

async function batch(client: Client | undefined, fleet: Fleet | undefined): Promise<Record<string, unknown>> {
  log(`batch: ${EXAMPLES} examples at ${LM_LATENCY_MS} ms LM latency, total LM concurrency ${THREADS}`);
  const lm: LMConfig = { model: `dspex/echo?latency_ms=${LM_LATENCY_MS}` };
  const ideal = (EXAMPLES * LM_LATENCY_MS) / 1000 / THREADS;
  const out: Record<string, unknown> = { examples: EXAMPLES, lm_latency_ms: LM_LATENCY_MS, concurrency: THREADS, ideal_s: r2(ideal) };
  if (client && fleet) {
    const examples = Array.from({ length: EXAMPLES }, (_, i) => ({ question: `question ${i}`, answer: `answer: question ${i}` }));
    out.pipeline_service = await batchViaPipeline(fleet, lm, examples, ideal);
    const load = la();
    let next = 0;
    let correct = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: THREADS }, async () => {
        while (next < examples.length) {
          const ex = examples[next++]!;
          const res = await client.predict<{ answer: string }>("question -> answer", { question: ex.question }, { lm });
          if (res.outputs.answer.trim().toLowerCase() === ex.answer.toLowerCase()) correct += 1;
        }
      }),
    );
    const wall = (performance.now() - t0) / 1000;
    out.fleet = {
      method: `Client.predict fan-out, ${THREADS} in flight (no job persistence)`,
      workers: fleet.workers.length,
      wall_s: r2(wall),
      score: Number(((100 * correct) / EXAMPLES).toFixed(1)),
      vs_ideal: r2(wall / ideal),
      load_avg_1m: load,
    };
    log(`  fleet: ${r2(wall)} s (ideal ${r2(ideal)} s)`);
  }
  const load = la();
  const ev = await runPython<Record<string, number>>("evaluate.py", ["--examples", String(EXAMPLES), "--threads", String(THREADS), "--latency-ms", String(LM_LATENCY_MS)]);
  out.dspy_evaluate = { ...ev, vs_ideal: r2(ev.wall_s! / ideal), load_avg_1m: load };
  log(`  dspy.Evaluate(num_threads=${THREADS}): ${ev.wall_s} s`);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Report

function pad(s: string, n: number, right = false) {
  return right ? s.padStart(n) : s.padEnd(n);
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => pad(c, widths[i]!, i > 0)).join(" | ") + " |";
  return [line(headers), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...rows.map(line)].join("\n");
}

const f = (x: number | undefined, d = 2) => (x === undefined || Number.isNaN(x) ? "–" : x.toFixed(d));

function report(res: Results): string {
  const out: string[] = [];
  const m = res.machine;
  out.push(
    `Machine: ${m.cores} × ${m.cpu_model}, ${m.memory_gib} GiB; Node ${m.node}, Python ${m.python}, dspy ${m.dspy}, ` +
      `nats-py ${m.nats_py}, ${m.nats_server}, FastAPI ${m.fastapi}, uvicorn ${m.uvicorn}; load average at start ${m.load_avg_at_start.join(" / ")}`,
  );
  out.push(`Payload: request ${res.payload.request_bytes} B, reply ${res.payload.reply_bytes} B (msgpack). LM: ${res.lm.default}`);
  if (m.load_avg_at_start[0]! > m.cores) out.push(`WARNING: busy machine at start (load ${m.load_avg_at_start[0]} on ${m.cores} cores); numbers are pessimistic.`);
  const base = (c: number) => res.inprocess?.modes.find((x) => x.mode === "predict_async" && x.concurrency === c);
  const flr = (c: number) => res.floor?.find((x) => x.concurrency === c);
  const rows: string[][] = [];
  const push = (name: string, r: LoadResult, cpu?: Record<string, number>, extra = "") => {
    const b = base(r.concurrency);
    const fl = flr(r.concurrency);
    const server = cpu ? Object.entries(cpu).filter(([k]) => k !== "bench (node)").reduce((a, [, x]) => a + x, 0) : undefined;
    const client = cpu?.["bench (node)"];
    rows.push([
      name,
      String(r.concurrency),
      r.rps ? f(r.rps, 0) : "–",
      f(r.p50_ms, 3),
      f(r.p95_ms, 3),
      f(r.p99_ms, 3),
      b ? f(r.p50_ms - b.p50_ms, 3) : "–",
      fl && name !== "floor" ? f(r.p50_ms - fl.p50_ms, 3) : "–",
      b && r.rps ? `${f(r.rps / b.rps, 2)}×` : "–",
      server === undefined ? "–" : f(server, 2),
      client === undefined ? "–" : f(client, 2),
      f(r.load_avg_1m, 1) + extra,
    ]);
  };
  for (const r of res.inprocess?.modes ?? []) push(`in-process ${r.mode}`, r);
  for (const r of res.floor ?? []) push("floor (NATS core req-reply)", r, r.cpu_ms_per_req);
  for (const r of res.dspex ?? []) push(`DSPex ${r.lane ?? ""}, ${r.workers} worker${r.workers > 1 ? "s" : ""}`, r, r.cpu_ms_per_req);
  for (const r of res.fastapi ?? []) push(`FastAPI, ${r.processes} process${r.processes > 1 ? "es" : ""}`, r, r.cpu_ms_per_req);
  out.push("");
  out.push(
    table(
      ["scenario", "conc", "req/s", "p50 ms", "p95 ms", "p99 ms", "p50 − in-proc", "p50 − floor", "req/s ÷ in-proc", "server CPU ms/req", "client CPU ms/req", "load"],
      rows,
    ),
  );
  out.push("");
  out.push("p50 − in-proc: p50 minus in-process asyncio `acall` p50 at the same concurrency; req/s ÷ in-proc likewise.");
  out.push("server CPU: nats-server + Python responder/workers/uvicorn per request; client CPU: the Node process (load generator, and for DSPex the client).");
  out.push("in-process executor_idle: the worker's Executor.run with 5 ms idle between calls (cold caches, as a server at concurrency 1 sees it).");
  if (res.native) {
    const n = res.native as {
      ts: Record<string, number>;
      codec: Record<string, number>;
      python: Record<string, number>;
      worker?: Record<string, number>;
    };
    out.push("");
    out.push(
      table(
        ["native cost (complex signature)", "µs"],
        [
          ["TS compileSignature, cold (parse + check + compile)", f(n.ts.parse_cold_us, 1)],
          ["TS compileSignature, cached", f(n.ts.parse_cached_us, 3)],
          ["TS validateInputs (cached signature)", f(n.ts.validate_inputs_us, 2)],
          ["TS parse + validate, cold", f(n.ts.parse_and_validate_cold_us, 1)],
          ["TS encode request envelope (msgpack)", f(n.codec.encode_request_us, 2)],
          ["TS decode reply envelope (msgpack)", f(n.codec.decode_reply_us, 2)],
          ["Python build_signature, first call", f(n.python.build_first_us, 1)],
          ["Python build_signature, cold (every call)", f(n.python.build_cold_us, 1)],
          ["Python SignatureCache.get_or_build, hit", f(n.python.cache_hit_us, 2)],
          ["Python validate_inputs", f(n.python.validate_inputs_us, 2)],
          ["Python `import dspy` (ms)", f((n.python.import_dspy_s ?? 0) * 1000, 0)],
          ["worker's own code per request, CPU (Worker._handle, stub program, c=1)", f(n.worker?.stub_c1_us, 1)],
          ["  same, 16 in flight", f(n.worker?.stub_c16_us, 1)],
          ["  same, through the pull loop, 16 in flight", f(n.worker?.pull_loop_c16_us, 1)],
        ],
      ),
    );
  }
  if (res.coldstart) out.push(`\nWorker cold start (spawnWorker -> ready): ${res.coldstart.samples_ms.join(", ")} ms (median ${res.coldstart.median_ms} ms)`);
  if (res.cache) out.push(`Signature-cache hit rate during the DSPex runs: ${(res.cache.hit_rate * 100).toFixed(2)}% (${res.cache.hits} hits, ${res.cache.misses} misses)`);
  if (res.batch) {
    const b = res.batch as {
      examples: number;
      concurrency: number;
      lm_latency_ms: number;
      ideal_s: number;
      pipeline_service?: { wall_s?: number; vs_ideal?: number; error?: string };
      fleet?: { wall_s: number; vs_ideal: number; workers: number };
      dspy_evaluate?: { wall_s: number; vs_ideal: number };
    };
    const ps = b.pipeline_service;
    out.push(
      `\nBatch evaluation, ${b.examples} examples at ${b.lm_latency_ms} ms LM latency, ${b.concurrency} LM calls in flight: ideal ${b.ideal_s} s; ` +
        (ps ? (ps.error ? `pipeline service: ${ps.error}; ` : `fleet via services/pipeline ${ps.wall_s} s (${ps.vs_ideal}× ideal); `) : "") +
        (b.fleet ? `fleet via Client fan-out (${b.fleet.workers} workers) ${b.fleet.wall_s} s (${b.fleet.vs_ideal}× ideal); ` : "") +
        (b.dspy_evaluate ? `dspy.Evaluate(num_threads=${b.concurrency}) ${b.dspy_evaluate.wall_s} s (${b.dspy_evaluate.vs_ideal}× ideal)` : ""),
    );
  }
  if (res.targets) {
    out.push("");
    out.push(table(["design target", "measured", "met"], res.targets.map((t) => [t.target, t.measured, t.met === null ? "–" : t.met ? "yes" : "NO"])));
  }
  return out.join("\n");
}

function targets(res: Results): NonNullable<Results["targets"]> {
  const t: NonNullable<Results["targets"]> = [];
  if (res.dspex?.length) {
    const best = res.dspex.reduce((a, b) => (b.rps > a.rps ? b : a));
    t.push({ target: "1,000+ requests/s per pool", measured: `${f(best.rps, 0)} req/s (${best.workers} workers, c=${best.concurrency})`, met: best.rps >= 1000 });
    const c1 = res.dspex.filter((r) => r.concurrency === 1);
    const worst = c1.reduce((a, b) => (b.p99_ms > a.p99_ms ? b : a), c1[0]!);
    if (worst) t.push({ target: "sub-100 ms latency, basic prediction, excluding the LM", measured: `p50 ${f(worst.p50_ms, 2)} ms, p99 ${f(worst.p99_ms, 2)} ms (c=1)`, met: worst.p99_ms < 100 });
    const base = res.inprocess?.modes.find((x) => x.mode === "predict_async" && x.concurrency === 1);
    const one = res.dspex.find((r) => r.workers === 1 && r.concurrency === 1);
    if (base && one) t.push({ target: "bus adds well under 1 ms at p50 over in-process", measured: `+${f(one.p50_ms - base.p50_ms, 3)} ms over the hot loop`, met: one.p50_ms - base.p50_ms < 1 });
    // issue 17's targets: each lane's p50 overhead over in-process acall against the NATS floor's p50, and
    // throughput at c=64 against FastAPI with 4 processes, all from this run
    const floor1 = res.floor?.find((x) => x.concurrency === 1);
    for (const [lane, limit] of [["direct", 2], ["durable", 3]] as const) {
      const row = res.dspex.find((r) => r.lane === lane && r.workers === 1 && r.concurrency === 1);
      if (base && floor1 && row) {
        const ratio = (row.p50_ms - base.p50_ms) / floor1.p50_ms;
        t.push({ target: `${lane} lane: p50 overhead over in-process acall ≤ ${limit}× the NATS floor p50`, measured: `+${f(row.p50_ms - base.p50_ms, 3)} ms = ${f(ratio, 2)}× the floor (${f(floor1.p50_ms, 3)} ms)`, met: ratio <= limit });
      }
    }
    const fastapi4 = res.fastapi?.find((x) => x.processes === 4 && x.concurrency === 64);
    const best64 = res.dspex.filter((r) => r.concurrency === 64).reduce<(typeof res.dspex)[number] | undefined>((a, b) => (!a || b.rps > a.rps ? b : a), undefined);
    if (fastapi4 && best64) t.push({ target: "throughput at c=64 ≥ FastAPI with 4 processes", measured: `${f(best64.rps, 0)} req/s (${best64.lane}, ${best64.workers} workers) vs ${f(fastapi4.rps, 0)} = ${f(best64.rps / fastapi4.rps, 2)}×`, met: best64.rps >= fastapi4.rps });
    const idle = res.inprocess?.modes.find((x) => x.mode === "executor_idle");
    if (idle && one) t.push({ target: "  … over the same call made between idle gaps", measured: `+${f(one.p50_ms - idle.p50_ms, 3)} ms`, met: one.p50_ms - idle.p50_ms < 1 });
  }
  if (res.native) {
    const n = res.native as { ts: Record<string, number>; python: Record<string, number> };
    const complex = (n.ts.parse_and_validate_cold_us ?? 0) / 1000 + (n.python.build_cold_us ?? 0) / 1000;
    t.push({ target: "under 5 ms to process a complex signature", measured: `${f(complex, 3)} ms (TS parse+validate cold + Python class build cold)`, met: complex < 5 });
    t.push({ target: "under 50 ms to generate a signature class", measured: `${f((n.python.build_cold_us ?? 0) / 1000, 3)} ms`, met: (n.python.build_cold_us ?? 0) / 1000 < 50 });
  }
  if (res.coldstart) t.push({ target: "under 5 s worker start", measured: `${res.coldstart.median_ms} ms median`, met: res.coldstart.median_ms < 5_000 });
  if (res.cache) t.push({ target: "signature-cache hit rate above 90%", measured: `${(res.cache.hit_rate * 100).toFixed(2)}%`, met: res.cache.hit_rate > 0.9 });
  return t;
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const saved = opt("report");
  if (saved) {
    // Print the table of a saved run again (e.g. after changing the report), without measuring anything.
    process.stdout.write(report(JSON.parse(readFileSync(saved, "utf8")) as Results) + "\n");
    return;
  }
  const started = performance.now();
  const machine = machineFacts();
  log(`machine: ${machine.cores} × ${machine.cpu_model}; load average ${machine.load_avg_at_start.join(" / ")}`);
  if (machine.load_avg_at_start[0]! > machine.cores) {
    log(`warning: the machine is busy (load ${machine.load_avg_at_start[0]} on ${machine.cores} cores): every number will be pessimistic and noisy; run again when it is quieter`);
  }
  const sizes = payloadSizes();
  const results: Results = {
    machine,
    options: { quick: QUICK, duration_ms: DURATION_MS, warmup_ms: WARMUP_MS, concurrency: CONCURRENCY, workers: WORKER_COUNTS, scenarios: [...ONLY] },
    payload: { request_bytes: sizes.request.byteLength, reply_bytes: sizes.reply.byteLength },
    lm: {
      default: "dspex/echo: in-process zero-latency LM inside the serving Python process (workers/dspex_worker/lm/echo.py)",
      batch: `dspex/echo?latency_ms=${LM_LATENCY_MS}: the same LM waiting ${LM_LATENCY_MS} ms per call`,
      floor: "none (no DSPy)",
    },
  };
  if (enabled("native")) results.native = await nativeCosts();
  if (enabled("inprocess")) results.inprocess = await inProcess();
  let nats: EmbeddedNats | undefined;
  let fleet: Fleet | undefined;
  let client: Client | undefined;
  try {
    if (["floor", "dspex", "coldstart", "batch"].some((s) => enabled(s as Scenario))) nats = await startNatsServer();
    if (enabled("floor")) results.floor = await floor(nats!, sizes);
    if (enabled("dspex") || enabled("batch")) {
      if (enabled("dspex")) ({ fleet, client } = await dspexE2e(nats!, results));
      else {
        fleet = await startFleet({ natsUrl: nats!.url, creds: nats!.creds, workers: { general: Math.max(...WORKER_COUNTS) }, workerEnv: WORKER_ENV });
        client = await Client.connect({ servers: nats!.url, creds: nats!.creds.client, lm: ECHO });
      }
    }
    if (enabled("batch")) results.batch = await batch(client, fleet);
    await client?.close();
    client = undefined;
    await fleet?.stop();
    fleet = undefined;
    if (enabled("coldstart")) results.coldstart = await coldStart(nats!);
  } finally {
    await client?.close();
    await fleet?.stop();
    await nats?.stop();
  }
  if (enabled("fastapi")) results.fastapi = await fastapi();
  results.targets = targets(results);
  results.duration_s = r2((performance.now() - started) / 1000);
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(OUT, JSON.stringify(results, null, 2) + "\n");
  process.stdout.write(report(results) + "\n");
  process.stdout.write(`\nWrote ${OUT} (${results.duration_s} s)\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`[bench] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
