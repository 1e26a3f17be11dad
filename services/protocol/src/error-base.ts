/**
 * The base of every DSPex error. The classes themselves are generated from error.schema.json's catalogue
 * (generated/errors.ts): one class per wire error type, with the same name in TypeScript and Python, so an
 * error travels as data (`ErrorWire`) and is rebuilt as the same class on the other side.
 */
import type { ErrorWire } from "./generated/types.js";

export interface DspexErrorOptions {
  /** The offending field, as a path (`inputs.question`, `module.n`, `lm.model`). */
  field?: string | undefined;
  retryable?: boolean | undefined;
  details?: Record<string, unknown> | undefined;
  cause?: unknown;
  /** The wire type of an error whose type this side does not know (a newer peer's). */
  type?: string;
}

export class DspexError extends Error {
  readonly type: string;
  readonly field: string | undefined;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(message: string, options: DspexErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.type = options.type ?? "DspexError";
    this.field = options.field;
    this.retryable = options.retryable ?? false;
    this.details = options.details;
  }

  toWire(): ErrorWire {
    const out: ErrorWire = { type: this.type as ErrorWire["type"], message: this.message, retryable: this.retryable };
    if (this.field !== undefined) out.field = this.field;
    if (this.details !== undefined) out.details = this.details;
    return out;
  }
}
