/**
 * `dspex auth issue --out <dir>`: the NATS identities of a deployment (docs/security.md) — one `.creds` file per
 * role and the servers' `auth.conf` (operator, accounts, resolver) — issued by the same code as the embedded
 * fleet's (issueAuth in @dspex/bus). deploy/k8s/secrets/create-secrets.sh turns them into Secrets. The directory
 * (mode 0700) also keeps `seeds.json`, the operator's and accounts' private keys: issuing again into it keeps the
 * accounts (under whose keys JetStream stores the streams) and renews the users. Nothing secret is printed.
 */
import type { Command } from "commander";
import { ValidationError } from "@dspex/protocol";
import { ROLES, issueAuth, isRole, partitionCounts, type Role } from "@dspex/bus";

export function registerAuthCommands(program: Command): void {
  const auth = program.command("auth").description("NATS identities of a deployment: per-role credentials and the servers' auth config");
  auth
    .command("issue")
    .description("write <role>.creds for each role, auth.conf for the servers and seeds.json (keep it safe) into --out")
    .requiredOption("--out <dir>", "directory (created, mode 0700); re-using one keeps the operator and accounts")
    .option("--roles <list>", `comma-separated roles (default: all): ${ROLES.join(", ")}`)
    .option("--expires <seconds>", "users' JWT lifetime (default: no expiry; rotate by issuing again)")
    .option("--json", "print the files written as JSON")
    .action(async (flags: { out: string; roles?: string; expires?: string; json?: boolean }) => {
      const roles = flags.roles?.split(",").map((r) => r.trim()).filter(Boolean);
      const unknown = (roles ?? []).filter((r) => !isRole(r));
      if (unknown.length > 0) throw new ValidationError(`--roles: unknown role(s) ${unknown.join(", ")}; roles: ${ROLES.join(", ")}`, { field: "roles" });
      const expires = flags.expires === undefined ? undefined : Number(flags.expires);
      if (expires !== undefined && (!Number.isInteger(expires) || expires <= 0)) {
        throw new ValidationError("--expires: a positive number of seconds", { field: "expires" });
      }
      // workers' permissions list their pool's partition consumers: the deployment's settings (DSPEX_BUS_*)
      const partitions = partitionCounts();
      const issued = await issueAuth({ dir: flags.out, partitions, ...(roles ? { roles: roles as Role[] } : {}), ...(expires ? { expiresInS: expires } : {}) });
      const files = { auth_conf: issued.serverConfigPath, creds: issued.creds };
      if (flags.json) process.stdout.write(`${JSON.stringify(files)}\n`);
      else process.stdout.write(`issued into ${issued.dir}: auth.conf, ${Object.keys(issued.creds).map((r) => `${r}.creds`).join(", ")} (seeds.json: keep it private)\n`);
    });
}
