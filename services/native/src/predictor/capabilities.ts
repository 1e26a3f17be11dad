/**
 * What DSPy's model catalog says of an LM, for JSONAdapter's request (docs/native-adapters.md, "Request
 * parameters"): whether `response_format` is a supported parameter, and whether response schemas are. DSPy reads
 * them from its bundled model map, which the native engine does not carry; the operator states them for the
 * models whose JSONAdapter calls should run natively:
 *
 *   DSPEX_NATIVE_LM_CAPABILITIES='{"openai/gpt-4o-mini": {"response_format": true, "response_schema": true}}'
 *
 * (`python -c "import dspy; lm = dspy.LM('openai/gpt-4o-mini'); print('response_format' in lm.supported_params,
 * lm.supports_response_schema)"` prints DSPy's verdict.) A model not listed sends its JSONAdapter calls to a worker.
 */
import { LMConfigError } from "@dspex/protocol";
import type { LMCapabilities } from "../adapters/chat.js";

export const CAPABILITIES_ENV = "DSPEX_NATIVE_LM_CAPABILITIES";

export function parseCapabilities(text: string, source = CAPABILITIES_ENV): Record<string, LMCapabilities> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new LMConfigError(`${source}: not valid JSON: ${(err as Error).message}`, { field: source });
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new LMConfigError(`${source}: must be a JSON object of provider/model -> {response_format, response_schema}`, { field: source });
  }
  const out: Record<string, LMCapabilities> = {};
  for (const [model, entry] of Object.entries(value as Record<string, unknown>)) {
    const e = entry as Record<string, unknown> | null;
    const ok =
      /^[^/]+\/.+$/.test(model) &&
      e !== null &&
      typeof e === "object" &&
      typeof e.response_format === "boolean" &&
      typeof e.response_schema === "boolean" &&
      Object.keys(e).every((k) => k === "response_format" || k === "response_schema");
    if (!ok) {
      throw new LMConfigError(`${source}: ${model}: must be {"response_format": bool, "response_schema": bool} under a provider/model name`, {
        field: `${source}: ${model}`,
      });
    }
    out[model] = { responseFormat: e!.response_format as boolean, responseSchema: e!.response_schema as boolean };
  }
  return out;
}

export function capabilitiesFromEnv(env: NodeJS.ProcessEnv): Record<string, LMCapabilities> {
  const text = env[CAPABILITIES_ENV];
  return text ? parseCapabilities(text) : {};
}
