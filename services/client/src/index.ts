/**
 * @dspex/client — typed DSPy calls over the bus, from TypeScript: `Client.connect`, `predict`,
 * `chainOfThought`, `execute` of stored programs, the DSPy modules (`client.modules`), tools for ReAct
 * (`client.tools`), streaming (`client.stream`), optimizer jobs (`client.compile`). The call path is a chain
 * of interceptors (tracing, the execution router, idempotency, retries, affinity, breakers, discovery) around the
 * transport, or — for calls the router gives the native predictor — around the native engine.
 */
export { Client, type ClientOptions } from "./client.js";
export { compose, type CallInput, type CallOptions, type CallRequest, type CallResult, type Caller, type FallbackContext, type Interceptor, type Next } from "./call.js";
export { WorkerDiscovery, type WorkerInfo, type DiscoveryOptions } from "./discovery.js";
export { Breakers, Breaker, breakerSettings, lmKey, poolFailure, lmFailure, storeFailure, BREAKER_DEFAULTS, type BreakerKind, type BreakerSettings, type BreakerOptions, type BreakerSnapshot, type StateChange } from "./interceptors/breaker.js";
export { retryPolicy, backoffDelayMs, attemptId, baseRequestId, isRetryableReply, retryAfterMs, RETRY_DEFAULTS, type RetryPolicy } from "./interceptors/retry.js";
export { isReplyError, type DroppedReplies } from "./transport.js";
export { chooseLane, defaultLane, INTERACTIVE_OPS, LANES, type Lane, type LaneChoice } from "./lanes/index.js";
export { DirectLane, type DirectLaneOptions } from "./lanes/direct.js";
export { isAnswered, markAnswered } from "./answered.js";
export { ExecutionRouter, type Decision, type EngineSnapshot, type Route } from "./engine/router.js";
export { DEFAULT_ENGINE, ENGINES, enginePolicy, requestedEngine, type Engine, type EnginePolicy, type EnginePolicyOptions } from "./engine/policy.js";
export { NATIVE_WORKER } from "./engine/lane.js";
export { ProgramStore, type ProgramDefinition, type ProgramState, type ProgramVersion, type CreateProgramOptions } from "./programs.js";
export { SessionTable, sessionKey } from "./sessions.js";
export { Chats, DEFAULT_CHAT_SIGNATURE, type ChatOptions, type ChatResult } from "./chat.js";
export * from "./modules.js";
export { serveTool, ToolRegistry, checkToolArgs, type ToolDefinition, type ToolParameters, type ToolContext, type ToolSpecWire, type ServedTool } from "./tools.js";
export { ProgramStream, type StreamEvent, type StreamOptions } from "./stream.js";
export { Optimizer, CompileJob, type CompileOptions, type Dataset, type OptimizerName, type OptimizeResult } from "./optimize.js";
export { decodeVectors, embedRequest, EMBED_SIGNATURE, type EmbedCallOptions, type Embeddings } from "./embed.js";
export { PackagedProgram, type PackagedProgramOptions } from "./packaged.js";
export { completeRequest, completionsOf, COMPLETE_SIGNATURE, type ChatMessage, type CompleteCallOptions, type Completion } from "./complete.js";
