/**
 * A real PostgreSQL server for tests, from Debian's packages (scripts/install-test-services.sh): initdb into a
 * temporary directory, the server on a free loopback port with a password, run as user `postgres` when the
 * tests run as root (PostgreSQL refuses root). `stop()` and `start()` take it down and bring it back on the same
 * port and data (the outage test); `close()` removes everything.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { chownSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface PostgresServer {
  url: string;
  port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  close(): Promise<void>;
}

function binDir(): string {
  const versions = readdirSync("/usr/lib/postgresql", { withFileTypes: true })
    .filter((d) => d.isDirectory() && /^\d+$/.test(d.name))
    .map((d) => Number(d.name))
    .sort((a, b) => b - a);
  if (versions.length === 0) throw new Error("PostgreSQL is not installed: run scripts/install-test-services.sh");
  return `/usr/lib/postgresql/${versions[0]}/bin`;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function account(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  return { uid: Number(execFileSync("id", ["-u", "postgres"]).toString().trim()), gid: Number(execFileSync("id", ["-g", "postgres"]).toString().trim()) };
}

export async function startPostgres(): Promise<PostgresServer> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), "dspex-pg-"));
  const user = account();
  if (user) chownSync(dir, user.uid, user.gid);
  const password = `pw-${process.pid}-${Date.now()}`;
  writeFileSync(join(dir, "pwfile"), password, { mode: 0o600 });
  if (user) chownSync(join(dir, "pwfile"), user.uid, user.gid);
  const data = join(dir, "data");
  execFileSync(join(bin, "initdb"), ["-D", data, "-U", "dspex", "--auth=scram-sha-256", `--pwfile=${join(dir, "pwfile")}`, "-E", "UTF8", "--no-sync"], {
    stdio: "ignore",
    ...(user ?? {}),
  });
  const port = await freePort();
  let child: ChildProcess | undefined;

  const start = async () => {
    if (child && child.exitCode === null) return;
    const proc = spawn(
      join(bin, "postgres"),
      ["-D", data, "-p", String(port), "-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=40"],
      { stdio: ["ignore", "ignore", "pipe"], ...(user ?? {}) },
    );
    child = proc;
    await new Promise<void>((resolve, reject) => {
      let log = "";
      const timer = setTimeout(() => reject(new Error(`postgres did not start in 30 s:\n${log}`)), 30_000);
      proc.stderr!.on("data", (chunk: Buffer) => {
        log += chunk.toString();
        if (log.includes("ready to accept connections")) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`postgres exited with ${code}:\n${log}`));
      });
    });
    proc.stderr!.resume();
  };

  const stop = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill("SIGINT"); // fast shutdown: clients are disconnected
    await exited;
  };

  await start();
  return {
    url: `postgres://dspex:${password}@127.0.0.1:${port}/postgres`,
    port,
    start,
    stop,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
