/**
 * The registry: programs with a lifecycle and immutable versions, datasets, jobs, execution history, in
 * PostgreSQL or the embedded PGlite (db/open.ts), and the recorder that writes executions from JetStream.
 * `Registry.open` migrates the schema; `start()` starts the recorder and the retention sweep.
 */
import type { Client } from "@dspex/client";
import type { Logger } from "@dspex/observability";
import { openDatabase, type OpenOptions, type RegistryDatabase } from "./db/open.js";
import { Datasets } from "./datasets.js";
import { Executions, retentionDays } from "./executions.js";
import { Jobs } from "./jobs.js";
import { Programs } from "./programs.js";
import { Recorder } from "./recorder.js";
import { Lifecycle } from "./transitions.js";
import { parseRef, kvKey, type ProgramRef } from "./names.js";
import { Conflict } from "./errors.js";
import { guarded, programRow } from "./store.js";

export interface RegistryOptions extends OpenOptions {
  /** The gateway's client (role `gateway`): KV programs, optimizer jobs, the executions stream. */
  client: Client;
  logger: Logger;
  /** Days executions are kept (default DSPEX_EXECUTIONS_RETENTION_DAYS, 90; 0: forever). */
  retentionDays?: number;
}

export interface Resolved {
  program: string;
  version: number;
  kvKey: string;
}

export class Registry {
  readonly programs: Programs;
  readonly lifecycle: Lifecycle;
  readonly datasets: Datasets;
  readonly jobs: Jobs;
  readonly executions: Executions;
  readonly recorder: Recorder;
  private sweep: NodeJS.Timeout | undefined;

  private constructor(
    readonly database: RegistryDatabase,
    private readonly options: RegistryOptions,
  ) {
    const ctx = { db: database.db, client: options.client, logger: options.logger };
    this.programs = new Programs(ctx);
    this.lifecycle = new Lifecycle(ctx);
    this.datasets = new Datasets(ctx);
    this.jobs = new Jobs(ctx);
    this.executions = new Executions(ctx);
    this.recorder = new Recorder(options.client.nc, this.executions, options.logger);
  }

  static async open(options: RegistryOptions): Promise<Registry> {
    const database = await openDatabase(options);
    options.logger.info("registry database open", { database: database.location, kind: database.kind });
    return new Registry(database, options);
  }

  async start(): Promise<void> {
    await this.recorder.start();
    const days = this.options.retentionDays ?? retentionDays();
    const prune = () =>
      this.executions
        .prune(days)
        .then((n) => n > 0 && this.options.logger.info("old executions deleted", { deleted: n, retentionDays: days }))
        .catch((err: unknown) => this.options.logger.warn(`execution retention sweep failed: ${String(err)}`));
    void prune();
    this.sweep = setInterval(prune, 3600_000);
    this.sweep.unref();
  }

  /**
   * The version a reference names. A pinned version needs no database (its KV key is deterministic; the workers
   * report a missing one); `@deployed` reads the program's row, which a deploy changes in one commit.
   */
  async resolve(ref: string | ProgramRef): Promise<Resolved> {
    const r = typeof ref === "string" ? parseRef(ref) : ref;
    if (r.version !== "deployed") return { program: r.program, version: r.version, kvKey: kvKey(r.program, r.version) };
    const row = await guarded(() => programRow(this.database.db, r.program));
    if (row.deployed_version === null) {
      throw new Conflict(`program '${r.program}' has no deployed version (state ${row.state})`, { field: "program", details: { program: r.program, state: row.state, guard: "deployed version" } });
    }
    return { program: r.program, version: row.deployed_version, kvKey: kvKey(r.program, row.deployed_version) };
  }

  async close(): Promise<void> {
    if (this.sweep) clearInterval(this.sweep);
    await this.recorder.stop();
    await this.database.close();
  }
}
