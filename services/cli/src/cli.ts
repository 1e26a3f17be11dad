#!/usr/bin/env node
/**
 * `dspex` command line. With NATS_URL it talks to that deployment; without it, commands that need workers
 * start the embedded fleet (a local nats-server, the bus applied, Python workers, the local model) and stop
 * everything they started on exit.
 */
import { Command } from "commander";
import { DspexError } from "@dspex/protocol";
import { initTelemetry } from "@dspex/observability";
import { registerApiTokenCommands } from "./commands/api-token.js";
import { registerAuthCommands } from "./commands/auth.js";
import { registerCodegenCommand } from "./commands/codegen.js";
import { registerDlqCommands } from "./commands/dlq.js";
import { registerEvalCommand } from "./commands/eval.js";
import { registerIndexCommands } from "./commands/index.js";
import { registerJobsCommands } from "./commands/jobs.js";
import { registerProgramsCommands } from "./commands/programs.js";
import { registerRegistryCommands } from "./commands/registry.js";
import { registerRetrievalCommands } from "./commands/retrieval.js";
import { registerRunCommands } from "./commands/run.js";
import { registerStatusCommands } from "./commands/status.js";

const telemetry = initTelemetry({ serviceName: "dspex-cli" }); // OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set
const program = new Command();
program.name("dspex").description("Run DSPy programs on a fleet of Python workers over NATS JetStream");
registerRunCommands(program);
registerStatusCommands(program);
registerEvalCommand(program);
registerJobsCommands(program);
registerDlqCommands(program);
registerApiTokenCommands(program);
registerAuthCommands(program);
registerRegistryCommands(program);
registerIndexCommands(program);
registerRetrievalCommands(program);
registerCodegenCommand(program);
registerProgramsCommands(program);

program
  .parseAsync()
  .then(() => telemetry.shutdown())
  .catch(async (err: unknown) => {
    if (err instanceof DspexError) {
      process.stderr.write(`dspex: ${err.type}: ${err.message}${err.field ? ` [field: ${err.field}]` : ""}\n`);
    } else {
      process.stderr.write(`dspex: ${err instanceof Error ? err.message : String(err)}\n`);
    }
    await telemetry.shutdown();
    process.exit(1);
  });
