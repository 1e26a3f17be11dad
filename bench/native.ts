/**
 * The native engine beside the bus and in-process DSPy (`npm run bench:native`), all against the same LM: the LM
 * double (test/lm-double, an OpenAI-compatible test server, started here as its own process since the LM is the
 * one thing faked), at zero latency and at 100 ms, concurrency 1/16/64, in one run:
 *
 *   native     client.predict(..., {engine: "native"}): the native predictor in this process → HTTP → the LM
 *   bus        client.predict(..., {engine: "python"}): client → JetStream → one worker (real DSPy) → HTTP → the LM
 *   inprocess  dspy.Predict(...).acall in one Python process → HTTP → the LM (bench/py/inprocess_lm.py)
 *
 * The same signature, inputs, prompt and answer everywhere (the worker and the native engine send the LM the same
 * request body: test/integration/engines.test.ts). CPU per call on each side: the client's Node process (run by
 * bench/native-load.ts, apart from this orchestrator; for `native` it is also the engine), nats-server and the
 * worker (Python) for `bus`, the Python process for `inprocess`; the LM double's own CPU is reported apart and
 * belongs to no side. Ratios are of numbers measured in
 * this run. Options: --quick, --duration=ms, --warmup=ms, --concurrency=1,16,64, --latencies=0,100, --out=path.
 * Writes bench/results/native.json and prints a table.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { lmEnv, startFleet, startNatsServer, stopChild, type DefaultLm, type EmbeddedNats, type Fleet } from "@dspex/embedded";
import { ChatAdapter, formatRequest, resolveSignature, workerInputs } from "@dspex/native";
import { machineFacts } from "./lib/machine.js";
import { PROJECT_ROOT, RESULTS_DIR } from "./lib/paths.js";
import { CpuMeter, runPython } from "./lib/proc.js";
import { perCallUs, type LoadResult } from "./lib/stats.js";

const argv = process.argv.slice(2);
const opt = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const QUICK = argv.includes("--quick");
const DURATION_MS = Number(opt("duration") ?? (QUICK ? 1_500 : 3_000));
const WARMUP_MS = Number(opt("warmup") ?? (QUICK ? 500 : 1_000));
const CONCURRENCY = (opt("concurrency") ?? "1,16,64").split(",").map(Number);
const LATENCIES = (opt("latencies") ?? "0,100").split(",").map(Number);
const OUT = opt("out") ?? join(RESULTS_DIR, "native.json");

const SIGNATURE = "review: str -> sentiment: Literal['positive', 'negative', 'neutral'], confidence: float";
const INPUTS = { review: "Battery lasts two days and the screen is bright, but the speaker is weak." };
const MODEL = "openai/test-model";
/** Slots per worker: enough that at 100 ms the LM, not the worker's slot count, bounds the bus. */
const WORKER_CONCURRENCY = Math.max(...CONCURRENCY);

const log = (text: string) => process.stderr.write(`[bench:native] ${text}\n`);
const r2 = (x: number) => Number(x.toFixed(2));
const f = (x: number | undefined, d = 2) => (x === undefined || Number.isNaN(x) ? "–" : x.toFixed(d));

/** The bus on each delivery lane (services/client/src/lanes): direct (core request-reply) and durable (JetStream). */
type BusSide = "bus-direct" | "bus-durable";
type Side = "native" | BusSide | "inprocess";
interface Point extends LoadResult {
  side: Side;
  latency_ms: number;
  /** CPU ms per call by process. */
  cpu_ms_per_req: Record<string, number>;
}

interface LmDoubleProcess {
  url: string;
  control: string;
  child: ChildProcess;
}

/** The LM double as its own process (its CPU then belongs to no side). */
async function startDouble(): Promise<LmDoubleProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", join(PROJECT_ROOT, "test/lm-double/main.ts"), "--port", "0"], {
    cwd: PROJECT_ROOT,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once("line", (l) => resolve(l));
    child.once("exit", (code) => reject(new Error(`the LM double exited (${code}) before listening`)));
  });
  const { url, control } = JSON.parse(line) as { url: string; control: string };
  return { url, control, child };
}

async function setLatency(double: LmDoubleProcess, latencyMs: number): Promise<void> {
  const res = await fetch(double.control, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ reset: true, latencyMs }) });
  if (!res.ok) throw new Error(`LM double control: HTTP ${res.status}`);
}

/** What the native engine spends per call besides the HTTP exchange: format the request, parse the answer. */
function engineCosts(): Record<string, number> {
  const wire = resolveSignature(SIGNATURE);
  const adapter = new ChatAdapter();
  const answer = "[[ ## sentiment ## ]]\npositive\n\n[[ ## confidence ## ]]\n0.75\n\n[[ ## completed ## ]]";
  const capabilities = { responseFormat: false, responseSchema: false };
  return {
    format_us: perCallUs(() => formatRequest(adapter, { signature: wire, inputs: workerInputs(wire, INPUTS), capabilities }), 20_000),
    parse_us: perCallUs(() => adapter.parse(wire, answer), 20_000),
  };
}

async function main(): Promise<void> {
  const started = performance.now();
  const machine = machineFacts();
  log(`machine: ${machine.cores} × ${machine.cpu_model}; load average ${machine.load_avg_at_start.join(" / ")}`);
  const points: Point[] = [];
  const double = await startDouble();
  const profile: DefaultLm = { model: MODEL, api_base: double.url, num_retries: 0 };
  let nats: EmbeddedNats | undefined;
  let fleet: Fleet | undefined;
  const inprocessMeta: Record<string, unknown> = {};
  try {
    nats = await startNatsServer();
    fleet = await startFleet({
      natsUrl: nats.url,
      creds: nats.creds,
      workers: { general: 1 },
      lm: profile,
      bus: { pools: { general: { concurrency: WORKER_CONCURRENCY } } },
      workerEnv: { LITELLM_LOCAL_MODEL_COST_MAP: "true" },
    });
    const worker = fleet.workers[0]!;
    const meter = new CpuMeter(() => ({ "nats-server": [nats!.process.pid!], "worker (python)": [worker.process.pid!], "lm double": [double.child.pid!] }));
    for (const latency of LATENCIES) {
      await setLatency(double, latency);
      for (const side of ["native", "bus-direct", "bus-durable"] as const) {
        for (const r of await loadSide(side, nats, profile, meter)) {
          if (side === "native") {
            delete r.cpu_ms_per_req["nats-server"];
            delete r.cpu_ms_per_req["worker (python)"];
          }
          points.push({ ...r, side, latency_ms: latency });
          log(`  ${side.padEnd(9)} latency ${latency} ms c=${r.concurrency}: ${r.rps} req/s p50 ${r.p50_ms} ms p99 ${r.p99_ms} ms (load ${r.load_avg_1m})`);
        }
      }
      const doubleCpu = new CpuMeter(() => ({ "lm double": [double.child.pid!] }));
      doubleCpu.begin();
      const load = loadavg()[0]!;
      const py = await runPython<{ modes: Array<LoadResult & { cpu_ms_per_req: number }>; import_dspy_s: number }>(
        "inprocess_lm.py",
        [
          "--signature", SIGNATURE,
          "--inputs", JSON.stringify(INPUTS),
          "--api-base", double.url,
          "--model", MODEL,
          "--concurrency", CONCURRENCY.join(","),
          "--duration", String(DURATION_MS / 1000),
          "--warmup", String(WARMUP_MS / 1000),
        ],
        { echo: true },
      );
      const total = py.modes.reduce((a, m) => a + m.requests * (1 + WARMUP_MS / DURATION_MS), 0);
      const lmCpu = doubleCpu.end(Math.round(total))["lm double"] ?? 0;
      inprocessMeta.import_dspy_s = py.import_dspy_s;
      for (const m of py.modes) {
        points.push({ ...m, side: "inprocess", latency_ms: latency, load_avg_1m: r2(load), cpu_ms_per_req: { "python (in-process)": m.cpu_ms_per_req, "lm double": lmCpu } });
      }
    }
  } finally {
    await fleet?.stop();
    await nats?.stop();
    await stopChild(double.child);
  }
  const results = {
    machine,
    options: { quick: QUICK, duration_ms: DURATION_MS, warmup_ms: WARMUP_MS, concurrency: CONCURRENCY, latencies_ms: LATENCIES, worker_concurrency: WORKER_CONCURRENCY },
    program: { signature: SIGNATURE, lm: `${MODEL} at the LM double (its own process), placeholder key, no cache, no LM-client retries` },
    engine_costs_us: engineCosts(),
    inprocess: inprocessMeta,
    points,
    ratios: ratios(points),
    duration_s: r2((performance.now() - started) / 1000),
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(OUT, JSON.stringify(results, null, 2) + "\n");
  process.stdout.write(report(results) + "\n");
  process.stdout.write(`\nWrote ${OUT} (${results.duration_s} s)\n`);
}

/**
 * One side's closed loops at every concurrency, run by bench/native-load.ts in a process of its own (the client,
 * and for `native` the engine), with the other processes' CPU read around each measured run.
 */
async function loadSide(side: "native" | BusSide, nats: EmbeddedNats, profile: DefaultLm, meter: CpuMeter): Promise<Array<Omit<Point, "side" | "latency_ms">>> {
  const child = spawn(
    process.execPath,
    [
      "--conditions=development", "--import", "tsx", join(PROJECT_ROOT, "bench/native-load.ts"),
      `--engine=${side === "native" ? "native" : "python"}`,
      `--lane=${side === "bus-durable" ? "durable" : "direct"}`,
      `--signature=${SIGNATURE}`,
      `--inputs=${JSON.stringify(INPUTS)}`,
      `--model=${MODEL}`,
      // the native engine reads the workers' own profile (DSPEX_LM…), as docs/security.md asks of it
      `--profile-env=${JSON.stringify(lmEnv(profile))}`,
      `--nats-url=${nats.url}`,
      `--creds=${nats.creds.client}`,
      `--concurrency=${CONCURRENCY.join(",")}`,
      `--duration=${DURATION_MS}`,
      `--warmup=${WARMUP_MS}`,
    ],
    { cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "inherit"] },
  );
  const out: Array<Omit<Point, "side" | "latency_ms">> = [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  for await (const line of createInterface({ input: child.stdout! })) {
    if (!line.startsWith("{")) continue;
    const msg = JSON.parse(line) as LoadResult & { phase: string; client_cpu_ms_per_req: number };
    if (msg.phase === "start") meter.begin();
    if (msg.phase === "end") {
      const { phase: _phase, client_cpu_ms_per_req, ...r } = msg;
      const others = meter.end(r.requests);
      delete others["bench (node)"];
      out.push({ ...r, cpu_ms_per_req: { [`client${side === "native" ? " + engine" : ""} (node)`]: client_cpu_ms_per_req, ...others } });
    }
  }
  const code = await exited;
  if (code !== 0 || out.length !== CONCURRENCY.length) throw new Error(`bench/native-load.ts (${side}) failed: exit ${code}`);
  return out;
}

/** CPU of the sides themselves: everything measured but the LM double. */
function sideCpu(p: Point): number {
  return Object.entries(p.cpu_ms_per_req)
    .filter(([k]) => k !== "lm double")
    .reduce((a, [, v]) => a + v, 0);
}

function ratios(points: Point[]) {
  const find = (side: Side, latency: number, c: number) => points.find((p) => p.side === side && p.latency_ms === latency && p.concurrency === c);
  const out: Array<Record<string, number | string>> = [];
  for (const latency of LATENCIES) {
    for (const c of CONCURRENCY) {
      const n = find("native", latency, c);
      const d = find("bus-direct", latency, c);
      const b = find("bus-durable", latency, c);
      const i = find("inprocess", latency, c);
      if (!n || !d || !b || !i) continue;
      out.push({
        latency_ms: latency,
        concurrency: c,
        "p50 direct ÷ native": r2(d.p50_ms / n.p50_ms),
        "p50 durable ÷ native": r2(b.p50_ms / n.p50_ms),
        "p50 inprocess ÷ native": r2(i.p50_ms / n.p50_ms),
        "req/s native ÷ direct": r2(n.rps / d.rps),
        "req/s native ÷ durable": r2(n.rps / b.rps),
        "req/s native ÷ inprocess": r2(n.rps / i.rps),
        "CPU/call direct ÷ native": r2(sideCpu(d) / sideCpu(n)),
        "CPU/call durable ÷ native": r2(sideCpu(b) / sideCpu(n)),
        "CPU/call inprocess ÷ native": r2(sideCpu(i) / sideCpu(n)),
      });
    }
  }
  return out;
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => (i > 0 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(" | ") + " |";
  return [line(headers), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...rows.map(line)].join("\n");
}

function report(res: { machine: ReturnType<typeof machineFacts>; engine_costs_us: Record<string, number>; points: Point[]; ratios: Array<Record<string, number | string>> }): string {
  const m = res.machine;
  const out = [
    `Machine: ${m.cores} × ${m.cpu_model}; Node ${m.node}, Python ${m.python}, dspy ${m.dspy}; load average at start ${m.load_avg_at_start.join(" / ")}`,
    "",
  ];
  const rows = res.points.map((p) => {
    const client = Object.entries(p.cpu_ms_per_req).find(([k]) => k.endsWith("(node)"))?.[1];
    const server = Object.entries(p.cpu_ms_per_req)
      .filter(([k]) => !k.endsWith("(node)") && k !== "lm double")
      .reduce((a, [, v]) => a + v, 0);
    return [
      p.side,
      String(p.latency_ms),
      String(p.concurrency),
      f(p.rps, 0),
      f(p.p50_ms, 3),
      f(p.p99_ms, 3),
      client === undefined ? "–" : f(client, 3),
      server ? f(server, 3) : "–",
      f(sideCpu(p), 3),
      f(p.cpu_ms_per_req["lm double"], 3),
      f(p.load_avg_1m, 1),
    ];
  });
  out.push(table(["side", "LM ms", "conc", "req/s", "p50 ms", "p99 ms", "Node CPU ms/call", "nats+Python CPU ms/call", "side CPU ms/call", "LM double CPU", "load"], rows));
  out.push("");
  out.push(table(Object.keys(res.ratios[0] ?? {}), res.ratios.map((r) => Object.values(r).map((v) => String(v)))));
  out.push("");
  out.push(`native engine, per call without HTTP: format ${f(res.engine_costs_us.format_us, 1)} µs, parse ${f(res.engine_costs_us.parse_us, 1)} µs`);
  out.push("side CPU: the client process (and for native the engine) + nats-server + the worker, or the in-process Python; the LM double's CPU is apart.");
  return out.join("\n");
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`[bench:native] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
