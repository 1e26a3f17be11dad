/**
 * Issues the bus's identities (decentralized JWT auth, docs/security.md): an operator, the DSPex account (with
 * JetStream) and the system account, and one user per role whose JWT carries the role's permissions. Writes
 * each role's `.creds` file and the server's auth configuration (operator JWT, account JWTs preloaded into a
 * memory resolver: public data) into one directory, mode 0700, files 0600.
 *
 * The operator and account seeds (`seeds.json`) sign the users. They are kept in the same directory so a
 * restart re-issues users with the same account: JetStream keeps an account's streams under the account's
 * public key, so a new account would find a persistent store empty. A deployment issues once (scripts or a
 * Job, docs/security.md) and keeps the seeds out of the cluster.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  createAccount,
  createOperator,
  createUser,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
  fromSeed,
  type KeyPair,
} from "@nats-io/jwt";
import type { Pool } from "@dspex/protocol";
import { inboxPrefix, rolePermissions, ROLES, type Role } from "./roles.js";

export interface IssuedAuth {
  /** The directory holding everything below. */
  dir: string;
  /** nats-server configuration lines: operator, system account, resolver with the accounts preloaded. */
  serverConfig: string;
  /** Path of the server configuration fragment (`include` it from nats-server.conf). */
  serverConfigPath: string;
  /** Path of each issued role's credentials file. */
  creds: Partial<Record<Role, string>> & Record<"admin", string>;
}

export interface IssueOptions {
  /** Where to write `<role>.creds`, `auth.conf` and `seeds.json` (created, mode 0700). */
  dir: string;
  /** Roles to issue users for (default: every role; `admin` is always issued). */
  roles?: readonly Role[];
  /** The pools' partition counts (workers may pull only their own pool's consumers). */
  partitions: Record<Pool, number>;
  /** How long the users' JWTs are valid, in seconds (default: no expiry; rotate by issuing anew). */
  expiresInS?: number;
  /** Re-use the operator and accounts of `seeds.json` when the directory has one (default true). */
  reuseKeys?: boolean;
}

const ACCOUNT_LIMITS = {
  // JetStream on, unlimited within the account: the bus's own limits are set on each stream and bucket
  mem_storage: -1,
  disk_storage: -1,
  streams: -1,
  consumer: -1,
  subs: -1,
  data: -1,
  payload: -1,
  conn: -1,
  imports: -1,
  exports: -1,
  wildcards: true,
};

/** The server's limit on a protocol line (CONNECT carries the user JWT). */
export const MAX_CONTROL_LINE = 32_768;

interface Seeds {
  operator: string;
  system: string;
  account: string;
}

export function writeSecret(path: string, data: string | Uint8Array): void {
  writeFileSync(path, data, { mode: 0o600 });
  chmodSync(path, 0o600); // also when the file existed with looser bits
}

function seedOf(kp: KeyPair): string {
  return new TextDecoder().decode(kp.getSeed());
}

function loadSeeds(path: string): { operator: KeyPair; system: KeyPair; account: KeyPair } | undefined {
  if (!existsSync(path)) return undefined;
  const seeds = JSON.parse(readFileSync(path, "utf8")) as Seeds;
  const key = (seed: string) => fromSeed(new TextEncoder().encode(seed));
  return { operator: key(seeds.operator), system: key(seeds.system), account: key(seeds.account) };
}

export async function issueAuth(options: IssueOptions): Promise<IssuedAuth> {
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  chmodSync(options.dir, 0o700);
  const seedsPath = join(options.dir, "seeds.json");
  const keys = (options.reuseKeys ?? true ? loadSeeds(seedsPath) : undefined) ?? {
    operator: createOperator(),
    system: createAccount(),
    account: createAccount(),
  };
  writeSecret(seedsPath, `${JSON.stringify({ operator: seedOf(keys.operator), system: seedOf(keys.system), account: seedOf(keys.account) })}\n`);
  const { operator, system, account } = keys;
  const operatorJwt = await encodeOperator("dspex", operator, { system_account: system.getPublicKey() });
  const systemJwt = await encodeAccount("SYS", system, {}, { signer: operator });
  const accountJwt = await encodeAccount("DSPEX", account, { limits: ACCOUNT_LIMITS }, { signer: operator });
  const exp = options.expiresInS ? Math.floor(Date.now() / 1000) + options.expiresInS : undefined;
  const creds: Partial<Record<Role, string>> = {};
  const roles = new Set<Role>(["admin", ...(options.roles ?? ROLES)]);
  for (const role of roles) {
    const user = createUser();
    const p = rolePermissions(role, options.partitions);
    const jwt = await encodeUser(
      role,
      user,
      account,
      {
        pub: { allow: p.pub, deny: [] },
        sub: { allow: p.sub, deny: [] },
        ...(p.responses ? { resp: { max: 1, ttl: 0 } } : {}),
        // the role and its inbox prefix travel in the credentials: a process needs only its .creds file
        tags: [`dspex-role:${role}`, `dspex-inbox:${inboxPrefix(role)}`],
      },
      exp ? { exp } : {},
    );
    const path = join(options.dir, `${role}.creds`);
    writeSecret(path, fmtCreds(jwt, user));
    creds[role] = path;
  }
  const serverConfig = [
    // a worker's JWT lists its pool's partition consumers one by one (NATS wildcards match whole tokens only),
    // which makes its CONNECT line longer than the default limit of 4 KiB
    `max_control_line: ${MAX_CONTROL_LINE}`,
    `operator: ${operatorJwt}`,
    `system_account: ${system.getPublicKey()}`,
    "resolver: MEMORY",
    "resolver_preload: {",
    `  ${system.getPublicKey()}: ${systemJwt}`,
    `  ${account.getPublicKey()}: ${accountJwt}`,
    "}",
  ].join("\n");
  const serverConfigPath = join(options.dir, "auth.conf");
  writeSecret(serverConfigPath, `${serverConfig}\n`);
  return { dir: options.dir, serverConfig, serverConfigPath, creds: creds as IssuedAuth["creds"] };
}
