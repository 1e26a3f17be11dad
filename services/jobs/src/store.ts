/**
 * Job records in the KV bucket `dspex_jobs` (job.schema.json): one JSON record per job of any kind, written
 * with compare-and-set on the KV revision, so concurrent writers (a cancel, a lease renewal, progress) never
 * lose an update. The same store serves eval jobs (the pipeline service) and optimize jobs (created here by
 * the client, run by an optimizer-pool worker, which writes the same record from Python).
 */
import { randomBytes } from "node:crypto";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { isLive, isWrongLastSequence } from "@dspex/bus";
import { BUCKETS, NotFound, TransportError, ValidationError, type JobKind, type JobRecord, type JobStatus } from "@dspex/protocol";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const TERMINAL: readonly JobStatus[] = ["succeeded", "failed", "cancelled"];

const JOB_ID = /^[-_a-zA-Z0-9]{1,128}$/;

export function isJobId(value: unknown): value is string {
  return typeof value === "string" && JOB_ID.test(value);
}

/** A new job id: time-ordered and subject-safe, e.g. `ev-mf3k2p1a-7c1d9e04` (`op-…` for optimize). */
export function newJobId(kind: JobKind): string {
  return `${kind === "eval" ? "ev" : "op"}-${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;
}

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL.includes(status);
}

/** A record as the store keeps it, with the KV revision it was read at. */
export interface Stored {
  record: JobRecord;
  revision: number;
}

export class JobStore {
  private constructor(readonly kv: KV) {}

  /** Opens the bucket (it must exist: `dspex bus apply` creates it). */
  static async open(nc: NatsConnection): Promise<JobStore> {
    return new JobStore(await new Kvm(nc).open(BUCKETS.jobs.name));
  }

  /** Creates a record; a ValidationError when the id is taken. */
  async create(record: JobRecord): Promise<void> {
    try {
      await this.kv.create(record.id, encoder.encode(JSON.stringify(record)));
    } catch (err) {
      if (isWrongLastSequence(err)) throw new ValidationError(`job '${record.id}' already exists`, { field: "job" });
      throw err;
    }
  }

  async get(id: string): Promise<Stored | null> {
    const entry = await this.kv.get(id);
    if (!isLive(entry)) return null;
    return { record: JSON.parse(decoder.decode(entry.value)) as JobRecord, revision: entry.revision };
  }

  /** The record, or NotFound naming the job. */
  async require(id: string): Promise<JobRecord> {
    const found = await this.get(id);
    if (!found) throw new NotFound(`no job '${id}'`, { field: "job", details: { job: id } });
    return found.record;
  }

  /**
   * Read-modify-write with compare-and-set: `change` gets a copy of the current record and returns the new
   * one, or null to leave it alone. Retries on a concurrent update; returns the stored (or current) record,
   * null when there is no such job.
   */
  async update(id: string, change: (current: JobRecord) => JobRecord | null): Promise<JobRecord | null> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const current = await this.get(id);
      if (!current) return null;
      const next = change(structuredClone(current.record));
      if (next === null) return current.record;
      next.updated_at = Date.now();
      try {
        await this.kv.update(id, encoder.encode(JSON.stringify(next)), current.revision);
        return next;
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
    }
    throw new TransportError(`could not update job '${id}': too many concurrent updates`);
  }

  /** Every record, oldest first; `kind` filters. */
  async list(kind?: JobKind): Promise<JobRecord[]> {
    const keys: string[] = [];
    for await (const k of await this.kv.keys()) keys.push(k);
    const found = await Promise.all(keys.map((k) => this.get(k)));
    return found
      .filter((f): f is Stored => f !== null && (kind === undefined || f.record.kind === kind))
      .map((f) => f.record)
      .sort((a, b) => a.created_at - b.created_at);
  }

  async delete(id: string): Promise<void> {
    await this.kv.purge(id);
  }
}

/** A fresh record of a job that has not started. */
export function queuedRecord(id: string, kind: JobKind, spec: Record<string, unknown>, extra: Partial<JobRecord> = {}): JobRecord {
  const now = Date.now();
  return { v: 1, id, kind, status: "queued", spec, created_at: now, updated_at: now, runs: 0, ...extra };
}
