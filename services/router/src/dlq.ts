/**
 * Dead letters (docs/reliability.md). A request that exhausted its deliveries (MaxDeliver: every worker that
 * took it crashed, hung past AckWait or could not reply) or was terminated (undecodable, no reply subject)
 * ends up in the stream `DSPEX_DLQ` (subjects `dspex.dlq.<pool>`) with its body, its headers and the reason.
 *
 * JetStream announces both with advisories: `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.DSPEX_REQ.<consumer>`
 * and `…MSG_TERMINATED…` (with the worker's `+TERM <reason>`). They are captured by the stream
 * `DSPEX_ADVISORIES` and read through one durable consumer that every router's listener shares, so an
 * advisory is handled once even with several routers, and advisories emitted while no router runs wait for
 * one. For each, the listener fetches the original by its stream sequence, copies it into the DLQ with
 * `Nats-Msg-Id: dlq:<stream seq>` (idempotent: a redelivered advisory, or the copy the worker already made of
 * a message it terminated, is dropped as a duplicate) and deletes it from the work-queue stream, where a
 * max-delivered message would otherwise stay forever. The caller of a max-delivered request, if still
 * waiting, gets an error reply at once instead of a timeout.
 */
import { randomUUID } from "node:crypto";
import {
  AckPolicy,
  DeliverPolicy,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { headers as natsHeaders, nanos, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import {
  ENVELOPE_VERSION,
  HEADERS,
  REQUEST_STREAM,
  createLogger,
  decode,
  encode,
  type ReplyEnvelope,
} from "@dspex/shared";
import { REPLY_ACK_HEADER } from "./resilience.js";
import { publishWithRetry } from "./retry.js";

export const DLQ_STREAM = "DSPEX_DLQ";
export const DLQ_SUBJECT_PREFIX = "dspex.dlq";
export const ADVISORY_STREAM = "DSPEX_ADVISORIES";
export const DLQ_CONSUMER = "dlq";
export const ADVISORY_SUBJECTS = [
  `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${REQUEST_STREAM}.*`,
  `$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.${REQUEST_STREAM}.*`,
];

/** Headers of a dead-letter record (workers/dspex_worker/reliability.py writes the same). */
export const DLQ_HEADERS = {
  reason: "Dspex-Dlq-Reason",
  kind: "Dspex-Dlq-Kind",
  stream: "Dspex-Dlq-Stream",
  seq: "Dspex-Dlq-Seq",
  subject: "Dspex-Dlq-Subject",
  consumer: "Dspex-Dlq-Consumer",
  deliveries: "Dspex-Dlq-Deliveries",
  msgId: "Dspex-Dlq-Msg-Id",
  by: "Dspex-Dlq-By",
  at: "Dspex-Dlq-At",
  /** `missing`: the original was gone when the advisory was handled (a terminated work-queue message). */
  body: "Dspex-Dlq-Body",
} as const;

export type DeadLetterKind = "max_deliveries" | "terminated";

export function dlqSubject(pool: string): string {
  return `${DLQ_SUBJECT_PREFIX}.${pool}`;
}

/** `dspex.req.<pool>.<key>` → pool; else the consumer name's pool (`general`, `general-p3`). */
function poolOf(subject: string | undefined, consumer: string | undefined): string {
  const parts = subject?.split(".") ?? [];
  if (parts.length >= 4 && parts[0] === "dspex" && parts[1] === "req") return parts[2]!;
  const name = consumer?.replace(/-p\d+$/, "");
  return name && /^[A-Za-z0-9_-]+$/.test(name) ? name : "unknown";
}

export interface DlqOptions {
  /** How long dead letters are kept (default 7 days). */
  maxAgeMs?: number;
  replicas?: number;
  storage?: "file" | "memory";
  /** Window in which `dlq:<seq>` ids are deduplicated (default 24 h; at most maxAgeMs). */
  duplicateWindowMs?: number;
  /** Reply to a still-waiting caller of a max-delivered request (default true). */
  notifyCaller?: boolean;
}

/** Creates (or updates) DSPEX_DLQ, DSPEX_ADVISORIES and the listeners' durable consumer. Idempotent. */
export async function provisionDlq(jsm: JetStreamManager, options: DlqOptions = {}): Promise<void> {
  const maxAge = options.maxAgeMs ?? 7 * 24 * 3600_000;
  const storage = options.storage === "memory" ? StorageType.Memory : StorageType.File;
  const wanted: Array<Partial<StreamConfig> & { name: string; subjects: string[] }> = [
    {
      name: DLQ_STREAM,
      subjects: [`${DLQ_SUBJECT_PREFIX}.>`],
      retention: RetentionPolicy.Limits,
      storage,
      num_replicas: options.replicas ?? 1,
      max_age: nanos(maxAge),
      duplicate_window: nanos(Math.min(options.duplicateWindowMs ?? 24 * 3600_000, maxAge)),
    },
    {
      name: ADVISORY_STREAM,
      subjects: ADVISORY_SUBJECTS,
      retention: RetentionPolicy.Workqueue,
      storage,
      num_replicas: options.replicas ?? 1,
      max_age: nanos(Math.min(maxAge, 24 * 3600_000)),
    },
  ];
  for (const config of wanted) {
    try {
      const current = (await jsm.streams.info(config.name)).config;
      if (current.max_age !== config.max_age || current.subjects.join() !== config.subjects.join()) {
        await jsm.streams.update(config.name, { ...current, ...config } as StreamConfig);
      }
    } catch (err) {
      if (!/not found/i.test(String((err as Error)?.message ?? err))) throw err;
      try {
        await jsm.streams.add(config);
      } catch (addErr) {
        // Another router created it at the same moment.
        if (!/already in use|already exists/i.test(String((addErr as Error)?.message ?? addErr))) throw addErr;
      }
    }
  }
  try {
    await jsm.consumers.info(ADVISORY_STREAM, DLQ_CONSUMER);
  } catch {
    try {
      await jsm.consumers.add(ADVISORY_STREAM, {
        durable_name: DLQ_CONSUMER,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: nanos(30_000),
        max_deliver: 20,
      });
    } catch (err) {
      if (!/already in use|already exists/i.test(String((err as Error)?.message ?? err))) throw err;
    }
  }
}

interface Advisory {
  type: string;
  stream: string;
  consumer: string;
  stream_seq: number;
  deliveries?: number;
  reason?: string;
}

export interface DeadLetterEvent {
  kind: DeadLetterKind;
  /** Sequence of the request in DSPEX_REQ. */
  originalSeq: number;
  /** Sequence of the record in DSPEX_DLQ. */
  dlqSeq: number;
  /** false: another listener (or the terminating worker) had already recorded it. */
  recorded: boolean;
  reason: string;
  pool: string;
  requestId?: string;
  bodyMissing: boolean;
}

/** Copies one request (by its DSPEX_REQ sequence) into the DLQ and deletes the original. */
export async function deadLetter(
  nc: NatsConnection,
  advisory: Advisory,
  options: { jsm?: JetStreamManager; js?: JetStreamClient; notifyCaller?: boolean; by?: string } = {},
): Promise<DeadLetterEvent> {
  const jsm = options.jsm ?? (await jetstreamManager(nc));
  const js = options.js ?? jetstream(nc);
  const kind: DeadLetterKind = advisory.type.endsWith("max_deliver") ? "max_deliveries" : "terminated";
  const seq = advisory.stream_seq;
  const reason =
    kind === "max_deliveries"
      ? `delivered ${advisory.deliveries ?? "?"} times (MaxDeliver of consumer ${advisory.consumer}) without being ` +
        "acknowledged: every worker that took it crashed, hung past its ack wait or could not reply"
      : advisory.reason || `terminated by a consumer of ${advisory.consumer}`;
  let original = null;
  try {
    original = await jsm.streams.getMessage(advisory.stream, { seq });
  } catch {
    original = null; // gone: deleted already (by another listener), or terminated from a work-queue stream
  }
  const h = natsHeaders();
  if (original?.header) {
    for (const [key, values] of original.header) {
      if (key.toLowerCase().startsWith("nats-")) continue;
      for (const v of values) h.append(key, v);
    }
  }
  const msgId = original?.header?.get(HEADERS.msgId) ?? "";
  h.set(DLQ_HEADERS.reason, reason.replace(/\s+/g, " ").slice(0, 300));
  h.set(DLQ_HEADERS.kind, kind);
  h.set(DLQ_HEADERS.stream, advisory.stream);
  h.set(DLQ_HEADERS.seq, String(seq));
  if (original) h.set(DLQ_HEADERS.subject, original.subject);
  h.set(DLQ_HEADERS.consumer, advisory.consumer);
  if (advisory.deliveries !== undefined) h.set(DLQ_HEADERS.deliveries, String(advisory.deliveries));
  if (msgId) h.set(DLQ_HEADERS.msgId, msgId);
  h.set(DLQ_HEADERS.by, options.by ?? "router");
  h.set(DLQ_HEADERS.at, String(Date.now()));
  if (!original) h.set(DLQ_HEADERS.body, "missing");
  const pool = poolOf(original?.subject, advisory.consumer);
  const ack = await publishWithRetry(js, dlqSubject(pool), original?.data ?? new Uint8Array(), {
    msgID: `dlq:${seq}`,
    headers: h,
    deadline: Date.now() + 30_000,
  });
  if (original) {
    try {
      await jsm.streams.deleteMessage(advisory.stream, seq, false);
    } catch {
      // already deleted by another listener
    }
  }
  const event: DeadLetterEvent = {
    kind,
    originalSeq: seq,
    dlqSeq: ack.seq,
    recorded: !ack.duplicate,
    reason,
    pool,
    requestId: msgId || undefined,
    bodyMissing: !original,
  };
  const replyTo = original?.header?.get(HEADERS.replyTo);
  if (event.recorded && kind === "max_deliveries" && replyTo && options.notifyCaller !== false) {
    // The caller is probably still waiting (each delivery waited its ack wait): tell it now.
    const reply: ReplyEnvelope = {
      v: ENVELOPE_VERSION,
      id: msgId,
      ok: false,
      error: {
        type: "WorkerError",
        message: `request dead-lettered: ${reason} (${DLQ_STREAM} sequence ${ack.seq})`,
        retryable: false,
        details: { dead_letter: { stream: DLQ_STREAM, seq: ack.seq, kind, deliveries: advisory.deliveries } },
      },
      worker: "dlq",
    };
    try {
      nc.publish(replyTo, encode(reply));
    } catch {
      // nobody to tell
    }
  }
  return event;
}

export interface DlqListenerOptions extends DlqOptions {
  /** Called for every advisory handled (tests, metrics). */
  onDeadLetter?: (event: DeadLetterEvent) => void;
}

/** Reads the shared advisory consumer and dead-letters what it announces. */
export class DlqListener {
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;
  private readonly log = createLogger("dspex.dlq");
  readonly handled = { max_deliveries: 0, terminated: 0, failed: 0 };

  private constructor(
    private readonly nc: NatsConnection,
    private readonly options: DlqListenerOptions,
  ) {}

  static async start(nc: NatsConnection, options: DlqListenerOptions = {}): Promise<DlqListener> {
    const listener = new DlqListener(nc, options);
    const jsm = await jetstreamManager(nc);
    await provisionDlq(jsm, options);
    const js = jetstream(nc);
    const consumer = await js.consumers.get(ADVISORY_STREAM, DLQ_CONSUMER);
    listener.messages = await consumer.consume({ max_messages: 16 });
    listener.loop = listener.run(jsm, js);
    return listener;
  }

  private async run(jsm: JetStreamManager, js: JetStreamClient): Promise<void> {
    for await (const m of this.messages!) {
      let advisory: Advisory;
      try {
        advisory = m.json<Advisory>();
      } catch {
        m.term();
        continue;
      }
      try {
        const event = await deadLetter(this.nc, advisory, { jsm, js, notifyCaller: this.options.notifyCaller });
        this.handled[event.kind] += 1;
        if (event.recorded) {
          this.log.warn(`request dead-lettered (${event.kind}): ${event.reason}`, {
            pool: event.pool,
            id: event.requestId,
            stream_seq: event.originalSeq,
            dlq_seq: event.dlqSeq,
          });
        }
        this.options.onDeadLetter?.(event);
        m.ack();
      } catch (err) {
        this.handled.failed += 1;
        this.log.error(`dead-lettering failed: ${String(err)}`, { stream_seq: advisory.stream_seq });
        if (!this.stopped) m.nak(1_000);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.messages?.close();
    await this.loop?.catch(() => {});
  }
}

/** Starts the listener; a failure (no JetStream permission for the DLQ streams, …) is logged, not thrown. */
export async function startDlqListener(nc: NatsConnection, options: DlqListenerOptions = {}): Promise<DlqListener | undefined> {
  try {
    return await DlqListener.start(nc, options);
  } catch (err) {
    createLogger("dspex.dlq").warn(`dead-letter listener not started: ${String(err)}`);
    return undefined;
  }
}

export interface DlqEntry {
  /** Sequence in DSPEX_DLQ. */
  seq: number;
  subject: string;
  pool: string;
  time: Date;
  kind: string;
  reason: string;
  /** Where the request was published, and its sequence there. */
  originalSubject: string | undefined;
  originalSeq: number | undefined;
  consumer: string | undefined;
  deliveries: number | undefined;
  requestId: string | undefined;
  headers: Record<string, string>;
  body: Uint8Array;
  bodyMissing: boolean;
}

function toEntry(m: { seq: number; subject: string; time: Date; header: MsgHdrs | undefined; data: Uint8Array }): DlqEntry {
  const headers: Record<string, string> = {};
  for (const [key, values] of m.header ?? []) headers[key] = values.join(", ");
  const get = (name: string) => m.header?.get(name) || undefined;
  const num = (name: string) => (get(name) === undefined ? undefined : Number(get(name)));
  return {
    seq: m.seq,
    subject: m.subject,
    pool: m.subject.slice(DLQ_SUBJECT_PREFIX.length + 1),
    time: m.time,
    kind: get(DLQ_HEADERS.kind) ?? "unknown",
    reason: get(DLQ_HEADERS.reason) ?? "",
    originalSubject: get(DLQ_HEADERS.subject),
    originalSeq: num(DLQ_HEADERS.seq),
    consumer: get(DLQ_HEADERS.consumer),
    deliveries: num(DLQ_HEADERS.deliveries),
    requestId: get(DLQ_HEADERS.msgId),
    headers,
    body: m.data,
    bodyMissing: get(DLQ_HEADERS.body) === "missing",
  };
}

async function manager(from: JetStreamManager | NatsConnection): Promise<JetStreamManager> {
  return "streams" in from ? from : jetstreamManager(from);
}

/** One dead letter by its DSPEX_DLQ sequence, or undefined. */
export async function getDeadLetter(from: JetStreamManager | NatsConnection, seq: number): Promise<DlqEntry | undefined> {
  const jsm = await manager(from);
  try {
    const m = await jsm.streams.getMessage(DLQ_STREAM, { seq });
    return m ? toEntry(m) : undefined;
  } catch {
    return undefined;
  }
}

/** Dead letters, oldest first (`limit` newest when there are more). */
export async function listDeadLetters(
  from: JetStreamManager | NatsConnection,
  options: { pool?: string; limit?: number } = {},
): Promise<DlqEntry[]> {
  const jsm = await manager(from);
  let state;
  try {
    state = (await jsm.streams.info(DLQ_STREAM)).state;
  } catch {
    return [];
  }
  const limit = options.limit ?? 100;
  const out: DlqEntry[] = [];
  for (let seq = state.last_seq; seq >= state.first_seq && seq > 0 && out.length < limit; seq--) {
    const entry = await getDeadLetter(jsm, seq);
    if (entry && (!options.pool || entry.pool === options.pool)) out.push(entry);
  }
  return out.reverse();
}

/** The decoded request body of a dead letter, or why it cannot be decoded. */
export function decodeDeadLetter(entry: DlqEntry): { value?: unknown; error?: string } {
  if (entry.bodyMissing) return { error: "body not available (the original was gone when it was dead-lettered)" };
  try {
    return { value: decode(entry.body) };
  } catch (err) {
    return { error: String((err as Error).message ?? err) };
  }
}

export interface ReplayResult {
  seq: number;
  subject: string;
  /** The replay's request id (and Nats-Msg-Id): `<original id>#replay-<n>`. */
  id: string;
  /** The worker's reply, when waited for. */
  reply?: ReplyEnvelope;
  /** Why there is no reply (timeout, undecodable reply). */
  error?: string;
}

/**
 * Publishes a dead letter's request again to its original subject, as a new message: a new id (the body's
 * `id` and `Nats-Msg-Id`, so the worker's id check passes), a new deadline, and a reply subject of its own.
 * With `waitMs` it waits that long for the worker's reply. The dead letter stays in the DLQ.
 */
export async function replayDeadLetter(
  nc: NatsConnection,
  seq: number,
  options: { waitMs?: number; timeoutMs?: number } = {},
): Promise<ReplayResult> {
  const jsm = await jetstreamManager(nc);
  const entry = await getDeadLetter(jsm, seq);
  if (!entry) throw new Error(`no dead letter with sequence ${seq} in ${DLQ_STREAM}`);
  if (entry.bodyMissing) throw new Error(`dead letter ${seq} has no body to replay`);
  const subject = entry.originalSubject;
  if (!subject?.startsWith("dspex.req.")) throw new Error(`dead letter ${seq} has no original request subject`);
  const suffix = `#replay-${randomUUID().slice(0, 8)}`;
  let id = `${entry.requestId ?? `dlq-${seq}`}${suffix}`;
  let body = entry.body;
  const decoded = decodeDeadLetter(entry).value;
  if (decoded && typeof decoded === "object" && !Array.isArray(decoded)) {
    const map = decoded as Record<string, unknown>;
    if (typeof map.id === "string") id = `${map.id}${suffix}`;
    map.id = id;
    body = encode(map);
  }
  const timeoutMs = options.timeoutMs ?? 60_000;
  const replyTo = `_INBOX.dspex-replay.${randomUUID().replaceAll("-", "")}`;
  const h = natsHeaders();
  for (const [key, value] of Object.entries(entry.headers)) {
    const lower = key.toLowerCase();
    if (lower.startsWith("nats-") || lower.startsWith("dspex-dlq-")) continue;
    if ([HEADERS.replyTo, HEADERS.deadline, REPLY_ACK_HEADER].some((n) => n.toLowerCase() === lower)) continue;
    h.set(key, value);
  }
  h.set(HEADERS.replyTo, replyTo);
  h.set(HEADERS.deadline, String(Date.now() + timeoutMs));
  const sub = options.waitMs ? nc.subscribe(replyTo, { max: 1 }) : undefined;
  await publishWithRetry(jetstream(nc), subject, body, { msgID: id, headers: h, deadline: Date.now() + 30_000 });
  const result: ReplayResult = { seq, subject, id };
  if (sub) {
    const timer = setTimeout(() => sub.unsubscribe(), options.waitMs);
    for await (const m of sub) {
      try {
        result.reply = decode(m.data) as ReplyEnvelope;
      } catch (err) {
        result.error = `undecodable reply: ${String(err)}`;
      }
    }
    clearTimeout(timer);
    if (!result.reply && !result.error) result.error = `no reply within ${options.waitMs} ms`;
  }
  return result;
}
