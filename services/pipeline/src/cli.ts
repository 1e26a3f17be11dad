/**
 * `dspex eval` and `dspex jobs`, registered on the dspex CLI (services/cli) by `registerPipelineCommands`.
 *
 * With NATS_URL the commands use that deployment's pipeline service (or run one in-process when none
 * answers). Without it they start the embedded nats-server (on a persistent store, so `--resume` and
 * `dspex jobs` see earlier runs), the Python workers and the default LM, and run the pipeline service
 * in-process.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, homedir } from "node:os";
import { join, resolve } from "node:path";
import { Option, type Command } from "commander";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { REQUEST_STREAM, ValidationError, type LMConfigWire } from "@dspex/shared";
import { configuredLm, startDefaultLm, startFleet, startNatsServer, type DefaultLm, type EmbeddedNats, type Fleet } from "@dspex/router";
import { PipelineClient } from "./client.js";
import { compareJobs, formatComparison } from "./compare.js";
import { readDatasetFile } from "./dataset.js";
import { normalizeMetrics } from "./metrics.js";
import { ProgressDisplay } from "./progress.js";
import { renderComparisonReport, renderReport } from "./report.js";
import { PipelineService } from "./service.js";
import { isJobId } from "./subjects.js";
import { isPipelineProgram, type JobRecord, type JobSpec, type JobSummary, type ProgramSpec } from "./types.js";

interface EvalSession {
  client: PipelineClient;
  close(): Promise<void>;
}

function say(quiet: boolean | undefined, text: string): void {
  if (!quiet) process.stderr.write(`${text}\n`);
}

/** Where the embedded mode keeps its JetStream store between runs (DSPEX_EVAL_STORE, else ~/.dspex/eval-store). */
export function embeddedStoreDir(): string {
  return process.env.DSPEX_EVAL_STORE ?? join(process.env.DSPEX_HOME ?? join(homedir(), ".dspex"), "eval-store");
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One CLI at a time may use the persistent store; a second one gets a temporary store. */
function lockStore(dir: string): (() => void) | undefined {
  mkdirSync(dir, { recursive: true });
  const lock = join(dir, "dspex-cli.lock");
  if (existsSync(lock)) {
    const pid = Number(readFileSync(lock, "utf8"));
    if (pid && pid !== process.pid && alive(pid)) return undefined;
  }
  writeFileSync(lock, String(process.pid));
  return () => rmSync(lock, { force: true });
}

async function openEvalSession(opts: { fleet: boolean; workers?: number; lm?: LMConfigWire; quiet?: boolean }): Promise<EvalSession> {
  const natsUrl = process.env.NATS_URL;
  const cleanups: Array<() => Promise<void> | void> = [];
  const close = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    let url: string;
    let lm = opts.lm;
    if (natsUrl) {
      url = natsUrl;
    } else {
      let storeDir: string | undefined = embeddedStoreDir();
      const unlock = lockStore(storeDir);
      if (unlock) cleanups.push(unlock);
      else {
        say(opts.quiet, `another dspex CLI uses ${storeDir}; using a temporary store (jobs will not be kept)`);
        storeDir = undefined;
      }
      if (opts.fleet) {
        if (!lm) {
          const d: DefaultLm = await startDefaultLm();
          // Ctrl-C ends the process through the fleet's exit hooks (process.exit): stop the LM double then
          // too (stop() signals the child synchronously).
          const onExit = () => void d.stop();
          process.once("exit", onExit);
          cleanups.push(async () => {
            process.off("exit", onExit);
            await d.stop();
          });
          lm = d.lm;
          say(opts.quiet, `LM: ${d.label}`);
        }
        say(opts.quiet, "starting embedded nats-server and workers…");
        const t0 = performance.now();
        const fleet: Fleet = await startFleet({ workers: { general: opts.workers ?? 2 }, ...(storeDir ? { storeDir } : {}) });
        cleanups.push(() => fleet.stop());
        url = fleet.natsUrl;
        // Requests left in the kept store by an interrupted run have no caller any more: drop them.
        if (storeDir) await purgeStaleRequests(url);
        say(opts.quiet, `embedded fleet ready in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${url}, ${fleet.workers.length} worker(s)`);
      } else {
        const nats: EmbeddedNats = await startNatsServer(storeDir ? { storeDir } : {});
        cleanups.push(() => nats.stop());
        url = nats.url;
      }
    }
    const client = await PipelineClient.connect({ servers: url });
    cleanups.push(() => client.close());
    if (!natsUrl || !(await client.ping())) {
      if (natsUrl) say(opts.quiet, `no pipeline service answers on ${natsUrl}; running one in this process`);
      const service = await PipelineService.start({
        servers: url,
        ...(lm ? { lm } : {}),
        // A stable id, so that `--resume` after an interrupted run takes the job back at once.
        id: `dspex-cli@${hostname()}`,
        resume: false,
        routerOptions: { checkWorkers: opts.fleet },
      });
      cleanups.push(() => service.close());
    }
    return { client, close };
  } catch (err) {
    await close();
    throw err;
  }
}

async function purgeStaleRequests(url: string): Promise<void> {
  const nc = await connect({ servers: url, name: "dspex-cli-purge" });
  try {
    await (await jetstreamManager(nc)).streams.purge(REQUEST_STREAM);
  } catch {
    /* nothing to purge */
  } finally {
    await nc.close();
  }
}

function loadProgram(arg: string, flags: EvalFlags): { program: ProgramSpec; extra: Partial<JobSpec> } {
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
  if (!isPipelineProgram(program)) {
    if (flags.cot) program.module = "chain_of_thought";
    if (flags.instructions) program.instructions = flags.instructions;
    const lm = lmFromFlags(flags);
    if (lm && flags.lm) program.lm = lm;
    if (flags.timeout) program.timeoutMs = flags.timeout;
  }
  return { program, extra };
}

function lmFromFlags(flags: { lm?: string; apiBase?: string }): LMConfigWire | undefined {
  if (flags.lm) return { model: flags.lm, ...(flags.apiBase ? { api_base: flags.apiBase } : {}) };
  return configuredLm();
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
  maxErrors?: number;
  retries?: number;
  name?: string;
  workers?: number;
  timeout?: number;
}

function printSummary(s: JobSummary, record: JobRecord): void {
  const out = process.stdout;
  out.write(`\njob ${s.job}${s.name ? ` (${s.name})` : ""}: ${s.status}\n`);
  out.write(`  score      ${s.score === null ? "—" : s.score.toFixed(2)}  (${s.primaryMetric}; ${s.ok} ok, ${s.failed} failed of ${s.total})\n`);
  for (const [k, v] of Object.entries(s.metrics)) if (k !== s.primaryMetric) out.write(`  ${k.padEnd(10)} ${v === null ? "—" : v.toFixed(2)}\n`);
  if (s.latencyMs) {
    out.write(`  latency    p50 ${s.latencyMs.p50.toFixed(0)} ms, p90 ${s.latencyMs.p90.toFixed(0)} ms, max ${s.latencyMs.max.toFixed(0)} ms\n`);
  }
  if (s.rate !== undefined) out.write(`  throughput ${s.rate.toFixed(1)} examples/s\n`);
  for (const [type, n] of Object.entries(s.errorsByType)) out.write(`  error      ${type}: ${n}\n`);
  if (record.error) out.write(`  stopped    ${record.error.type}: ${record.error.message}\n`);
}

async function runEval(programArg: string, dataPath: string, flags: EvalFlags): Promise<void> {
  const { program, extra } = loadProgram(programArg, flags);
  const examples = await readDatasetFile(dataPath);
  const metrics = normalizeMetrics(flags.metric.length ? flags.metric : ((extra.metrics as string[] | undefined) ?? ["exact_match"]));
  const spec: JobSpec = {
    ...extra,
    program,
    metrics,
    ...(flags.concurrency !== undefined ? { concurrency: flags.concurrency } : {}),
    ...(flags.maxErrors !== undefined ? { maxErrors: flags.maxErrors } : {}),
    ...(flags.retries !== undefined ? { retries: flags.retries } : {}),
    ...(flags.name ? { name: flags.name } : {}),
  };
  if (flags.resume !== undefined && !isJobId(flags.resume)) throw new ValidationError(`--resume: '${flags.resume}' is not a job id`);
  const session = await openEvalSession({ fleet: true, workers: flags.workers, lm: lmFromFlags(flags), quiet: flags.json });
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
    display.end();
    const [summary, results] = await Promise.all([client.summary(job), client.results(job)]);
    if (flags.out) {
      const dataset = await client.dataset(job);
      writeFileSync(flags.out, renderReport({ record, results, dataset }));
      say(flags.json, `report: ${resolve(flags.out)}`);
    }
    if (flags.json) {
      const rows = [...results.values()].sort((a, b) => a.index - b.index);
      process.stdout.write(`${JSON.stringify({ summary, results: rows }, null, 2)}\n`);
    } else if (summary) printSummary(summary, record);
    if (record.status !== "completed") process.exitCode = 1;
  } finally {
    display.end();
    await session.close();
  }
}

async function withSession<T>(fleet: boolean, fn: (client: PipelineClient) => Promise<T>): Promise<T> {
  const session = await openEvalSession({ fleet, quiet: true });
  try {
    return await fn(session.client);
  } finally {
    await session.close();
  }
}

function fmtWhen(t: number | undefined): string {
  return t === undefined ? "" : new Date(t).toISOString().slice(0, 19).replace("T", " ");
}

/** Registers `dspex eval` and `dspex jobs` on the dspex program. */
export function registerPipelineCommands(program: Command): void {
  program
    .command("eval")
    .description("evaluate a program over a dataset on the fleet (resumable batch job with progress)")
    .argument("<program>", "program spec JSON file (module or pipeline, optionally with metrics) or a DSPy signature")
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

  const jobs = program.command("jobs").description("evaluation jobs: list, show, report, compare, cancel, delete");
  jobs
    .command("list", { isDefault: true })
    .description("list jobs with status and score")
    .option("--json", "print JSON")
    .action(async (flags: { json?: boolean }) => {
      const list = await withSession(false, async (client) => (await client.store()).listJobs());
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(list.map(({ spec, ...r }) => ({ ...r, name: spec.name })), null, 2)}\n`);
        return;
      }
      if (list.length === 0) {
        process.stdout.write("no jobs\n");
        return;
      }
      process.stdout.write(`${"JOB".padEnd(28)} ${"STATUS".padEnd(10)} ${"DONE".padStart(11)} ${"SCORE".padStart(7)}  ${"CREATED".padEnd(19)}  NAME\n`);
      for (const r of list) {
        const done = r.summary?.done ?? r.progress?.done ?? 0;
        const score = r.summary?.score ?? r.progress?.score ?? null;
        process.stdout.write(
          `${r.id.padEnd(28)} ${r.status.padEnd(10)} ${`${done}/${r.total}`.padStart(11)} ${(score === null ? "—" : score.toFixed(2)).padStart(7)}  ${fmtWhen(r.createdAt).padEnd(19)}  ${r.spec.name ?? ""}\n`,
        );
      }
    });
  jobs
    .command("show")
    .argument("<job>")
    .description("a job's summary (and per-example results with --json)")
    .option("--json", "print the summary and per-example results as JSON")
    .action(async (job: string, flags: { json?: boolean }) => {
      await withSession(false, async (client) => {
        const record = await client.record(job);
        if (!record) throw new ValidationError(`no job '${job}'`);
        const results = await client.results(job);
        const summary = (await client.summary(job))!;
        if (flags.json) {
          const rows = [...results.values()].sort((a, b) => a.index - b.index);
          process.stdout.write(`${JSON.stringify({ record, summary, results: rows }, null, 2)}\n`);
        } else printSummary(summary, record);
      });
    });
  jobs
    .command("report")
    .argument("<job>")
    .requiredOption("-o, --out <report.html>", "output file")
    .description("write a job's HTML report")
    .action(async (job: string, flags: { out: string }) => {
      await withSession(false, async (client) => {
        const record = await client.record(job);
        if (!record) throw new ValidationError(`no job '${job}'`);
        const [results, dataset] = await Promise.all([client.results(job), client.dataset(job)]);
        writeFileSync(flags.out, renderReport({ record, results, dataset }));
        process.stderr.write(`report: ${resolve(flags.out)}\n`);
      });
    });
  jobs
    .command("compare")
    .argument("<jobs...>", "two or more jobs on the same dataset")
    .option("-o, --out <report.html>", "write the comparison as HTML")
    .option("--json", "print JSON")
    .option("--force", "compare even if the datasets differ")
    .description("per-example wins, losses and ties between jobs")
    .action(async (ids: string[], flags: { out?: string; json?: boolean; force?: boolean }) => {
      await withSession(false, async (client) => {
        const data = await Promise.all(
          ids.map(async (id) => {
            const record = await client.record(id);
            if (!record) throw new ValidationError(`no job '${id}'`);
            return { record, results: await client.results(id) };
          }),
        );
        const comparison = compareJobs(data, { force: flags.force ?? false });
        if (flags.out) writeFileSync(flags.out, renderComparisonReport(comparison));
        if (flags.json) {
          const { perExample: _omit, ...rest } = comparison;
          process.stdout.write(`${JSON.stringify(rest, null, 2)}\n`);
        } else process.stdout.write(`${formatComparison(comparison)}\n`);
      });
    });
  jobs
    .command("cancel")
    .argument("<job>")
    .description("cancel a job (it keeps the results so far)")
    .action(async (job: string) => {
      const rec = await withSession(false, (client) => client.cancel(job));
      process.stdout.write(`${rec.id}: ${rec.status}${rec.cancelRequested ? " (cancel requested)" : ""}\n`);
    });
  jobs
    .command("delete")
    .argument("<job>")
    .description("delete a finished job, its dataset and results")
    .action(async (job: string) => {
      const deleted = await withSession(false, (client) => client.delete(job));
      process.stdout.write(deleted ? `${job}: deleted\n` : `${job}: not found\n`);
    });
}
