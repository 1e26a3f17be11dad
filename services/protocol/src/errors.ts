/** Errors as data and back: the one mapping between `ErrorWire` and the generated classes. */
import { DspexError } from "./error-base.js";
import { ERROR_CLASSES, type ErrorType } from "./generated/errors.js";
import type { ErrorWire } from "./generated/types.js";

export { DspexError, type DspexErrorOptions } from "./error-base.js";
export * from "./generated/errors.js";

function isErrorType(type: string): type is ErrorType {
  return Object.hasOwn(ERROR_CLASSES, type);
}

/** The typed error an error envelope stands for; an unknown type keeps its name and `retryable`. */
export function errorFromWire(wire: ErrorWire, options: { cause?: unknown } = {}): DspexError {
  const init = { field: wire.field, retryable: wire.retryable, details: wire.details, cause: options.cause };
  if (isErrorType(wire.type)) return new ERROR_CLASSES[wire.type](wire.message, init);
  return new DspexError(wire.message, { ...init, type: String(wire.type) });
}

/** Any thrown value as an error envelope (an unexpected exception becomes a WorkerError-like internal error). */
export function errorToWire(err: unknown): ErrorWire {
  if (err instanceof DspexError) return err.toWire();
  const message = err instanceof Error ? err.message : String(err);
  return { type: "WorkerError", message, retryable: false };
}
