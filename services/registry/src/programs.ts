/**
 * Programs and their immutable versions: create (with version 1, a draft), read, list, add a version. Each
 * version is also stored in KV for the workers (store.ts `materialize`), inside the same transaction, so a
 * version the database has is one the workers can run.
 */
import { resolveSignature, signatureJsonSchema } from "@dspex/native";
import { ValidationError, type SignatureWire } from "@dspex/protocol";
import type { ProgramState } from "@dspex/client";
import type { ProgramRow } from "./db/tables.js";
import { Conflict } from "./errors.js";
import { checkName, kvKey, type LifecycleState } from "./names.js";
import { decodeCursor, limitOf, pageOf, type Page, type PageRequest } from "./page.js";
import { guarded, json, materialize, programRow, sha256, versionRow, type Db, type RegistryContext } from "./store.js";
import { programView, transitionView, versionView, type EvaluationView, type ProgramView, type SignatureView, type TransitionView, type VersionView } from "./views.js";

export interface CreateProgramInput {
  name: string;
  signature: string;
  module?: "predict" | "chain_of_thought";
  instructions?: string;
  lmProfile?: string;
  description?: string;
  state?: ProgramState;
}

export interface AddVersionInput {
  state: ProgramState;
  instructions?: string;
  parentVersion?: number;
}

export interface ProgramFilters {
  state?: LifecycleState;
  module?: string;
  owner?: string;
}

async function signatureView(db: Db, id: string): Promise<SignatureView> {
  const row = await db.selectFrom("signatures").selectAll().where("id", "=", id).executeTakeFirstOrThrow();
  return { id: row.id, text: row.text, wire: row.wire as Record<string, unknown>, inputSchema: row.input_schema as Record<string, unknown>, outputSchema: row.output_schema as Record<string, unknown> };
}

export async function programsOf(db: Db, rows: ProgramRow[]): Promise<ProgramView[]> {
  const ids = [...new Set(rows.map((r) => r.signature_id))];
  const sigs = new Map<string, SignatureView>();
  for (const id of ids) sigs.set(id, await signatureView(db, id));
  return rows.map((r) => programView(r, sigs.get(r.signature_id)!));
}

export async function evaluationsOf(db: Db, program: string, versions: number[]): Promise<Map<number, EvaluationView[]>> {
  const out = new Map<number, EvaluationView[]>(versions.map((v) => [v, []]));
  if (versions.length === 0) return out;
  const rows = await db.selectFrom("evaluations").selectAll().where("program", "=", program).where("version", "in", versions).orderBy("id").execute();
  for (const r of rows) out.get(r.version)?.push({ dataset: r.dataset, score: r.score, job: r.job_id, at: r.created_at.toISOString() });
  return out;
}

export class Programs {
  constructor(private readonly ctx: RegistryContext) {}

  async create(input: CreateProgramInput, actor: string): Promise<ProgramView> {
    const name = checkName(input.name, "name");
    const module = input.module ?? "predict";
    const wire: SignatureWire = resolveSignature(input.signature);
    const sigId = sha256(JSON.stringify(wire));
    return guarded(() =>
      this.ctx.db.transaction().execute(async (tx) => {
        await tx
          .insertInto("signatures")
          .values({ id: sigId, text: input.signature, wire: json(wire), input_schema: json(signatureJsonSchema(wire, "inputs")), output_schema: json(signatureJsonSchema(wire, "outputs")) })
          .onConflict((oc) => oc.column("id").doNothing())
          .execute();
        const inserted = await tx
          .insertInto("programs")
          .values({ name, module, signature_id: sigId, lm_profile: input.lmProfile ?? null, description: input.description ?? null, state: "draft", deployed_version: null, latest_version: 1, owner: actor })
          .onConflict((oc) => oc.column("name").doNothing())
          .returningAll()
          .executeTakeFirst();
        if (!inserted) throw new Conflict(`a program named '${name}' already exists`, { field: "name", details: { program: name } });
        const version = await tx
          .insertInto("program_versions")
          .values({ program: name, version: 1, state: json(input.state ?? {}), instructions: input.instructions ?? null, parent_version: null, job_id: null, score: null, baseline_score: null, kv_key: kvKey(name, 1), created_by: actor })
          .returningAll()
          .executeTakeFirstOrThrow();
        await tx.insertInto("transitions").values({ program: name, action: "create", from_state: "none", to_state: "draft", version: 1, actor, reason: null, details: null }).execute();
        await materialize(this.ctx.client, inserted, version, wire);
        return programView(inserted, await signatureView(tx, sigId));
      }),
    );
  }

  async get(name: string): Promise<ProgramView> {
    return guarded(async () => {
      const row = await programRow(this.ctx.db, name);
      return programView(row, await signatureView(this.ctx.db, row.signature_id));
    });
  }

  async list(filters: ProgramFilters, page: PageRequest): Promise<Page<ProgramView>> {
    const limit = limitOf(page);
    const after = decodeCursor(page.cursor, 1);
    return guarded(async () => {
      let q = this.ctx.db.selectFrom("programs").selectAll().orderBy("name").limit(limit + 1);
      if (filters.state) q = q.where("state", "=", filters.state);
      if (filters.module) q = q.where("module", "=", filters.module);
      if (filters.owner) q = q.where("owner", "=", filters.owner);
      if (after) q = q.where("name", ">", String(after[0]));
      const rows = await q.execute();
      const views = await programsOf(this.ctx.db, rows.slice(0, limit));
      return pageOf(rows.slice(0, limit + 1), limit, (r) => views.find((v) => v.name === r.name)!, (r) => [r.name]);
    });
  }

  async versions(name: string, page: PageRequest): Promise<Page<VersionView>> {
    const limit = limitOf(page);
    const after = decodeCursor(page.cursor, 1);
    return guarded(async () => {
      await programRow(this.ctx.db, name);
      let q = this.ctx.db.selectFrom("program_versions").selectAll().where("program", "=", name).orderBy("version", "desc").limit(limit + 1);
      if (after) q = q.where("version", "<", Number(after[0]));
      const rows = await q.execute();
      const evals = await evaluationsOf(this.ctx.db, name, rows.map((r) => r.version));
      return pageOf(rows, limit, (r) => versionView(r, evals.get(r.version) ?? []), (r) => [r.version]);
    });
  }

  async version(name: string, version: number): Promise<VersionView> {
    return guarded(() => versionOf(this.ctx.db, name, version));
  }

  async transitions(name: string, page: PageRequest): Promise<Page<TransitionView>> {
    const limit = limitOf(page);
    const after = decodeCursor(page.cursor, 1);
    return guarded(async () => {
      await programRow(this.ctx.db, name);
      let q = this.ctx.db.selectFrom("transitions").selectAll().where("program", "=", name).orderBy("id", "desc").limit(limit + 1);
      if (after) q = q.where("id", "<", Number(after[0]));
      return pageOf(await q.execute(), limit, transitionView, (r) => [r.id]);
    });
  }

  /** A new version by hand (curated demos, new instructions); the program's state does not change. */
  async addVersion(name: string, input: AddVersionInput, actor: string): Promise<VersionView> {
    return guarded(() =>
      this.ctx.db.transaction().execute(async (tx) => {
        const program = await programRow(tx, name, true);
        if (program.state === "deprecated") throw new Conflict(`program '${name}' is deprecated`, { field: "state", details: { state: program.state } });
        const parent = input.parentVersion ?? program.latest_version;
        if (parent < 1 || parent > program.latest_version) throw new ValidationError(`parentVersion ${parent} is no version of '${name}'`, { field: "parentVersion" });
        const row = await insertVersion(tx, program, { state: input.state, instructions: input.instructions ?? null, parent_version: parent, job_id: null, score: null, baseline_score: null }, actor);
        await materialize(this.ctx.client, program, row, (await tx.selectFrom("signatures").select("wire").where("id", "=", program.signature_id).executeTakeFirstOrThrow()).wire as SignatureWire);
        return versionView(row, []);
      }),
    );
  }
}

export async function versionOf(db: Db, name: string, version: number): Promise<VersionView> {
  const row = await versionRow(db, name, version);
  return versionView(row, (await evaluationsOf(db, name, [version])).get(version) ?? []);
}

/** Inserts the next version of a locked program row and bumps its latest version. */
export async function insertVersion(
  tx: Db,
  program: ProgramRow,
  v: { state: unknown; instructions: string | null; parent_version: number | null; job_id: string | null; score: number | null; baseline_score: number | null },
  actor: string,
) {
  const version = program.latest_version + 1;
  const row = await tx
    .insertInto("program_versions")
    .values({ program: program.name, version, state: json(v.state), instructions: v.instructions, parent_version: v.parent_version, job_id: v.job_id, score: v.score, baseline_score: v.baseline_score, kv_key: kvKey(program.name, version), created_by: actor })
    .returningAll()
    .executeTakeFirstOrThrow();
  await tx.updateTable("programs").set({ latest_version: version, updated_at: new Date() }).where("name", "=", program.name).execute();
  return row;
}

