/**
 * Execution events: what the gateway publishes to `dspex.executions.<program>` (stream DSPEX_EXECUTIONS) after
 * each call of a registry program, with the request id as `Nats-Msg-Id`, and what the recorder writes to the
 * database once. Inputs are redacted by default — a summary of field names, JSON types and sizes, like a dead
 * letter's — and kept only with DSPEX_EXECUTIONS_KEEP_INPUTS=1 (docs/security.md); redaction happens before
 * publishing, so redacted inputs never reach JetStream either.
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import { ValidationError, executionSubject } from "@dspex/protocol";

export interface InputsSummary {
  /** Size of the inputs as JSON. */
  bytes: number;
  fields: Record<string, { type: string; bytes: number }>;
  redacted: boolean;
}

export interface ExecutionEvent {
  v: 1;
  /** The request id: the execution's id. */
  id: string;
  program: string;
  version: number;
  status: "ok" | "error";
  /** When the call started (ISO 8601). */
  at: string;
  latency_ms: number;
  /** Only when inputs are kept. */
  inputs?: Record<string, unknown>;
  inputs_summary: InputsSummary;
  outputs?: Record<string, unknown> | null;
  /** What the caller was told: type, message, field. */
  error?: { type: string; message: string; field?: string } | null;
  usage?: Record<string, unknown> | null;
  worker?: string | null;
  trace_id?: string | null;
  /** The API token's name. */
  caller?: string | null;
}

export function keepInputs(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.DSPEX_EXECUTIONS_KEEP_INPUTS === "1";
}

function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value === "number" ? (Number.isInteger(value) ? "integer" : "number") : typeof value;
}

export function summarizeInputs(inputs: Record<string, unknown>, kept: boolean): InputsSummary {
  const fields: InputsSummary["fields"] = {};
  for (const [name, value] of Object.entries(inputs)) fields[name] = { type: jsonType(value), bytes: Buffer.byteLength(JSON.stringify(value) ?? "") };
  return { bytes: Buffer.byteLength(JSON.stringify(inputs)), fields, redacted: !kept };
}

export async function publishExecution(js: JetStreamClient, event: ExecutionEvent): Promise<void> {
  await js.publish(executionSubject(event.program), JSON.stringify(event), { msgID: event.id });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** An event as received, checked field by field (a malformed one is set aside, never retried). */
export function parseExecutionEvent(data: Uint8Array): ExecutionEvent {
  let e: unknown;
  try {
    e = JSON.parse(new TextDecoder().decode(data));
  } catch {
    throw new ValidationError("execution event is not JSON", { field: "body" });
  }
  if (!isObject(e) || e.v !== 1) throw new ValidationError("execution event: v must be 1", { field: "v" });
  const need = (field: string, ok: boolean) => {
    if (!ok) throw new ValidationError(`execution event: bad ${field}`, { field });
  };
  need("id", typeof e.id === "string" && e.id.length > 0 && e.id.length <= 200);
  need("program", typeof e.program === "string" && /^[a-z][a-z0-9_-]{0,62}$/.test(e.program));
  need("version", Number.isInteger(e.version) && (e.version as number) >= 1);
  need("status", e.status === "ok" || e.status === "error");
  need("at", typeof e.at === "string" && !Number.isNaN(Date.parse(e.at)));
  need("latency_ms", typeof e.latency_ms === "number" && Number.isFinite(e.latency_ms));
  need("inputs_summary", isObject(e.inputs_summary));
  need("inputs", e.inputs === undefined || isObject(e.inputs));
  return e as unknown as ExecutionEvent;
}
