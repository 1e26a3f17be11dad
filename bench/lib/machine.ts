/** Facts about the machine a run happened on, reported with every result. */
import { execFileSync } from "node:child_process";
import { cpus, loadavg, totalmem } from "node:os";
import { natsServerBin } from "@dspex/embedded";
import { PYTHON } from "./proc.js";

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  } catch (err) {
    return `unknown (${String(err).split("\n")[0]})`;
  }
}

export interface MachineFacts {
  cpu_model: string;
  cores: number;
  memory_gib: number;
  kernel: string;
  node: string;
  python: string;
  dspy: string;
  nats_py: string;
  nats_server: string;
  fastapi: string;
  uvicorn: string;
  load_avg_at_start: number[];
  started_at: string;
}

export function machineFacts(): MachineFacts {
  const versions = JSON.parse(
    run(PYTHON, [
      "-c",
      "import json,sys,importlib.metadata as m\n" +
        "def s(p):\n try: return m.version(p)\n except Exception: return 'not installed'\n" +
        "print(json.dumps({'python': sys.version.split()[0], 'dspy': s('dspy'), 'nats_py': s('nats-py'), 'fastapi': s('fastapi'), 'uvicorn': s('uvicorn')}))",
    ]) || "{}",
  ) as Record<string, string>;
  return {
    cpu_model: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memory_gib: Number((totalmem() / 2 ** 30).toFixed(1)),
    kernel: run("uname", ["-r"]),
    node: process.version,
    python: versions.python ?? "unknown",
    dspy: versions.dspy ?? "unknown",
    nats_py: versions.nats_py ?? "unknown",
    nats_server: run(natsServerBin(), ["--version"]),
    fastapi: versions.fastapi ?? "unknown",
    uvicorn: versions.uvicorn ?? "unknown",
    load_avg_at_start: loadavg().map((x) => Number(x.toFixed(2))),
    started_at: new Date().toISOString(),
  };
}
