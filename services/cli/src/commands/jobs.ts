/**
 * `dspex jobs`: every job of the one job model (eval and optimize) from KV `dspex_jobs`, read directly — no
 * service needs to run. show/report/compare read an eval job's results stream; cancel works for both kinds
 * (the record's cancel_requested, and a notice to whoever runs it); delete removes an eval job's data too.
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { connectNats } from "@dspex/bus";
import { JobStore, requestCancel } from "@dspex/jobs";
import { NotFound, ValidationError, type JobRecord as AnyJobRecord } from "@dspex/protocol";
import { EvalStore, compareJobs, formatComparison, renderComparisonReport, renderReport, summarize, type JobRecord } from "@dspex/pipeline";
import type { NatsConnection } from "@nats-io/transport-node";
import { embeddedStoreDir, openSession } from "../session.js";
import { printSummary } from "./eval.js";

async function withBus<T>(fn: (nc: NatsConnection, store: EvalStore) => Promise<T>): Promise<T> {
  const session = await openSession({ workers: false, quiet: true, ...(process.env.NATS_URL ? {} : { storeDir: embeddedStoreDir() }) });
  try {
    const nc = await connectNats({ servers: session.natsUrl, name: "dspex-jobs", creds: session.creds.client });
    try {
      return await fn(nc, await EvalStore.open(nc));
    } finally {
      await nc.close();
    }
  } finally {
    await session.close();
  }
}

async function evalRecord(store: EvalStore, id: string): Promise<JobRecord> {
  const found = await store.getJob(id);
  if (!found) throw new NotFound(`no eval job '${id}'`, { field: "job" });
  return found.record;
}

function fmtWhen(t: number | undefined): string {
  return t === undefined ? "" : new Date(t).toISOString().slice(0, 19).replace("T", " ");
}

function scoreOf(r: AnyJobRecord): number | null {
  const result = r.result as { score?: number | null } | undefined;
  return result?.score ?? r.progress?.score ?? null;
}

export function registerJobsCommands(program: Command): void {
  const jobs = program.command("jobs").description("jobs of every kind (eval, optimize): list, show, report, compare, cancel, delete");
  jobs
    .command("list", { isDefault: true })
    .description("list jobs with kind, status and score")
    .option("--json", "print JSON")
    .action(async (flags: { json?: boolean }) => {
      const list = await withBus(async (nc) => (await JobStore.open(nc)).list());
      if (flags.json) return void process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      if (list.length === 0) return void process.stdout.write("no jobs\n");
      process.stdout.write(`${"JOB".padEnd(28)} ${"KIND".padEnd(8)} ${"STATUS".padEnd(10)} ${"DONE".padStart(11)} ${"SCORE".padStart(7)}  ${"CREATED".padEnd(19)}  NAME\n`);
      for (const r of list) {
        const done = `${r.progress?.done ?? 0}/${r.total ?? r.progress?.total ?? "?"}`;
        const score = scoreOf(r);
        const name = r.name ?? (r.kind === "optimize" ? String((r.spec as { optimizer?: string }).optimizer ?? "") : "");
        process.stdout.write(
          `${r.id.padEnd(28)} ${r.kind.padEnd(8)} ${r.status.padEnd(10)} ${done.padStart(11)} ${(score === null ? "—" : score.toFixed(2)).padStart(7)}  ${fmtWhen(r.created_at).padEnd(19)}  ${name}\n`,
        );
      }
    });
  jobs
    .command("show")
    .argument("<job>")
    .description("a job's record; an eval job's summary (and per-example results with --json)")
    .option("--json", "print as JSON")
    .action(async (job: string, flags: { json?: boolean }) => {
      await withBus(async (nc, store) => {
        const record = await (await JobStore.open(nc)).require(job);
        if (record.kind !== "eval") return void process.stdout.write(`${JSON.stringify(record, null, 2)}\n`);
        const evalJob = record as unknown as JobRecord;
        const results = await store.readResults(job);
        const summary = summarize(evalJob, results);
        if (flags.json) {
          const rows = [...results.values()].sort((a, b) => a.index - b.index);
          process.stdout.write(`${JSON.stringify({ record, summary, results: rows }, null, 2)}\n`);
        } else printSummary(summary, evalJob);
      });
    });
  jobs
    .command("report")
    .argument("<job>")
    .requiredOption("-o, --out <report.html>", "output file")
    .description("write an eval job's HTML report")
    .action(async (job: string, flags: { out: string }) => {
      await withBus(async (_nc, store) => {
        const record = await evalRecord(store, job);
        const [results, dataset] = await Promise.all([store.readResults(job), store.readDataset(job)]);
        writeFileSync(flags.out, renderReport({ record, results, dataset }));
        process.stderr.write(`report: ${resolve(flags.out)}\n`);
      });
    });
  jobs
    .command("compare")
    .argument("<jobs...>", "two or more eval jobs on the same dataset")
    .option("-o, --out <report.html>", "write the comparison as HTML")
    .option("--json", "print JSON")
    .option("--force", "compare even if the datasets differ")
    .description("per-example wins, losses and ties between eval jobs")
    .action(async (ids: string[], flags: { out?: string; json?: boolean; force?: boolean }) => {
      await withBus(async (_nc, store) => {
        const data = await Promise.all(ids.map(async (id) => ({ record: await evalRecord(store, id), results: await store.readResults(id) })));
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
    .description("cancel a job of any kind (an eval job keeps its results so far)")
    .action(async (job: string) => {
      const record = await withBus(async (nc) => {
        const store = await JobStore.open(nc);
        await store.require(job);
        return requestCancel(nc, store, job);
      });
      process.stdout.write(`${job}: ${record?.status ?? "?"}${record?.cancel_requested ? " (cancel requested)" : ""}\n`);
    });
  jobs
    .command("delete")
    .argument("<job>")
    .description("delete a finished job (and an eval job's dataset and results)")
    .action(async (job: string) => {
      await withBus(async (nc, store) => {
        const record = await (await JobStore.open(nc)).require(job);
        if (!["succeeded", "failed", "cancelled"].includes(record.status)) {
          throw new ValidationError(`job '${job}' is ${record.status}; cancel it first`, { field: "job" });
        }
        await store.deleteJob(job);
        process.stdout.write(`${job}: deleted\n`);
      });
    });
}
