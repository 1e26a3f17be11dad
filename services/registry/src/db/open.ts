/**
 * Opens the registry's database: a PostgreSQL server (`postgres://…`, production) or the embedded default,
 * PGlite on disk (a directory), so the README's commands need no server. Both run the same SQL, and the schema
 * is brought up to date on open (db/migrations.ts).
 *
 *   DSPEX_REGISTRY_DATABASE_URL   postgres://user:pass@host:5432/db, or pglite:<dir>
 *   DSPEX_REGISTRY_DIR            the embedded database's directory (default ~/.dspex/registry)
 */
import { mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { PGlite } from "@electric-sql/pglite";
import type { Logger } from "@dspex/observability";
import { migrate } from "./migrations.js";
import { PGliteDialect } from "./pglite-dialect.js";
import type { Database } from "./tables.js";

export interface RegistryDatabase {
  db: Kysely<Database>;
  kind: "postgres" | "pglite";
  /** Where it is, without credentials (logs, /readyz). */
  location: string;
  /** Whether the database answers now. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** `postgres://…`, `pglite:<dir>` or a directory (default: the environment, else ~/.dspex/registry). */
  url?: string;
  logger?: Logger;
  /** PostgreSQL pool size (default 10). */
  poolSize?: number;
}

export function defaultDatabaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env.DSPEX_REGISTRY_DATABASE_URL || `pglite:${env.DSPEX_REGISTRY_DIR || join(homedir(), ".dspex", "registry")}`;
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "postgres://(unparsable)";
  }
}

export async function openDatabase(options: OpenOptions = {}): Promise<RegistryDatabase> {
  const url = options.url ?? defaultDatabaseUrl();
  let out: RegistryDatabase;
  if (/^postgres(ql)?:\/\//.test(url)) {
    const pool = new pg.Pool({ connectionString: url, max: options.poolSize ?? 10, connectionTimeoutMillis: 5_000, idleTimeoutMillis: 10_000 });
    // an idle client whose server went away must not crash the process: the next query reports it
    pool.on("error", (err) => options.logger?.warn("registry database connection lost", { error: err.message }));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    out = {
      db,
      kind: "postgres",
      location: redact(url),
      ping: async () => {
        try {
          await sql`select 1`.execute(db);
          return true;
        } catch {
          return false;
        }
      },
      close: () => db.destroy(),
    };
  } else {
    const dir = resolve(url.replace(/^pglite:/, ""));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const lite = await PGlite.create(dir);
    const db = new Kysely<Database>({ dialect: new PGliteDialect(lite) });
    out = { db, kind: "pglite", location: `pglite:${dir}`, ping: async () => !lite.closed, close: () => db.destroy() };
  }
  try {
    const applied = await migrate(out.db as Kysely<unknown>);
    if (applied.length > 0) options.logger?.info("registry schema migrated", { database: out.location, applied });
  } catch (err) {
    await out.close();
    throw err;
  }
  return out;
}
