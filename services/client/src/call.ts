/**
 * The shape of one call as it passes through the interceptors (the Temporal TS SDK's model): an
 * interceptor is `(input, next) => Promise<ReplyOk>`; the list is composed once, around the transport.
 * Inputs are plain readonly objects; an interceptor that changes something passes a modified copy on.
 */
import type {
  EvaluateSpec,
  LMConfig,
  Operation,
  Pool,
  ProgramRef,
  ReplyOk,
  SignatureWire,
  StreamSpec,
  Timings,
  Usage,
} from "@dspex/protocol";
import type { SignatureInput } from "@dspex/native";

export interface RetryPolicy {
  /** Attempts in all, the first included (1 disables retries). */
  maxAttempts: number;
  /** Backoff base: attempt n waits a random time in [0, min(maxDelayMs, baseDelayMs · 2^(n-1))]. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Also retry when the pool had no live worker (nothing was sent then); default false: NoWorkersError at once. */
  noWorkers?: boolean;
}

/** What the caller can set on any call. */
export interface CallOptions {
  lm?: LMConfig;
  /** Milliseconds until the call fails with DeadlineExceeded; the deadline travels with the request. */
  timeoutMs?: number;
  pool?: Pool;
  session?: string;
  /**
   * How a session sticks to its worker. `hint` (default): the session's partition is served by one worker
   * while it lives and moves to another when it dies (program state is rebuilt from KV). `strict`: the
   * session must stay on the worker that first served it; if that worker is gone the call fails fast with
   * AffinityError.
   */
  affinity?: "hint" | "strict";
  /** Few-shot demos: example maps with input and output fields. */
  demos?: Array<Record<string, unknown>>;
  /** Instructions, when the signature is given as a string. */
  instructions?: string;
  /** Reuse a request id (idempotent retry of the same request). */
  requestId?: string;
  signal?: AbortSignal;
  /**
   * The delivery lane (lanes/index.ts): `durable` (JetStream, at least once), `direct` (core request-reply, at
   * most once) or `auto`, the client's default (direct for predict and chain_of_thought without a session).
   */
  lane?: "auto" | "durable" | "direct";
  /** This call's retry policy over the client's (`false`: a single attempt). */
  retry?: Partial<RetryPolicy> | false;
  /**
   * The engine this call asks for, over the client's policy (engine/policy.ts): `python` (a worker), `native`
   * (the native predictor in this process where it supports the call, else a worker), `hybrid`.
   */
  engine?: "python" | "native" | "hybrid";
  /**
   * A native implementation used while a breaker of this call is open: returns the outputs (validated
   * against the signature like a worker's). The result then has `worker: "fallback"`.
   */
  fallback?: (ctx: FallbackContext) => Record<string, unknown> | Promise<Record<string, unknown>>;
}

export interface FallbackContext {
  op: Operation;
  pool: Pool;
  lm: LMConfig | undefined;
  signature: SignatureWire;
  inputs: Record<string, unknown>;
  /** Why the call did not go to a worker (a CircuitOpenError). */
  error: Error;
}

/** What one call sends, beyond the signature and inputs (built by the typed methods). */
export interface CallRequest {
  op: Operation;
  signature: SignatureInput;
  inputs: Record<string, unknown>;
  /** The op's module options (validated against modules.schema.json). */
  module?: Record<string, unknown>;
  program?: ProgramRef;
  evaluate?: EvaluateSpec;
  batch?: Array<Record<string, unknown>>;
  compile?: Record<string, unknown>;
  stream?: StreamSpec;
  /** Output names allowed besides the signature's (e.g. `rationale`). */
  extraOutputs?: string[];
  /** The inputs are already validated (or the op takes none: `parallel`, `compile`). */
  rawInputs?: boolean;
  /** Hand back the reply's outputs as they are (ops whose outputs are not the signature's). */
  rawOutputs?: boolean;
}

/** One call inside the interceptor chain. */
export interface CallInput {
  readonly op: Operation;
  readonly pool: Pool;
  readonly signature: SignatureWire;
  readonly inputs: Record<string, unknown>;
  readonly request: CallRequest;
  readonly options: CallOptions;
  readonly lm: LMConfig | undefined;
  /** The request id of this attempt (`<id>#<n>` for a retry). */
  readonly requestId: string;
  /** Absolute deadline, epoch ms. */
  readonly deadline: number;
  /** Extra request headers (e.g. the strict-affinity worker). */
  readonly headers: Readonly<Record<string, string>>;
}

export type Next = (input: CallInput) => Promise<ReplyOk>;
export type Interceptor = (input: CallInput, next: Next) => Promise<ReplyOk>;

/** Composes interceptors (first = outermost) around the innermost call. */
export function compose(interceptors: readonly Interceptor[], inner: Next): Next {
  return interceptors.reduceRight<Next>((next, interceptor) => (input) => interceptor(input, next), inner);
}

export interface CallResult<O> {
  id: string;
  outputs: O;
  lm: string;
  usage: Usage;
  timings: Timings & { total_ms: number };
  worker: string;
  /** op evaluate: metric name → score. */
  scores?: Record<string, boolean | number>;
  /** DSPy surface ops: typed results beyond the prediction (trajectory, results, votes, job). */
  extra?: Record<string, unknown>;
}

/** What the typed helpers (modules, streams, optimizer jobs) need from a client. */
export interface Caller {
  readonly nc: import("@nats-io/transport-node").NatsConnection;
  readonly programs: import("./programs.js").ProgramStore;
  send<O>(request: CallRequest, options?: CallOptions): Promise<CallResult<O>>;
}
