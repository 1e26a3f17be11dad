/**
 * The native predictor: `dspy.Predict` and `dspy.ChainOfThought` in TypeScript — DSPy's messages
 * (adapters/, byte for byte), one OpenAI-compatible chat-completions call (lm/client.ts), DSPy's parsing, and
 * ChatAdapter's fallback to JSONAdapter — for an LM resolved under the same operator policy the workers apply
 * (lm/profiles.ts, lm/policy.ts: the same variables, refusals and keys). No NATS, no Python.
 *
 * `support(call)` says whether the engine can run a call (and why not: a reason the execution router records when
 * it sends the call to Python); `predict(call)` runs it. A parse failure after which DSPy would ask the LM again
 * with JSONAdapter is either done here (the LM's capabilities known) or handed back as a `JsonFallbackNeeded`, for
 * the caller to let a worker make that one JSONAdapter call.
 */
import type { LMConfig, SignatureWire, Usage } from "@dspex/protocol";
import { LMConfigError, LMOutputError, WorkerError } from "@dspex/protocol";
import { traceModule } from "@dspex/observability";
import { ChatAdapter, type Demo, type LMCapabilities } from "../adapters/chat.js";
import { formatRequest, parseCompletions } from "../adapters/call.js";
import { AdapterFormatError, AdapterParseError, type AdapterName } from "../adapters/errors.js";
import { unrenderedType } from "../adapters/annotations.js";
import { workerInputs } from "../adapters/format.js";
import { JSONAdapter } from "../adapters/json.js";
import { moduleSignature } from "../adapters/signature.js";
import { ChatCompletionsClient, OPENAI_PROVIDER, type ChatLimits } from "../lm/client.js";
import { resolveLm, TEST_MODEL_PROVIDER, type ResolvedLM } from "../lm/policy.js";
import { loadPolicy, type LMPolicy } from "../lm/profiles.js";
import { capabilitiesFromEnv } from "./capabilities.js";

/** The module kinds the native predictor runs. */
export const NATIVE_OPS = ["predict", "chain_of_thought"] as const;
export type NativeOp = (typeof NATIVE_OPS)[number];

/** Why a call does not run natively: a low-cardinality code (metrics) and a sentence (spans, logs). */
export interface Unsupported {
  code: string;
  reason: string;
}

export interface NativeCall {
  op: NativeOp;
  /** The request's signature (ChainOfThought's extension is made here). */
  signature: SignatureWire;
  /** The request's inputs (validated again and typed as the worker types them). */
  inputs: Record<string, unknown>;
  demos?: readonly Demo[] | undefined;
  lm: LMConfig | undefined;
  /** This call's choice of who makes ChatAdapter's JSONAdapter call (default: the engine's). */
  jsonFallback?: "native" | "python" | undefined;
}

export interface NativePrediction {
  outputs: Record<string, unknown>;
  /** provider/model that answered. */
  lm: string;
  usage: Usage;
  /** The adapter whose request produced the outputs. */
  adapter: AdapterName;
  /** LM calls made (2 after ChatAdapter's fallback). */
  calls: number;
}

/**
 * ChatAdapter's answer did not parse, and DSPy's next step — one JSONAdapter call — is left to the caller
 * (`jsonFallback: "python"`, or the LM's capabilities unknown here). Not an error a caller sees.
 */
export class JsonFallbackNeeded extends Error {
  constructor(
    readonly parseError: AdapterParseError,
    /** Usage of the ChatAdapter call already made. */
    readonly usage: Usage,
    readonly code: string,
  ) {
    super(`ChatAdapter's answer did not parse; DSPy's JSONAdapter call is left to a worker (${code})`);
  }
}

export interface NativeEngineOptions {
  /** Where the LM profiles and keys are read (default process.env): give the native engine the workers' profiles. */
  env?: NodeJS.ProcessEnv;
  /** The operator's policy itself, instead of reading `env`. */
  policy?: LMPolicy;
  /**
   * What DSPy's model catalog says of each model (`response_format` supported, response schemas supported), which
   * JSONAdapter's request depends on; default DSPEX_NATIVE_LM_CAPABILITIES. A model not listed: JSONAdapter calls
   * go to a worker, whose DSPy knows.
   */
  capabilities?: Record<string, LMCapabilities>;
  /** Who makes ChatAdapter's JSONAdapter fallback call: this engine (when capabilities are known), or a worker. */
  jsonFallback?: "native" | "python";
}

/** DSPy's reasoning-model families (dspy/clients/lm.py `_is_openai_reasoning_model`): other LM settings apply. */
const REASONING_MODEL = /^(?:o[1345](?:-(?:mini|nano|pro))?(?:-\d{4}-\d{2}-\d{2})?|gpt-5(?:\.\d+)*(?!-chat)(?:-.*)?)$/;

function addUsage(a: Usage, b: Usage): Usage {
  return {
    prompt_tokens: a.prompt_tokens + b.prompt_tokens,
    completion_tokens: a.completion_tokens + b.completion_tokens,
    total_tokens: a.total_tokens + b.total_tokens,
  };
}

function outputError(err: AdapterParseError): LMOutputError {
  // the worker's wording for DSPy's AdapterParseError (workers/dspex_worker/lm/errors.py)
  return new LMOutputError(`the LM's output could not be parsed into the signature: ${err.message}`, {
    details: { adapter: "AdapterParseError" },
    cause: err,
  });
}

export class NativeEngine {
  /** undefined: nothing configured in this process, so no call runs natively. */
  readonly policy: LMPolicy | undefined;
  readonly capabilities: Readonly<Record<string, LMCapabilities>>;
  readonly jsonFallback: "native" | "python";
  private readonly env: NodeJS.ProcessEnv;
  private readonly clients = new Map<string, ChatCompletionsClient>();
  private readonly chat = new ChatAdapter();
  private readonly json = new JSONAdapter();

  constructor(options: NativeEngineOptions = {}) {
    this.env = options.env ?? process.env;
    const policy = options.policy ?? loadPolicy(this.env);
    this.policy = policy.profiles.size === 0 && policy.endpoints.size === 0 ? undefined : policy;
    this.capabilities = options.capabilities ?? capabilitiesFromEnv(this.env);
    this.jsonFallback = options.jsonFallback ?? "native";
  }

  /**
   * Whether this engine runs the call, with the LM it resolves to. A request the operator's policy refuses throws
   * the worker's LMConfigError (the same answer either engine gives); anything the engine cannot do is returned.
   */
  support(call: Pick<NativeCall, "op" | "lm"> & { signature?: SignatureWire | undefined }): { lm: ResolvedLM } | Unsupported {
    if (!(NATIVE_OPS as readonly string[]).includes(call.op)) {
      return { code: "module", reason: `module ${call.op}: the native engine runs predict and chain_of_thought` };
    }
    const unrendered = call.signature === undefined ? undefined : unrenderedType(call.signature);
    if (unrendered !== undefined) {
      return { code: "signature_type", reason: `field ${unrendered.field}: ${unrendered.kind} types are rendered by the workers' DSPy adapters` };
    }
    if (this.policy === undefined) {
      return { code: "no_profiles", reason: "no LM profiles in this process (DSPEX_LM, DSPEX_LM_PROFILES, …): the native engine has no LM" };
    }
    const lm = resolveLm(this.policy, call.lm);
    const provider = lm.model.split("/", 1)[0];
    if (provider === TEST_MODEL_PROVIDER) return { code: "test_model", reason: `${lm.model} is a worker's test model` };
    if (provider !== OPENAI_PROVIDER) {
      return { code: "provider", reason: `${lm.model}: the native engine speaks the OpenAI-compatible protocol (openai/ models) only` };
    }
    if (REASONING_MODEL.test(lm.model.slice(provider.length + 1).toLowerCase())) {
      return { code: "reasoning_model", reason: `${lm.model} is an OpenAI reasoning model (DSPy's settings for it are not reproduced)` };
    }
    if (lm.knobs.cache === true) return { code: "lm_cache", reason: "lm.cache: DSPy's LM cache lives on the workers" };
    if (lm.keyEnv !== undefined && !this.env[lm.keyEnv]) {
      return { code: "key_absent", reason: `${lm.owner}'s key is not in this process (keys stay on the workers unless the operator gives them here)` };
    }
    if (lm.knobs.adapter === "json" && this.capabilities[lm.model] === undefined) {
      return { code: "json_capabilities", reason: `JSONAdapter: what DSPy's model catalog says of ${lm.model} is not configured here` };
    }
    return { lm };
  }

  private client(lm: ResolvedLM): ChatCompletionsClient {
    const { adapter: _adapter, ...knobs } = lm.knobs;
    const key = JSON.stringify([lm.model, lm.apiBase, lm.keyEnv, Object.entries(knobs).sort()]);
    let client = this.clients.get(key);
    if (client === undefined) {
      client = new ChatCompletionsClient(lm, this.env);
      this.clients.set(key, client);
      if (this.clients.size > 32) this.clients.delete(this.clients.keys().next().value as string);
    }
    return client;
  }

  /**
   * Runs a Predict or ChainOfThought call: LMConfigError for a refused LM, LMError/DeadlineExceeded from the LM,
   * LMOutputError for an answer that does not parse (as the worker reports DSPy's AdapterParseError), or
   * JsonFallbackNeeded (see the class).
   */
  async predict(call: NativeCall, limits: ChatLimits): Promise<NativePrediction> {
    const supported = this.support(call);
    if (!("lm" in supported)) throw new LMConfigError(`lm: the native engine cannot run this call: ${supported.reason}`, { field: "lm" });
    const client = this.client(supported.lm);
    const signature = moduleSignature(call.signature, call.op);
    const inputs = workerInputs(call.signature, call.inputs);
    const demos = call.demos ?? [];
    const known = this.capabilities[client.model];
    const capabilities = known ?? { responseFormat: false, responseSchema: false };
    const first = supported.lm.knobs.adapter === "json" ? this.json : this.chat;
    const ask = async (adapter: ChatAdapter, streamed: boolean) => {
      const request = formatRequest(adapter, { signature, demos, inputs, capabilities });
      const result = await client.complete({ messages: request.messages, params: request.params }, streamed ? limits : { ...limits, onText: undefined });
      return { result, parsed: () => parseCompletions(adapter, signature, result.texts) };
    };
    // the worker's spans: dspy.Predict, or dspy.ChainOfThought around its dspy.Predict (both with the extended signature)
    const span = { inputs: signature.inputs.map((f) => f.name), outputs: signature.outputs.map((f) => f.name) };
    const traced = <T>(fn: () => Promise<T>): Promise<T> => {
      const predict = () => traceModule({ module: "Predict", ...span, demos: demos.length }, fn);
      return call.op === "chain_of_thought" ? traceModule({ module: "ChainOfThought", ...span }, predict) : predict();
    };
    const jsonFallback = call.jsonFallback ?? this.jsonFallback;
    const run = async (): Promise<NativePrediction> => {
      const one = await ask(first, true);
      try {
        return { outputs: one.parsed()[0]!, lm: client.model, usage: one.result.usage, adapter: first.name, calls: 1 };
      } catch (err) {
        if (!(err instanceof AdapterParseError)) throw err;
        // DSPy falls back neither from JSONAdapter, nor once a stream has shown output (adapter_fallback_scope)
        const shown = limits.onText !== undefined && (one.result.texts[0] ?? "") !== "";
        if (first instanceof JSONAdapter || !first.useJsonAdapterFallback || shown) throw outputError(err);
        if (jsonFallback === "python") throw new JsonFallbackNeeded(err, one.result.usage, "parse_failure");
        if (known === undefined) throw new JsonFallbackNeeded(err, one.result.usage, "json_capabilities");
        // DSPy's ChatAdapter.__call__: the same LM, signature, demos and inputs through JSONAdapter
        const two = await ask(this.json, false);
        try {
          return { outputs: two.parsed()[0]!, lm: client.model, usage: addUsage(one.result.usage, two.result.usage), adapter: "JSONAdapter", calls: 2 };
        } catch (second) {
          if (second instanceof AdapterParseError) throw outputError(second);
          throw second;
        }
      }
    };
    const outcome = await traced(async (): Promise<NativePrediction | JsonFallbackNeeded> => {
      try {
        return await run();
      } catch (err) {
        if (err instanceof JsonFallbackNeeded) return err; // not a failure of the module: its span ends well
        if (err instanceof AdapterFormatError) {
          // the worker's report of the Python exception DSPy's formatting raised (workers/dspex_worker/lm/errors.py)
          throw new WorkerError(`${err.pythonType}: ${err.message}`, { details: { exception: err.pythonType }, cause: err });
        }
        throw err;
      }
    });
    if (outcome instanceof JsonFallbackNeeded) throw outcome;
    return outcome;
  }
}
