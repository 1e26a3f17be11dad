/**
 * Versioned migrations of the registry's schema (Kysely's Migrator: applied in order, each once, recorded in
 * `kysely_migration`, under its lock so two processes starting together do not both apply one). A migration
 * is never edited once released: a change is a new one.
 */
import { Migrator, sql, type Kysely, type Migration, type MigrationProvider } from "kysely";

const initial: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable("signatures")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("text", "text", (c) => c.notNull())
      .addColumn("wire", "jsonb", (c) => c.notNull())
      .addColumn("input_schema", "jsonb", (c) => c.notNull())
      .addColumn("output_schema", "jsonb", (c) => c.notNull())
      .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .execute();
    await db.schema
      .createTable("programs")
      .addColumn("name", "text", (c) => c.primaryKey())
      .addColumn("module", "text", (c) => c.notNull())
      .addColumn("signature_id", "text", (c) => c.notNull().references("signatures.id"))
      .addColumn("lm_profile", "text")
      .addColumn("description", "text")
      .addColumn("state", "text", (c) => c.notNull())
      .addColumn("deployed_version", "integer")
      .addColumn("latest_version", "integer", (c) => c.notNull())
      .addColumn("owner", "text", (c) => c.notNull())
      .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .execute();
    await db.schema
      .createTable("program_versions")
      .addColumn("program", "text", (c) => c.notNull().references("programs.name"))
      .addColumn("version", "integer", (c) => c.notNull())
      .addColumn("state", "jsonb", (c) => c.notNull())
      .addColumn("instructions", "text")
      .addColumn("parent_version", "integer")
      .addColumn("job_id", "text")
      .addColumn("score", "double precision")
      .addColumn("baseline_score", "double precision")
      .addColumn("kv_key", "text", (c) => c.notNull())
      .addColumn("created_by", "text", (c) => c.notNull())
      .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .addPrimaryKeyConstraint("program_versions_pk", ["program", "version"])
      .execute();
    await db.schema
      .createTable("transitions")
      .addColumn("id", "serial", (c) => c.primaryKey())
      .addColumn("program", "text", (c) => c.notNull().references("programs.name"))
      .addColumn("action", "text", (c) => c.notNull())
      .addColumn("from_state", "text", (c) => c.notNull())
      .addColumn("to_state", "text", (c) => c.notNull())
      .addColumn("version", "integer")
      .addColumn("actor", "text", (c) => c.notNull())
      .addColumn("reason", "text")
      .addColumn("details", "jsonb")
      .addColumn("at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .execute();
    await db.schema.createIndex("transitions_program").on("transitions").columns(["program", "id"]).execute();
    await db.schema
      .createTable("datasets")
      .addColumn("name", "text", (c) => c.primaryKey())
      .addColumn("content_hash", "text", (c) => c.notNull())
      .addColumn("size", "integer", (c) => c.notNull())
      .addColumn("examples", "jsonb", (c) => c.notNull())
      .addColumn("created_by", "text", (c) => c.notNull())
      .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .execute();
    await db.schema
      .createTable("jobs")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("kind", "text", (c) => c.notNull())
      .addColumn("program", "text", (c) => c.notNull().references("programs.name"))
      .addColumn("version", "integer", (c) => c.notNull())
      .addColumn("dataset", "text", (c) => c.references("datasets.name"))
      .addColumn("valset", "text", (c) => c.references("datasets.name"))
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("score", "double precision")
      .addColumn("result", "jsonb")
      .addColumn("created_by", "text", (c) => c.notNull())
      .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .execute();
    await db.schema.createIndex("jobs_program").on("jobs").columns(["program", "created_at"]).execute();
    await db.schema
      .createTable("evaluations")
      .addColumn("id", "serial", (c) => c.primaryKey())
      .addColumn("program", "text", (c) => c.notNull())
      .addColumn("version", "integer", (c) => c.notNull())
      .addColumn("dataset", "text", (c) => c.notNull().references("datasets.name"))
      .addColumn("score", "double precision", (c) => c.notNull())
      .addColumn("job_id", "text")
      .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .addForeignKeyConstraint("evaluations_version_fk", ["program", "version"], "program_versions", ["program", "version"])
      .execute();
    await db.schema.createIndex("evaluations_version").on("evaluations").columns(["program", "version", "dataset"]).execute();
    await db.schema
      .createTable("executions")
      .addColumn("id", "text", (c) => c.primaryKey())
      // no foreign key: an execution is history, kept as it happened
      .addColumn("program", "text", (c) => c.notNull())
      .addColumn("version", "integer", (c) => c.notNull())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("inputs", "jsonb")
      .addColumn("inputs_summary", "jsonb", (c) => c.notNull())
      .addColumn("outputs", "jsonb")
      .addColumn("error", "jsonb")
      .addColumn("usage", "jsonb")
      .addColumn("latency_ms", "double precision", (c) => c.notNull())
      .addColumn("worker", "text")
      .addColumn("trace_id", "text")
      .addColumn("caller", "text")
      .addColumn("at", "timestamptz", (c) => c.notNull())
      .addColumn("recorded_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .execute();
    await db.schema.createIndex("executions_at").on("executions").columns(["at", "id"]).execute();
    await db.schema.createIndex("executions_program_at").on("executions").columns(["program", "version", "at"]).execute();
  },
};

export const MIGRATIONS: Record<string, Migration> = { "001_initial": initial };

const provider: MigrationProvider = { getMigrations: async () => MIGRATIONS };

/** Brings the schema up to date; returns the migrations it applied. */
export async function migrate(db: Kysely<unknown>): Promise<string[]> {
  const { error, results } = await new Migrator({ db, provider }).migrateToLatest();
  if (error) throw error;
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}
