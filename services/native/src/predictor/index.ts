export {
  JsonFallbackNeeded,
  NATIVE_OPS,
  NativeEngine,
  type NativeCall,
  type NativeEngineOptions,
  type NativeOp,
  type NativePrediction,
  type Unsupported,
} from "./engine.js";
export { CAPABILITIES_ENV, capabilitiesFromEnv, parseCapabilities } from "./capabilities.js";
