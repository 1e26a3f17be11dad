/**
 * Embedded mode: with no NATS_URL, one call starts a local nats-server (JetStream, temporary store),
 * provisions the stream and pool consumers, spawns the Python workers and waits until they are ready;
 * stop() (and Ctrl-C, and process exit) stops everything it started.
 */
import { connect } from "@nats-io/transport-node";
import { POOLS, poolSettings, type Pool, type PoolSettings } from "@dspex/shared";
import { provisionBus } from "../provision.js";
import { startNatsServer, type EmbeddedNats } from "./nats-server.js";
import { Supervisor } from "./supervisor.js";
import type { WorkerProcess } from "./workers.js";

export interface FleetOptions {
  /** Use this NATS server instead of starting one. */
  natsUrl?: string;
  /** Worker processes per pool (default: the pools' `workers` setting). */
  workers?: Partial<Record<Pool, number>>;
  pools?: Partial<Record<Pool, Partial<PoolSettings>>>;
  /** Extra environment for the workers (e.g. DSPEX_LM). */
  workerEnv?: Record<string, string | undefined>;
  echoWorkerLogs?: boolean;
  /** JetStream store of the embedded server (default: a temporary directory). */
  storeDir?: string;
}

export interface Fleet {
  natsUrl: string;
  nats: EmbeddedNats | undefined;
  /** Live worker processes (the supervisor replaces crashed and recycled ones). */
  workers: WorkerProcess[];
  supervisor: Supervisor;
  /** Spawns one more worker in a pool and waits until it is ready. */
  addWorker(pool: Pool): Promise<WorkerProcess>;
  stop(): Promise<void>;
}

const running = new Set<Fleet>();
let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  const stopAll = async (code: number) => {
    await Promise.allSettled([...running].map((f) => f.stop()));
    process.exit(code);
  };
  process.once("SIGINT", () => void stopAll(130));
  process.once("SIGTERM", () => void stopAll(143));
  process.on("exit", () => {
    // Last resort on a synchronous exit: the kernel's parent-death signal covers a SIGKILL of this process.
    for (const fleet of running) {
      for (const w of fleet.workers) w.process.kill("SIGKILL");
      fleet.nats?.process.kill("SIGKILL");
    }
  });
}

export async function startFleet(options: FleetOptions = {}): Promise<Fleet> {
  installExitHooks();
  const settings = poolSettings(options.pools);
  const nats = options.natsUrl ? undefined : await startNatsServer({ storeDir: options.storeDir });
  const natsUrl = options.natsUrl ?? nats!.url;
  const supervisor = new Supervisor({
    natsUrl,
    settings,
    workerEnv: options.workerEnv,
    echoLogs: options.echoWorkerLogs,
  });
  const fleet: Fleet = {
    natsUrl,
    nats,
    workers: supervisor.workers,
    supervisor,
    addWorker: (pool) => supervisor.add(pool),
    async stop() {
      running.delete(fleet);
      await supervisor.stop();
      await nats?.stop();
    },
  };
  running.add(fleet);
  try {
    const nc = await connect({ servers: natsUrl, name: "dspex-embedded-provision" });
    try {
      await provisionBus(nc, { pools: settings });
    } finally {
      await nc.close();
    }
    const counts = POOLS.flatMap((pool) => Array.from({ length: options.workers?.[pool] ?? settings[pool].workers }, () => pool));
    await Promise.all(counts.map((pool) => fleet.addWorker(pool)));
  } catch (err) {
    await fleet.stop();
    throw err;
  }
  return fleet;
}
