#!/usr/bin/env node
/**
 * `dspex` command line. With NATS_URL set it talks to that deployment; without it, it starts the embedded
 * default (a local nats-server and Python workers) and stops everything it started on exit.
 */
import { Command, Option } from "commander";
import { DspexError, initTelemetry, type LMConfigWire } from "@dspex/shared";
import { connect } from "@nats-io/transport-node";
import { registerPipelineCommands } from "@dspex/pipeline";
import { registerDlqCommands } from "./dlq-commands.js";
import { Router, collectStatus, configuredLm, formatStatus, hostedLm, localLmInstalled, startDefaultLm, startFleet, type CallResult, type DefaultLm, type Fleet } from "@dspex/router";

interface Session {
  router: Router;
  lm: LMConfigWire | undefined;
  lmLabel: string;
  close(): Promise<void>;
}

async function openSession(opts: { workers?: number; lm?: LMConfigWire; quiet?: boolean }): Promise<Session> {
  const say = (text: string) => {
    if (!opts.quiet) process.stderr.write(`${text}\n`);
  };
  let fleet: Fleet | undefined;
  let defaultLm: DefaultLm | undefined;
  const natsUrl = process.env.NATS_URL;
  let lm = opts.lm;
  let lmLabel = lm ? lm.model : "the workers' default LM (DSPEX_LM on the workers)";
  if (!natsUrl) {
    // No LM configured: the local model, hosted by a gpu-pool worker; without it, the LM double.
    const useLocal = !lm && localLmInstalled();
    if (!lm && !useLocal) {
      defaultLm = await startDefaultLm();
      lm = defaultLm.lm;
      lmLabel = defaultLm.label;
    }
    say("starting embedded nats-server and workers…");
    const t0 = performance.now();
    fleet = await startFleet({
      workers: { general: opts.workers ?? 2, ...(useLocal ? { gpu: 1 } : {}) },
      workerEnv: useLocal ? { DSPEX_HOST_LOCAL_LM: "1" } : undefined,
    });
    say(`embedded fleet ready in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${fleet.natsUrl}, ${fleet.workers.length} worker(s)`);
    const hosted = useLocal ? hostedLm(fleet) : undefined;
    if (hosted) {
      lm = hosted.lm;
      lmLabel = hosted.label;
    }
  }
  const telemetry = initTelemetry(); // OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set (docs/observability.md)
  const router = await Router.connect({ servers: natsUrl ?? fleet!.natsUrl, lm });
  say(`LM: ${lmLabel}`);
  return {
    router,
    lm,
    lmLabel,
    async close() {
      await router.close();
      await fleet?.stop();
      await defaultLm?.stop();
      await telemetry.shutdown();
    },
  };
}

/** `k=v` pairs; values that look like JSON (lists, maps, quoted strings) are parsed as JSON. */
function parseInputs(pairs: string[]): Record<string, unknown> {
  const inputs: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new DspexError(`--input must be name=value (got ${JSON.stringify(pair)})`, { field: "input" });
    const name = pair.slice(0, eq);
    const raw = pair.slice(eq + 1);
    let value: unknown = raw;
    if (/^\s*[[{"]/.test(raw)) {
      try {
        value = JSON.parse(raw);
      } catch {
        value = raw;
      }
    }
    inputs[name] = value;
  }
  return inputs;
}

function lmFromFlags(flags: { lm?: string; apiBase?: string }): LMConfigWire | undefined {
  if (flags.lm) return { model: flags.lm, ...(flags.apiBase ? { api_base: flags.apiBase } : {}) };
  return configuredLm();
}

function printResult(result: CallResult<Record<string, unknown>>, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  const width = Math.max(...Object.keys(result.outputs).map((k) => k.length));
  for (const [name, value] of Object.entries(result.outputs)) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    process.stdout.write(`  ${name.padEnd(width)} : ${text}  (${Array.isArray(value) ? "list" : typeof value})\n`);
  }
  const t = result.timings;
  process.stdout.write(
    `  — worker ${result.worker}, lm ${result.lm}, ${result.usage.total_tokens} tokens, ` +
      `queue ${t.queue_ms.toFixed(1)} ms, exec ${t.exec_ms.toFixed(1)} ms, total ${t.total_ms.toFixed(1)} ms\n`,
  );
}

async function runDemo(): Promise<void> {
  const session = await openSession({});
  try {
    const { router } = session;
    const steps: Array<{ title: string; run: () => Promise<CallResult<Record<string, unknown>>> }> = [
      {
        title: 'Predict  "question -> answer"',
        run: () => router.predict("question -> answer", { question: "What is 2+3?" }),
      },
      {
        title: "Predict  typed multi-output with a Literal, a float and a list",
        run: () =>
          router.predict(
            "review: str, product: str -> sentiment: Literal['positive', 'negative', 'neutral'], confidence: float, keywords: list[str]",
            { review: "Battery lasts two days and the screen is gorgeous.", product: "phone" },
          ),
      },
      {
        title: 'ChainOfThought  "context: list[str], question: str -> answer: str"',
        run: () =>
          router.chainOfThought("context: list[str], question: str -> answer: str", {
            context: ["NATS JetStream stores messages in streams.", "DSPy programs language models."],
            question: "What stores messages?",
          }),
      },
    ];
    for (const step of steps) {
      process.stdout.write(`\n${step.title}\n`);
      printResult(await step.run(), false);
    }
  } finally {
    await session.close();
  }
}

const program = new Command();
program.name("dspex").description("Run DSPy programs on a fleet of Python workers over NATS JetStream");

program
  .command("run")
  .description("run a signature once and print its outputs")
  .argument("<signature>", 'DSPy signature, e.g. "question -> answer: str"')
  .option("-i, --input <name=value...>", "input values (repeatable)", [])
  .option("--instructions <text>", "signature instructions")
  .option("--cot", "use ChainOfThought instead of Predict")
  .option("--lm <model>", "LM as provider/model (default: DSPEX_LM, else the embedded default)")
  .option("--api-base <url>", "OpenAI-compatible endpoint for --lm")
  .addOption(new Option("--timeout <ms>", "timeout in milliseconds").argParser(Number))
  .option("--json", "print the full result as JSON")
  .action(async (signature: string, flags: { input: string[]; instructions?: string; cot?: boolean; lm?: string; apiBase?: string; timeout?: number; json?: boolean }) => {
    const inputs = parseInputs(flags.input);
    const session = await openSession({ lm: lmFromFlags(flags), quiet: flags.json });
    try {
      const options = { instructions: flags.instructions, timeoutMs: flags.timeout };
      const result = flags.cot
        ? await session.router.chainOfThought(signature, inputs, options)
        : await session.router.predict(signature, inputs, options);
      printResult(result, flags.json ?? false);
    } finally {
      await session.close();
    }
  });

program
  .command("status")
  .description("pools, workers, in-flight work, consumer lag and uptime of a running deployment (NATS_URL)")
  .option("--json", "print as JSON")
  .action(async (flags: { json?: boolean }) => {
    const servers = process.env.NATS_URL;
    if (!servers) throw new DspexError("dspex status needs NATS_URL (start a fleet with `dspex up`)", { field: "NATS_URL" });
    const nc = await connect({ servers, name: "dspex-status" });
    try {
      const status = await collectStatus(nc);
      process.stdout.write(flags.json ? `${JSON.stringify(status, null, 2)}\n` : `${formatStatus(status)}\n`);
    } finally {
      await nc.close();
    }
  });

program.command("demo").description("start the embedded fleet and run a few real DSPy calls").action(runDemo);

program
  .command("up")
  .description("start the embedded nats-server and workers, print NATS_URL, run until Ctrl-C")
  .addOption(new Option("--workers <n>", "general-pool workers").argParser(Number).default(2))
  .action(async (flags: { workers: number }) => {
    const fleet = await startFleet({ workers: { general: flags.workers }, echoWorkerLogs: true });
    process.stdout.write(`NATS_URL=${fleet.natsUrl}\n`);
    await new Promise(() => {}); // until a signal stops the process (the fleet's exit hooks clean up)
  });

registerPipelineCommands(program);
registerDlqCommands(program);

program.parseAsync().catch((err: unknown) => {
  if (err instanceof DspexError) {
    process.stderr.write(`dspex: ${err.type}: ${err.message}${err.field ? ` [field: ${err.field}]` : ""}\n`);
  } else {
    process.stderr.write(`dspex: ${err instanceof Error ? err.message : String(err)}\n`);
  }
  process.exit(1);
});
