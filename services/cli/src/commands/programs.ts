/**
 * `dspex programs graph <name>`: a packaged program's module tree — every sub-module with its class, predictors
 * with their signatures — as a Mermaid flowchart (default) or JSON (`--json`), from the fleet at NATS_URL or
 * `--offline` from the Python environment (the same sources as `dspex codegen`).
 */
import type { Command } from "commander";
import { DspexError, UnknownProgram } from "@dspex/protocol";
import { mermaid } from "@dspex/bus";
import { pythonBin } from "@dspex/embedded";
import { fromEnvironment, fromFleet } from "./codegen.js";

export function registerProgramsCommands(program: Command): void {
  // beside the registry's `dspex programs …` commands (registry.ts registers the group first)
  const programs = program.commands.find((c) => c.name() === "programs") ?? program.command("programs");
  programs
    .command("graph")
    .description("a packaged program's module and predictor tree (from the fleet, not the registry), as Mermaid (default) or JSON")
    .argument("<name>", "the program")
    .option("--json", "print the tree as JSON")
    .option("--offline", "read the Python environment's declared programs instead of asking a fleet")
    .option("--python <path>", "the Python with the programs' packages (default: DSPEX_PYTHON, else the project's .venv)")
    .option("--wait <ms>", "how long workers may take to answer (fleet mode)", "500")
    .action(async (name: string, flags: { json?: boolean; offline?: boolean; python?: string; wait: string }) => {
      const servers = process.env.NATS_URL;
      if (!flags.offline && !servers) throw new DspexError("dspex programs graph asks a fleet: set NATS_URL (or use --offline)", { field: "NATS_URL" });
      const served = flags.offline ? await fromEnvironment(flags.python ?? pythonBin()) : await fromFleet(servers!, Number(flags.wait));
      const found = served.find((p) => p.name === name);
      if (!found) {
        const available = served.map((p) => p.name).sort();
        throw new UnknownProgram(`program: ${name} is not served; available: ${available.join(", ") || "none"}`, { field: "program", details: { available } });
      }
      if (!found.graph) throw new DspexError(`program: the workers serving ${name} do not advertise its module tree (an older worker version)`, { field: "program" });
      process.stdout.write(flags.json ? `${JSON.stringify({ program: name, version: found.version, graph: found.graph }, null, 2)}\n` : `${mermaid(name, found.graph)}\n`);
    });
}
