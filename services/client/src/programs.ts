/**
 * Stateful programs: a definition (signature + module) and its learned state (few-shot demos, or DSPy's
 * `dump_state` JSON), stored in the KV bucket `dspex_programs`. The KV revision is the program's version;
 * workers cache built programs by id and version and rebuild from KV on a miss, so a program survives the
 * worker that first ran it.
 */
import { randomUUID } from "node:crypto";
import type { KV } from "@nats-io/kv";
import { LazyBucket, isLive } from "@dspex/bus";
import type { NatsConnection } from "@nats-io/transport-node";
import { NotFound, ValidationError, type Operation, type SignatureWire } from "@dspex/protocol";
import { resolveSignature, type SignatureInput } from "@dspex/native";
import type { SessionTable } from "./sessions.js";

export interface ProgramState {
  /** Few-shot examples: maps of input and output field values. */
  demos?: Array<Record<string, unknown>>;
  /** The module's `dump_state()` JSON (demos and instructions per predictor), as optimizers produce. */
  dspy_state?: Record<string, unknown>;
}

export interface ProgramDefinition {
  id: string;
  module: Operation;
  signature: SignatureWire;
  state?: ProgramState;
  /** Programs created in a session expire with it. */
  session?: string;
  created_at: number;
  /** Free-form lineage (e.g. the optimizer run that produced this version). */
  lineage?: Record<string, unknown>;
  /** Score of an optimized version (dspy.Evaluate percentage on its valset/trainset; docs/dspy-surface.md). */
  score?: number | null;
  /** Who created it through the HTTP API (the API token's name); only they may add versions under its id. */
  owner?: string;
  /** `module: "program"`: the user's packaged program this is a version of (docs/programs.md). */
  package?: string;
}

export interface CreateProgramOptions {
  signature: SignatureInput;
  module?: Operation;
  instructions?: string;
  state?: ProgramState;
  session?: string;
  id?: string;
  owner?: string;
  /** With `module: "program"`: the packaged program's name (PackagedProgram.store fills it). */
  package?: string;
}

export interface ProgramVersion {
  definition: ProgramDefinition;
  version: number;
}

const PROGRAM_ID = /^[-_a-zA-Z0-9]{1,128}$/;

export class ProgramStore {
  private readonly kv: LazyBucket;
  private readonly byVersion = new Map<string, ProgramVersion>();

  constructor(nc: NatsConnection) {
    this.kv = new LazyBucket(nc, "programs");
  }

  private bucket(): Promise<KV> {
    return this.kv.get();
  }

  async create(options: CreateProgramOptions): Promise<ProgramVersion> {
    const id = options.id ?? randomUUID();
    if (!PROGRAM_ID.test(id)) {
      throw new ValidationError(`program id must match ${PROGRAM_ID} (got ${JSON.stringify(id)})`, { field: "id" });
    }
    const module = options.module ?? "predict";
    if (module !== "predict" && module !== "chain_of_thought" && module !== "program") {
      throw new ValidationError(`unknown module ${JSON.stringify(module)}; use predict or chain_of_thought`, {
        field: "module",
      });
    }
    if ((module === "program") !== (options.package !== undefined)) {
      throw new ValidationError("a packaged program's version names its package (client.program(name).store())", { field: "package" });
    }
    const definition: ProgramDefinition = {
      id,
      module,
      signature: resolveSignature(options.signature, options.instructions),
      created_at: Date.now(),
      ...(options.state ? { state: options.state } : {}),
      ...(options.session ? { session: options.session } : {}),
      ...(options.owner ? { owner: options.owner } : {}),
      ...(options.package ? { package: options.package } : {}),
    };
    return this.put(definition);
  }

  /** Stores a new version of a program (e.g. optimized state) and returns it. */
  async put(definition: ProgramDefinition): Promise<ProgramVersion> {
    const version = await (await this.bucket()).put(definition.id, JSON.stringify(definition));
    const pv = { definition, version };
    this.byVersion.set(`${definition.id}@${version}`, pv);
    return pv;
  }

  /** The latest version, or a named one (KV keeps the last 64 revisions of each program). */
  async get(id: string, version?: number): Promise<ProgramVersion> {
    if (version !== undefined) {
      const cached = this.byVersion.get(`${id}@${version}`);
      if (cached) return cached;
    }
    const kv = await this.bucket();
    const entry = version === undefined ? await kv.get(id) : await kv.get(id, { revision: version });
    if (!isLive(entry)) {
      throw new NotFound(
        `no program ${JSON.stringify(id)}${version === undefined ? "" : ` at version ${version}`} (deleted, expired with its session, or never created)`,
        { field: "program", details: { program: id, ...(version === undefined ? {} : { version }) } },
      );
    }
    const pv = { definition: entry.json<ProgramDefinition>(), version: entry.revision };
    this.byVersion.set(`${id}@${pv.version}`, pv);
    return pv;
  }

  async delete(id: string): Promise<void> {
    await (await this.bucket()).delete(id);
    for (const key of this.byVersion.keys()) if (key.startsWith(`${id}@`)) this.byVersion.delete(key);
  }

  /** Deletes the programs whose session has expired; returns their ids. */
  async sweepExpired(sessions: SessionTable): Promise<string[]> {
    const kv = await this.bucket();
    const removed: string[] = [];
    for await (const key of await kv.keys()) {
      const entry = await kv.get(key);
      if (!isLive(entry)) continue;
      const def = entry.json<ProgramDefinition>();
      if (def.session && !(await sessions.exists(def.session))) {
        await this.delete(def.id);
        removed.push(def.id);
      }
    }
    return removed;
  }
}
