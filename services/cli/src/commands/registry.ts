/**
 * `dspex programs list|show|versions|deploy|rollback|deprecate` and `dspex executions list`: the program
 * registry through the gateway's REST API, with the client generated from its OpenAPI document
 * (@dspex/api-client). DSPEX_API_URL (default http://127.0.0.1:8080) names the gateway, DSPEX_API_TOKEN the
 * token (scopes programs:read, programs:deploy, executions:read as the command needs).
 */
import type { Command } from "commander";
import { ApiError, gatewayClient, unwrap, type GatewayClient } from "@dspex/api-client";
import { DspexError, ValidationError } from "@dspex/protocol";

function api(): GatewayClient {
  const token = process.env.DSPEX_API_TOKEN;
  if (!token) throw new ValidationError("set DSPEX_API_TOKEN to an API token of the gateway (dspex api-token create)", { field: "DSPEX_API_TOKEN" });
  return gatewayClient({ baseUrl: process.env.DSPEX_API_URL || "http://127.0.0.1:8080", token });
}

/** The API's refusal as the CLI reports it: type, message, field, and the guard's details. */
async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ApiError) {
      const details = err.error.details ? ` ${JSON.stringify(err.error.details)}` : "";
      throw new DspexError(`${err.error.message}${details}`, { type: err.error.type, ...(err.error.field ? { field: err.error.field } : {}) });
    }
    throw err;
  }
}

const out = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
const int = (v: string | undefined, field: string) => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new ValidationError(`--${field} must be a positive integer`, { field });
  return n;
};

function rows(head: string[], body: Array<Array<string | number | null>>): string {
  const cells = [head, ...body.map((r) => r.map((c) => (c === null ? "-" : String(c))))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return `${cells.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n")}\n`;
}

export function registerRegistryCommands(program: Command): void {
  const programs = program.command("programs").description("the program registry (through the gateway: DSPEX_API_URL, DSPEX_API_TOKEN)");
  programs
    .command("list", { isDefault: true })
    .description("programs with their state and deployed version")
    .option("--state <state>", "draft | training | optimized | deployed | deprecated")
    .option("--json", "print JSON")
    .action(async (flags: { state?: string; json?: boolean }) => {
      const query = flags.state ? { state: flags.state as "draft", limit: 200 } : { limit: 200 };
      const page = await call(async () => unwrap(await api().GET("/v1/registry/programs", { params: { query } })));
      if (flags.json) return out(page.items);
      void process.stdout.write(rows(["NAME", "STATE", "DEPLOYED", "LATEST", "SIGNATURE"], page.items.map((p) => [p.name, p.state, p.deployedVersion, p.latestVersion, p.signature.text])));
    });
  programs
    .command("show <name>")
    .description("a program, its alias and its recent transitions")
    .option("--json", "print JSON")
    .action(async (name: string, flags: { json?: boolean }) => {
      const client = api();
      const [p, t] = await call(async () =>
        Promise.all([
          unwrap(await client.GET("/v1/registry/programs/{name}", { params: { path: { name } } })),
          unwrap(await client.GET("/v1/registry/programs/{name}/transitions", { params: { path: { name }, query: { limit: 10 } } })),
        ]),
      );
      if (flags.json) return out({ ...p, transitions: t.items });
      process.stdout.write(`${p.name}  ${p.state}  ${p.module}  ${p.signature.text}\n`);
      process.stdout.write(`alias: ${p.alias ? `${p.alias} -> v${p.deployedVersion}` : "none"}; latest v${p.latestVersion}; owner ${p.owner}\n`);
      process.stdout.write(rows(["WHEN", "ACTION", "FROM -> TO", "VERSION", "WHO", "WHY"], t.items.map((x) => [x.at.slice(0, 19), x.action, `${x.from} -> ${x.to}`, x.version, x.actor, x.reason])));
    });
  programs
    .command("versions <name>")
    .description("a program's versions with their scores and lineage")
    .option("--json", "print JSON")
    .action(async (name: string, flags: { json?: boolean }) => {
      const page = await call(async () => unwrap(await api().GET("/v1/registry/programs/{name}/versions", { params: { path: { name }, query: { limit: 200 } } })));
      if (flags.json) return out(page.items);
      process.stdout.write(
        rows(["VERSION", "SCORE", "BASELINE", "PARENT", "JOB", "SCORES ON DATASETS"], page.items.map((v) => [v.version, v.score, v.baselineScore, v.parentVersion, v.job, v.evaluations.map((e) => `${e.dataset}: ${e.score}`).join(", ")])),
      );
    });
  const transition = (verb: "deploy" | "rollback" | "deprecate", description: string) => {
    const cmd = programs.command(`${verb} <name>`).description(description).option("--reason <text>", "why (recorded)").option("--json", "print JSON");
    if (verb === "deploy") cmd.requiredOption("--dataset <name>", "the dataset whose score the guard checks").option("--version <n>", "the version (default: the latest)").option("--threshold <score>", "the least score it must have");
    cmd.action(async (name: string, flags: { reason?: string; json?: boolean; dataset?: string; version?: string; threshold?: string }) => {
      const threshold = flags.threshold === undefined ? undefined : Number(flags.threshold);
      if (threshold !== undefined && !Number.isFinite(threshold)) throw new ValidationError("--threshold must be a number", { field: "threshold" });
      const body = {
        ...(flags.reason ? { reason: flags.reason } : {}),
        ...(verb === "deploy" ? { dataset: flags.dataset!, ...(flags.version ? { version: int(flags.version, "version") } : {}), ...(threshold === undefined ? {} : { threshold }) } : {}),
      };
      const client = api();
      const result = await call(async () => {
        const params = { params: { path: { name } } };
        if (verb === "deploy") return unwrap(await client.POST("/v1/registry/programs/{name}/deploy", { ...params, body: body as { dataset: string } }));
        if (verb === "rollback") return unwrap(await client.POST("/v1/registry/programs/{name}/rollback", { ...params, body }));
        return unwrap(await client.POST("/v1/registry/programs/{name}/deprecate", { ...params, body }));
      });
      if (flags.json) return out(result);
      const p = result.program;
      process.stdout.write(`${p.name}: ${p.state}${p.alias ? `, ${p.alias} -> v${p.deployedVersion}` : ", no alias"}\n`);
    });
  };
  transition("deploy", "route program:<name>@deployed to a version whose score on --dataset is at least --threshold");
  transition("rollback", "route the alias back to the version deployed before");
  transition("deprecate", "retire the program (no alias; pinned versions still run)");

  program
    .command("executions")
    .description("execution history of registry programs (through the gateway)")
    .command("list", { isDefault: true })
    .description("executions, newest first")
    .option("--program <name>")
    .option("--version <n>")
    .option("--status <status>", "ok | error")
    .option("--since <iso>", "at or after (ISO 8601)")
    .option("--until <iso>", "before (ISO 8601)")
    .option("--limit <n>", "how many (1–200)", "50")
    .option("--json", "print JSON")
    .action(async (flags: { program?: string; version?: string; status?: string; since?: string; until?: string; limit: string; json?: boolean }) => {
      const query = {
        limit: int(flags.limit, "limit")!,
        ...(flags.program ? { program: flags.program } : {}),
        ...(flags.version ? { version: int(flags.version, "version")! } : {}),
        ...(flags.status ? { status: flags.status as "ok" } : {}),
        ...(flags.since ? { since: flags.since } : {}),
        ...(flags.until ? { until: flags.until } : {}),
      };
      const page = await call(async () => unwrap(await api().GET("/v1/registry/executions", { params: { query } })));
      if (flags.json) return out(page.items);
      process.stdout.write(rows(["AT", "PROGRAM", "STATUS", "MS", "OUTPUTS / ERROR", "CALLER"], page.items.map((e) => [e.at.slice(0, 19), e.ref, e.status, Math.round(e.latencyMs), JSON.stringify(e.outputs ?? e.error).slice(0, 60), e.caller])));
    });
}
