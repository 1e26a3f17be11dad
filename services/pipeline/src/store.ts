/**
 * Persistence of evaluation jobs in JetStream. The job records are the job model's (KV `dspex_jobs`,
 * @dspex/jobs); this store adds the eval kind's data:
 *
 * - Stream `DSPEX_EVAL_DATA`: the dataset, one message per example on `dspex.eval.data.<job>.<index>`.
 * - Stream `DSPEX_EVAL_RESULTS`: one message per example on `dspex.eval.result.<job>.<index>`, published with
 *   `Nats-Msg-Id: <job>:<index>`. Both streams keep at most one message per subject and reject a second one
 *   (`discard: new` + `discard_new_per_subject`), so an example that ran twice still has exactly one stored
 *   result, the first, however far apart the two runs were (the Nats-Msg-Id dedup window alone would only
 *   cover two minutes). Readers also keep only the first result per index.
 */
import { createHash } from "node:crypto";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { JS_CODES, isStreamNotFound, jsCode, requireBus } from "@dspex/bus";
import { JobStore } from "@dspex/jobs";
import { STREAMS, evalDataSubject, evalResultSubject } from "@dspex/protocol";
import type { ExampleResult, JobRecord } from "./types.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const DATA_STREAM = STREAMS.evalData.name;
const RESULTS_STREAM = STREAMS.evalResults.name;
/** Subject prefixes (`dspex.eval.data.<job>.<index>` without `<job>.<index>`). */
const DATA_PREFIX = evalDataSubject("", "").slice(0, -2);
const RESULTS_PREFIX = evalResultSubject("", "").slice(0, -2);

/** `Nats-Msg-Id` of an example's result: a re-run example is dropped as a duplicate. */
export function resultMsgId(job: string, index: number): string {
  return `${job}:${index}`;
}

/** The server refused a second message on a one-message subject: the example already has its result. */
function isPerSubjectLimit(err: unknown): boolean {
  return jsCode(err) === JS_CODES.StreamStoreFailed;
}

export type RecordOutcome = "stored" | "duplicate";

export class EvalStore {
  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    /** The job records (the job model's store). */
    readonly jobs: JobStore,
  ) {}

  /** Opens the streams and the jobs bucket; a BusError names what is missing (`dspex bus apply` creates them). */
  static async open(nc: NatsConnection): Promise<EvalStore> {
    await requireBus(nc, { streams: ["evalData", "evalResults"], buckets: ["jobs"] });
    return new EvalStore(nc, jetstream(nc), await jetstreamManager(nc), await JobStore.open(nc));
  }

  // ----- job records (kind eval) ------------------------------------------------------------------------

  async createJob(record: JobRecord): Promise<void> {
    await this.jobs.create(record as never);
  }

  async getJob(id: string): Promise<{ record: JobRecord; revision: number } | null> {
    const found = await this.jobs.get(id);
    return found && found.record.kind === "eval" ? (found as unknown as { record: JobRecord; revision: number }) : null;
  }

  async updateJob(id: string, change: (current: JobRecord) => JobRecord | null): Promise<JobRecord | null> {
    return (await this.jobs.update(id, change as never)) as unknown as JobRecord | null;
  }

  async listJobs(): Promise<JobRecord[]> {
    return (await this.jobs.list("eval")) as unknown as JobRecord[];
  }

  /** Removes a job: its record, dataset and results. */
  async deleteJob(id: string): Promise<void> {
    await this.jsm.streams.purge(RESULTS_STREAM, { filter: `${RESULTS_PREFIX}.${id}.>` });
    await this.jsm.streams.purge(DATA_STREAM, { filter: `${DATA_PREFIX}.${id}.>` });
    await this.jobs.delete(id);
  }

  // ----- dataset ---------------------------------------------------------------------------------------

  /**
   * Stores the examples of a job (idempotent: an example already stored is kept). Returns them as stored (their
   * JSON, parsed back) when every one was stored by this call; undefined when some were there already, whose stored
   * form only the stream has.
   */
  async writeDataset(
    job: string,
    examples: ReadonlyArray<Record<string, unknown>>,
    batch = 256,
  ): Promise<Array<Record<string, unknown>> | undefined> {
    const stored: Array<Record<string, unknown>> = new Array(examples.length);
    let kept = false;
    for (let start = 0; start < examples.length; start += batch) {
      const chunk = examples.slice(start, start + batch);
      await Promise.all(
        chunk.map(async (example, k) => {
          const index = start + k;
          const text = JSON.stringify(example);
          try {
            await this.js.publish(evalDataSubject(job, index), encoder.encode(text), { msgID: `${job}:data:${index}` });
            stored[index] = JSON.parse(text) as Record<string, unknown>;
          } catch (err) {
            if (!isPerSubjectLimit(err)) throw err;
            kept = true;
          }
        }),
      );
    }
    return kept ? undefined : stored;
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
      const ack = await this.js.publish(evalResultSubject(result.job, result.index), encoder.encode(JSON.stringify(result)), {
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
      const msg = await this.jsm.streams.getMessage(RESULTS_STREAM, { last_by_subj: evalResultSubject(job, index) });
      return msg ? (JSON.parse(decoder.decode(msg.data)) as ExampleResult) : null;
    } catch (err) {
      if (jsCode(err) === JS_CODES.NoMessageFound || isStreamNotFound(err)) return null;
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
