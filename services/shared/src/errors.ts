/**
 * Typed errors of the TypeScript side. Every error a caller can see is a DspexError subclass with a stable
 * `type` (the same names the reply envelope uses, see schemas/error.schema.json) and keeps its `cause`.
 */

export interface ErrorWire {
  type: string;
  message: string;
  field?: string;
  retryable: boolean;
  details?: Record<string, unknown>;
}

export interface DspexErrorOptions {
  field?: string;
  retryable?: boolean;
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class DspexError extends Error {
  readonly type: string = "DspexError";
  readonly field: string | undefined;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(message: string, options: DspexErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.field = options.field;
    this.retryable = options.retryable ?? false;
    this.details = options.details;
  }

  toWire(): ErrorWire {
    const out: ErrorWire = { type: this.type, message: this.message, retryable: this.retryable };
    if (this.field !== undefined) out.field = this.field;
    if (this.details !== undefined) out.details = this.details;
    return out;
  }
}

/** A signature string that does not parse, or a signature definition that is inconsistent. */
export class SignatureError extends DspexError {
  override readonly type = "SignatureError";
  /** 0-based offset in the signature string where the problem is, when known. */
  readonly position: number | undefined;
  readonly suggestion: string | undefined;

  constructor(
    message: string,
    options: DspexErrorOptions & { position?: number; suggestion?: string; source?: string } = {},
  ) {
    super(SignatureError.format(message, options), options);
    this.position = options.position;
    this.suggestion = options.suggestion;
  }

  private static format(message: string, o: { position?: number; suggestion?: string; source?: string }): string {
    let text = message;
    if (o.position !== undefined) text += ` (at position ${o.position})`;
    if (o.suggestion !== undefined) text += `; did you mean ${o.suggestion}?`;
    if (o.source !== undefined && o.position !== undefined) {
      text += `\n  ${o.source}\n  ${" ".repeat(o.position)}^`;
    }
    return text;
  }
}

/** Inputs or outputs that do not match the signature: missing, extra or wrong-typed fields. */
export class ValidationError extends DspexError {
  override readonly type = "ValidationError";
}

/** No reply before the caller's deadline. */
export class TimeoutError extends DspexError {
  override readonly type = "TimeoutError";
}

/** The pool has no live consumer/worker to take the request. */
export class NoWorkersError extends DspexError {
  override readonly type = "NoWorkersError";
}

/** A circuit breaker (of a pool or an LM) is open: the call fails fast without being sent. See docs/reliability.md. */
export class CircuitOpenError extends DspexError {
  override readonly type = "CircuitOpenError";
}

/** The encoded request is larger than the pool accepts; nothing was published. */
export class PayloadTooLargeError extends DspexError {
  override readonly type = "PayloadTooLarge";
}

/** A strict-affinity session's worker is gone, or the request reached another worker. */
export class SessionAffinityError extends DspexError {
  override readonly type = "SessionAffinityError";
}

/** The worker answered with an error reply that is not an LM error. */
export class WorkerError extends DspexError {
  override readonly type: string;
  constructor(wire: ErrorWire, options: DspexErrorOptions = {}) {
    super(wire.message, { field: wire.field, retryable: wire.retryable, details: wire.details, ...options });
    this.type = wire.type;
  }
}

/** The LM provider failed, or its output could not be parsed into the signature. */
export class LMError extends WorkerError {}

/** Transport-level failure: NATS unreachable, JetStream unavailable, publish rejected. */
export class TransportError extends DspexError {
  override readonly type = "TransportError";
}

/** Turns an error envelope from a worker into the matching typed error. */
export function errorFromWire(wire: ErrorWire): DspexError {
  if (wire.type === "DeadlineExceeded") {
    // The worker gave up at the caller's deadline: to the caller that is a timeout like any other.
    return new TimeoutError(wire.message, { details: { ...wire.details, source: "worker" } });
  }
  if (wire.type === "AffinityError") {
    return new SessionAffinityError(wire.message, { field: wire.field, details: wire.details });
  }
  if (wire.type === "LMError" || wire.type === "LMOutputError" || wire.type === "LMConfigError") {
    return new LMError(wire);
  }
  return new WorkerError(wire);
}
