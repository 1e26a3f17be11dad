/**
 * Starts a local nats-server with JetStream on a free port and a temporary store, for embedded mode. It
 * never listens without authentication, even on loopback: its identities are issued at start (in the
 * store's `auth/` directory, mode 0700, files 0600; kept with a persistent store so its account, and with it
 * the streams, survive a restart) and `creds` names each role's credentials file.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { issueAuth, partitionCounts, type IssuedAuth } from "@dspex/bus";
import type { Pool } from "@dspex/protocol";
import { EXEC_WITH_PARENT_DEATH_SIGNAL, natsServerBin, pythonBin } from "./paths.js";
import { eachLine } from "./lines.js";

export interface EmbeddedNats {
  url: string;
  port: number;
  storeDir: string;
  process: ChildProcess;
  /** Each role's credentials file (docs/security.md). */
  creds: IssuedAuth["creds"];
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
  /** The pools' session partitions (workers' permissions name their pool's consumers); default the settings'. */
  partitions?: Record<Pool, number>;
  /** TLS on the client port (PEM files, e.g. from scripts/dev-certs.sh); clients then need the CA (NATS_CA). */
  tls?: { cert: string; key: string };
  /**
   * `false` starts the server without authentication. Only the benchmark that measures what authentication
   * costs uses it, as its baseline; nothing in the product does (docs/security.md).
   */
  auth?: boolean;
}

/** The partition counts of the bus settings in effect (environment included). */

/** Starts one nats-server process; `ready` resolves with its client port once it says it is ready. */
export function launch(
  storeDir: string,
  authConf: string | undefined,
  port: number | undefined,
  extra: string[],
  timeoutMs: number,
  onLine?: (line: string) => void,
) {
  const args = [...(authConf ? ["-c", authConf] : []), "-a", "127.0.0.1", "-p", String(port ?? -1), "-js", "-sd", storeDir, ...extra];
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
      // DSPEX_NATS_LOG=1: the server's log on this process's stderr (e.g. to see a permissions violation)
      if (process.env.DSPEX_NATS_LOG === "1") process.stderr.write(`[nats-server] ${line}\n`);
      onLine?.(line);
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
  const extra = [...(options.tls ? ["--tls", "--tlscert", options.tls.cert, "--tlskey", options.tls.key] : []), ...(options.args ?? [])];
  const auth =
    options.auth === false ? undefined : await issueAuth({ dir: join(storeDir, "auth"), partitions: options.partitions ?? partitionCounts() });
  let { child, ready } = launch(storeDir, auth?.serverConfigPath, options.port, extra, timeout);
  const port = await ready;
  const server: EmbeddedNats = {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    process: child,
    creds: auth?.creds ?? ({} as IssuedAuth["creds"]),
    async stop() {
      await stopChild(child);
      if (temporary) rmSync(storeDir, { recursive: true, force: true });
    },
    async restart() {
      await stopChild(child);
      ({ child, ready } = launch(storeDir, auth?.serverConfigPath, port, extra, timeout));
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
