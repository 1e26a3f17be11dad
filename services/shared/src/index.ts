export * from "./errors.js";
export * from "./wire/index.js";
export * from "./config/pools.js";
export * from "./health.js";
export * from "./metrics/index.js";
export * from "./signature/index.js";
export * from "./adapters/index.js";
export * from "./telemetry/index.js";
