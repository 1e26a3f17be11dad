/**
 * Tools defined in TypeScript and called by agents running in Python workers (dspy.ReAct).
 *
 * Each tool is a tiny request/reply service on core NATS: `serveTool` subscribes to `dspex.tool.<name>` (queue
 * group `dspex-tools`, so several clients serving the same tool share its calls) and answers each call. The
 * worker wraps the tool as a `dspy.Tool` with the name, description and JSON Schema sent in the request; its
 * function sends a NATS request here. Protocol (msgpack both ways):
 *
 *   call:  { v: 1, tool: "<name>", args: { … }, request: "<DSPex request id>" }
 *   reply: { ok: true, result: <any msgpack value> }  |  { ok: false, error: { type, message } }
 *
 * Arguments are checked against the tool's schema before the handler runs (missing required arguments, wrong
 * top-level types, unknown arguments when `additionalProperties` is false). A failed check, a handler that
 * throws, or a call that times out reaches the agent as that step's observation, not as a failed request.
 */
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { QUEUES, ValidationError, decode, encode, toolSubject } from "@dspex/protocol";

export const TOOL_QUEUE = QUEUES.tools;
const TOOL_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const SUBJECT = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/** JSON Schema of a tool's arguments (an object schema). */
export interface ToolParameters {
  type?: "object";
  properties?: Record<string, Record<string, unknown>>;
  required?: string[];
  additionalProperties?: boolean;
}

export interface ToolContext {
  /** The DSPex request whose agent called the tool. */
  request: string;
  tool: string;
}

export interface ToolDefinition<A extends Record<string, unknown> = Record<string, unknown>> {
  /** Identifier the agent calls the tool by (letters, digits, `_`; not `finish`). */
  name: string;
  /** What the tool does: the agent reads it to choose tools. */
  description?: string;
  parameters?: ToolParameters;
  handler: (args: A, context: ToolContext) => unknown;
  /** How long the worker waits for an answer before the call is a tool error (default 30 s). */
  timeoutMs?: number;
  /** Serve on this subject instead of `dspex.tool.<name>` (e.g. to keep two clients' tools apart). */
  subject?: string;
}

/** A tool as a request names it (`module.tools[i]`). */
export interface ToolSpecWire {
  name: string;
  description: string;
  parameters: ToolParameters;
  subject: string;
  timeout_ms: number;
}

export interface ServedTool {
  readonly name: string;
  readonly subject: string;
  /** The tool as a `react` request lists it. */
  readonly spec: ToolSpecWire;
  /** Calls answered so far (successful or not). */
  readonly calls: number;
  stop(): Promise<void>;
}


function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

/** Problems of `args` against the tool's schema (top-level types, required and unknown arguments). */
export function checkToolArgs(parameters: ToolParameters, args: unknown): string[] {
  if (typeof args !== "object" || args === null || Array.isArray(args)) return ["arguments must be an object"];
  const record = args as Record<string, unknown>;
  const properties = parameters.properties ?? {};
  const problems: string[] = [];
  for (const name of parameters.required ?? []) {
    if (!(name in record)) problems.push(`missing argument '${name}'`);
  }
  for (const [name, value] of Object.entries(record)) {
    const schema = properties[name];
    if (!schema) {
      if (parameters.additionalProperties === false) problems.push(`unknown argument '${name}'`);
      continue;
    }
    const expected = schema["type"];
    const types = Array.isArray(expected) ? (expected as string[]) : typeof expected === "string" ? [expected] : [];
    if (types.length === 0) continue;
    const actual = jsonType(value);
    const ok = types.some((t) => t === actual || (t === "number" && actual === "integer"));
    if (!ok) problems.push(`argument '${name}' must be ${types.join(" or ")}, got ${actual}`);
  }
  return problems;
}

export function checkToolDefinition(def: ToolDefinition<never>, where = "tool"): ToolSpecWire {
  if (!TOOL_NAME.test(def.name ?? "")) {
    throw new ValidationError(`${where}.name must be an identifier of at most 64 characters (got ${JSON.stringify(def.name)})`, {
      field: `${where}.name`,
    });
  }
  if (def.name === "finish") {
    throw new ValidationError(`tool name 'finish' is reserved by dspy.ReAct`, { field: `${where}.name` });
  }
  if (typeof def.handler !== "function") {
    throw new ValidationError(`${where}.handler must be a function`, { field: `${where}.handler` });
  }
  const parameters: ToolParameters = def.parameters ?? { type: "object", properties: {} };
  const properties = parameters.properties ?? {};
  if (typeof properties !== "object" || Array.isArray(properties)) {
    throw new ValidationError(`${where}.parameters.properties must map argument names to JSON Schemas`, {
      field: `${where}.parameters.properties`,
    });
  }
  for (const name of parameters.required ?? []) {
    if (!(name in properties)) {
      throw new ValidationError(`${where}.parameters.required names '${name}', which is not in properties`, {
        field: `${where}.parameters.required`,
      });
    }
  }
  const subject = def.subject ?? toolSubject(def.name);
  if (!SUBJECT.test(subject)) {
    throw new ValidationError(`${where}.subject must be a NATS subject without wildcards`, { field: `${where}.subject` });
  }
  const timeoutMs = def.timeoutMs ?? 30_000;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 600_000) {
    throw new ValidationError(`${where}.timeoutMs must be an integer from 1 to 600000`, { field: `${where}.timeoutMs` });
  }
  return {
    name: def.name,
    description: def.description ?? "",
    parameters: { type: "object", properties, required: parameters.required ?? [] },
    subject,
    timeout_ms: timeoutMs,
  };
}

function errorOf(err: unknown): { type: string; message: string } {
  if (err instanceof Error) {
    const type = (err as { type?: unknown }).type;
    return { type: typeof type === "string" ? type : err.name || "Error", message: err.message };
  }
  return { type: "Error", message: String(err) };
}

/** Serves one tool until `stop()`; resolves once the subscription is registered with the server. */
export async function serveTool<A extends Record<string, unknown>>(
  nc: NatsConnection,
  def: ToolDefinition<A>,
  options: { queue?: string } = {},
): Promise<ServedTool> {
  const spec = checkToolDefinition(def as ToolDefinition<never>);
  let calls = 0;
  const sub: Subscription = nc.subscribe(spec.subject, {
    queue: options.queue ?? TOOL_QUEUE,
    callback: (err, msg) => {
      if (err) return;
      calls += 1;
      void (async () => {
        let reply: Record<string, unknown>;
        try {
          const call = decode(msg.data) as { tool?: unknown; args?: unknown; request?: unknown };
          const args = call?.args ?? {};
          const problems = checkToolArgs(spec.parameters, args);
          if (problems.length > 0) {
            reply = { ok: false, error: { type: "ValidationError", message: `${spec.name}: ${problems.join("; ")}` } };
          } else {
            const result = await def.handler(args as A, {
              request: typeof call.request === "string" ? call.request : "",
              tool: spec.name,
            });
            reply = { ok: true, result: result === undefined ? null : result };
          }
        } catch (err) {
          reply = { ok: false, error: errorOf(err) };
        }
        let body: Uint8Array;
        try {
          body = encode(reply);
        } catch (err) {
          body = encode({ ok: false, error: { type: "EncodeError", message: `tool result is not msgpack-able: ${String(err)}` } });
        }
        if (msg.reply) msg.respond(body);
      })();
    },
  });
  await nc.flush(); // the subscription is known to the server before a worker can call it
  return {
    name: spec.name,
    subject: spec.subject,
    spec,
    get calls() {
      return calls;
    },
    async stop() {
      sub.unsubscribe();
      await nc.flush().catch(() => {});
    },
  };
}

/** The tools a client serves, by name. */
export class ToolRegistry {
  private readonly tools = new Map<string, ServedTool>();

  constructor(private readonly nc: NatsConnection) {}

  async serve<A extends Record<string, unknown>>(def: ToolDefinition<A>): Promise<ServedTool> {
    const existing = this.tools.get(def.name);
    if (existing) await existing.stop();
    const served = await serveTool(this.nc, def);
    this.tools.set(def.name, served);
    return served;
  }

  get(name: string): ServedTool | undefined {
    return this.tools.get(name);
  }

  list(): ServedTool[] {
    return [...this.tools.values()];
  }

  async stop(name?: string): Promise<void> {
    const names = name === undefined ? [...this.tools.keys()] : [name];
    for (const n of names) {
      await this.tools.get(n)?.stop();
      this.tools.delete(n);
    }
  }
}
