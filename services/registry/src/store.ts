/**
 * What every part of the registry shares: the database, the KV programs the workers read, and the error
 * mapping (a database that cannot be reached is `Unavailable`, 503).
 */
import { createHash } from "node:crypto";
import type { Kysely, Transaction } from "kysely";
import type { Client, ProgramDefinition } from "@dspex/client";
import { NotFound, type SignatureWire } from "@dspex/protocol";
import type { Logger } from "@dspex/observability";
import type { Database, ProgramRow, VersionRow } from "./db/tables.js";
import { unavailable } from "./errors.js";
import { kvKey } from "./names.js";

export type Db = Kysely<Database> | Transaction<Database>;

export interface RegistryContext {
  db: Kysely<Database>;
  client: Client;
  logger: Logger;
}

/** JSON text for a jsonb column. */
export const json = (value: unknown): string => JSON.stringify(value);

export function sha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** Runs a database operation; a connection failure becomes `Unavailable`. */
export async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw unavailable(err);
  }
}

export async function programRow(db: Db, name: string, lock = false): Promise<ProgramRow> {
  let q = db.selectFrom("programs").selectAll().where("name", "=", name);
  if (lock) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) throw new NotFound(`no program '${name}'`, { field: "program", details: { program: name } });
  return row;
}

export async function versionRow(db: Db, program: string, version: number): Promise<VersionRow> {
  const row = await db.selectFrom("program_versions").selectAll().where("program", "=", program).where("version", "=", version).executeTakeFirst();
  if (!row) throw new NotFound(`no version ${version} of program '${program}'`, { field: "version", details: { program, version } });
  return row;
}

export async function signatureWire(db: Db, id: string): Promise<SignatureWire> {
  const row = await db.selectFrom("signatures").select("wire").where("id", "=", id).executeTakeFirstOrThrow();
  return row.wire as SignatureWire;
}

/**
 * Stores a version where the workers read it: KV `dspex_programs`, key `registry-<name>-v<version>`, owned by
 * the registry. The content is the version's and never changes, so writing it again is harmless; a version
 * whose entry was lost is written again before it is deployed.
 */
export async function materialize(client: Client, program: ProgramRow, version: VersionRow, wire: SignatureWire): Promise<void> {
  const definition: ProgramDefinition = {
    id: kvKey(program.name, version.version),
    module: program.module as ProgramDefinition["module"],
    signature: version.instructions === null ? wire : { ...wire, instructions: version.instructions },
    state: version.state as ProgramDefinition["state"] & object,
    created_at: Date.now(),
    owner: "registry",
    lineage: { registry: { program: program.name, version: version.version, lm_profile: program.lm_profile } },
    ...(version.score === null ? {} : { score: version.score }),
  };
  await client.programs.put(definition);
}
