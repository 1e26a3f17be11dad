export * from "./codec.js";
export * from "./envelope.js";
export * from "./subjects.js";
