/**
 * @dspex/embedded — the development fleet on one machine: a local nats-server, the bus applied, Python
 * workers under a supervisor (restarts, recycling), the local model as the default LM, the DLQ service loop.
 * Only the CLI, tests and benchmarks depend on it.
 */
export { startFleet, type Fleet, type FleetOptions } from "./fleet.js";
export { startNatsServer, stopChild, freePort, type EmbeddedNats, type EmbeddedNatsOptions } from "./nats-server.js";
export { startNatsCluster, type ClusterNode, type ClusterOptions, type EmbeddedCluster } from "./cluster.js";
export { natsServerBin, pythonBin, PROJECT_ROOT, EXEC_WITH_PARENT_DEATH_SIGNAL } from "./paths.js";
export { spawnWorker, type WorkerProcess, type WorkerEvent, type SpawnWorkerOptions } from "./workers.js";
export { Supervisor, type SupervisorOptions } from "./supervisor.js";
export { configuredLm, hostedLm, localLmInstalled, lmEnv, type DefaultLm, type HostedLm } from "./default-lm.js";
