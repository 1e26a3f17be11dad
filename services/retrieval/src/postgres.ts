/**
 * The PostgreSQL + pgvector store on a real server (node-postgres pool). A server that cannot be reached, or that
 * goes away mid-query, is a `StoreUnavailable` (retryable) naming the store; SQL errors stay what they are.
 */
import pg from "pg";
import { StoreUnavailable } from "@dspex/protocol";
import { SqlVectorStore, type SqlDriver } from "./sql.js";
import type { CollectionSpec } from "./store.js";

// connection-level failures: the server is down, restarting, or the network is gone (SQLSTATE class 08, 57P0x)
const UNAVAILABLE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "ETIMEDOUT", "EHOSTUNREACH", "EPIPE", "57P01", "57P02", "57P03"]);

export function isUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === "string" && (UNAVAILABLE_CODES.has(code) || code.startsWith("08"))) return true;
  const message = err instanceof Error ? err.message : "";
  return /Connection terminated|connection timeout|Client has encountered a connection error/i.test(message);
}

/** Where a URL points, without its password (for messages and spans). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "postgres";
  }
}

export class PostgresDriver implements SqlDriver {
  private readonly pool: pg.Pool;
  readonly where: string;

  constructor(url: string) {
    this.where = redactUrl(url);
    this.pool = new pg.Pool({
      connectionString: url,
      max: 4,
      connectionTimeoutMillis: Number(process.env.DSPEX_RETRIEVAL_CONNECT_TIMEOUT_MS ?? 5000),
      // filtered HNSW searches keep scanning until k rows pass the filter (pgvector >= 0.8)
      options: "-c hnsw.iterative_scan=relaxed_order",
    });
    // an idle client losing its server must not crash the process: the next query reports it
    this.pool.on("error", () => undefined);
  }

  async query<R = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> {
    try {
      const result = await this.pool.query(sql, params);
      return result.rows as R[];
    } catch (err) {
      if (isUnavailable(err)) {
        throw new StoreUnavailable(`store: PostgreSQL at ${this.where} is unavailable: ${err instanceof Error ? err.message : String(err)}`, {
          field: "store",
          details: { store: "postgres", url: this.where, code: (err as { code?: string }).code ?? null },
        });
      }
      throw err;
    }
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

export async function openPostgresStore(url: string, name: string, spec?: Omit<CollectionSpec, "name">): Promise<SqlVectorStore> {
  const driver = new PostgresDriver(url);
  try {
    return await SqlVectorStore.open("postgresql", driver, name, spec);
  } catch (err) {
    await driver.close().catch(() => undefined);
    throw err;
  }
}
