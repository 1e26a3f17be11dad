/**
 * Jobs the registry started (optimizer jobs of `train`), linked to the program version and datasets they used,
 * with their status and score. The job's record in KV `dspex_jobs` is the truth while it runs: reading a job
 * that has not ended refreshes it from there.
 */
import { JobStore } from "@dspex/jobs";
import { NotFound } from "@dspex/protocol";
import type { JobRow } from "./db/tables.js";
import { decodeCursor, limitOf, pageOf, type Page, type PageRequest } from "./page.js";
import { guarded, json, type RegistryContext } from "./store.js";
import { jobView, type JobView } from "./views.js";

export interface JobFilters {
  program?: string;
  kind?: string;
  status?: string;
}

const FINAL = new Set(["succeeded", "failed", "cancelled"]);

export class Jobs {
  private store: Promise<JobStore> | undefined;

  constructor(private readonly ctx: RegistryContext) {}

  private async refresh(row: JobRow): Promise<JobRow> {
    if (FINAL.has(row.status)) return row;
    this.store ??= JobStore.open(this.ctx.client.nc);
    const found = await (await this.store).get(row.id).catch(() => null);
    if (!found) return row;
    const rec = found.record;
    const previous = (row.result ?? {}) as Record<string, unknown>;
    if (rec.status === row.status && JSON.stringify(rec.progress ?? null) === JSON.stringify(previous.progress ?? null)) return row;
    const score = (rec.result as { score?: number | null } | undefined)?.score ?? row.score;
    const result = json({ ...previous, ...(rec.result ?? {}), progress: rec.progress ?? null });
    return this.ctx.db.updateTable("jobs").set({ status: rec.status, score, result, updated_at: new Date() }).where("id", "=", row.id).returningAll().executeTakeFirstOrThrow();
  }

  async get(id: string): Promise<JobView> {
    return guarded(async () => {
      const row = await this.ctx.db.selectFrom("jobs").selectAll().where("id", "=", id).executeTakeFirst();
      if (!row) throw new NotFound(`no job '${id}' in the registry`, { field: "id", details: { job: id } });
      return jobView(await this.refresh(row));
    });
  }

  /** Newest first. */
  async list(filters: JobFilters, page: PageRequest): Promise<Page<JobView>> {
    const limit = limitOf(page);
    const after = decodeCursor(page.cursor, 2);
    return guarded(async () => {
      let q = this.ctx.db.selectFrom("jobs").selectAll().orderBy("created_at", "desc").orderBy("id", "desc").limit(limit + 1);
      if (filters.program) q = q.where("program", "=", filters.program);
      if (filters.kind) q = q.where("kind", "=", filters.kind);
      if (filters.status) q = q.where("status", "=", filters.status);
      if (after) {
        const at = new Date(String(after[0]));
        const id = String(after[1]);
        q = q.where((eb) => eb.or([eb("created_at", "<", at), eb.and([eb("created_at", "=", at), eb("id", "<", id)])]));
      }
      const rows = await q.execute();
      const fresh = await Promise.all(rows.slice(0, limit).map((r) => this.refresh(r)));
      return pageOf([...fresh, ...rows.slice(limit)], limit, jobView, (r) => [r.created_at.toISOString(), r.id]);
    });
  }
}
