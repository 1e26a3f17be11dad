/**
 * Dead letters (docs/reliability.md). A request that exhausted its deliveries (MaxDeliver: every worker that
 * took it crashed, hung past AckWait or could not reply) or was terminated (undecodable, no reply subject)
 * ends up in the stream `DSPEX_DLQ` (subjects `dspex.dlq.<pool>`) with its body, its headers and the reason.
 *
 * JetStream announces both with advisories (`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.DSPEX_REQ.<consumer>`
 * and `…MSG_TERMINATED…`), captured by the stream `DSPEX_ADVISORIES` and read through one durable consumer
 * that every DLQ service instance shares (listener.ts), so an advisory is handled once, and advisories
 * emitted while no instance runs wait for one. For each, the original is fetched by its stream sequence,
 * copied into the DLQ with `Nats-Msg-Id: dlq:<stream seq>` (idempotent: a redelivered advisory, or the copy
 * the worker already made of a message it terminated, is dropped as a duplicate) and deleted from the
 * work-queue stream, where a max-delivered message would otherwise stay forever. The caller of a
 * max-delivered request, if still waiting, gets an error reply at once instead of a timeout.
 */
import { randomUUID } from "node:crypto";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { ENVELOPE_VERSION, HEADERS, STREAMS, ValidationError, decode, deadLetterNoticeSubject, deadLetterSubject, encode, type ReplyEnvelope } from "@dspex/protocol";
import { forbiddenOr, isStreamNotFound, jsCode, JS_CODES, newInbox, publishWithRetry } from "@dspex/bus";
import { keepInputs, redactedBody } from "./redaction.js";

const DLQ_STREAM = STREAMS.deadLetters.name;

/** Headers of a dead-letter record (the worker's transport writes the same). */
export const DLQ_HEADERS = {
  reason: HEADERS.dlqReason,
  kind: HEADERS.dlqKind,
  stream: HEADERS.dlqStream,
  seq: HEADERS.dlqSeq,
  subject: HEADERS.dlqSubject,
  consumer: HEADERS.dlqConsumer,
  deliveries: HEADERS.dlqDeliveries,
  msgId: HEADERS.dlqMsgId,
  by: HEADERS.dlqBy,
  at: HEADERS.dlqAt,
  /** `missing`: the original was gone when the advisory was handled (a terminated work-queue message). */
  body: HEADERS.dlqBody,
} as const;

export type DeadLetterKind = "max_deliveries" | "terminated";


/** `dspex.req.<pool>.<key>` → pool; else the consumer name's pool (`general`, `general-p3`). */
function poolOf(subject: string | undefined, consumer: string | undefined): string {
  const parts = subject?.split(".") ?? [];
  if (parts.length >= 4 && parts[0] === "dspex" && parts[1] === "req") return parts[2]!;
  const name = consumer?.replace(/-p\d+$/, "");
  return name && /^[A-Za-z0-9_-]+$/.test(name) ? name : "unknown";
}

export interface Advisory {
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
  options: {
    jsm?: JetStreamManager;
    js?: JetStreamClient;
    notifyCaller?: boolean;
    by?: string;
    /** Keep the request's body (default DSPEX_DLQ_KEEP_INPUTS=1; else a redacted summary, docs/security.md). */
    keepInputs?: boolean;
  } = {},
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
  h.set(DLQ_HEADERS.by, options.by ?? "dlq-service");
  h.set(DLQ_HEADERS.at, String(Date.now()));
  const keep = options.keepInputs ?? keepInputs();
  if (!original) h.set(DLQ_HEADERS.body, "missing");
  else if (!keep) h.set(DLQ_HEADERS.body, "redacted");
  const pool = poolOf(original?.subject, advisory.consumer);
  // what the request said stays out of the DLQ unless the operator keeps inputs: its shape is enough to triage
  const body = !original ? new Uint8Array() : keep ? original.data : encode(redactedBody(original.data, original.subject));
  const ack = await publishWithRetry(js, deadLetterSubject(pool), body, {
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
      // not the reply subject itself, which only workers may publish to (docs/security.md)
      nc.publish(deadLetterNoticeSubject(replyTo), encode(reply));
    } catch {
      // nobody to tell
    }
  }
  return event;
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
  /** The body is the redacted summary (schemas/dlq.schema.json), not the request: it cannot be replayed. */
  redacted: boolean;
}

function toEntry(m: { seq: number; subject: string; time: Date; header: MsgHdrs | undefined; data: Uint8Array }): DlqEntry {
  const headers: Record<string, string> = {};
  for (const [key, values] of m.header ?? []) headers[key] = values.join(", ");
  const get = (name: string) => m.header?.get(name) || undefined;
  const num = (name: string) => (get(name) === undefined ? undefined : Number(get(name)));
  return {
    seq: m.seq,
    subject: m.subject,
    pool: m.subject.slice(deadLetterSubject("").length),
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
    redacted: get(DLQ_HEADERS.body) === "redacted",
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
  } catch (err) {
    if (jsCode(err) === JS_CODES.NoMessageFound || isStreamNotFound(err)) return undefined;
    throw forbiddenOr(err, "reading dead letters", "admin");
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
  } catch (err) {
    if (isStreamNotFound(err)) return []; // no DLQ stream: nothing was dead-lettered
    throw forbiddenOr(err, "reading dead letters", "admin");
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
  if (entry.bodyMissing) throw new ValidationError(`dead letter ${seq} has no body to replay`, { field: "seq" });
  if (entry.redacted) {
    throw new ValidationError(
      `dead letter ${seq} kept only a redacted summary of the request (set DSPEX_DLQ_KEEP_INPUTS=1 on the workers and the DLQ service to keep bodies for replay)`,
      { field: "seq", details: { seq } },
    );
  }
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
  const replyTo = newInbox(nc, "dspex-replay");
  const h = natsHeaders();
  for (const [key, value] of Object.entries(entry.headers)) {
    const lower = key.toLowerCase();
    if (lower.startsWith("nats-") || lower.startsWith("dspex-dlq-")) continue;
    if ([HEADERS.replyTo, HEADERS.deadline, HEADERS.replyAck].some((n) => n.toLowerCase() === lower)) continue;
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
