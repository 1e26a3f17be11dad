/** Types of the version-1 wire envelopes; schemas/*.schema.json are the normative description. */
import type { ErrorWire } from "../errors.js";

export const ENVELOPE_VERSION = 1;

export const HEADERS = {
  replyTo: "Dspex-Reply-To",
  msgId: "Nats-Msg-Id",
  version: "Dspex-Version",
  deadline: "Dspex-Deadline",
  /** Strict session affinity: only this worker may run the request. */
  sessionWorker: "Dspex-Session-Worker",
  traceparent: "traceparent",
  tracestate: "tracestate",
} as const;

export type Operation = "predict" | "chain_of_thought" | "evaluate" | SurfaceOperation;
/** The DSPy surface (docs/dspy-surface.md): modules beyond Predict/ChainOfThought, and optimizer jobs. */
export type SurfaceOperation =
  | "react"
  | "program_of_thought"
  | "rlm"
  | "multi_chain_comparison"
  | "best_of_n"
  | "refine"
  | "parallel"
  | "majority"
  | "ensemble"
  | "compile";
export const SURFACE_OPERATIONS: readonly SurfaceOperation[] = [
  "react",
  "program_of_thought",
  "rlm",
  "multi_chain_comparison",
  "best_of_n",
  "refine",
  "parallel",
  "majority",
  "ensemble",
  "compile",
];
export const OPERATIONS: readonly Operation[] = ["predict", "chain_of_thought", "evaluate", ...SURFACE_OPERATIONS];

/** Body of op `evaluate`: run `module` on the inputs, then score the prediction with named Python metrics. */
export interface EvaluateWire {
  module?: "predict" | "chain_of_thought";
  metrics: Array<string | { name: string; args?: Record<string, unknown> }>;
  /** The example's gold (label) fields. */
  example?: Record<string, unknown>;
}

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
  /** DSPy adapter: `chat` (ChatAdapter, DSPy's default) or `json` (JSONAdapter; better for small local models). */
  adapter?: "chat" | "json";
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
  /** A stored program (KV `dspex_programs`) to run; its state (demos) is loaded by the worker. */
  program?: { id: string; version: number };
  /** Relative budget in ms the caller gave; the absolute deadline travels in the Dspex-Deadline header. */
  timeout_ms?: number;
  /** op `evaluate` only. */
  evaluate?: EvaluateWire;
  /** Token and status events of the running program go to `stream.subject` (docs/dspy-surface.md). */
  stream?: { subject: string; fields?: string[]; status?: boolean };
  /** op `parallel`: one input map per item. */
  batch?: Array<Record<string, unknown>>;
  /** op `compile`: the optimizer job (docs/dspy-surface.md). */
  compile?: Record<string, unknown>;
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
  /** op `evaluate` only: metric name -> score. */
  scores?: Record<string, boolean | number>;
  /** DSPy surface ops: typed results beyond the prediction (trajectory, results, votes, rewards, job). */
  extra?: Record<string, unknown>;
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
