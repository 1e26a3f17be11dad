/** Types of the version-1 wire envelopes; schemas/*.schema.json are the normative description. */
import type { ErrorWire } from "../errors.js";

export const ENVELOPE_VERSION = 1;

export const HEADERS = {
  replyTo: "Dspex-Reply-To",
  msgId: "Nats-Msg-Id",
  version: "Dspex-Version",
  deadline: "Dspex-Deadline",
  traceparent: "traceparent",
  tracestate: "tracestate",
} as const;

export type Operation = "predict" | "chain_of_thought";
export const OPERATIONS: readonly Operation[] = ["predict", "chain_of_thought"];

export type TypeExpr =
  | { kind: "str" | "int" | "float" | "bool" | "any" }
  | { kind: "list"; items: TypeExpr }
  | { kind: "dict"; keys: TypeExpr; values: TypeExpr }
  | { kind: "optional"; inner: TypeExpr }
  | { kind: "literal"; values: Array<string | number | boolean> };

export interface FieldConstraints {
  ge?: number;
  gt?: number;
  le?: number;
  lt?: number;
  min_length?: number;
  max_length?: number;
}

export interface FieldWire {
  name: string;
  type: TypeExpr;
  desc?: string;
  prefix?: string;
  constraints?: FieldConstraints;
}

export interface SignatureWire {
  instructions?: string;
  inputs: FieldWire[];
  outputs: FieldWire[];
}

export interface LMConfigWire {
  model: string;
  api_base?: string;
  api_key_env?: string;
  temperature?: number;
  max_tokens?: number;
  cache?: boolean;
  num_retries?: number;
}

export interface RequestEnvelope {
  v: number;
  id: string;
  op: Operation;
  signature: SignatureWire;
  inputs: Record<string, unknown>;
  lm?: LMConfigWire;
  module?: Record<string, unknown>;
  session?: string;
  /** Relative budget in ms the caller gave; the absolute deadline travels in the Dspex-Deadline header. */
  timeout_ms?: number;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface Timings {
  /** Time the request waited in the stream before a worker started it. */
  queue_ms: number;
  /** Time the worker spent running the DSPy module. */
  exec_ms: number;
}

export interface ReplyOk {
  v: number;
  id: string;
  ok: true;
  outputs: Record<string, unknown>;
  lm: string;
  usage: Usage;
  timings: Timings;
  worker: string;
}

export interface ReplyErr {
  v: number;
  id: string;
  ok: false;
  error: ErrorWire;
  worker?: string;
  timings?: Partial<Timings>;
}

export type ReplyEnvelope = ReplyOk | ReplyErr;
