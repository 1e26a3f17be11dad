export { Router, type RouterOptions, type CallOptions, type CallResult } from "./router.js";
export { provisionBus, type ProvisionOptions } from "./provision.js";
export { WorkerDiscovery, WORKER_SERVICE, type WorkerInfo } from "./discovery.js";
export { startFleet, type Fleet, type FleetOptions } from "./embedded/fleet.js";
export { startNatsServer, type EmbeddedNats } from "./embedded/nats-server.js";
export { spawnWorker, type WorkerProcess } from "./embedded/workers.js";
export { startDefaultLm, configuredLm, type DefaultLm } from "./embedded/default-lm.js";
