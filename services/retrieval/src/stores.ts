/**
 * Opening a store by location: `postgres://…` / `postgresql://…` (a server with pgvector) or `pglite:<dir>` (the
 * embedded default, on disk). DSPEX_RETRIEVAL_STORE names the default location (else `pglite:.dspex/retrieval`).
 */
import { resolve } from "node:path";
import { ValidationError } from "@dspex/protocol";
import { openPgliteStore } from "./pglite.js";
import { openPostgresStore } from "./postgres.js";
import type { CollectionSpec, VectorStore } from "./store.js";

export const DEFAULT_STORE = "pglite:.dspex/retrieval";

export function defaultStoreLocation(env: NodeJS.ProcessEnv = process.env): string {
  return env.DSPEX_RETRIEVAL_STORE || DEFAULT_STORE;
}

export function openStore(location: string, collection: string, spec?: Omit<CollectionSpec, "name">): Promise<VectorStore> {
  if (/^postgres(ql)?:\/\//.test(location)) return openPostgresStore(location, collection, spec);
  if (location.startsWith("pglite:")) {
    const dir = location.slice("pglite:".length);
    if (!dir) throw new ValidationError("store: pglite:<directory> names the data directory", { field: "store" });
    return openPgliteStore(resolve(dir), collection, spec);
  }
  throw new ValidationError(`store: ${JSON.stringify(location)} is no store location; postgres://… or pglite:<directory>`, { field: "store" });
}
