/**
 * Running a registry program (`POST /v1/registry/executions`, GraphQL `execute`): the reference is resolved
 * (`program:<name>@deployed` from the database; a pinned version from KV alone, so it runs while the database is
 * down), the call goes through the client (inputs checked against the signature: a 400 naming the field), and
 * what happened is published to DSPEX_EXECUTIONS under the request id, for the recorder to write once.
 */
import { randomUUID } from "node:crypto";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import type { CallResult, Client } from "@dspex/client";
import { DspexError, NotFound, type LMConfig } from "@dspex/protocol";
import { traceFields, type Logger } from "@dspex/observability";
import { keepInputs, publishExecution, summarizeInputs, type ExecutionEvent, type Registry } from "@dspex/registry";
import { contractError } from "./errors.js";
import type { Caller } from "./tokens.js";

/** Errors raised before anything ran: not an execution. */
const NOT_RUN = new Set(["ValidationError", "SignatureError", "NotFound", "PayloadTooLarge", "Conflict", "Unavailable"]);

export class ExecutionRecorder {
  private readonly js: JetStreamClient;
  readonly counts = { published: 0, failed: 0 };

  constructor(
    client: Client,
    private readonly logger: Logger,
    readonly keep = keepInputs(),
  ) {
    this.js = jetstream(client.nc);
  }

  /** Publishes an execution; a failure is logged, never the caller's (its call did run). */
  async publish(event: ExecutionEvent): Promise<void> {
    try {
      await publishExecution(this.js, event);
      this.counts.published++;
    } catch (err) {
      this.counts.failed++;
      this.logger.warn("execution not published: it is missing from the history", { id: event.id, program: event.program, error: String(err) });
    }
  }
}

export interface ExecuteBody {
  program: string;
  inputs: Record<string, unknown>;
  lm?: LMConfig;
  session?: string;
  affinity?: "hint" | "strict";
  timeoutMs?: number;
}

export async function executeRegistryProgram(registry: Registry, client: Client, recorder: ExecutionRecorder, body: ExecuteBody, caller: Caller) {
  const target = await registry.resolve(body.program);
  const id = `ex-${randomUUID()}`;
  const at = new Date();
  const t0 = performance.now();
  let result: (CallResult<Record<string, unknown>> & { version: number }) | undefined;
  let failure: unknown;
  try {
    const stored = await client.programs.get(target.kvKey).catch((err: unknown) => {
      if (err instanceof DspexError && err.type === "NotFound") {
        throw new NotFound(`no version ${target.version} of program '${target.program}'`, { field: "program", details: { program: target.program, version: target.version } });
      }
      throw err;
    });
    const profile = (stored.definition.lineage?.registry as { lm_profile?: string | null } | undefined)?.lm_profile;
    const lm = body.lm ?? (profile ? { profile } : undefined);
    result = await client.execute(target.kvKey, body.inputs, {
      version: stored.version,
      requestId: id,
      ...(lm ? { lm } : {}),
      ...(body.session ? { session: body.session } : {}),
      ...(body.affinity ? { affinity: body.affinity } : {}),
      ...(body.timeoutMs ? { timeoutMs: body.timeoutMs } : {}),
    });
  } catch (err) {
    failure = err;
  }
  const latency = performance.now() - t0;
  if (failure === undefined || !(failure instanceof DspexError && NOT_RUN.has(failure.type))) {
    const seen: { type: string; message: string; field?: string | undefined } | null =
      failure instanceof DspexError ? contractError(failure, id).body.error : failure === undefined ? null : { type: "InternalError", message: `internal error; quote ${id} to the operator` };
    await recorder.publish({
      v: 1,
      id,
      program: target.program,
      version: target.version,
      status: failure === undefined ? "ok" : "error",
      at: at.toISOString(),
      latency_ms: Math.round(latency * 1000) / 1000,
      ...(recorder.keep ? { inputs: body.inputs } : {}),
      inputs_summary: summarizeInputs(body.inputs, recorder.keep),
      outputs: result?.outputs ?? null,
      error: seen ? { type: seen.type, message: seen.message, ...(seen.field ? { field: seen.field } : {}) } : null,
      usage: (result?.usage as Record<string, unknown> | undefined) ?? null,
      worker: result?.worker ?? null,
      trace_id: traceFields().trace_id ?? null,
      caller: caller.name,
    });
  }
  if (failure !== undefined) throw failure;
  return {
    id,
    program: target.program,
    version: target.version,
    ref: `program:${target.program}@${target.version}`,
    outputs: result!.outputs,
    usage: result!.usage as unknown as Record<string, unknown>,
    latencyMs: Math.round(latency * 1000) / 1000,
    worker: result!.worker,
    lm: result!.lm,
  };
}
