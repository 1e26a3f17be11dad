/**
 * `dspex eval`: an evaluation job on the fleet with a live progress line, resumable (`--resume <job>`), with an
 * HTML report. With NATS_URL it uses that deployment's pipeline service (or runs one in this process when
 * none answers); without it, the embedded fleet on a persistent store (so `--resume` and `dspex jobs` see
 * earlier runs) with the same default LM as every command, and the pipeline service in this process.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { resolve } from "node:path";
import { Option, type Command } from "commander";
import { jetstreamManager } from "@nats-io/jetstream";
import { STREAMS, ValidationError, type JobProgress } from "@dspex/protocol";
import { connectNats } from "@dspex/bus";
import { createLogger } from "@dspex/observability";
import { isJobId } from "@dspex/jobs";
import {
  PipelineClient,
  PipelineService,
  idealBound,
  isPackagedProgram,
  isPipelineProgram,
  normalizeMetrics,
  readDatasetFile,
  renderReport,
  type JobRecord,
  type JobSpec,
  type JobSpecInput,
  type JobSummary,
  type PackagedProgram,
  type ProgramSpec,
} from "@dspex/pipeline";
import { embeddedStoreDir, lockStore, openSession, say } from "../session.js";
import { ProgressDisplay } from "./progress.js";
import { lmFromFlags } from "./run.js";

export interface EvalSession {
  client: PipelineClient;
  close(): Promise<void>;
}

/** A pipeline client on the deployment, or on the embedded fleet (with workers when `workers`). */
export async function openEvalSession(opts: { workers: boolean; generalWorkers?: number; flags?: { lm?: string; apiBase?: string }; quiet?: boolean }): Promise<EvalSession> {
  const cleanups: Array<() => Promise<void> | void> = [];
  const close = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    let storeDir: string | undefined;
    if (!process.env.NATS_URL) {
      storeDir = embeddedStoreDir();
      const unlock = lockStore(storeDir);
      if (unlock) cleanups.push(unlock);
      else {
        say(opts.quiet, `another dspex CLI uses ${storeDir}; using a temporary store (jobs will not be kept)`);
        storeDir = undefined;
      }
    }
    const lm = opts.flags ? lmFromFlags(opts.flags) : undefined;
    const session = await openSession({
      workers: opts.workers,
      ...(opts.generalWorkers ? { generalWorkers: opts.generalWorkers } : {}),
      ...(lm ? { lm } : {}),
      ...(storeDir ? { storeDir } : {}),
      ...(opts.quiet ? { quiet: true } : {}),
    });
    cleanups.push(() => session.close());
    // requests left in a kept store by an interrupted run have no caller any more: drop them
    if (session.fleet && storeDir) await purgeStaleRequests(session.natsUrl, session.creds.admin);
    const client = await PipelineClient.connect({ servers: session.natsUrl, creds: session.creds.client });
    cleanups.push(() => client.close());
    if (session.fleet || !(await client.ping())) {
      if (!session.fleet) say(opts.quiet, `no pipeline service answers on ${session.natsUrl}; running one in this process`);
      const service = await PipelineService.start({
        servers: session.natsUrl,
        creds: session.creds.pipeline,
        // the deployment's workers have their own default LM; on the embedded fleet it is the fleet's
        ...(lm && !session.fleet ? { lm } : {}),
        // a stable id, so that `--resume` after an interrupted run takes the job back at once
        id: `dspex-cli@${hostname()}`,
        resume: false,
        clientOptions: { checkWorkers: opts.workers },
        // the command prints progress itself; the service only has warnings to add
        logger: createLogger("dspex.pipeline", { level: "warn" }),
      });
      cleanups.push(() => service.close());
    }
    return { client, close };
  } catch (err) {
    await close();
    throw err;
  }
}

async function purgeStaleRequests(url: string, creds: string | undefined): Promise<void> {
  const nc = await connectNats({ servers: url, name: "dspex-cli-purge", creds });
  try {
    await (await jetstreamManager(nc)).streams.purge(STREAMS.requests.name);
  } finally {
    await nc.close();
  }
}

function loadProgram(arg: string, flags: EvalFlags): { program: ProgramSpec | PackagedProgram; extra: Partial<JobSpec> } {
  if (arg.startsWith("program:")) {
    // a packaged program the fleet serves (docs/programs.md)
    const lm = lmFromFlags(flags);
    return { program: { package: arg.slice("program:".length), ...(lm && flags.lm ? { lm } : {}), ...(flags.timeout ? { timeout_ms: flags.timeout } : {}) }, extra: {} };
  }
  let program: ProgramSpec;
  let extra: Partial<JobSpec> = {};
  if (arg.endsWith(".json") && existsSync(arg)) {
    const json = JSON.parse(readFileSync(arg, "utf8")) as Record<string, unknown>;
    if (json.program && typeof json.program === "object") {
      const { program: p, ...rest } = json as unknown as JobSpec;
      program = p;
      extra = rest;
    } else program = json as unknown as ProgramSpec;
  } else {
    program = { signature: arg };
  }
  if (!isPipelineProgram(program) && !isPackagedProgram(program)) {
    if (flags.cot) program.module = "chain_of_thought";
    if (flags.instructions) program.instructions = flags.instructions;
    const lm = lmFromFlags(flags);
    if (lm && flags.lm) program.lm = lm;
    if (flags.timeout) program.timeout_ms = flags.timeout;
  }
  return { program, extra };
}


interface EvalFlags {
  metric: string[];
  cot?: boolean;
  concurrency?: number;
  resume?: string;
  out?: string;
  json?: boolean;
  lm?: string;
  apiBase?: string;
  instructions?: string;
  max_errors?: number;
  retries?: number;
  name?: string;
  workers?: number;
  timeout?: number;
}

/** A job's final state as a progress event (for the last progress line). */
function finalProgress(record: JobRecord, s: JobSummary): JobProgress {
  const type = record.status === "succeeded" ? "done" : record.status === "cancelled" ? "cancelled" : "failed";
  return { v: 1, job: record.id, kind: "eval", type, status: record.status, at: Date.now(), done: s.done, total: s.total, ok: s.ok, failed: s.failed, score: s.score, rate: s.rate ?? 0, eta_s: 0 };
}

export function printSummary(s: JobSummary, record: JobRecord): void {
  const out = process.stdout;
  out.write(`\njob ${s.job}${s.name ? ` (${s.name})` : ""}: ${s.status}\n`);
  out.write(`  score      ${s.score === null ? "—" : s.score.toFixed(2)}  (${s.primary_metric}; ${s.ok} ok, ${s.failed} failed of ${s.total})\n`);
  for (const [k, v] of Object.entries(s.metrics)) if (k !== s.primary_metric) out.write(`  ${k.padEnd(10)} ${v === null ? "—" : v.toFixed(2)}\n`);
  if (s.latency_ms) {
    out.write(`  latency    p50 ${s.latency_ms.p50.toFixed(0)} ms, p90 ${s.latency_ms.p90.toFixed(0)} ms, max ${s.latency_ms.max.toFixed(0)} ms\n`);
  }
  const bound = idealBound(s, record.spec.concurrency ?? 8);
  if (bound) {
    out.write(`  throughput ${bound.rate.toFixed(1)} examples/s, ${(100 * bound.fraction).toFixed(0)} % of the ideal ${bound.ideal.toFixed(1)}/s (c ÷ mean example latency)\n`);
  } else if (s.rate !== undefined) out.write(`  throughput ${s.rate.toFixed(1)} examples/s\n`);
  for (const [type, n] of Object.entries(s.errors_by_type)) out.write(`  error      ${type}: ${n}\n`);
  if (record.error) out.write(`  stopped    ${record.error.type}: ${record.error.message}\n`);
}

async function runEval(programArg: string, dataPath: string, flags: EvalFlags): Promise<void> {
  const { program, extra } = loadProgram(programArg, flags);
  const examples = await readDatasetFile(dataPath);
  const metrics = normalizeMetrics(flags.metric.length ? flags.metric : ((extra.metrics as string[] | undefined) ?? ["exact_match"]));
  const spec: JobSpecInput = {
    ...extra,
    program,
    metrics,
    ...(flags.concurrency !== undefined ? { concurrency: flags.concurrency } : {}),
    ...(flags.max_errors !== undefined ? { max_errors: flags.max_errors } : {}),
    ...(flags.retries !== undefined ? { retries: flags.retries } : {}),
    ...(flags.name ? { name: flags.name } : {}),
  };
  if (flags.resume !== undefined && !isJobId(flags.resume)) throw new ValidationError(`--resume: '${flags.resume}' is not a job id`);
  const session = await openEvalSession({ workers: true, ...(flags.workers ? { generalWorkers: flags.workers } : {}), flags, ...(flags.json ? { quiet: true } : {}) });
  const display = new ProgressDisplay();
  try {
    const { client } = session;
    let job: string;
    const existing = flags.resume ? await client.record(flags.resume) : null;
    if (existing) {
      job = existing.id;
      const resumed = await client.resume(job);
      const before = await (await client.store()).countResults(job);
      say(flags.json, `resuming job ${job} (${resumed.status}, ${before}/${resumed.total} done before)`);
    } else {
      job = await client.submit(spec, examples, flags.resume ? { job: flags.resume } : {});
      say(flags.json, `job ${job}: ${examples.length} examples (resume with --resume ${job})`);
    }
    const record = await client.wait(job, { onProgress: (e) => (flags.json ? undefined : display.update(e)) });
    const [summary, results] = await Promise.all([client.summary(job), client.results(job)]);
    // the last line from the record: the final event may arrive after the record says the job ended
    if (summary && !flags.json) display.update(finalProgress(record, summary));
    display.end();
    if (flags.out) {
      const dataset = await client.dataset(job);
      writeFileSync(flags.out, renderReport({ record, results, dataset }));
      say(flags.json, `report: ${resolve(flags.out)}`);
    }
    if (flags.json) {
      const rows = [...results.values()].sort((a, b) => a.index - b.index);
      process.stdout.write(`${JSON.stringify({ summary, results: rows }, null, 2)}\n`);
    } else if (summary) printSummary(summary, record);
    if (record.status !== "succeeded") process.exitCode = 1;
  } finally {
    display.end();
    await session.close();
  }
}

/** Registers `dspex eval`. */
export function registerEvalCommand(program: Command): void {
  program
    .command("eval")
    .description("evaluate a program over a dataset on the fleet (resumable batch job with progress)")
    .argument("<program>", "program spec JSON file (module, packaged program or pipeline, optionally with metrics), program:<name> (a packaged program the fleet serves), or a DSPy signature")
    .argument("<data>", "dataset: JSON Lines (one example object per line) or a JSON array")
    .option("-m, --metric <name...>", "metric(s): exact_match, f1, passage_match, py:<python metric> (first = score)", [])
    .option("--cot", "use ChainOfThought instead of Predict")
    .option("--instructions <text>", "signature instructions")
    .addOption(new Option("-c, --concurrency <n>", "examples in flight").argParser(Number))
    .option("--resume <job>", "continue this job (or start it under this id)")
    .option("-o, --out <report.html>", "write the HTML report here")
    .option("--json", "print the summary and per-example results as JSON")
    .option("--lm <model>", "LM as provider/model (default: DSPEX_LM, else the embedded default)")
    .option("--api-base <url>", "OpenAI-compatible endpoint for --lm")
    .addOption(new Option("--max-errors <n>", "stop the job after more than n failed examples").argParser(Number))
    .addOption(new Option("--retries <n>", "retries of retryable errors per example (default 2)").argParser(Number))
    .addOption(new Option("--timeout <ms>", "per-call timeout in milliseconds").argParser(Number))
    .option("--name <label>", "a label for the job")
    .addOption(new Option("--workers <n>", "embedded mode: general-pool workers").argParser(Number).default(2))
    .action(runEval);
}
