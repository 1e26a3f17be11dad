/**
 * The embedded store: PGlite (PostgreSQL compiled to WebAssembly, in this process) with pgvector
 * (`@electric-sql/pglite-pgvector`), its data directory on disk so an index survives restarts. The same SQL as
 * the server (sql.ts). One process opens a data directory at a time (PGlite is single-user).
 */
import { mkdirSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import { vector } from "@electric-sql/pglite-pgvector";
import { SqlVectorStore, type SqlDriver } from "./sql.js";
import type { CollectionSpec } from "./store.js";

export class PgliteDriver implements SqlDriver {
  private constructor(private readonly db: PGlite) {}

  static async open(dataDir: string): Promise<PgliteDriver> {
    mkdirSync(dataDir, { recursive: true });
    const db = await PGlite.create(dataDir, { extensions: { vector } });
    await db.exec("SET hnsw.iterative_scan = relaxed_order");
    return new PgliteDriver(db);
  }

  async query<R = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> {
    const result = await this.db.query<R>(sql, params);
    return result.rows;
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

export async function openPgliteStore(dataDir: string, name: string, spec?: Omit<CollectionSpec, "name">): Promise<SqlVectorStore> {
  const driver = await PgliteDriver.open(dataDir);
  try {
    return await SqlVectorStore.open("pglite", driver, name, spec);
  } catch (err) {
    await driver.close().catch(() => undefined);
    throw err;
  }
}
