/**
 * The registry's errors beyond the wire contract's (which give NotFound and ValidationError): a `Conflict` (HTTP
 * 409: a duplicate name, an illegal transition naming the state and the guard that failed, a deploy below its
 * threshold with the score) and `Unavailable` (HTTP 503: the database is down; nothing is lost, executions wait
 * in JetStream).
 */
import { DspexError, type DspexErrorOptions } from "@dspex/protocol";

export class Conflict extends DspexError {
  override readonly type = "Conflict";
  constructor(message: string, options: DspexErrorOptions = {}) {
    super(message, { retryable: false, ...options });
  }
}

export class Unavailable extends DspexError {
  override readonly type = "Unavailable";
  constructor(message: string, options: DspexErrorOptions = {}) {
    super(message, { retryable: true, ...options });
  }
}

const CONNECTION_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH"]);

/** Whether an error means the database cannot be reached (not that a query was wrong). */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown; errors?: unknown[] } | null;
  if (!e || typeof e !== "object") return false;
  const code = typeof e.code === "string" ? e.code : "";
  // 08xxx connection exceptions; 57P01-03 the server shutting down or starting
  if (CONNECTION_CODES.has(code) || code.startsWith("08") || /^57P0[1-3]$/.test(code)) return true;
  if (Array.isArray(e.errors) && e.errors.some(isConnectionError)) return true; // AggregateError (IPv4 + IPv6)
  const message = typeof e.message === "string" ? e.message : "";
  return /Connection terminated|connect ECONNREFUSED|timeout exceeded when trying to connect|Client has encountered a connection error|the database system is (shutting down|starting up)/i.test(message);
}

/** Turns a connection failure into `Unavailable`; other errors pass through. */
export function unavailable(err: unknown): unknown {
  return isConnectionError(err) ? new Unavailable("the registry's database is unavailable; try again shortly", { cause: err }) : err;
}
