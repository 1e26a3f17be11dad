/**
 * One raw LM call through the fleet (op `complete`): chat messages in, completions out, with the same LM
 * profiles, limits, breakers, deadlines and tracing as a Predict — for a caller that needs a completion without
 * a signature. The request is an ordinary envelope with the signature `messages: list[dict[str, str]] ->
 * completions`; `module` carries only the safe knobs (CompleteOptions: temperature, max_tokens, n, stop).
 */
import { ValidationError, type CompleteOptions } from "@dspex/protocol";
import type { CallOptions, CallRequest, CallResult } from "./call.js";

export const COMPLETE_SIGNATURE = "messages: list[dict[str, str]] -> completions";
const ROLES = new Set(["system", "user", "assistant"]);

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface Completion {
  completions: string[];
  lm: string;
  usage: CallResult<unknown>["usage"];
  worker: string;
}

export interface CompleteCallOptions extends CallOptions {
  module?: CompleteOptions;
}

/** The request a `client.complete` sends; a malformed message is a ValidationError naming it, before publish. */
export function completeRequest(messages: readonly ChatMessage[], module?: CompleteOptions): CallRequest {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new ValidationError("inputs.messages: a non-empty list of {role, content} is required", { field: "inputs.messages" });
  }
  messages.forEach((m, i) => {
    if (!ROLES.has(m?.role)) throw new ValidationError(`inputs.messages[${i}].role: ${JSON.stringify(m?.role)} is not one of assistant, system, user`, { field: `inputs.messages[${i}].role` });
    if (typeof m.content !== "string") throw new ValidationError(`inputs.messages[${i}].content: must be a string`, { field: `inputs.messages[${i}].content` });
  });
  const plain = messages.map((m) => ({ role: m.role, content: m.content }));
  return { op: "complete", signature: COMPLETE_SIGNATURE, inputs: { messages: plain }, rawOutputs: true, ...(module ? { module: { ...module } } : {}) };
}

/** The reply's completions, checked. */
export function completionsOf(outputs: Record<string, unknown>): string[] {
  const { completions } = outputs;
  if (!Array.isArray(completions) || !completions.every((c) => typeof c === "string")) {
    throw new ValidationError("outputs.completions: not a list of strings", { field: "outputs.completions" });
  }
  return completions;
}
