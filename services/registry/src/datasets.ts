/**
 * Datasets: named, immutable sets of examples with a content hash (sha256 of their canonical JSON lines), the
 * trainsets and valsets of optimizer jobs and the data a deploy's score was measured on.
 */
import { ValidationError } from "@dspex/protocol";
import { Conflict } from "./errors.js";
import { checkName } from "./names.js";
import { decodeCursor, limitOf, pageOf, type Page, type PageRequest } from "./page.js";
import { guarded, json, sha256, type Db, type RegistryContext } from "./store.js";
import { datasetView, type DatasetView } from "./views.js";
import { NotFound } from "@dspex/protocol";

export const MAX_EXAMPLES = 10_000;

/** JSON with keys sorted at every level: the same examples hash the same whatever their key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export function contentHash(examples: ReadonlyArray<Record<string, unknown>>): string {
  return `sha256:${sha256(examples.map(canonical).join("\n"))}`;
}

export async function datasetExamples(db: Db, name: string, field: string): Promise<Array<Record<string, unknown>>> {
  const row = await db.selectFrom("datasets").select("examples").where("name", "=", name).executeTakeFirst();
  if (!row) throw new NotFound(`no dataset '${name}'`, { field, details: { dataset: name } });
  return row.examples as Array<Record<string, unknown>>;
}

export class Datasets {
  constructor(private readonly ctx: RegistryContext) {}

  async create(input: { name: string; examples: Array<Record<string, unknown>> }, actor: string): Promise<DatasetView> {
    const name = checkName(input.name, "name");
    if (!Array.isArray(input.examples) || input.examples.length === 0 || input.examples.length > MAX_EXAMPLES) {
      throw new ValidationError(`examples must be 1…${MAX_EXAMPLES} objects`, { field: "examples" });
    }
    input.examples.forEach((e, i) => {
      if (typeof e !== "object" || e === null || Array.isArray(e)) throw new ValidationError(`examples[${i}] must be an object of fields`, { field: `examples[${i}]` });
    });
    const hash = contentHash(input.examples);
    return guarded(async () => {
      const row = await this.ctx.db
        .insertInto("datasets")
        .values({ name, content_hash: hash, size: input.examples.length, examples: json(input.examples), created_by: actor })
        .onConflict((oc) => oc.column("name").doNothing())
        .returning(["name", "content_hash", "size", "created_by", "created_at"])
        .executeTakeFirst();
      if (!row) throw new Conflict(`a dataset named '${name}' already exists`, { field: "name", details: { dataset: name } });
      return datasetView(row);
    });
  }

  async get(name: string): Promise<DatasetView> {
    return guarded(async () => {
      const row = await this.ctx.db.selectFrom("datasets").selectAll().where("name", "=", name).executeTakeFirst();
      if (!row) throw new NotFound(`no dataset '${name}'`, { field: "dataset", details: { dataset: name } });
      return datasetView(row);
    });
  }

  async list(page: PageRequest): Promise<Page<DatasetView>> {
    const limit = limitOf(page);
    const after = decodeCursor(page.cursor, 1);
    return guarded(async () => {
      let q = this.ctx.db.selectFrom("datasets").select(["name", "content_hash", "size", "created_by", "created_at"]).orderBy("name").limit(limit + 1);
      if (after) q = q.where("name", ">", String(after[0]));
      return pageOf(await q.execute(), limit, datasetView, (r) => [r.name]);
    });
  }
}
