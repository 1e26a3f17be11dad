/** The operator's LM policy (the workers' rules, read from the same variables) and the native engine's LM client. */
export { DEFAULT_PROFILE, KNOBS, loadPolicy, LMProfilesError, type Endpoint, type Knob, type Knobs, type LMPolicy, type Profile } from "./profiles.js";
export { OPENAI_COMPATIBLE, resolveLm, TEST_MODEL_PROVIDER, type ResolvedLM } from "./policy.js";
export { normalizeUrl, UrlProblem } from "./url.js";
export { ChatCompletionsClient, lmErrorFrom, NO_KEY, OPENAI_ENDPOINT, OPENAI_PROVIDER, type ChatCall, type ChatLimits, type ChatResult } from "./client.js";
