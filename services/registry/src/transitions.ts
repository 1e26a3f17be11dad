/**
 * The lifecycle's actions (lifecycle.ts): train, optimize, deploy, rollback, deprecate. Each runs in one
 * transaction holding the program's row (`select … for update`), checks the state and its guards, records the
 * transition (who, when, why, what it saw) and changes the program; a deploy or rollback switches
 * `program:<name>@deployed` in that same commit, so every call resolved after it runs the new version.
 */
import { JobStore, isTerminal, newJobId } from "@dspex/jobs";
import type { JobRecord, LMConfig, OptimizeResult, SignatureWire } from "@dspex/protocol";
import { NotFound } from "@dspex/protocol";
import type { OptimizerName } from "@dspex/client";
import type { ProgramRow } from "./db/tables.js";
import { checkFrom, guardFailed, type Action } from "./lifecycle.js";
import { KV_PREFIX } from "./names.js";
import { datasetExamples } from "./datasets.js";
import { insertVersion, programsOf, versionOf } from "./programs.js";
import { guarded, json, materialize, programRow, signatureWire, versionRow, type Db, type RegistryContext } from "./store.js";
import { jobView, type JobView, type ProgramView, type VersionView } from "./views.js";

export interface TrainInput {
  version?: number;
  optimizer: OptimizerName;
  options?: Record<string, unknown>;
  trainset: string;
  valset?: string;
  metric?: string | { name: string; args?: Record<string, unknown> };
  reason?: string;
}

export interface DeployInput {
  version?: number;
  dataset: string;
  threshold?: number;
  reason?: string;
}

export interface TransitionResult {
  program: ProgramView;
  version?: VersionView;
  job?: JobView;
}

async function record(
  tx: Db,
  program: ProgramRow,
  action: Action | "create",
  to: string,
  actor: string,
  version: number | null,
  reason: string | undefined,
  details: Record<string, unknown>,
  changes: { deployed_version?: number | null } = {},
): Promise<void> {
  await tx.insertInto("transitions").values({ program: program.name, action, from_state: program.state, to_state: to, version, actor, reason: reason ?? null, details: json(details) }).execute();
  await tx.updateTable("programs").set({ state: to, updated_at: new Date(), ...changes }).where("name", "=", program.name).execute();
}

export class Lifecycle {
  private jobStore: Promise<JobStore> | undefined;

  constructor(private readonly ctx: RegistryContext) {}

  private jobs(): Promise<JobStore> {
    this.jobStore ??= JobStore.open(this.ctx.client.nc);
    return this.jobStore;
  }

  private async jobRecord(id: string): Promise<JobRecord | null> {
    return (await (await this.jobs()).get(id))?.record ?? null;
  }

  private async latestJob(tx: Db, program: string) {
    return tx.selectFrom("jobs").selectAll().where("program", "=", program).where("kind", "=", "optimize").orderBy("created_at", "desc").orderBy("id", "desc").limit(1).executeTakeFirst();
  }

  /** Starts an optimizer job on a version (the latest by default) with named datasets. */
  async train(name: string, input: TrainInput, actor: string): Promise<TransitionResult> {
    return guarded(() =>
      this.ctx.db.transaction().execute(async (tx) => {
        const program = await programRow(tx, name, true);
        checkFrom("train", program.state);
        if (program.state === "training") {
          const last = await this.latestJob(tx, name);
          const status = last ? (await this.jobRecord(last.id))?.status ?? last.status : undefined;
          if (last && status !== undefined && (!isTerminal(status as JobRecord["status"]) || status === "succeeded")) {
            throw guardFailed("train", program.state, "optimizer job not running", `optimizer job ${last.id} is ${status}${status === "succeeded" ? " (optimize takes its result)" : ""}`, { job: last.id, status });
          }
        }
        const version = input.version ?? program.latest_version;
        const v = await versionRow(tx, name, version);
        const trainset = await datasetExamples(tx, input.trainset, "trainset");
        const valset = input.valset === undefined ? undefined : await datasetExamples(tx, input.valset, "valset");
        const wire = await signatureWire(tx, program.signature_id);
        const jobId = newJobId("optimize");
        const row = await tx
          .insertInto("jobs")
          .values({ id: jobId, kind: "optimize", program: name, version, dataset: input.trainset, valset: input.valset ?? null, status: "queued", score: null, result: null, created_by: actor, created_at: new Date() })
          .returningAll()
          .executeTakeFirstOrThrow();
        await record(tx, program, "train", "training", actor, version, input.reason, { job: jobId, optimizer: input.optimizer, trainset: input.trainset, valset: input.valset ?? null });
        const lm: LMConfig | undefined = program.lm_profile ? { profile: program.lm_profile } : undefined;
        // the optimizer works on a copy (its result is a new revision of that key), never on the version's own key
        await this.ctx.client.compile({
          program: {
            id: `${KV_PREFIX}${name}-train-${jobId}`,
            signature: v.instructions === null ? wire : ({ ...wire, instructions: v.instructions } as SignatureWire),
            module: program.module as "predict",
            state: v.state as object,
            owner: "registry",
          },
          optimizer: input.optimizer,
          options: input.options ?? {},
          trainset,
          ...(valset ? { valset } : {}),
          ...(input.metric ? { metric: input.metric } : {}),
          ...(lm ? { lm } : {}),
          jobId,
        });
        return { program: await this.view(tx, name), job: jobView(row) };
      }),
    );
  }

  /** Takes the finished optimizer job's program as a new version, with its lineage and scores. */
  async optimize(name: string, input: { job?: string; reason?: string }, actor: string): Promise<TransitionResult> {
    return guarded(() =>
      this.ctx.db.transaction().execute(async (tx) => {
        const program = await programRow(tx, name, true);
        checkFrom("optimize", program.state);
        const job = input.job
          ? await tx.selectFrom("jobs").selectAll().where("id", "=", input.job).where("program", "=", name).executeTakeFirst()
          : await this.latestJob(tx, name);
        if (!job) throw guardFailed("optimize", program.state, "optimizer job succeeded", `no optimizer job of '${name}'${input.job ? ` named ${input.job}` : ""}`, { job: input.job ?? null });
        const rec = await this.jobRecord(job.id);
        if (!rec || rec.status !== "succeeded" || !rec.result) {
          const status = rec?.status ?? "unknown";
          throw guardFailed("optimize", program.state, "optimizer job succeeded", `optimizer job ${job.id} is ${status}`, { job: job.id, status });
        }
        const result = rec.result as unknown as OptimizeResult;
        const optimized = await this.ctx.client.programs.get(result.program.id, result.program.version);
        const parent = await versionRow(tx, name, job.version);
        const row = await insertVersion(
          tx,
          program,
          { state: optimized.definition.state ?? {}, instructions: parent.instructions, parent_version: job.version, job_id: job.id, score: result.score, baseline_score: result.baseline_score },
          actor,
        );
        const dataset = job.valset ?? job.dataset;
        if (dataset !== null) {
          if (result.score !== null) await tx.insertInto("evaluations").values({ program: name, version: row.version, dataset, score: result.score, job_id: job.id }).execute();
          if (result.baseline_score !== null) await tx.insertInto("evaluations").values({ program: name, version: job.version, dataset, score: result.baseline_score, job_id: job.id }).execute();
        }
        await tx.updateTable("jobs").set({ status: "succeeded", score: result.score, result: json({ ...result, progress: rec.progress ?? null }), updated_at: new Date() }).where("id", "=", job.id).execute();
        await record(tx, program, "optimize", "optimized", actor, row.version, input.reason, { job: job.id, parent_version: job.version, score: result.score, baseline_score: result.baseline_score, dataset });
        await materialize(this.ctx.client, program, row, await signatureWire(tx, program.signature_id));
        return { program: await this.view(tx, name), version: await this.versionView(tx, name, row.version) };
      }),
    );
  }

  /** Routes the alias to a version whose score on `dataset` is at least `threshold`. */
  async deploy(name: string, input: DeployInput, actor: string): Promise<TransitionResult> {
    return guarded(() =>
      this.ctx.db.transaction().execute(async (tx) => {
        const program = await programRow(tx, name, true);
        checkFrom("deploy", program.state);
        const version = input.version ?? program.latest_version;
        const v = await versionRow(tx, name, version);
        const ds = await tx.selectFrom("datasets").select("name").where("name", "=", input.dataset).executeTakeFirst();
        if (!ds) throw new NotFound(`no dataset '${input.dataset}'`, { field: "dataset", details: { dataset: input.dataset } });
        const evaluation = await tx.selectFrom("evaluations").selectAll().where("program", "=", name).where("version", "=", version).where("dataset", "=", input.dataset).orderBy("id", "desc").limit(1).executeTakeFirst();
        if (!evaluation) {
          throw guardFailed("deploy", program.state, "score on dataset", `version ${version} has no score on dataset '${input.dataset}'`, { version, dataset: input.dataset });
        }
        if (input.threshold !== undefined && evaluation.score < input.threshold) {
          throw guardFailed("deploy", program.state, "score ≥ threshold", `version ${version} scores ${evaluation.score} on '${input.dataset}', below the threshold ${input.threshold}`, {
            version,
            dataset: input.dataset,
            score: evaluation.score,
            threshold: input.threshold,
          });
        }
        // the workers must find the version before the alias points at it
        await materialize(this.ctx.client, program, v, await signatureWire(tx, program.signature_id));
        await record(tx, program, "deploy", "deployed", actor, version, input.reason, { dataset: input.dataset, score: evaluation.score, threshold: input.threshold ?? null, previous_version: program.deployed_version }, { deployed_version: version });
        return { program: await this.view(tx, name) };
      }),
    );
  }

  /** Points the alias back at the version deployed before the current one. */
  async rollback(name: string, input: { reason?: string }, actor: string): Promise<TransitionResult> {
    return guarded(() =>
      this.ctx.db.transaction().execute(async (tx) => {
        const program = await programRow(tx, name, true);
        checkFrom("rollback", program.state);
        const current = program.deployed_version!;
        const made = await this.deployedBy(tx, name, current);
        const previous = (made?.details as { previous_version?: number | null } | null)?.previous_version ?? null;
        if (previous === null) {
          throw guardFailed("rollback", program.state, "previous deployment", `no version of '${name}' was deployed before version ${current}`, { version: current });
        }
        const earlier = await this.deployedBy(tx, name, previous, made!.id);
        const v = await versionRow(tx, name, previous);
        await materialize(this.ctx.client, program, v, await signatureWire(tx, program.signature_id));
        const beforeThat = (earlier?.details as { previous_version?: number | null } | null)?.previous_version ?? null;
        await record(tx, program, "rollback", "deployed", actor, previous, input.reason, { from_version: current, previous_version: beforeThat }, { deployed_version: previous });
        return { program: await this.view(tx, name) };
      }),
    );
  }

  async deprecate(name: string, input: { reason?: string }, actor: string): Promise<TransitionResult> {
    return guarded(() =>
      this.ctx.db.transaction().execute(async (tx) => {
        const program = await programRow(tx, name, true);
        checkFrom("deprecate", program.state);
        await record(tx, program, "deprecate", "deprecated", actor, program.deployed_version, input.reason, { previous_version: program.deployed_version }, { deployed_version: null });
        return { program: await this.view(tx, name) };
      }),
    );
  }

  /** The latest transition that made `version` the deployed one (before transition `beforeId`). */
  private async deployedBy(tx: Db, program: string, version: number, beforeId?: number) {
    let q = tx.selectFrom("transitions").selectAll().where("program", "=", program).where("to_state", "=", "deployed").where("version", "=", version);
    if (beforeId !== undefined) q = q.where("id", "<", beforeId);
    return q.orderBy("id", "desc").limit(1).executeTakeFirst();
  }

  private async view(tx: Db, name: string): Promise<ProgramView> {
    return (await programsOf(tx, [await programRow(tx, name)]))[0]!;
  }

  private versionView(tx: Db, name: string, version: number): Promise<VersionView> {
    return versionOf(tx, name, version);
  }
}
