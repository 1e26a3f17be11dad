/**
 * Errors on the HTTP API: the contract's errors (schemas/error.schema.json) with an HTTP status, each naming
 * the field where one is at fault. Internal errors are logged with an id and answered with only that id: no
 * stack, exception text or configuration ever reaches a caller.
 */
import { DspexError } from "@dspex/protocol";

/** HTTP status of a contract error. */
export function statusFor(err: DspexError): number {
  switch (err.type) {
    case "ValidationError":
    case "SignatureError":
      return 400;
    case "PayloadTooLarge":
      return 413;
    case "NotFound":
    case "UnknownProgram":
      return 404;
    case "Unauthorized":
      return 401;
    case "Forbidden":
      return 403;
    case "Conflict":
      return 409;
    case "DeadlineExceeded":
      return 504;
    case "Unavailable":
    case "NoWorkersError":
    case "CircuitOpenError":
    case "TransportError":
    case "BusError":
      return 503;
    default:
      return 502;
  }
}

export interface HttpErrorBody {
  error: { type: string; message: string; retryable: boolean; field?: string; details?: Record<string, unknown>; id?: string };
}

export function errorBody(type: string, message: string, extra: Partial<HttpErrorBody["error"]> = {}): HttpErrorBody {
  return { error: { type, message, retryable: false, ...extra } };
}

/**
 * A contract error as the caller sees it. A WorkerError is an unexpected exception on a worker: its text
 * stays in the logs (with the id), the caller gets the id.
 */
export function contractError(err: DspexError, id: string): { status: number; body: HttpErrorBody } {
  const status = statusFor(err);
  if (err.type === "WorkerError" || err.type === "InternalError") {
    return { status, body: errorBody(err.type, `the request failed on the server; quote ${id} to the operator`, { id, retryable: err.retryable }) };
  }
  return { status, body: { error: { ...err.toWire(), id } } };
}
