/**
 * @dspex/native — what runs in TypeScript without Python: DSPy signatures (the string syntax, a typed
 * builder, JSON Schema, validation and DSPy's coercion of values) and DSPy's metrics, bit-identical.
 */
export * from "./signature/index.js";
export * from "./metrics/index.js";
export * from "./adapters/index.js";
