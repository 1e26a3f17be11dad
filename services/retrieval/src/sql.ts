/**
 * The pgvector store, over any SQL driver that speaks PostgreSQL: the server (postgres.ts, node-postgres) and the
 * embedded PGlite (pglite.ts) run exactly these statements — which is why PGlite is the second store: the same
 * SQL, the same extension (pgvector), in-process and on disk.
 *
 * Tables: `dspex_collections` (name, dim, model, fields) and one `dspex_passages_<name>` per collection (id, text,
 * metadata jsonb, embedding vector(dim)) with an HNSW index on cosine distance. Filters are jsonb containment on
 * the declared fields; pgvector's iterative index scan keeps a filtered search returning k rows.
 */
import { NotFound, ValidationError } from "@dspex/protocol";
import { checkCollectionName, checkFilter, checkK, checkPassages, type CollectionSpec, type EmbeddedPassage, type Filter, type Hit, type Metadata, type VectorStore } from "./store.js";

export interface SqlDriver {
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  close(): Promise<void>;
}

/** pgvector's text form of a vector. */
export function vectorLiteral(v: Float32Array): string {
  return `[${Array.from(v).join(",")}]`;
}

const UPSERT_ROWS = 200; // rows per INSERT (4 parameters each: well under PostgreSQL's 65535)

export class SqlVectorStore implements VectorStore {
  private constructor(
    readonly kind: string,
    private readonly db: SqlDriver,
    readonly collection: Required<CollectionSpec>,
    private readonly table: string,
  ) {}

  /**
   * Opens a collection: with a spec, creates it when absent (an existing one must have the same dimension and
   * model); without, it must exist (NotFound naming `collection`).
   */
  static async open(kind: string, db: SqlDriver, name: string, spec?: Omit<CollectionSpec, "name">): Promise<SqlVectorStore> {
    checkCollectionName(name);
    await db.query("CREATE EXTENSION IF NOT EXISTS vector");
    await db.query("CREATE TABLE IF NOT EXISTS dspex_collections (name text PRIMARY KEY, dim integer NOT NULL, model text NOT NULL, fields jsonb NOT NULL)");
    if (spec) {
      if (!Number.isInteger(spec.dim) || spec.dim < 1 || spec.dim > 16000) throw new ValidationError("dim: an integer in 1..16000", { field: "dim" });
      await db.query("INSERT INTO dspex_collections (name, dim, model, fields) VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (name) DO NOTHING", [
        name,
        spec.dim,
        spec.model,
        JSON.stringify(spec.fields ?? []),
      ]);
    }
    const [row] = await db.query<{ dim: number; model: string; fields: string[] }>("SELECT dim, model, fields FROM dspex_collections WHERE name = $1", [name]);
    if (!row) throw new NotFound(`collection: no collection ${JSON.stringify(name)} in this ${kind} store (index a corpus into it first)`, { field: "collection" });
    if (spec && row.dim !== spec.dim) {
      throw new ValidationError(`dim: collection ${name} holds ${row.dim}-dimensional vectors, not ${spec.dim}`, { field: "dim", details: { expected: row.dim, got: spec.dim } });
    }
    if (spec && row.model !== spec.model) {
      throw new ValidationError(`model: collection ${name} was embedded with ${row.model}, not ${spec.model}`, { field: "model", details: { expected: row.model, got: spec.model } });
    }
    const table = `dspex_passages_${name}`;
    await db.query(
      `CREATE TABLE IF NOT EXISTS ${table} (id text PRIMARY KEY, text text NOT NULL, metadata jsonb NOT NULL DEFAULT '{}', embedding vector(${row.dim}) NOT NULL)`,
    );
    await db.query(`CREATE INDEX IF NOT EXISTS ${table}_hnsw ON ${table} USING hnsw (embedding vector_cosine_ops)`);
    return new SqlVectorStore(kind, db, { name, dim: row.dim, model: row.model, fields: row.fields }, table);
  }

  async upsert(passages: EmbeddedPassage[]): Promise<number> {
    checkPassages(passages, this.collection.dim);
    let written = 0;
    for (let start = 0; start < passages.length; start += UPSERT_ROWS) {
      const rows = passages.slice(start, start + UPSERT_ROWS);
      const params: unknown[] = [];
      const values = rows.map((p) => {
        params.push(p.id, p.text, JSON.stringify(p.metadata ?? {}), vectorLiteral(p.vector));
        const n = params.length;
        return `($${n - 3}, $${n - 2}, $${n - 1}::jsonb, $${n}::vector)`;
      });
      await this.db.query(
        `INSERT INTO ${this.table} (id, text, metadata, embedding) VALUES ${values.join(", ")}
         ON CONFLICT (id) DO UPDATE SET text = excluded.text, metadata = excluded.metadata, embedding = excluded.embedding`,
        params,
      );
      written += rows.length;
    }
    return written;
  }

  async delete(ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const rows = await this.db.query(`DELETE FROM ${this.table} WHERE id = ANY($1::text[]) RETURNING id`, [ids]);
    return rows.length;
  }

  async count(): Promise<number> {
    const [row] = await this.db.query<{ n: number | string }>(`SELECT count(*) AS n FROM ${this.table}`);
    return Number(row?.n ?? 0);
  }

  async existing(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.db.query<{ id: string }>(`SELECT id FROM ${this.table} WHERE id = ANY($1::text[])`, [ids]);
    return new Set(rows.map((r) => r.id));
  }

  async search(vector: Float32Array, k: number, filter?: Filter): Promise<Hit[]> {
    checkK(k);
    if (vector.length !== this.collection.dim) {
      throw new ValidationError(`vector: ${vector.length} dimensions; the collection's vectors have ${this.collection.dim}`, { field: "vector" });
    }
    const conditions = checkFilter(filter, this.collection.fields);
    const params: unknown[] = [vectorLiteral(vector), k];
    const where = conditions.map(([name, values]) => {
      const alternatives = values.map((value) => {
        params.push(JSON.stringify({ [name]: value }));
        return `metadata @> $${params.length}::jsonb`;
      });
      return `(${alternatives.join(" OR ")})`;
    });
    const rows = await this.db.query<{ id: string; text: string; metadata: Metadata; score: number }>(
      `SELECT id, text, metadata, 1 - (embedding <=> $1::vector) AS score FROM ${this.table}
       ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY embedding <=> $1::vector LIMIT $2`,
      params,
    );
    // relaxed_order (the iterative scan) may return rows slightly out of order: the caller gets them best first
    return rows.map((r) => ({ id: r.id, text: r.text, metadata: r.metadata, score: Number(r.score) })).sort((a, b) => b.score - a.score);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
