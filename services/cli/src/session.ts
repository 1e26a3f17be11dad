/**
 * Where a command runs: the deployment at NATS_URL, or — without it — the embedded fleet (a local
 * nats-server with the bus applied, Python workers, the DLQ loop) that stops with the command. Every
 * command that needs an LM gets the same default: DSPEX_LM when the operator set one, else the real local
 * model hosted by a gpu worker (docs/local-lm.md).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { ValidationError } from "@dspex/protocol";
import { applyBus, busSettings, busSpec, connectNats, type IssuedAuth } from "@dspex/bus";
import { configuredLm, localLmInstalled, startFleet, startNatsServer, type DefaultLm, type Fleet } from "@dspex/embedded";

export interface Session {
  natsUrl: string;
  /**
   * Credentials files by role of the embedded fleet (the CLI runs it, so it holds them all); empty on a
   * deployment, where every connection uses NATS_CREDS (docs/security.md).
   */
  creds: Partial<IssuedAuth["creds"]>;
  /** The embedded fleet, when this command started one. */
  fleet: Fleet | undefined;
  /** What answers calls that name no LM, for the user. */
  lmLabel: string;
  close(): Promise<void>;
}

export interface SessionOptions {
  /** Start workers (false: only a bus, e.g. to list jobs). */
  workers: boolean;
  /** General-pool workers of the embedded fleet. */
  generalWorkers?: number;
  /** gpu-pool workers (embeddings; with the local model its host is the first of them). Default 0 besides that host. */
  gpuWorkers?: number;
  /** The LM profile the embedded workers default to (from --lm), over DSPEX_LM and the local model. */
  lm?: DefaultLm;
  /** Keep JetStream data here between runs (embedded mode). */
  storeDir?: string;
  quiet?: boolean;
  echoWorkerLogs?: boolean;
}

export function say(quiet: boolean | undefined, text: string): void {
  if (!quiet) process.stderr.write(`${text}\n`);
}

/** The embedded fleet's default LM: the given one, DSPEX_LM, else the local model (or a clear error). */
function embeddedLm(lm: DefaultLm | undefined): "local" | "env" | DefaultLm {
  if (lm) return lm;
  if (configuredLm()) return "env";
  if (localLmInstalled()) return "local";
  throw new ValidationError(
    "no LM configured: set DSPEX_LM (and DSPEX_LM_API_BASE for an OpenAI-compatible endpoint), or install the local model with `bash scripts/install-local-lm.sh`",
    { field: "DSPEX_LM" },
  );
}

export async function openSession(options: SessionOptions): Promise<Session> {
  const natsUrl = process.env.NATS_URL;
  if (natsUrl) {
    return { natsUrl, creds: {}, fleet: undefined, lmLabel: options.lm?.model ?? "the workers' default LM (their DSPEX_LM)", close: async () => {} };
  }
  if (!options.workers) {
    // a bus only (listing or reading jobs): the store of earlier embedded runs, the bus applied
    const nats = await startNatsServer({ ...(options.storeDir ? { storeDir: options.storeDir } : {}) });
    const nc = await connectNats({ servers: nats.url, name: "dspex-cli-apply", creds: nats.creds.admin });
    try {
      await applyBus(nc, busSpec(busSettings()));
    } finally {
      await nc.close();
    }
    return { natsUrl: nats.url, creds: nats.creds, fleet: undefined, lmLabel: "none (no workers)", close: () => nats.stop() };
  }
  say(options.quiet, "starting the embedded fleet (nats-server, bus, workers)…");
  const t0 = performance.now();
  const fleet = await startFleet({
    workers: { general: options.generalWorkers ?? 2, ...(options.gpuWorkers ? { gpu: options.gpuWorkers } : {}) },
    lm: embeddedLm(options.lm),
    ...(options.storeDir ? { storeDir: options.storeDir } : {}),
    ...(options.echoWorkerLogs ? { echoWorkerLogs: true } : {}),
  });
  say(options.quiet, `embedded fleet ready in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${fleet.natsUrl}, ${fleet.workers.length} worker(s)`);
  const lmLabel = fleet.lm?.label ?? "the workers' default LM";
  say(options.quiet, `LM: ${lmLabel}`);
  return { natsUrl: fleet.natsUrl, creds: fleet.creds, fleet, lmLabel, close: () => fleet.stop() };
}

/** Where embedded mode keeps jobs between runs (DSPEX_EVAL_STORE, else ~/.dspex/eval-store). */
export function embeddedStoreDir(): string {
  return process.env.DSPEX_EVAL_STORE ?? join(process.env.DSPEX_HOME ?? join(homedir(), ".dspex"), "eval-store");
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One CLI at a time may use the persistent store; returns the unlock, or undefined when it is taken. */
export function lockStore(dir: string): (() => void) | undefined {
  mkdirSync(dir, { recursive: true });
  const lock = join(dir, "dspex-cli.lock");
  if (existsSync(lock)) {
    const pid = Number(readFileSync(lock, "utf8"));
    if (pid && pid !== process.pid && alive(pid)) return undefined;
  }
  writeFileSync(lock, String(process.pid));
  return () => rmSync(lock, { force: true });
}
