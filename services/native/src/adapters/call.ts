/**
 * The adapter-level call DSPy makes for one Predict/ChainOfThought prediction (dspy/adapters/base.py
 * `Adapter.__call__`/`acall`, chat_adapter.py `ChatAdapter.__call__`/`acall`, json_adapter.py
 * `JSONAdapter.__call__`/`acall`): format, ask the LM, parse every completion; and ChatAdapter's fallback,
 * which on an AdapterParseError (a completion that does not parse, or an empty one) makes a second LM call
 * formatted by JSONAdapter (with its response_format). Other errors (the LM's, formatting errors) propagate
 * without a fallback, as in DSPy. DSPy also skips the fallback once a stream has shown output to the caller;
 * a streaming caller must not call this after emitting tokens.
 */

import type { SignatureWire } from "@dspex/protocol";
import { ChatAdapter, type Demo, type LMCapabilities, type RequestParams } from "./chat.js";
import { type AdapterName, AdapterParseError } from "./errors.js";
import type { ChatMessage } from "./format.js";
import { JSONAdapter } from "./json.js";
import { adapterSignature } from "./signature.js";

/** One LM request as DSPy's adapter makes it: the messages and the adapter's request parameters. */
export interface LMRequest {
  /** The adapter that formatted the request (the second request of a fallback is JSONAdapter's). */
  adapter: AdapterName;
  messages: ChatMessage[];
  params: RequestParams;
}

/** The LM: one request, its completions' texts (several with `n` > 1); null or "" for an empty answer. */
export type LMCompletions = (request: LMRequest) => Promise<ReadonlyArray<string | null>>;

export interface AdapterCall {
  /** The signature the module predicts with (use moduleSignature for ChainOfThought). */
  signature: SignatureWire;
  demos?: readonly Demo[];
  inputs: Readonly<Record<string, unknown>>;
  capabilities: LMCapabilities;
}

export interface AdapterCallResult {
  /** The parsed outputs, one per completion. */
  outputs: Array<Record<string, unknown>>;
  /** The adapter whose request produced them. */
  adapter: AdapterName;
  /** The ChatAdapter failure that made DSPy retry with JSONAdapter (a second LM call), if it did. */
  fallbackFrom?: AdapterParseError;
}

/** The request an adapter makes for a call (pure: no LM involved). */
export function formatRequest(adapter: ChatAdapter, call: Omit<AdapterCall, "capabilities"> & { capabilities: LMCapabilities }): LMRequest {
  return {
    adapter: adapter.name,
    messages: adapter.format(call.signature, call.demos ?? [], call.inputs),
    params: adapter.requestParams(call.signature, call.capabilities),
  };
}

/**
 * Parses the completions of one LM request as DSPy's `_call_postprocess` does: an empty or null completion is
 * an AdapterParseError ("The LM returned an empty or null response."), others go through `adapter.parse`.
 */
export function parseCompletions(
  adapter: ChatAdapter,
  signature: SignatureWire,
  completions: ReadonlyArray<string | null>,
): Array<Record<string, unknown>> {
  return completions.map((text) => {
    if (text === null || text === "") {
      throw new AdapterParseError({
        adapterName: adapter.name,
        outputNames: adapterSignature(signature).outputs.map((f) => f.name),
        lmResponse: text === null ? "None" : "",
        message: "The LM returned an empty or null response.",
      });
    }
    return adapter.parse(signature, text);
  });
}

/** `adapter(lm, lm_kwargs, signature, demos, inputs)`, including ChatAdapter's fallback to JSONAdapter. */
export async function callAdapter(adapter: ChatAdapter, lm: LMCompletions, call: AdapterCall): Promise<AdapterCallResult> {
  const once = async (a: ChatAdapter) => parseCompletions(a, call.signature, await lm(formatRequest(a, call)));
  try {
    return { outputs: await once(adapter), adapter: adapter.name };
  } catch (err) {
    if (!(err instanceof AdapterParseError) || adapter instanceof JSONAdapter || !adapter.useJsonAdapterFallback) throw err;
    return { outputs: await once(new JSONAdapter()), adapter: "JSONAdapter", fallbackFrom: err };
  }
}
