/** Child processes of the benchmark: Python helpers printing one JSON line, CPU time read from /proc. */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { pythonBin } from "@dspex/embedded";
import { PROJECT_ROOT } from "./paths.js";

export const PYTHON = pythonBin();
export const BENCH_PY = join(PROJECT_ROOT, "bench/py");

/** Environment of the DSPex workers a benchmark starts: they serve the test-only `dspex/echo` LM, which a
 * worker refuses unless started with --allow-test-models (this variable), and litellm needs no network. */
export const WORKER_ENV = { LITELLM_LOCAL_MODEL_COST_MAP: "true", DSPEX_ALLOW_TEST_MODELS: "1" };

const env = () => ({
  ...process.env,
  PYTHONUNBUFFERED: "1",
  LITELLM_LOCAL_MODEL_COST_MAP: "true",
  PYTHONWARNINGS: "ignore",
});

/** Runs `bench/py/<script>` to completion and returns the JSON object on its last stdout line. */
export async function runPython<T>(script: string, args: string[], options: { echo?: boolean } = {}): Promise<T> {
  const child = spawn(PYTHON, [join(BENCH_PY, script), ...args], { cwd: BENCH_PY, env: env(), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => {
    err += d.toString();
    if (options.echo) process.stderr.write(`    [${script}] ${d.toString()}`);
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  const last = out.trim().split("\n").pop() ?? "";
  if (code !== 0 || !last.startsWith("{")) throw new Error(`${script} failed (exit ${code}):\n${err.slice(-3000)}`);
  return JSON.parse(last) as T;
}

/** Starts a long-running Python helper and resolves once it prints a JSON line with `ready`. */
export async function startPython(script: string, args: string[], extraEnv: Record<string, string | undefined> = {}): Promise<ChildProcess> {
  const child = spawn(PYTHON, [join(BENCH_PY, script), ...args], { cwd: BENCH_PY, env: { ...env(), ...extraEnv }, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes('"ready"')) resolve();
    });
    child.once("exit", (code) => reject(new Error(`${script} exited (${code}) before ready:\n${err.slice(-2000)}`)));
  });
  return child;
}

const TICKS = 100; // USER_HZ: /proc reports CPU time in 1/100 s on Linux

/** User + system CPU seconds of a process (0 once it is gone). */
export function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS; // utime, stime (fields 14, 15)
  } catch {
    return 0;
  }
}

/** The pids of a process's direct children (uvicorn's worker processes). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // gone
  }
  return out;
}

/** CPU seconds of named processes, for "CPU ms per request" of each component. */
export class CpuMeter {
  private start = new Map<string, number>();
  constructor(private readonly pids: () => Record<string, number[]>) {}
  begin(): void {
    this.start = new Map(Object.entries(this.pids()).map(([name, ps]) => [name, ps.reduce((a, p) => a + cpuSeconds(p), 0)]));
    this.start.set("bench (node)", process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6);
  }
  end(requests: number): Record<string, number> {
    const now = Object.fromEntries(Object.entries(this.pids()).map(([name, ps]) => [name, ps.reduce((a, p) => a + cpuSeconds(p), 0)]));
    now["bench (node)"] = process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6;
    const out: Record<string, number> = {};
    for (const [name, value] of Object.entries(now)) {
      out[name] = requests ? Number((((value - (this.start.get(name) ?? 0)) * 1000) / requests).toFixed(3)) : 0;
    }
    return out;
  }
}
