/** `dspex run`, `dspex call`, `dspex demo`, `dspex up`: DSPy calls on the fleet, and the embedded fleet itself. */
import { Option, type Command } from "commander";
import { DspexError, type LMConfig } from "@dspex/protocol";
import { Client, type CallResult } from "@dspex/client";
import type { DefaultLm } from "@dspex/embedded";
import { openSession, type Session } from "../session.js";
import { RAG_QUESTION, runRagDemo } from "./demo-rag.js";

/** `k=v` pairs; values that look like JSON (lists, maps, quoted strings) are parsed as JSON. */
export function parseInputs(pairs: string[]): Record<string, unknown> {
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

/**
 * --lm / --api-base: the embedded workers' default profile; on a deployment (NATS_URL) they are sent as the
 * request's `lm`, where an `api_base` is refused unless the workers' operator allow-listed it (docs/security.md).
 */
export function lmFromFlags(flags: { lm?: string; apiBase?: string }): DefaultLm | undefined {
  return flags.lm ? { model: flags.lm, ...(flags.apiBase ? { api_base: flags.apiBase } : {}) } : undefined;
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

/** A client on the session's bus; in embedded mode the LM is the workers' default, on a deployment --lm is sent. */
async function withClient<T>(session: Session, lm: LMConfig | undefined, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await Client.connect({ servers: session.natsUrl, creds: session.creds.client, ...(session.fleet || !lm ? {} : { lm }) });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

async function runDemo(): Promise<void> {
  const session = await openSession({ workers: true, gpuWorkers: 1 });
  try {
    await withClient(session, undefined, async (client) => {
      const steps: Array<{ title: string; run: () => Promise<CallResult<Record<string, unknown>>> }> = [
        { title: 'Predict  "question -> answer"', run: () => client.predict("question -> answer", { question: "What is 2+3?" }) },
        {
          title: "Predict  typed multi-output with a Literal, a float and a list",
          run: () =>
            client.predict(
              "review: str, product: str -> sentiment: Literal['positive', 'negative', 'neutral'], confidence: float, keywords: list[str]",
              { review: "Battery lasts two days and the screen is gorgeous.", product: "phone" },
            ),
        },
        {
          title: 'ChainOfThought  "context: list[str], question: str -> answer: str"',
          run: () =>
            client.chainOfThought("context: list[str], question: str -> answer: str", {
              context: ["NATS JetStream stores messages in streams.", "DSPy programs language models."],
              question: "What stores messages?",
            }),
        },
      ];
      for (const step of steps) {
        process.stdout.write(`\n${step.title}\n`);
        printResult(await step.run(), false);
      }
      const rag = await runRagDemo(client);
      if (rag) {
        process.stdout.write(`\nRAG  retrieve from docs/ (${rag.indexed.written} passages embedded now, ${rag.indexed.skipped} kept from a run before) → ChainOfThought\n`);
        process.stdout.write(`  question : ${RAG_QUESTION}\n`);
        for (const hit of rag.hits) process.stdout.write(`  passage  : ${hit.id} (score ${hit.score.toFixed(3)})\n`);
        printResult(rag.result, false);
      }
    });
  } finally {
    await session.close();
  }
}

export function registerRunCommands(program: Command): void {
  program
    .command("run")
    .description("run a signature once and print its outputs")
    .argument("<signature>", 'DSPy signature, e.g. "question -> answer: str"')
    .option("-i, --input <name=value...>", "input values (repeatable)", [])
    .option("--instructions <text>", "signature instructions")
    .option("--cot", "use ChainOfThought instead of Predict")
    .option("--lm <model>", "LM as provider/model (default: DSPEX_LM, else the local model)")
    .option("--api-base <url>", "OpenAI-compatible endpoint for --lm")
    .addOption(new Option("--timeout <ms>", "timeout in milliseconds").argParser(Number))
    .option("--json", "print the full result as JSON")
    .action(async (signature: string, flags: { input: string[]; instructions?: string; cot?: boolean; lm?: string; apiBase?: string; timeout?: number; json?: boolean }) => {
      const inputs = parseInputs(flags.input);
      const lm = lmFromFlags(flags);
      const session = await openSession({ workers: true, ...(lm ? { lm } : {}), quiet: flags.json ?? false });
      try {
        await withClient(session, lm, async (client) => {
          const options = { ...(flags.instructions ? { instructions: flags.instructions } : {}), ...(flags.timeout ? { timeoutMs: flags.timeout } : {}) };
          const result = flags.cot ? await client.chainOfThought(signature, inputs, options) : await client.predict(signature, inputs, options);
          printResult(result, flags.json ?? false);
        });
      } finally {
        await session.close();
      }
    });

  program
    .command("call")
    .description("call a packaged DSPy program the fleet serves (docs/programs.md) and print its outputs")
    .argument("<program>", "the program's name, as `dspex status` lists it")
    .option("-i, --input <name=value...>", "input values (repeatable)", [])
    .option("--lm <model>", "LM as provider/model (default: DSPEX_LM, else the local model)")
    .option("--api-base <url>", "OpenAI-compatible endpoint for --lm")
    .addOption(new Option("--timeout <ms>", "timeout in milliseconds").argParser(Number))
    .option("--json", "print the full result as JSON")
    .action(async (name: string, flags: { input: string[]; lm?: string; apiBase?: string; timeout?: number; json?: boolean }) => {
      const inputs = parseInputs(flags.input);
      const lm = lmFromFlags(flags);
      const session = await openSession({ workers: true, ...(lm ? { lm } : {}), quiet: flags.json ?? false });
      try {
        await withClient(session, lm, async (client) => {
          const result = await client.program(name).call(inputs, flags.timeout ? { timeoutMs: flags.timeout } : {});
          printResult(result, flags.json ?? false);
        });
      } finally {
        await session.close();
      }
    });

  program.command("demo").description("start the embedded fleet and run a few real DSPy calls").action(runDemo);

  program
    .command("up")
    .description("start the embedded fleet (nats-server, bus, workers, the local model), print NATS_URL, run until Ctrl-C")
    .addOption(new Option("--workers <n>", "general-pool workers").argParser(Number).default(2))
    .option("--lm <model>", "the workers' default LM as provider/model (default: DSPEX_LM, else the local model)")
    .option("--api-base <url>", "OpenAI-compatible endpoint for --lm")
    .action(async (flags: { workers: number; lm?: string; apiBase?: string }) => {
      if (process.env.NATS_URL) throw new DspexError("dspex up starts its own bus; unset NATS_URL", { field: "NATS_URL" });
      const lm = lmFromFlags(flags);
      const session = await openSession({ workers: true, generalWorkers: flags.workers, ...(lm ? { lm } : {}), echoWorkerLogs: true });
      // what another shell needs to use this fleet: the client's credentials, and the operator's and the
      // monitor's for `dspex bus|dlq` and `dspex status` (docs/security.md)
      process.stdout.write(`NATS_URL=${session.natsUrl}\nNATS_CREDS=${session.creds.client}\n`);
      process.stdout.write(`# dspex status: NATS_CREDS=${session.creds.monitor}\n# dspex bus, dspex dlq: NATS_CREDS=${session.creds.admin}\n`);
      await new Promise(() => {}); // until a signal stops the process (the fleet's exit hooks clean up)
    });
}
