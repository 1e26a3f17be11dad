/** OpenTelemetry for the TypeScript side: tracing and metrics helpers (API only), optional SDK set-up, JSON logs. */
export * from "./tracing.js";
export * from "./genai.js";
export * from "./metrics.js";
export * from "./sdk.js";
export * from "./log.js";
export * from "./health.js";
export * from "./service.js";
