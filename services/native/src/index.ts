/**
 * @dspex/native — what runs in TypeScript without Python: DSPy signatures (the string syntax, a typed
 * builder, JSON Schema, validation and DSPy's coercion of values), DSPy's metrics, bit-identical, DSPy's
 * ChatAdapter and JSONAdapter, the operator's LM policy (the workers' profiles and keys) and the native
 * predictor (Predict and ChainOfThought against an OpenAI-compatible endpoint). No NATS, no Python.
 */
export * from "./signature/index.js";
export * from "./metrics/index.js";
export * from "./adapters/index.js";
export * from "./lm/index.js";
export * from "./predictor/index.js";
