/**
 * Embedded mode: one call starts a local nats-server (JetStream, temporary or given store), applies the bus
 * description (the fleet is its provisioner here, as `dspex bus apply` is on a deployment), starts the
 * workers — first a `gpu` worker hosting the local model when the fleet's default LM is `local`, so the
 * others start with it as their default — and the DLQ service loop; stop() (and Ctrl-C, and process exit)
 * stops everything it started. Only the CLI, tests and benchmarks use this package.
 */
import { POOLS, type Pool } from "@dspex/protocol";
import { applyBus, busSettings, busSpec, connectNats, type BusSettings, type BusSettingsOverrides, type IssuedAuth } from "@dspex/bus";
import { DlqListener, type DlqListenerOptions } from "@dspex/dlq";
import { configuredLm, hostedLm, lmEnv, type DefaultLm, type HostedLm } from "./default-lm.js";
import { freePort, startNatsServer, type EmbeddedNats } from "./nats-server.js";
import { Supervisor } from "./supervisor.js";
import type { WorkerProcess } from "./workers.js";

export interface FleetOptions {
  /** Use this NATS server instead of starting one (with `creds`). */
  natsUrl?: string;
  /**
   * Credentials files by role for a server given by `natsUrl` (the fleet's own server issues its own):
   * `admin` applies the bus, `dlq` runs the DLQ loop, `worker-<pool>` for each pool's workers.
   */
  creds?: Partial<IssuedAuth["creds"]>;
  /** Worker processes per pool (default: the pools' `workers` setting). */
  workers?: Partial<Record<Pool, number>>;
  /** The deployment's bus settings (pools, replicas, limits) applied before the workers start. */
  bus?: BusSettingsOverrides;
  /**
   * The workers' default LM profile: `local` hosts the local model on a gpu worker (started first) and makes it
   * every worker's default; a profile given here becomes every worker's default (DSPEX_LM…); `env` (default)
   * leaves it to the environment (DSPEX_LM…, DSPEX_LM_PROFILES…) and to `workerEnv`.
   */
  lm?: "local" | "env" | DefaultLm;
  /** Extra environment for the workers. */
  workerEnv?: Record<string, string | undefined>;
  echoWorkerLogs?: boolean;
  /** JetStream store of the embedded server (default: a temporary directory). */
  storeDir?: string;
  /** Run the DLQ service loop in this process (default true), with these options. */
  dlq?: boolean | DlqListenerOptions;
}

export interface Fleet {
  natsUrl: string;
  /** Each role's credentials file (docs/security.md): `client` for callers, `admin` for operators' tools. */
  creds: Partial<IssuedAuth["creds"]>;
  nats: EmbeddedNats | undefined;
  settings: BusSettings;
  /** Live worker processes (the supervisor replaces crashed and recycled ones). */
  workers: WorkerProcess[];
  supervisor: Supervisor;
  /** The workers' default LM when the fleet set one (the hosted local model, or the given config). */
  lm: HostedLm | undefined;
  dlq: DlqListener | undefined;
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
    // last resort on a synchronous exit: the kernel's parent-death signal covers a SIGKILL of this process
    for (const fleet of running) {
      for (const w of fleet.workers) w.process.kill("SIGKILL");
      fleet.nats?.process.kill("SIGKILL");
    }
  });
}

export async function startFleet(options: FleetOptions = {}): Promise<Fleet> {
  installExitHooks();
  const settings = busSettings(options.bus);
  const partitions = Object.fromEntries(POOLS.map((p) => [p, settings.pools[p].partitions])) as Record<Pool, number>;
  const nats = options.natsUrl
    ? undefined
    : await startNatsServer({ partitions, ...(options.storeDir ? { storeDir: options.storeDir } : {}) });
  const natsUrl = options.natsUrl ?? nats!.url;
  const creds = nats?.creds ?? options.creds ?? {};
  const workerEnv: Record<string, string | undefined> = { ...options.workerEnv };
  const supervisor = new Supervisor({ natsUrl, creds, settings: settings.pools, workerEnv, echoLogs: options.echoWorkerLogs });
  let dlq: DlqListener | undefined;
  let dlqConnection: Awaited<ReturnType<typeof connectNats>> | undefined;
  const fleet: Fleet = {
    natsUrl,
    creds,
    nats,
    settings,
    workers: supervisor.workers,
    supervisor,
    lm: undefined,
    dlq: undefined,
    addWorker: (pool) => supervisor.add(pool),
    async stop() {
      running.delete(fleet);
      await dlq?.stop();
      await dlqConnection?.close();
      await supervisor.stop();
      await nats?.stop();
    },
  };
  running.add(fleet);
  try {
    const nc = await connectNats({ servers: natsUrl, name: "dspex-embedded-provision", creds: creds.admin });
    try {
      await applyBus(nc, busSpec(settings));
    } finally {
      await nc.close();
    }
    if (options.dlq !== false) {
      dlqConnection = await connectNats({ servers: natsUrl, name: "dspex-dlq", creds: creds.dlq });
      dlq = fleet.dlq = await DlqListener.start(dlqConnection, typeof options.dlq === "object" ? options.dlq : {});
    }
    const counts = Object.fromEntries(POOLS.map((p) => [p, options.workers?.[p] ?? settings.pools[p].workers])) as Record<Pool, number>;
    const lm = options.lm ?? "env";
    if (lm === "local") {
      // the model first: every other worker starts with it as its default LM
      // a fixed port: a restarted host serves where the other workers were told to look
      const port = await freePort();
      const host = await supervisor.add("gpu", { pool: "gpu", crashes: 0 }, { DSPEX_HOST_LOCAL_LM: "1", DSPEX_LOCAL_LM_PORT: String(port) });
      fleet.lm = hostedLm([host]);
      if (!fleet.lm) throw new Error(`gpu worker ${host.id} did not report a hosted local model`);
      Object.assign(workerEnv, lmEnv(fleet.lm.lm));
      counts.gpu = Math.max(0, counts.gpu - 1);
    } else if (lm !== "env") {
      Object.assign(workerEnv, lmEnv(lm));
      fleet.lm = { lm, label: `${lm.model}${lm.api_base ? ` at ${lm.api_base}` : ""}` };
    } else {
      const configured = configuredLm({ ...process.env, ...workerEnv });
      if (configured) fleet.lm = { lm: configured, label: `${configured.model}${configured.api_base ? ` at ${configured.api_base}` : ""}` };
    }
    const pools = POOLS.flatMap((pool) => Array.from({ length: counts[pool] }, () => pool));
    await Promise.all(pools.map((pool) => fleet.addWorker(pool)));
  } catch (err) {
    await fleet.stop();
    throw err;
  }
  return fleet;
}
