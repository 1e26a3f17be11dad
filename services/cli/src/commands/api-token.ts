/**
 * `dspex api-token create --name <who> --scopes predict,programs:write`: a new HTTP API token. The token is
 * printed once (give it to the caller); the router stores only the printed entry (its SHA-256), appended to
 * the JSON array in DSPEX_API_TOKENS_FILE (docs/security.md).
 */
import type { Command } from "commander";
import { ValidationError } from "@dspex/protocol";
import { newToken, SCOPES, type Scope } from "@dspex/router";

export function registerApiTokenCommands(program: Command): void {
  const cmd = program.command("api-token").description("HTTP API tokens (the router keeps only their hashes)");
  cmd
    .command("create")
    .description("print a new token (once) and the entry to add to the router's DSPEX_API_TOKENS_FILE")
    .requiredOption("--name <who>", "who holds the token (logs, program ownership)")
    .option("--scopes <list>", `comma-separated: ${SCOPES.join(", ")}`, "predict")
    .option("--json", "print {token, entry} as JSON")
    .action((flags: { name: string; scopes: string; json?: boolean }) => {
      const scopes = flags.scopes.split(",").map((s) => s.trim()).filter(Boolean);
      const unknown = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
      if (unknown.length > 0 || scopes.length === 0) {
        throw new ValidationError(`--scopes: unknown scope(s) ${unknown.join(", ") || "(none given)"}; scopes: ${SCOPES.join(", ")}`, { field: "scopes" });
      }
      const { token, entry } = newToken(flags.name, scopes as Scope[]);
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ token, entry })}\n`);
        return;
      }
      process.stdout.write(`token (shown once; give it to ${flags.name}): ${token}\n`);
      process.stdout.write(`entry for DSPEX_API_TOKENS_FILE (a JSON array): ${JSON.stringify(entry)}\n`);
    });
}
