// LM test double: a deterministic OpenAI-compatible chat-completions server for tests.
//
// It stands in for the LM provider at the HTTP boundary only, so DSPy's own LM client, adapters and
// parsing run for real against it. It is not a model: answers are computed from the DSPy prompt
// (see prompt.ts / answer.ts), and a control API injects latency, failures and scripted answers.
import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import { answerPrompt, MALFORMED_REPLY } from "./answer.js";
import { parsePrompt, type AdapterKind } from "./prompt.js";

export type FailureMode = "http500" | "http429" | "malformed" | "hang";
export const FAILURE_MODES: readonly FailureMode[] = ["http500", "http429", "malformed", "hang"];

/**
 * How a scripted rule tests an input value: a string matches the value exactly (after trimming
 * whitespace), a RegExp (or `{ regex, flags }` over JSON) tests it, `{ contains }` is a substring test.
 */
export type TextMatcher = string | RegExp | { regex: string; flags?: string } | { contains: string };

export interface ScriptRule {
  /** Input field whose value is tested; omitted: any input field (or the whole last user message of a non-DSPy prompt). */
  field?: string;
  match: TextMatcher;
  /** Output values to answer with; output fields not listed get the generated value. */
  outputs?: Record<string, unknown>;
  /** Exact assistant content to send instead of a formatted answer. */
  reply?: string;
  /** How many requests this rule may answer; omitted: unlimited. */
  times?: number;
  /**
   * Extra conditions on the whole prompt, all of which must hold: the number of messages (few-shot demos add
   * a user/assistant pair each), and the signature's instructions (the system message's objective).
   */
  when?: RuleCondition;
}

export interface RuleCondition {
  minMessages?: number;
  maxMessages?: number;
  instructions?: TextMatcher;
}

export interface FailureSetting {
  mode: FailureMode;
  /** Number of chat-completion requests to fail; omitted or null: every request until cleared. */
  count?: number | null;
  /** Retry-After header value for http429 (seconds, default 1). */
  retryAfterSeconds?: number;
}

/** Body of `POST /__control`, and argument of `control.apply`. Applied in this order: reset, latencyMs, failure, rules, addRules. */
export interface ControlUpdate {
  reset?: boolean;
  latencyMs?: number;
  /** null clears the failure mode. */
  failure?: FailureSetting | null;
  /** Replaces all scripted rules. */
  rules?: ScriptRule[];
  /** Appends scripted rules (after `rules`). */
  addRules?: ScriptRule[];
}

export interface RuleState {
  field: string | null;
  match: { equals: string } | { regex: string; flags: string } | { contains: string };
  outputs: Record<string, unknown> | null;
  reply: string | null;
  remaining: number | null;
  hits: number;
  when: { minMessages: number | null; maxMessages: number | null; instructions: RuleState["match"] | null } | null;
}

export interface ControlState {
  latencyMs: number;
  failure: { mode: FailureMode; remaining: number | null; retryAfterSeconds: number } | null;
  rules: RuleState[];
  /** Requests currently in the log (reset clears the log). */
  recordedRequests: number;
  /** Requests received since start, never reset. */
  totalRequests: number;
}

export type RequestOutcome =
  | "answered"
  | "scripted"
  | "http500"
  | "http429"
  | "malformed"
  | "hang"
  | "models"
  | "embeddings"
  | "bad_request"
  | "not_found";

export interface RecordedRequest {
  /** 1-based sequence number since the double started (not reset by `reset`). */
  seq: number;
  method: string;
  path: string;
  receivedAt: number;
  /** The request's Authorization header (the key the client sent), or null: what security tests look at. */
  authorization: string | null;
  /** Parsed JSON body, or null. */
  body: unknown;
  model: string | null;
  stream: boolean;
  outcome: RequestOutcome;
  status: number | null;
  /** How the prompt was read (chat completions only). */
  prompt: {
    adapter: AdapterKind;
    inputs: Record<string, string>;
    outputFields: Array<{ name: string; type: string }>;
    messageCount: number;
  } | null;
  /** Index of the scripted rule that answered, or null. */
  rule: number | null;
  /** Assistant content sent (or to be sent after the latency), or null for errors and hangs. */
  content: string | null;
}

export interface LmDoubleControl {
  /** Applies a control update (same as POST /__control) and returns the resulting state. */
  apply(update: ControlUpdate): ControlState;
  state(): ControlState;
  /** Delay before every answer (errors included, hangs excepted); requests are delayed concurrently. */
  setLatency(ms: number): void;
  /** Fails the next `count` chat-completion requests (default 1). */
  failNext(mode: FailureMode, count?: number, options?: { retryAfterSeconds?: number }): void;
  /** Fails every chat-completion request until cleared or reset. */
  failAll(mode: FailureMode, options?: { retryAfterSeconds?: number }): void;
  clearFailure(): void;
  addRule(rule: ScriptRule): void;
  setRules(rules: ScriptRule[]): void;
  clearRules(): void;
  /** Back to the started state: no latency, no failure, no rules, empty request log. */
  reset(): void;
}

export interface LmDoubleOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (a free port). */
  port?: number;
  /** Model ids listed by GET /v1/models (default ["test-model"]); any model id is answered. */
  models?: string[];
  /** Most recent requests kept in the log (default 1000). */
  maxRecordedRequests?: number;
  /** Control settings applied at start. */
  initial?: ControlUpdate;
}

export interface LmDouble {
  /** Base URL including /v1, e.g. http://127.0.0.1:PORT/v1 (what dspy.LM's api_base takes). */
  url: string;
  port: number;
  control: LmDoubleControl;
  /** Copy of the request log, oldest first. */
  requests(): RecordedRequest[];
  /** Resolves once the log holds at least `count` requests (rejects after `timeoutMs`, default 10000). */
  waitForRequests(count: number, options?: { timeoutMs?: number }): Promise<RecordedRequest[]>;
  /** Stops listening and drops open connections, hanging requests included. */
  close(): Promise<void>;
}

export class ControlError extends Error {}

interface Rule {
  field: string | null;
  test: (value: string) => boolean;
  described: RuleState["match"];
  outputs: Record<string, unknown> | null;
  reply: string | null;
  remaining: number | null;
  hits: number;
  when: {
    minMessages: number | null;
    maxMessages: number | null;
    instructions: { test: (value: string) => boolean; described: RuleState["match"] } | null;
  } | null;
}

interface Failure {
  mode: FailureMode;
  remaining: number | null;
  retryAfterSeconds: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function nonNegativeNumber(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new ControlError(`${what} must be a non-negative number`);
  }
  return value;
}

function positiveInteger(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new ControlError(`${what} must be a positive integer`);
  }
  return value;
}

function compileCondition(raw: unknown, where: string): Rule["when"] {
  if (raw === undefined || raw === null) return null;
  if (!isRecord(raw)) throw new ControlError(`${where} must be an object`);
  for (const key of Object.keys(raw)) {
    if (!["minMessages", "maxMessages", "instructions"].includes(key)) throw new ControlError(`unknown key ${where}.${key}`);
  }
  const count = (key: string): number | null =>
    raw[key] === undefined || raw[key] === null ? null : positiveInteger(raw[key], `${where}.${key}`);
  return {
    minMessages: count("minMessages"),
    maxMessages: count("maxMessages"),
    instructions:
      raw["instructions"] === undefined || raw["instructions"] === null
        ? null
        : compileMatcher(raw["instructions"], `${where}.instructions`),
  };
}

function compileRule(raw: unknown, where: string): Rule {
  if (!isRecord(raw)) throw new ControlError(`${where} must be an object`);
  const field = raw["field"];
  if (field !== undefined && field !== null && typeof field !== "string") {
    throw new ControlError(`${where}.field must be a string`);
  }
  const { test, described } = compileMatcher(raw["match"], `${where}.match`);
  const when = compileCondition(raw["when"], `${where}.when`);
  const outputs = raw["outputs"];
  if (outputs !== undefined && !isRecord(outputs)) throw new ControlError(`${where}.outputs must be an object`);
  const reply = raw["reply"];
  if (reply !== undefined && typeof reply !== "string") throw new ControlError(`${where}.reply must be a string`);
  if (outputs === undefined && reply === undefined) throw new ControlError(`${where} needs outputs or reply`);
  const times = raw["times"];
  return {
    field: typeof field === "string" ? field : null,
    test,
    described,
    outputs: outputs ?? null,
    reply: reply ?? null,
    remaining: times === undefined || times === null ? null : positiveInteger(times, `${where}.times`),
    hits: 0,
    when,
  };
}

function compileMatcher(
  match: unknown,
  where: string,
): { test: (value: string) => boolean; described: RuleState["match"] } {
  let test: (value: string) => boolean;
  let described: RuleState["match"];
  if (typeof match === "string") {
    test = (value) => value.trim() === match.trim();
    described = { equals: match };
  } else if (match instanceof RegExp) {
    const regex = new RegExp(match.source, match.flags.replace(/[gy]/g, ""));
    test = (value) => regex.test(value);
    described = { regex: regex.source, flags: regex.flags };
  } else if (isRecord(match) && typeof match["regex"] === "string") {
    const flags = match["flags"] === undefined ? "" : match["flags"];
    if (typeof flags !== "string") throw new ControlError(`${where}.flags must be a string`);
    let regex: RegExp;
    try {
      regex = new RegExp(match["regex"], flags.replace(/[gy]/g, ""));
    } catch (error) {
      throw new ControlError(`${where}.regex is invalid: ${(error as Error).message}`);
    }
    test = (value) => regex.test(value);
    described = { regex: regex.source, flags: regex.flags };
  } else if (isRecord(match) && typeof match["contains"] === "string") {
    const needle = match["contains"];
    test = (value) => value.includes(needle);
    described = { contains: needle };
  } else {
    throw new ControlError(`${where} must be a string, a RegExp, {regex, flags?} or {contains}`);
  }
  return { test, described };
}

function compileFailure(raw: unknown): Failure | null {
  if (raw === null) return null;
  if (!isRecord(raw)) throw new ControlError("failure must be an object or null");
  const mode = raw["mode"];
  if (typeof mode !== "string" || !(FAILURE_MODES as readonly string[]).includes(mode)) {
    throw new ControlError(`failure.mode must be one of ${FAILURE_MODES.join(", ")}`);
  }
  const count = raw["count"];
  const retryAfter = raw["retryAfterSeconds"];
  return {
    mode: mode as FailureMode,
    remaining: count === undefined || count === null ? null : positiveInteger(count, "failure.count"),
    retryAfterSeconds: retryAfter === undefined ? 1 : nonNegativeNumber(retryAfter, "failure.retryAfterSeconds"),
  };
}

const MAX_BODY_BYTES = 32 * 1024 * 1024;

function estimateTokens(text: string): number {
  return text.length === 0 ? 0 : Math.ceil(text.length / 4);
}

function promptLength(body: Record<string, unknown>): number {
  const messages = Array.isArray(body["messages"]) ? body["messages"] : [];
  let length = 0;
  for (const message of messages) {
    if (!isRecord(message)) continue;
    const content = message["content"];
    if (typeof content === "string") length += content.length;
    else if (Array.isArray(content)) {
      for (const part of content) if (isRecord(part) && typeof part["text"] === "string") length += part["text"].length;
    }
    length += 4; // role and separators, roughly as OpenAI counts them
  }
  return length;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error("request body too large"));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function sendJson(res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed || res.headersSent) return;
  const text = JSON.stringify(payload);
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function openAiError(message: string, type: string, code: string | null = null): unknown {
  return { error: { message, type, param: null, code } };
}

/** Splits text into stream pieces of a word and its trailing whitespace, a few words per piece. */
function streamPieces(text: string): string[] {
  const words = text.match(/\S+\s*|\s+/g) ?? [];
  const pieces: string[] = [];
  for (let i = 0; i < words.length; i += 3) pieces.push(words.slice(i, i + 3).join(""));
  return pieces;
}

export async function startLmDouble(options: LmDoubleOptions = {}): Promise<LmDouble> {
  const host = options.host ?? "127.0.0.1";
  const models = options.models ?? ["test-model"];
  const maxRecorded = options.maxRecordedRequests ?? 1000;

  let latencyMs = 0;
  let failure: Failure | null = null;
  let rules: Rule[] = [];
  let log: RecordedRequest[] = [];
  let totalRequests = 0;
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const timers = new Set<NodeJS.Timeout>();
  const hanging = new Set<ServerResponse>();

  const state = (): ControlState => ({
    latencyMs,
    failure: failure && { ...failure },
    rules: rules.map((r) => ({
      field: r.field,
      match: r.described,
      outputs: r.outputs,
      reply: r.reply,
      remaining: r.remaining,
      hits: r.hits,
      when: r.when && {
        minMessages: r.when.minMessages,
        maxMessages: r.when.maxMessages,
        instructions: r.when.instructions?.described ?? null,
      },
    })),
    recordedRequests: log.length,
    totalRequests,
  });

  const apply = (update: unknown): ControlState => {
    if (!isRecord(update)) throw new ControlError("control update must be a JSON object");
    const known = new Set(["reset", "latencyMs", "failure", "rules", "addRules"]);
    for (const key of Object.keys(update)) if (!known.has(key)) throw new ControlError(`unknown control key: ${key}`);
    // Validate everything before changing anything.
    const nextLatency = update["latencyMs"] === undefined ? undefined : nonNegativeNumber(update["latencyMs"], "latencyMs");
    const nextFailure = update["failure"] === undefined ? undefined : compileFailure(update["failure"]);
    const compileList = (raw: unknown, key: string): Rule[] | undefined => {
      if (raw === undefined) return undefined;
      if (!Array.isArray(raw)) throw new ControlError(`${key} must be an array`);
      return raw.map((r, i) => compileRule(r, `${key}[${i}]`));
    };
    const nextRules = compileList(update["rules"], "rules");
    const moreRules = compileList(update["addRules"], "addRules");
    if (update["reset"] !== undefined && typeof update["reset"] !== "boolean") {
      throw new ControlError("reset must be a boolean");
    }
    if (update["reset"] === true) {
      latencyMs = 0;
      failure = null;
      rules = [];
      log = [];
    }
    if (nextLatency !== undefined) latencyMs = nextLatency;
    if (nextFailure !== undefined) failure = nextFailure;
    if (nextRules !== undefined) rules = nextRules;
    if (moreRules !== undefined) rules = [...rules, ...moreRules];
    return state();
  };

  const control: LmDoubleControl = {
    apply: (update) => apply(update),
    state,
    setLatency: (ms) => void apply({ latencyMs: ms }),
    failNext: (mode, count = 1, opts = {}) => void apply({ failure: { mode, count, ...opts } }),
    failAll: (mode, opts = {}) => void apply({ failure: { mode, count: null, ...opts } }),
    clearFailure: () => void apply({ failure: null }),
    addRule: (rule) => void apply({ addRules: [rule] }),
    setRules: (list) => void apply({ rules: list }),
    clearRules: () => void apply({ rules: [] }),
    reset: () => void apply({ reset: true }),
  };

  const record = (entry: Omit<RecordedRequest, "seq">): RecordedRequest => {
    const recorded: RecordedRequest = { seq: ++totalRequests, ...entry };
    log.push(recorded);
    if (log.length > maxRecorded) log = log.slice(log.length - maxRecorded);
    events.emit("request");
    return recorded;
  };

  /** Consumes one unit of the failure setting, if any. */
  const takeFailure = (): Failure | null => {
    if (failure === null) return null;
    const current = failure;
    if (current.remaining !== null) {
      current.remaining -= 1;
      if (current.remaining <= 0) failure = null;
    }
    return current;
  };

  const findRule = (
    inputs: Record<string, string>,
    lastUserText: string,
    prompt: { messageCount: number; instructions: string },
  ): number => {
    const index = rules.findIndex((rule) => {
      if (rule.remaining !== null && rule.remaining <= 0) return false;
      if (rule.when) {
        const { minMessages, maxMessages, instructions } = rule.when;
        if (minMessages !== null && prompt.messageCount < minMessages) return false;
        if (maxMessages !== null && prompt.messageCount > maxMessages) return false;
        if (instructions !== null && !instructions.test(prompt.instructions)) return false;
      }
      if (rule.field !== null) {
        const value = inputs[rule.field];
        return value !== undefined && rule.test(value);
      }
      const values = Object.values(inputs);
      return (values.length > 0 ? values : [lastUserText]).some((value) => rule.test(value));
    });
    const rule = rules[index];
    if (rule) {
      rule.hits += 1;
      if (rule.remaining !== null) rule.remaining -= 1;
    }
    return index;
  };

  const afterLatency = (res: ServerResponse, send: () => void): void => {
    if (latencyMs <= 0) {
      send();
      return;
    }
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!res.destroyed) send();
    }, latencyMs);
    timers.add(timer);
    res.on("close", () => {
      clearTimeout(timer);
      timers.delete(timer);
    });
  };

  const handleChat = (req: IncomingMessage, res: ServerResponse, path: string, text: string): void => {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
    const base = { method: req.method ?? "POST", path, receivedAt: Date.now(), authorization: req.headers.authorization ?? null, body, rule: null };
    if (!isRecord(body) || !Array.isArray(body["messages"])) {
      record({ ...base, model: null, stream: false, outcome: "bad_request", status: 400, prompt: null, content: null });
      sendJson(res, 400, openAiError("The body must be a JSON object with a messages array.", "invalid_request_error"));
      return;
    }
    const model = typeof body["model"] === "string" ? body["model"] : "test-model";
    const stream = body["stream"] === true;
    const includeUsage = isRecord(body["stream_options"]) && body["stream_options"]["include_usage"] === true;
    const choiceCount = typeof body["n"] === "number" && Number.isInteger(body["n"]) && body["n"] > 1 ? body["n"] : 1;
    const parsed = parsePrompt(body);
    const promptInfo: RecordedRequest["prompt"] = {
      adapter: parsed.adapter,
      inputs: parsed.inputs,
      outputFields: parsed.outputFields.map((f) => ({ name: f.name, type: f.typeName })),
      messageCount: parsed.messageCount,
    };
    const failed = takeFailure();
    const entry = { ...base, model, stream, prompt: promptInfo };

    if (failed?.mode === "hang") {
      record({ ...entry, outcome: "hang", status: null, content: null });
      hanging.add(res);
      res.on("close", () => hanging.delete(res));
      return;
    }
    if (failed?.mode === "http500") {
      record({ ...entry, outcome: "http500", status: 500, content: null });
      afterLatency(res, () =>
        sendJson(res, 500, openAiError("The LM test double was told to fail this request with HTTP 500.", "server_error")),
      );
      return;
    }
    if (failed?.mode === "http429") {
      record({ ...entry, outcome: "http429", status: 429, content: null });
      afterLatency(res, () =>
        sendJson(
          res,
          429,
          openAiError("Rate limit reached (LM test double).", "requests", "rate_limit_exceeded"),
          { "Retry-After": String(failed.retryAfterSeconds) },
        ),
      );
      return;
    }

    let content: string;
    let outcome: RequestOutcome;
    let ruleIndex: number | null = null;
    if (failed?.mode === "malformed") {
      content = MALFORMED_REPLY;
      outcome = "malformed";
    } else {
      const index = findRule(parsed.inputs, parsed.lastUserText, parsed);
      const rule = rules[index];
      if (rule) {
        ruleIndex = index;
        content = rule.reply ?? answerPrompt(parsed, rule.outputs ?? {}).content;
        outcome = "scripted";
      } else {
        content = answerPrompt(parsed).content;
        outcome = "answered";
      }
    }
    const seq = record({ ...entry, outcome, status: 200, content, rule: ruleIndex }).seq;

    const id = `chatcmpl-lmdouble-${seq}`;
    const created = Math.floor(Date.now() / 1000);
    const promptTokens = Math.max(1, Math.ceil(promptLength(body) / 4));
    const completionTokens = Math.max(1, estimateTokens(content)) * choiceCount;
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    };
    const indexes = Array.from({ length: choiceCount }, (_, i) => i);

    afterLatency(res, () => {
      if (!stream) {
        sendJson(
          res,
          200,
          {
            id,
            object: "chat.completion",
            created,
            model,
            system_fingerprint: "lm-double",
            choices: indexes.map((index) => ({
              index,
              message: { role: "assistant", content, refusal: null },
              logprobs: null,
              finish_reason: "stop",
            })),
            usage,
          },
          { "x-request-id": `req_lmdouble_${seq}` },
        );
        return;
      }
      res.writeHead(200, {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache",
        Connection: "keep-alive",
        "x-request-id": `req_lmdouble_${seq}`,
      });
      const chunk = (choices: unknown[], extra: Record<string, unknown> = {}): void => {
        const payload = {
          id,
          object: "chat.completion.chunk",
          created,
          model,
          system_fingerprint: "lm-double",
          choices,
          ...(includeUsage ? { usage: null } : {}),
          ...extra,
        };
        res.write(`data: ${JSON.stringify(payload)}\n\n`);
      };
      for (const index of indexes) {
        chunk([{ index, delta: { role: "assistant", content: "", refusal: null }, logprobs: null, finish_reason: null }]);
        for (const piece of streamPieces(content)) {
          chunk([{ index, delta: { content: piece }, logprobs: null, finish_reason: null }]);
        }
        chunk([{ index, delta: {}, logprobs: null, finish_reason: "stop" }]);
      }
      if (includeUsage) chunk([], { usage });
      res.end("data: [DONE]\n\n");
    });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://lm-double.invalid");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const method = req.method ?? "GET";
    let text: string;
    try {
      text = await readBody(req);
    } catch (error) {
      sendJson(res, 413, openAiError((error as Error).message, "invalid_request_error"));
      return;
    }

    if (path === "/__control") {
      if (method === "GET") {
        sendJson(res, 200, state());
        return;
      }
      if (method === "POST") {
        try {
          sendJson(res, 200, apply(text.trim() === "" ? {} : JSON.parse(text)));
        } catch (error) {
          const message = error instanceof SyntaxError ? `invalid JSON: ${error.message}` : (error as Error).message;
          sendJson(res, 400, { error: message });
        }
        return;
      }
      sendJson(res, 405, { error: "use GET or POST" });
      return;
    }
    if (path === "/__control/requests" && method === "GET") {
      sendJson(res, 200, log);
      return;
    }
    if ((path === "/v1/chat/completions" || path === "/chat/completions") && method === "POST") {
      handleChat(req, res, path, text);
      return;
    }
    if ((path === "/v1/embeddings" || path === "/embeddings") && method === "POST") {
      // OpenAI embeddings: each input gets a deterministic 8-dimensional vector from its SHA-256 (not a model)
      const body = (text ? JSON.parse(text) : {}) as { input?: unknown; model?: unknown };
      const inputs = typeof body.input === "string" ? [body.input] : Array.isArray(body.input) ? body.input.map(String) : undefined;
      if (!inputs) {
        sendJson(res, 400, openAiError("The body must be a JSON object with an input string or array.", "invalid_request_error"));
        return;
      }
      record({
        method, path, receivedAt: Date.now(), authorization: req.headers.authorization ?? null, body, model: typeof body.model === "string" ? body.model : null,
        stream: false, outcome: "embeddings", status: 200, prompt: null, rule: null, content: null,
      });
      sendJson(res, 200, {
        object: "list",
        model: body.model,
        data: inputs.map((input, index) => ({ object: "embedding", index, embedding: [...createHash("sha256").update(input).digest().subarray(0, 8)].map((b) => b / 255 - 0.5) })),
        usage: { prompt_tokens: inputs.length, total_tokens: inputs.length },
      });
      return;
    }
    if ((path === "/v1/models" || path === "/models") && method === "GET") {
      record({
        method, path, receivedAt: Date.now(), authorization: req.headers.authorization ?? null, body: null, model: null,
        stream: false, outcome: "models", status: 200, prompt: null, rule: null, content: null,
      });
      sendJson(res, 200, {
        object: "list",
        data: models.map((id) => ({ id, object: "model", created: 0, owned_by: "lm-double" })),
      });
      return;
    }
    record({
      method, path, receivedAt: Date.now(), authorization: req.headers.authorization ?? null, body: null, model: null,
      stream: false, outcome: "not_found", status: 404, prompt: null, rule: null, content: null,
    });
    sendJson(res, 404, openAiError(`The LM test double has no route ${method} ${path}.`, "invalid_request_error"));
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      sendJson(res, 500, openAiError(`LM test double bug: ${String(error)}`, "server_error"));
    });
  });
  // A client may open connections it never uses; none of them may keep close() waiting.
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  if (options.initial) apply(options.initial);

  const port = (server.address() as AddressInfo).port;
  const hostInUrl = host.includes(":") ? `[${host}]` : host;
  let closing: Promise<void> | null = null;

  return {
    url: `http://${hostInUrl}:${port}/v1`,
    port,
    control,
    requests: () => structuredClone(log),
    waitForRequests: (count, opts = {}) =>
      new Promise<RecordedRequest[]>((resolve, reject) => {
        const check = (): boolean => {
          if (log.length < count) return false;
          events.off("request", listener);
          clearTimeout(timer);
          resolve(structuredClone(log));
          return true;
        };
        const listener = (): void => void check();
        const timeoutMs = opts.timeoutMs ?? 10_000;
        const timer = setTimeout(() => {
          events.off("request", listener);
          reject(new Error(`LM test double: ${log.length} of ${count} requests after ${timeoutMs} ms`));
        }, timeoutMs);
        events.on("request", listener);
        check();
      }),
    close: () => {
      closing ??= new Promise<void>((resolve, reject) => {
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        server.close((error) => (error ? reject(error) : resolve()));
        for (const res of hanging) res.destroy();
        hanging.clear();
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
