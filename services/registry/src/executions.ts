/**
 * Execution history: one row per request id (the recorder inserts with ON CONFLICT DO NOTHING, so an event
 * delivered twice is recorded once), searched by program, version, status and time, kept for the retention
 * period (DSPEX_EXECUTIONS_RETENTION_DAYS, default 90).
 */
import { NotFound, ValidationError } from "@dspex/protocol";
import type { ExecutionEvent } from "./events.js";
import { decodeCursor, limitOf, pageOf, type Page, type PageRequest } from "./page.js";
import { guarded, json, type RegistryContext } from "./store.js";
import { executionView, type ExecutionView } from "./views.js";

export interface ExecutionFilters {
  program?: string;
  version?: number;
  status?: "ok" | "error";
  /** ISO 8601: at or after. */
  since?: string;
  /** ISO 8601: before. */
  until?: string;
}

function date(value: string | undefined, field: string): Date | undefined {
  if (value === undefined) return undefined;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new ValidationError(`${field} must be an ISO 8601 time`, { field });
  return d;
}

export function retentionDays(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.DSPEX_EXECUTIONS_RETENTION_DAYS;
  if (raw === undefined || raw === "") return 90;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`DSPEX_EXECUTIONS_RETENTION_DAYS must be an integer ≥ 0 (0 keeps everything; got ${JSON.stringify(raw)})`);
  return n;
}

export class Executions {
  constructor(private readonly ctx: RegistryContext) {}

  /** Records an execution once; false when its id was recorded before. Connection failures are thrown as they are. */
  async record(e: ExecutionEvent): Promise<boolean> {
    const row = await this.ctx.db
      .insertInto("executions")
      .values({
        id: e.id,
        program: e.program,
        version: e.version,
        status: e.status,
        inputs: e.inputs === undefined ? null : json(e.inputs),
        inputs_summary: json(e.inputs_summary),
        outputs: e.outputs == null ? null : json(e.outputs),
        error: e.error == null ? null : json(e.error),
        usage: e.usage == null ? null : json(e.usage),
        latency_ms: e.latency_ms,
        worker: e.worker ?? null,
        trace_id: e.trace_id ?? null,
        caller: e.caller ?? null,
        at: new Date(e.at),
      })
      .onConflict((oc) => oc.column("id").doNothing())
      .returning("id")
      .executeTakeFirst();
    return row !== undefined;
  }

  async get(id: string): Promise<ExecutionView> {
    return guarded(async () => {
      const row = await this.ctx.db.selectFrom("executions").selectAll().where("id", "=", id).executeTakeFirst();
      if (!row) throw new NotFound(`no execution '${id}'`, { field: "id", details: { execution: id } });
      return executionView(row);
    });
  }

  /** Newest first. */
  async list(filters: ExecutionFilters, page: PageRequest): Promise<Page<ExecutionView>> {
    const limit = limitOf(page);
    const after = decodeCursor(page.cursor, 2);
    const since = date(filters.since, "since");
    const until = date(filters.until, "until");
    return guarded(async () => {
      let q = this.ctx.db.selectFrom("executions").selectAll().orderBy("at", "desc").orderBy("id", "desc").limit(limit + 1);
      if (filters.program) q = q.where("program", "=", filters.program);
      if (filters.version !== undefined) q = q.where("version", "=", filters.version);
      if (filters.status) q = q.where("status", "=", filters.status);
      if (since) q = q.where("at", ">=", since);
      if (until) q = q.where("at", "<", until);
      if (after) {
        const at = new Date(String(after[0]));
        const id = String(after[1]);
        q = q.where((eb) => eb.or([eb("at", "<", at), eb.and([eb("at", "=", at), eb("id", "<", id)])]));
      }
      return pageOf(await q.execute(), limit, executionView, (r) => [r.at.toISOString(), r.id]);
    });
  }

  /** Deletes executions older than `days`; returns how many. */
  async prune(days: number): Promise<number> {
    if (days <= 0) return 0;
    const before = new Date(Date.now() - days * 24 * 3600_000);
    const r = await this.ctx.db.deleteFrom("executions").where("at", "<", before).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
