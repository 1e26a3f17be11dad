/**
 * Persistence of evaluation jobs in JetStream.
 *
 * - KV bucket `dspex_eval_jobs`: one record per job (spec, status, owner lease, checkpoint, summary), updated
 *   with compare-and-set on the revision so concurrent writers (a cancel, a lease renewal) never lose an update.
 * - Stream `DSPEX_EVAL_DATA`: the dataset, one message per example on `dspex.eval.data.<job>.<index>`.
 * - Stream `DSPEX_EVAL_RESULTS`: one message per example on `dspex.eval.result.<job>.<index>`, published with
 *   `Nats-Msg-Id: <job>:<index>`. Both streams keep at most one message per subject and reject a second one
 *   (`discard: new` + `discard_new_per_subject`), so an example that ran twice still has exactly one stored
 *   result, the first, however far apart the two runs were (the Nats-Msg-Id dedup window alone would only
 *   cover two minutes). Readers also keep only the first result per index.
 */
import { createHash } from "node:crypto";
import {
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { TransportError, ValidationError } from "@dspex/shared";
import {
  DATA_PREFIX,
  DATA_STREAM,
  JOBS_BUCKET,
  RESULTS_PREFIX,
  RESULTS_STREAM,
  dataSubject,
  resultMsgId,
  resultSubject,
} from "./subjects.js";
import type { ExampleResult, JobRecord } from "./types.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface StoreOptions {
  replicas?: number;
  storage?: "file" | "memory";
  /** Largest example or result message (default 1 MiB). */
  maxMessageBytes?: number;
}

function isNotFound(err: unknown): boolean {
  return /not found/i.test(String((err as { message?: string })?.message ?? err));
}

/** The server refused a second message on a one-message subject: the example already has its result. */
function isPerSubjectLimit(err: unknown): boolean {
  const e = err as { message?: string; code?: number | string; api_error?: { err_code?: number } };
  return /maximum messages per subject/i.test(String(e?.message ?? err)) || e?.api_error?.err_code === 10077;
}

export type RecordOutcome = "stored" | "duplicate";

export class EvalStore {
  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    readonly kv: KV,
  ) {}

  /** Opens (and creates if missing) the streams and the bucket. Idempotent. */
  static async open(nc: NatsConnection, options: StoreOptions = {}): Promise<EvalStore> {
    const jsm = await jetstreamManager(nc);
    const base: Partial<StreamConfig> = {
      retention: RetentionPolicy.Limits,
      storage: options.storage === "memory" ? StorageType.Memory : StorageType.File,
      num_replicas: options.replicas ?? 1,
      max_msgs_per_subject: 1,
      discard: DiscardPolicy.New,
      discard_new_per_subject: true,
      duplicate_window: nanos(120_000),
      max_msg_size: options.maxMessageBytes ?? 1024 * 1024,
    };
    await ensureStream(jsm, { ...base, name: DATA_STREAM, subjects: [`${DATA_PREFIX}.>`] });
    await ensureStream(jsm, { ...base, name: RESULTS_STREAM, subjects: [`${RESULTS_PREFIX}.>`] });
    const kv = await new Kvm(nc).create(JOBS_BUCKET, { history: 1, replicas: options.replicas ?? 1 });
    return new EvalStore(nc, jetstream(nc), jsm, kv);
  }

  // ----- job records -----------------------------------------------------------------------------------

  async createJob(record: JobRecord): Promise<void> {
    try {
      await this.kv.create(record.id, encoder.encode(JSON.stringify(record)));
    } catch (err) {
      if (/wrong last sequence|key exists/i.test(String(err))) {
        throw new ValidationError(`job '${record.id}' already exists`, { field: "job" });
      }
      throw err;
    }
  }

  async getJob(id: string): Promise<{ record: JobRecord; revision: number } | null> {
    const entry = await this.kv.get(id);
    if (!entry || entry.operation !== "PUT" || entry.length === 0) return null;
    return { record: JSON.parse(decoder.decode(entry.value)) as JobRecord, revision: entry.revision };
  }

  /**
   * Read-modify-write with compare-and-set: `change` gets the current record and returns the new one, or
   * null to leave it alone. Retries on a concurrent update. Returns the stored record (or the current one).
   */
  async updateJob(id: string, change: (current: JobRecord) => JobRecord | null): Promise<JobRecord | null> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const current = await this.getJob(id);
      if (!current) return null;
      const next = change(structuredClone(current.record));
      if (next === null) return current.record;
      next.updatedAt = Date.now();
      try {
        await this.kv.update(id, encoder.encode(JSON.stringify(next)), current.revision);
        return next;
      } catch (err) {
        if (!/wrong last sequence/i.test(String(err))) throw err;
      }
    }
    throw new TransportError(`could not update job '${id}': too many concurrent updates`);
  }

  async listJobs(): Promise<JobRecord[]> {
    const keys: string[] = [];
    for await (const k of await this.kv.keys()) keys.push(k);
    const records = await Promise.all(keys.map((k) => this.getJob(k)));
    return records
      .filter((r): r is { record: JobRecord; revision: number } => r !== null)
      .map((r) => r.record)
      .sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Removes a job: its record, dataset and results. */
  async deleteJob(id: string): Promise<void> {
    await this.jsm.streams.purge(RESULTS_STREAM, { filter: `${RESULTS_PREFIX}.${id}.>` });
    await this.jsm.streams.purge(DATA_STREAM, { filter: `${DATA_PREFIX}.${id}.>` });
    await this.kv.purge(id);
  }

  // ----- dataset ---------------------------------------------------------------------------------------

  /** Stores the examples of a job (idempotent: an example already stored is kept). */
  async writeDataset(job: string, examples: ReadonlyArray<Record<string, unknown>>, batch = 256): Promise<void> {
    for (let start = 0; start < examples.length; start += batch) {
      const chunk = examples.slice(start, start + batch);
      await Promise.all(
        chunk.map(async (example, k) => {
          const index = start + k;
          try {
            await this.js.publish(dataSubject(job, index), encoder.encode(JSON.stringify(example)), {
              msgID: `${job}:data:${index}`,
            });
          } catch (err) {
            if (!isPerSubjectLimit(err)) throw err;
          }
        }),
      );
    }
  }

  /** Number of distinct subjects (examples / results) stored under a prefix for a job. */
  private async countSubjects(stream: string, prefix: string, job: string): Promise<number> {
    const info = await this.jsm.streams.info(stream, { subjects_filter: `${prefix}.${job}.>` });
    return Object.keys(info.state.subjects ?? {}).length;
  }

  async countExamples(job: string): Promise<number> {
    return this.countSubjects(DATA_STREAM, DATA_PREFIX, job);
  }

  /** Results stored for a job (exactly one per finished example). */
  async countResults(job: string): Promise<number> {
    return this.countSubjects(RESULTS_STREAM, RESULTS_PREFIX, job);
  }

  async readDataset(job: string): Promise<Array<Record<string, unknown>>> {
    const out: Array<Record<string, unknown>> = [];
    await this.readAll(DATA_STREAM, DATA_PREFIX, job, (index, data) => {
      out[index] = JSON.parse(decoder.decode(data)) as Record<string, unknown>;
    });
    return out;
  }

  // ----- results ---------------------------------------------------------------------------------------

  /**
   * Stores an example's result. `duplicate` when the example already had one (a re-run): the stored one
   * stays the result of record.
   */
  async recordResult(result: ExampleResult): Promise<RecordOutcome> {
    try {
      const ack = await this.js.publish(resultSubject(result.job, result.index), encoder.encode(JSON.stringify(result)), {
        msgID: resultMsgId(result.job, result.index),
      });
      return ack.duplicate ? "duplicate" : "stored";
    } catch (err) {
      if (isPerSubjectLimit(err)) return "duplicate";
      throw err;
    }
  }

  /** The stored result of one example, if any. */
  async getResult(job: string, index: number): Promise<ExampleResult | null> {
    try {
      const msg = await this.jsm.streams.getMessage(RESULTS_STREAM, { last_by_subj: resultSubject(job, index) });
      return msg ? (JSON.parse(decoder.decode(msg.data)) as ExampleResult) : null;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /** Every stored result of a job, by index (the first stored per index). */
  async readResults(job: string): Promise<Map<number, ExampleResult>> {
    const out = new Map<number, ExampleResult>();
    await this.readAll(RESULTS_STREAM, RESULTS_PREFIX, job, (index, data) => {
      if (!out.has(index)) out.set(index, JSON.parse(decoder.decode(data)) as ExampleResult);
    });
    return out;
  }

  /** Reads every message under `<prefix>.<job>.>` in stream order with an ordered consumer. */
  private async readAll(
    stream: string,
    prefix: string,
    job: string,
    each: (index: number, data: Uint8Array) => void,
  ): Promise<void> {
    const count = await this.countSubjects(stream, prefix, job);
    if (count === 0) return;
    const consumer = await this.js.consumers.get(stream, { filter_subjects: [`${prefix}.${job}.>`] });
    const messages = await consumer.consume({ max_messages: 1024 });
    const skip = prefix.length + job.length + 2;
    try {
      for await (const m of messages) {
        each(Number(m.subject.slice(skip)), m.data);
        if (m.info.pending === 0) break;
      }
    } finally {
      await messages.close();
    }
  }
}

/** sha256 over the dataset as canonical JSON lines (key order as given). */
export function datasetHash(examples: ReadonlyArray<Record<string, unknown>>): string {
  const h = createHash("sha256");
  for (const e of examples) h.update(`${JSON.stringify(e)}\n`);
  return h.digest("hex");
}

async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    await jsm.streams.info(config.name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    try {
      await jsm.streams.add(config);
    } catch (addErr) {
      // Another instance created it first.
      if (!/already in use|already exists/i.test(String(addErr))) throw addErr;
    }
  }
}
