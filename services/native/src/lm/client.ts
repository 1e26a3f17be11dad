/**
 * The native engine's LM client: OpenAI-compatible chat completions with the official `openai` package, for an
 * LM resolved under the operator's policy (policy.ts). What it sends is what DSPy 3.4.1's native engine sends for
 * the same call (`model` without its provider prefix, the messages, `temperature` and `max_completion_tokens`
 * when the profile or request set them, the adapter's `response_format`), and its failures are the worker's typed
 * errors (`LMError` with DSPy's verdict on retrying, `DeadlineExceeded` when the deadline passes first).
 *
 * Keys (docs/security.md): the client gets the value of the one variable its profile or allow-list entry names,
 * or the placeholder `dspex-no-key` — never nothing, because the `openai` package then reads OPENAI_API_KEY (and
 * OPENAI_BASE_URL, OPENAI_ADMIN_KEY, OPENAI_ORG_ID, OPENAI_PROJECT_ID, OPENAI_CUSTOM_HEADERS) from the
 * environment. Everything it would read is given explicitly, and its fetch is wrapped so that a request goes only
 * under the profile's endpoint, with only the package's own headers and this client's Authorization.
 */
import OpenAI from "openai";
import { DeadlineExceeded, LMConfigError, LMError, type Usage } from "@dspex/protocol";
import { traceLmCall } from "@dspex/observability";
import type { ChatMessage } from "../adapters/format.js";
import type { RequestParams } from "../adapters/chat.js";
import type { ResolvedLM } from "./policy.js";

/** Sent as the key where none is configured (the worker's placeholder, workers/dspex_worker/lm/factory.py). */
export const NO_KEY = "dspex-no-key";
/** The provider whose protocol the native engine speaks, and its own endpoint (a profile without api_base). */
export const OPENAI_PROVIDER = "openai";
export const OPENAI_ENDPOINT = "https://api.openai.com/v1";
/** What DSPy calls the OpenAI chat-completions dialect in its errors' `provider`. */
const DIALECT = "openai-chat";

export interface ChatCall {
  messages: readonly ChatMessage[];
  params: RequestParams;
  /** Completions asked for (DSPy sends `n` only when it is not 1). */
  n?: number;
}

export interface ChatLimits {
  /** Absolute deadline (epoch ms): past it the call fails with DeadlineExceeded. */
  deadline: number;
  signal?: AbortSignal | undefined;
  /** Streams the call and hands over each piece of the first completion's text as it arrives. */
  onText?: ((delta: string) => void) | undefined;
  /** For messages: the request the call belongs to. */
  requestId?: string | undefined;
}

export interface ChatResult {
  /** The completions' texts in choice order (null: the provider sent no content). */
  texts: Array<string | null>;
  usage: Usage;
  responseModel?: string | undefined;
  responseId?: string | undefined;
  finishReasons: string[];
}

/** The Authorization the client sends, read once from the environment (a key is rotated by restarting). */
function authorization(lm: ResolvedLM, env: NodeJS.ProcessEnv): string {
  if (lm.keyEnv === undefined) return `Bearer ${NO_KEY}`;
  const value = env[lm.keyEnv];
  if (!value) {
    throw new LMConfigError(`${lm.keyField}: ${lm.owner}'s key is not configured in this process (the native engine reads it here)`, {
      field: lm.keyField,
    });
  }
  return `Bearer ${value}`;
}

/** The openai package's own headers; anything else (OPENAI_CUSTOM_HEADERS from the environment) is dropped. */
function packageHeader(name: string): boolean {
  return name === "accept" || name === "content-type" || name === "user-agent" || name.startsWith("x-stainless-");
}

/** fetch, but only under `endpoint`, with the package's headers and this client's Authorization alone. */
function guardedFetch(endpoint: string, auth: string): typeof fetch {
  const prefix = `${endpoint}/`;
  return (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (!url.startsWith(prefix)) {
      return Promise.reject(new LMConfigError(`lm: the native engine sends requests only under its profile's endpoint ${endpoint}`, { field: "lm" }));
    }
    const headers = new Headers();
    for (const [name, value] of new Headers(init?.headers)) if (packageHeader(name)) headers.set(name, value);
    headers.set("authorization", auth);
    return fetch(url, { ...init, headers });
  };
}

function retryAfter(headers: Headers | undefined): number | undefined {
  const raw = headers?.get("retry-after");
  if (!raw) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - Date.now()) / 1000);
}

/** DSPy's classes of LM errors (dspy/utils/exceptions.py) and whether DSPy calls them retryable. */
function dspyClass(status: number): { name: string; retryable: boolean } {
  if (status === 429) return { name: "LMRateLimitError", retryable: true };
  if (status === 408) return { name: "LMTimeoutError", retryable: true };
  if (status >= 500) return { name: "LMServerError", retryable: true };
  if (status === 401 || status === 403) return { name: "LMAuthError", retryable: false };
  if (status === 402) return { name: "LMBillingError", retryable: false };
  return { name: "LMInvalidRequestError", retryable: false };
}

/** A failure of the `openai` package as the worker reports DSPy's: `LMError` with DSPy's class and verdict. */
export function lmErrorFrom(err: unknown, model: string): Error {
  if (err instanceof DeadlineExceeded || err instanceof LMConfigError) return err;
  if (err instanceof OpenAI.APIConnectionTimeoutError) {
    return new LMError(`[${model}] ${err.message}`, { retryable: true, details: { dspy_error: "LMTimeoutError", provider: DIALECT, model }, cause: err });
  }
  if (err instanceof OpenAI.APIConnectionError) {
    return new LMError(`[${model}] ${err.message}`, { retryable: true, details: { dspy_error: "LMTransportError", provider: DIALECT, model }, cause: err });
  }
  if (err instanceof OpenAI.APIError && err.status !== undefined) {
    const kind = dspyClass(err.status);
    const body = err.error as { message?: unknown } | undefined;
    const text = typeof body?.message === "string" && body.message ? body.message : err.message;
    const details: Record<string, unknown> = { dspy_error: kind.name, status: err.status, provider: DIALECT, model };
    const after = retryAfter(err.headers);
    if (after !== undefined) details.retry_after = after;
    return new LMError(`[${model}] ${text}`, { retryable: kind.retryable, details, cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}

/** The native engine's client for one resolved LM (built once per configuration, like the worker's). */
export class ChatCompletionsClient {
  /** provider/model, as the reply's `lm` names it. */
  readonly model: string;
  /** The model as the provider knows it (without the provider prefix). */
  readonly providerModel: string;
  readonly endpoint: string;
  private readonly openai: OpenAI;

  constructor(
    readonly lm: ResolvedLM,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    const slash = lm.model.indexOf("/");
    if (slash <= 0 || lm.model.slice(0, slash) !== OPENAI_PROVIDER) {
      throw new LMConfigError(`lm.model: the native engine speaks the OpenAI-compatible protocol only ('${lm.model}' is not an openai/ model)`, {
        field: "lm.model",
      });
    }
    this.model = lm.model;
    this.providerModel = lm.model.slice(slash + 1);
    this.endpoint = lm.apiBase ?? OPENAI_ENDPOINT;
    const auth = authorization(lm, env);
    this.openai = new OpenAI({
      // every option the package would otherwise read from the environment, given explicitly
      apiKey: auth.slice("Bearer ".length),
      adminAPIKey: null,
      organization: null,
      project: null,
      webhookSecret: null,
      baseURL: this.endpoint,
      defaultHeaders: {},
      logLevel: "off",
      // the LM client's own retries: the profile's or request's num_retries (default 0: the caller's policy counts)
      maxRetries: lm.knobs.num_retries ?? 0,
      fetch: guardedFetch(this.endpoint, auth),
    });
  }

  /** The request body DSPy's native engine sends for this call. */
  body(call: ChatCall): Record<string, unknown> {
    const body: Record<string, unknown> = { model: this.providerModel, messages: call.messages };
    if (this.lm.knobs.temperature !== undefined) body.temperature = this.lm.knobs.temperature;
    if (this.lm.knobs.max_tokens !== undefined) body.max_completion_tokens = this.lm.knobs.max_tokens;
    if (call.n !== undefined && call.n !== 1) body.n = call.n;
    if (call.params.response_format) body.response_format = call.params.response_format;
    return body;
  }

  /** One chat-completions call within the deadline, traced as `chat <model>`. */
  complete(call: ChatCall, limits: ChatLimits): Promise<ChatResult> {
    return traceLmCall(
      {
        model: this.model,
        endpoint: this.endpoint,
        ...(this.lm.knobs.temperature !== undefined ? { temperature: this.lm.knobs.temperature } : {}),
        ...(this.lm.knobs.max_tokens !== undefined ? { maxTokens: this.lm.knobs.max_tokens } : {}),
        ...(call.n !== undefined ? { n: call.n } : {}),
        messages: call.messages,
      },
      async () => {
        const value = await this.withDeadline(limits, (signal) => (limits.onText ? this.streamed(call, signal, limits.onText) : this.once(call, signal)));
        return {
          value,
          outcome: {
            responseModel: value.responseModel,
            responseId: value.responseId,
            finishReasons: value.finishReasons,
            inputTokens: value.usage.prompt_tokens,
            outputTokens: value.usage.completion_tokens,
            texts: value.texts,
          },
        };
      },
    );
  }

  private async once(call: ChatCall, signal: AbortSignal): Promise<ChatResult> {
    const response = (await this.openai.chat.completions.create(this.body(call) as never, { signal })) as OpenAI.Chat.ChatCompletion;
    const choices = [...(response.choices ?? [])].sort((a, b) => a.index - b.index);
    return {
      texts: choices.map((c) => c.message?.content ?? null),
      usage: usageOf(response.usage),
      responseModel: response.model,
      responseId: response.id,
      finishReasons: choices.map((c) => c.finish_reason).filter((r): r is NonNullable<typeof r> => typeof r === "string"),
    };
  }

  private async streamed(call: ChatCall, signal: AbortSignal, onText: (delta: string) => void): Promise<ChatResult> {
    const body = { ...this.body(call), stream: true, stream_options: { include_usage: true } };
    const stream = (await this.openai.chat.completions.create(body as never, { signal })) as unknown as AsyncIterable<OpenAI.Chat.ChatCompletionChunk>;
    const texts: Array<string | null> = [];
    const reasons: string[] = [];
    let usage: Usage = usageOf(undefined);
    let responseModel: string | undefined;
    let responseId: string | undefined;
    for await (const chunk of stream) {
      responseModel ??= chunk.model;
      responseId ??= chunk.id;
      if (chunk.usage) usage = usageOf(chunk.usage);
      for (const choice of chunk.choices ?? []) {
        const delta = choice.delta?.content;
        if (typeof delta === "string" && delta) {
          texts[choice.index] = (texts[choice.index] ?? "") + delta;
          if (choice.index === 0) onText(delta);
        } else if (texts[choice.index] === undefined) {
          texts[choice.index] = null;
        }
        if (choice.finish_reason) reasons[choice.index] = choice.finish_reason;
      }
    }
    return { texts: Array.from(texts, (t) => t ?? null), usage, responseModel, responseId, finishReasons: reasons.filter((r) => r) };
  }

  /** Runs `fn` with a signal that aborts at the deadline (DeadlineExceeded) or with the caller's signal. */
  private async withDeadline<T>(limits: ChatLimits, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const budget = limits.deadline - Date.now();
    const expired = () =>
      new DeadlineExceeded(`no answer from the LM within the deadline (request ${limits.requestId ?? "?"}, native engine, ${this.model})`, {
        details: { ...(limits.requestId ? { id: limits.requestId } : {}), engine: "native", model: this.model },
      });
    if (budget <= 0) throw expired();
    if (limits.signal?.aborted) throw limits.signal.reason;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(expired()), budget);
    const onAbort = () => controller.abort(limits.signal?.reason);
    limits.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await fn(controller.signal);
    } catch (err) {
      if (controller.signal.aborted) throw controller.signal.reason ?? err;
      throw lmErrorFrom(err, this.model);
    } finally {
      clearTimeout(timer);
      limits.signal?.removeEventListener("abort", onAbort);
    }
  }
}

function usageOf(usage: { prompt_tokens?: number; completion_tokens?: number; total_tokens?: number } | null | undefined): Usage {
  const prompt = Number(usage?.prompt_tokens ?? 0);
  const completion = Number(usage?.completion_tokens ?? 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: Number(usage?.total_tokens ?? prompt + completion) };
}
