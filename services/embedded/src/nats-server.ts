/** Starts a local nats-server with JetStream on a free port and a temporary store, for embedded mode. */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXEC_WITH_PARENT_DEATH_SIGNAL, natsServerBin, pythonBin } from "./paths.js";
import { eachLine } from "./lines.js";

export interface EmbeddedNats {
  url: string;
  port: number;
  storeDir: string;
  process: ChildProcess;
  /** Stops the server (SIGTERM, then SIGKILL after a grace period); removes a temporary store. */
  stop(): Promise<void>;
  /** Restarts on the same port and store (for fault tests). */
  restart(): Promise<void>;
}

export interface EmbeddedNatsOptions {
  /** Keep JetStream data here (default: a new temporary directory, removed on stop). */
  storeDir?: string;
  port?: number;
  startTimeoutMs?: number;
  /** Extra nats-server arguments. */
  args?: string[];
}

function launch(storeDir: string, port: number | undefined, extra: string[], timeoutMs: number) {
  const args = ["-a", "127.0.0.1", "-p", String(port ?? -1), "-js", "-sd", storeDir, ...extra];
  const child = spawn(pythonBin(), ["-c", EXEC_WITH_PARENT_DEATH_SIGNAL, natsServerBin(), ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const log: string[] = [];
  const ready = new Promise<number>((resolve, reject) => {
    let listenPort: number | undefined;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`nats-server did not start within ${timeoutMs} ms:\n${log.join("\n")}`));
    }, timeoutMs);
    eachLine(child.stderr!, (line) => {
      if (log.length < 200) log.push(line);
      const m = /Listening for client connections on [^\s]+:(\d+)/.exec(line);
      if (m) listenPort = Number(m[1]);
      if (/Server is ready/.test(line) && listenPort !== undefined) {
        clearTimeout(timer);
        resolve(listenPort);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited with code ${code} before it was ready:\n${log.join("\n")}`));
    });
  });
  return { child, ready };
}

function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

export async function startNatsServer(options: EmbeddedNatsOptions = {}): Promise<EmbeddedNats> {
  const temporary = options.storeDir === undefined;
  const storeDir = options.storeDir ?? mkdtempSync(join(tmpdir(), "dspex-nats-"));
  const timeout = options.startTimeoutMs ?? 15_000;
  const extra = options.args ?? [];
  let { child, ready } = launch(storeDir, options.port, extra, timeout);
  const port = await ready;
  const server: EmbeddedNats = {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    process: child,
    async stop() {
      await stopChild(child);
      if (temporary) rmSync(storeDir, { recursive: true, force: true });
    },
    async restart() {
      await stopChild(child);
      ({ child, ready } = launch(storeDir, port, extra, timeout));
      server.process = child;
      await ready;
    },
  };
  return server;
}

export { stopChild };

/** A TCP port free on loopback right now (for children that must listen where others were told to look). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}
