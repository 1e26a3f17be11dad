/**
 * API tokens (docs/security.md): bearer tokens the operator issues (`dspex api-token create`), kept only as
 * SHA-256 hashes — in the file DSPEX_API_TOKENS_FILE (a mounted Secret) or DSPEX_API_TOKENS — each with a name
 * (the caller's identity: logs, program ownership) and scopes. A presented token is hashed and looked up by its
 * hash, so no comparison runs over the secret itself.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { ValidationError } from "@dspex/protocol";

/**
 * predict: calls and executions; programs:read / programs:write: the registry's programs, versions, datasets,
 * jobs (and creating KV programs); programs:deploy: deploy, rollback, deprecate; executions:read: the execution
 * history (inputs when kept, outputs); admin: everything.
 */
export const SCOPES = ["predict", "programs:read", "programs:write", "programs:deploy", "executions:read", "admin"] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiToken {
  /** Who holds it (shown in logs; owns the programs it creates). */
  name: string;
  /** Hex SHA-256 of the token. */
  sha256: string;
  scopes: Scope[];
}

export interface Caller {
  name: string;
  scopes: ReadonlySet<Scope>;
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** A new random token (shown once) and the entry that stores its hash. */
export function newToken(name: string, scopes: Scope[]): { token: string; entry: ApiToken } {
  const token = `dspex_${randomBytes(32).toString("base64url")}`;
  return { token, entry: { name, sha256: hashToken(token), scopes } };
}

/**
 * The entries of a token file, checked field by field (a few lines of checks instead of a schema library: the
 * file is the operator's configuration, read once at start, and each error names the entry and field).
 */
export function parseTokens(text: string, source: string): ApiToken[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(`${source}: not JSON: ${(err as Error).message}`, { field: source });
  }
  if (!Array.isArray(value)) throw new ValidationError(`${source}: must be a JSON array of {name, sha256, scopes}`, { field: source });
  return value.map((entry: unknown, i) => {
    const at = `${source}[${i}]`;
    const e = entry as Partial<ApiToken> | null;
    if (typeof e !== "object" || e === null) throw new ValidationError(`${at}: must be an object`, { field: at });
    if (typeof e.name !== "string" || e.name === "") throw new ValidationError(`${at}.name: must be a non-empty string`, { field: `${at}.name` });
    if (typeof e.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(e.sha256)) {
      throw new ValidationError(`${at}.sha256: must be the token's hex SHA-256 (64 hex digits), never the token`, { field: `${at}.sha256` });
    }
    if (!Array.isArray(e.scopes) || e.scopes.some((s) => !(SCOPES as readonly string[]).includes(s))) {
      throw new ValidationError(`${at}.scopes: must be a list of ${SCOPES.join(", ")}`, { field: `${at}.scopes` });
    }
    return { name: e.name, sha256: e.sha256, scopes: e.scopes };
  });
}

/** The configured tokens: DSPEX_API_TOKENS_FILE, else DSPEX_API_TOKENS; none when neither is set. */
export function loadTokens(env: NodeJS.ProcessEnv = process.env): ApiToken[] {
  if (env.DSPEX_API_TOKENS_FILE) {
    let text: string;
    try {
      text = readFileSync(env.DSPEX_API_TOKENS_FILE, "utf8");
    } catch (err) {
      throw new ValidationError(`DSPEX_API_TOKENS_FILE: cannot read ${env.DSPEX_API_TOKENS_FILE}: ${(err as Error).message}`, { field: "DSPEX_API_TOKENS_FILE" });
    }
    return parseTokens(text, "DSPEX_API_TOKENS_FILE");
  }
  return env.DSPEX_API_TOKENS ? parseTokens(env.DSPEX_API_TOKENS, "DSPEX_API_TOKENS") : [];
}

export class TokenTable {
  private readonly byHash = new Map<string, Caller>();

  constructor(tokens: readonly ApiToken[]) {
    for (const t of tokens) this.byHash.set(t.sha256, { name: t.name, scopes: new Set(t.scopes) });
  }

  get size(): number {
    return this.byHash.size;
  }

  /** The caller an `Authorization: Bearer <token>` header names, or undefined. */
  authenticate(header: string | undefined): Caller | undefined {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
    return m ? this.byHash.get(hashToken(m[1]!)) : undefined;
  }
}

export function allows(caller: Caller, scope: Scope): boolean {
  return caller.scopes.has(scope) || caller.scopes.has("admin");
}
