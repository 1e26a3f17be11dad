/** Spawns Python worker processes (`python -m dspex_worker`) and waits for their `ready` event. */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import type { Pool } from "@dspex/protocol";
import { eachLine } from "./lines.js";
import { EXEC_WITH_PARENT_DEATH_SIGNAL, PROJECT_ROOT, pythonBin } from "./paths.js";
import { stopChild } from "./nats-server.js";

export interface WorkerEvent {
  event: string;
  worker?: string;
  [key: string]: unknown;
}

export interface WorkerProcess {
  id: string;
  pool: Pool;
  process: ChildProcess;
  /** Resolves on the worker's `ready` event; rejects if it exits or times out first. */
  ready: Promise<void>;
  /** Last lines the worker logged (stderr), for error messages. */
  logs: string[];
  onEvent(listener: (event: WorkerEvent) => void): void;
  /** The latest event of each kind the worker reported (ready, partitions, recycle, …). */
  lastEvents: Map<string, WorkerEvent>;
  /** SIGTERM: the worker drains in-flight requests, then exits. */
  stop(graceMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

export interface SpawnWorkerOptions {
  natsUrl: string;
  /** The worker role's credentials file (given to the worker as NATS_CREDS; nothing else is inherited). */
  creds?: string;
  pool: Pool;
  id: string;
  concurrency?: number;
  env?: Record<string, string | undefined>;
  readyTimeoutMs?: number;
  /** Copy the worker's JSON logs to this process's stderr. */
  echoLogs?: boolean;
}

export function spawnWorker(options: SpawnWorkerOptions): WorkerProcess {
  const args = ["-m", "dspex_worker", "--pool", options.pool, "--nats-url", options.natsUrl, "--worker-id", options.id];
  if (options.concurrency !== undefined) args.push("--concurrency", String(options.concurrency));
  const python = pythonBin();
  const child = spawn(python, ["-c", EXEC_WITH_PARENT_DEATH_SIGNAL, python, ...args], {
    cwd: join(PROJECT_ROOT, "workers"),
    // NATS_CREDS is this worker's own, never the parent's (which may be another role's)
    env: { ...process.env, PYTHONUNBUFFERED: "1", ...options.env, NATS_CREDS: options.creds },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: string[] = [];
  const listeners: Array<(e: WorkerEvent) => void> = [];
  const lastEvents = new Map<string, WorkerEvent>();
  eachLine(child.stderr!, (line) => {
    logs.push(line);
    if (logs.length > 100) logs.shift();
    if (options.echoLogs) process.stderr.write(`[${options.id}] ${line}\n`);
  });
  eachLine(child.stdout!, (line) => {
    let event: WorkerEvent;
    try {
      event = JSON.parse(line) as WorkerEvent;
    } catch {
      return;
    }
    lastEvents.set(event.event, event);
    for (const l of listeners) l(event);
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`worker ${options.id} not ready within ${timeoutMs} ms:\n${logs.slice(-20).join("\n")}`));
    }, timeoutMs);
    listeners.push((e) => {
      if (e.event === "ready") {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`worker ${options.id} exited with code ${code} before ready:\n${logs.slice(-20).join("\n")}`));
    });
  });
  ready.catch(() => {}); // callers await it; avoid an unhandled rejection when they never do
  return {
    id: options.id,
    pool: options.pool,
    process: child,
    ready,
    logs,
    exited,
    onEvent: (l) => listeners.push(l),
    lastEvents,
    stop: (graceMs = 35_000) => stopChild(child, graceMs),
  };
}
