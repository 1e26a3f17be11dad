/** `dspex codegen`: TypeScript types and typed accessors for the packaged programs (codegen.ts). */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { promisify } from "node:util";
import type { Command } from "commander";
import { DspexError, UnknownProgram } from "@dspex/protocol";
import { connectNats, servedPrograms, workerStatuses, type AdvertisedProgram, type ProgramAdvertisement } from "@dspex/bus";
import { pythonBin } from "@dspex/embedded";
import { renderProgramsModule } from "../codegen.js";

const run = promisify(execFile);

/** What the workers at NATS_URL advertise (the programs they serve now). */
export async function fromFleet(servers: string, waitMs: number): Promise<AdvertisedProgram[]> {
  const nc = await connectNats({ servers, name: "dspex-codegen" });
  try {
    return [...servedPrograms(await workerStatuses(nc, waitMs)).values()];
  } finally {
    await nc.close();
  }
}

/** What the Python environment declares, without a bus: its workers' own discovery, run once. */
export async function fromEnvironment(python: string): Promise<AdvertisedProgram[]> {
  const { stdout } = await run(python, ["-m", "dspex_worker.programs.packages"], { maxBuffer: 64 * 1024 * 1024 });
  const advert = JSON.parse(stdout) as ProgramAdvertisement;
  for (const f of advert.failures) process.stderr.write(`dspex codegen: program ${f.name} (${f.path}) cannot be served: ${f.error}\n`);
  return advert.programs;
}

export function registerCodegenCommand(program: Command): void {
  program
    .command("codegen")
    .description("write a TypeScript module typing the packaged programs: from the fleet at NATS_URL, or --offline from the Python environment")
    .option("-o, --out <file>", "write here (default: stdout)")
    .option("--offline", "read the programs the Python environment declares instead of asking a fleet")
    .option("--python <path>", "the Python with the programs' packages and dspex_worker (default: DSPEX_PYTHON, else the project's .venv)")
    .option("--program <name...>", "only these programs")
    .option("--wait <ms>", "how long workers may take to answer (fleet mode)", "500")
    .action(async (flags: { out?: string; offline?: boolean; python?: string; program?: string[]; wait: string }) => {
      const servers = process.env.NATS_URL;
      if (!flags.offline && !servers) {
        throw new DspexError("dspex codegen reads a fleet's programs: set NATS_URL (or use --offline)", { field: "NATS_URL" });
      }
      const source = flags.offline ? "the Python environment's declared programs" : `the programs served at ${servers}`;
      let programs = flags.offline ? await fromEnvironment(flags.python ?? pythonBin()) : await fromFleet(servers!, Number(flags.wait));
      if (flags.program) {
        const available = programs.map((p) => p.name).sort();
        const missing = flags.program.filter((name) => !available.includes(name));
        if (missing.length > 0) {
          throw new UnknownProgram(`program: ${missing.join(", ")} not found in ${source}; available: ${available.join(", ") || "none"}`, {
            field: "program",
            details: { available },
          });
        }
        programs = programs.filter((p) => flags.program!.includes(p.name));
      }
      const text = renderProgramsModule(programs, source);
      if (flags.out) {
        writeFileSync(flags.out, text);
        process.stderr.write(`dspex codegen: ${programs.length} program(s) → ${flags.out}\n`);
      } else {
        process.stdout.write(text);
      }
    });
}
