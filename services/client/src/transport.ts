/**
 * The innermost step of a call: encode the envelope, publish it to the pool's JetStream subject with the
 * reply inbox and deadline in headers, and resolve with the worker's reply. One inbox subscription per
 * client multiplexes the replies by request id; replies are confirmed (`Dspex-Reply-Ack`) so one sent
 * while this client was reconnecting is re-sent. A reply that arrives for no pending call (late, duplicate)
 * is counted and dropped — never surfaced twice.
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import { headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import {
  DeadlineExceeded,
  ENVELOPE_VERSION,
  HEADERS,
  PayloadTooLarge,
  TransportError,
  checkRequest,
  deadLetterNoticeSubject,
  decode,
  encode,
  errorFromWire,
  partitionOf,
  partitionSubject,
  requestSubject,
  type ReplyEnvelope,
  type ReplyOk,
  type RequestEnvelope,
} from "@dspex/protocol";
import { newInbox, publishWithRetry, type PoolSettings } from "@dspex/bus";
import { tracedPublish } from "@dspex/observability";
import type { CallInput } from "./call.js";

/** Replies the client received and did not surface (each would have been a second answer). */
export interface DroppedReplies {
  /** The attempt had already ended without this reply (timed out, publish failed, aborted). */
  late: number;
  /** The attempt had already been answered. */
  duplicate: number;
  /** Not an attempt of this client (or one older than the ledger remembers). */
  unknown: number;
}

/** Remembers how recent attempts ended, to classify replies that arrive for no pending call. */
class ReplyLedger {
  private readonly ended = new Map<string, "inflight" | "answered" | "ended">();
  readonly dropped: DroppedReplies = { late: 0, duplicate: 0, unknown: 0 };

  constructor(private readonly capacity = 20_000) {}

  settled(id: string, how: "inflight" | "answered" | "ended"): void {
    this.ended.delete(id);
    this.ended.set(id, how);
    if (this.ended.size > this.capacity) this.ended.delete(this.ended.keys().next().value as string);
  }

  drop(id: string): void {
    const how = this.ended.get(id);
    if (how === "answered") this.dropped.duplicate += 1;
    else if (how === "ended" || how === "inflight") this.dropped.late += 1;
    else this.dropped.unknown += 1;
  }
}

/** Errors rebuilt from a worker's error reply (as opposed to raised here: no reply at all). */
const fromReply = new WeakSet<object>();

export function isReplyError(err: unknown): boolean {
  return typeof err === "object" && err !== null && fromReply.has(err);
}

interface Pending {
  resolve: (reply: ReplyEnvelope) => void;
  reject: (err: unknown) => void;
  /** A message without a body for this attempt: a status (503: no responders) or a lane's signal. */
  signal?: (msg: Msg) => void;
}

/** How one attempt is sent, and what its lane does with bodiless messages (transport.expect). */
export interface Expectation {
  /** Sends the attempt; `fail` ends it with an error (e.g. a failed publish). Called once it is pending. */
  start(fail: (err: unknown) => void): void;
  /** A bodiless message for this attempt (a status, a heartbeat); absent: ignored. */
  onSignal?(msg: Msg, fail: (err: unknown) => void): void;
  /** Called once when the attempt ends, whatever the outcome. */
  done?(): void;
}

export interface TransportOptions {
  /** Ask workers to confirm replies (`Dspex-Reply-Ack: 1`, durable lane; default true). */
  confirmReplies?: boolean;
}

export class Transport {
  private readonly pending = new Map<string, Pending>();
  private readonly inbox: string;
  private readonly sub: Subscription;
  private readonly noticeSub: Subscription;
  private readonly ledger = new ReplyLedger();
  private connected = true;
  private reconnectWaiters = new Set<() => void>();
  private stopped = false;
  /** Re-publishes of an attempt after a transient publish failure (same Nats-Msg-Id). */
  republished = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly pools: Record<string, PoolSettings>,
    private readonly options: TransportOptions = {},
  ) {
    // under the connection's inbox prefix: the only inboxes this role may subscribe to and workers may reply to
    this.inbox = newInbox(nc);
    this.sub = nc.subscribe(`${this.inbox}.*`, { callback: (err, msg) => void (err ? undefined : this.onReply(msg)) });
    // the DLQ service's notices come beside the reply subject (deadLetterNoticeSubject): only errors count there
    this.noticeSub = nc.subscribe(deadLetterNoticeSubject(`${this.inbox}.*`), {
      callback: (err, msg) => void (err ? undefined : this.onReply(msg, true)),
    });
    void this.watchConnection();
  }

  get dropped(): DroppedReplies {
    return { ...this.ledger.dropped };
  }

  /** Whether a reply for an attempt came (retries use it to tell "answered" from "lost"). */
  settled(id: string, how: "inflight" | "answered" | "ended"): void {
    this.ledger.settled(id, how);
  }

  private async watchConnection(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (this.stopped) break;
      if (s.type === "disconnect") this.connected = false;
      else if (s.type === "reconnect") {
        this.connected = true;
        for (const w of this.reconnectWaiters) w();
        this.reconnectWaiters.clear();
      }
    }
  }

  /**
   * While the connection is down (a server restarting, a network cut) a new attempt waits for the reconnect
   * within its deadline instead of failing: NoWorkers or a timeout measured while disconnected says nothing
   * about the pool.
   */
  ready(deadline: number): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.reconnectWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
      this.reconnectWaiters.add(done);
    });
  }

  private onReply(msg: Msg, notice = false): void {
    if (msg.reply) msg.respond(); // confirms receipt: the worker stops re-sending (Dspex-Reply-Ack)
    if (msg.data.length === 0 && msg.headers && !notice) {
      // no body: a status from the server (503, no responders) or a lane's signal (a direct-lane heartbeat)
      this.pending.get(msg.subject.slice(this.inbox.length + 1))?.signal?.(msg);
      return;
    }
    let reply: ReplyEnvelope;
    try {
      reply = decode(msg.data) as ReplyEnvelope;
    } catch {
      return; // not ours to interpret; the caller's deadline reports the missing answer
    }
    if (notice && reply.ok !== false) return; // a notice is an error or nothing
    const id = msg.subject.slice(this.inbox.length + 1, notice ? msg.subject.lastIndexOf(".") : undefined);
    const pending = this.pending.get(id);
    if (!pending) return this.ledger.drop(id);
    this.pending.delete(id);
    this.ledger.settled(id, "answered");
    pending.resolve(reply);
  }

  /** Builds the envelope of an attempt. */
  envelope(input: CallInput): RequestEnvelope {
    const r = input.request;
    const envelope: RequestEnvelope = {
      v: ENVELOPE_VERSION,
      id: input.requestId,
      op: input.op,
      signature: input.signature,
      inputs: input.inputs,
      timeout_ms: Math.max(1, input.deadline - Date.now()),
    };
    if (input.lm) envelope.lm = input.lm;
    if (r.module && Object.keys(r.module).length > 0) envelope.module = r.module;
    if (r.program) envelope.program = r.program;
    if (r.evaluate) envelope.evaluate = r.evaluate;
    if (r.batch) envelope.batch = r.batch;
    if (r.compile) envelope.compile = r.compile as RequestEnvelope["compile"];
    if (r.stream) envelope.stream = r.stream;
    if (input.options.session) envelope.session = input.options.session;
    return envelope;
  }

  /** The attempt's envelope, encoded and checked against the contract and the pool's payload limit. */
  encodeChecked(input: CallInput): Uint8Array {
    const settings = this.pools[input.pool]!;
    const envelope = this.envelope(input);
    const body = encode(envelope);
    if (body.byteLength > settings.maxPayloadBytes) {
      throw new PayloadTooLarge(`request is ${body.byteLength} bytes; pool '${input.pool}' accepts at most ${settings.maxPayloadBytes}`, {
        field: "inputs",
        details: { size: body.byteLength, limit: settings.maxPayloadBytes },
      });
    }
    checkRequest(envelope); // the whole contract, before anything is published (ValidationError naming the field)
    return body;
  }

  /** Headers every lane sends: version, deadline, the interceptors' own (strict affinity, trace context). */
  headers(input: CallInput): MsgHdrs {
    const h = natsHeaders();
    h.set(HEADERS.version, String(ENVELOPE_VERSION));
    h.set(HEADERS.deadline, String(input.deadline));
    for (const [k, v] of Object.entries(input.headers)) h.set(k, v);
    return h;
  }

  /** Where the reply to attempt `id` comes: this client's inbox subscription. */
  replySubject(id: string): string {
    return `${this.inbox}.${id}`;
  }

  /**
   * Registers the attempt, sends it (`x.start`) and resolves with its success reply; an error reply throws its
   * typed error, no reply before the deadline DeadlineExceeded, an abort the signal's reason.
   */
  async expect(input: CallInput, x: Expectation): Promise<ReplyOk> {
    const id = input.requestId;
    const signal = input.options.signal;
    const reply = await new Promise<ReplyEnvelope>((resolve, reject) => {
      const timeoutMs = Math.max(0, input.deadline - Date.now());
      const timer = setTimeout(() => {
        this.pending.delete(id);
        const budget = input.options.timeoutMs ?? timeoutMs;
        finish(() =>
          reject(new DeadlineExceeded(`no reply within ${budget} ms (request ${id}, pool '${input.pool}')`, { details: { id, pool: input.pool, timeoutMs: budget } })),
        );
      }, timeoutMs);
      let ended = false;
      const finish = (fn: () => void) => {
        if (ended) return;
        ended = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        x.done?.();
        fn();
      };
      const onAbort = () => {
        this.pending.delete(id);
        finish(() => reject(signal?.reason ?? new Error("aborted")));
      };
      const fail = (err: unknown) => {
        if (this.pending.get(id) !== entry) return;
        this.pending.delete(id);
        finish(() => reject(err));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      const entry: Pending = {
        resolve: (r) => finish(() => resolve(r)),
        reject: (e) => finish(() => reject(e)),
        ...(x.onSignal ? { signal: (msg: Msg) => x.onSignal!(msg, fail) } : {}),
      };
      this.pending.set(id, entry);
      x.start(fail);
    });
    if (!reply.ok) {
      const err = errorFromWire(reply.error);
      fromReply.add(err);
      throw err;
    }
    return reply;
  }

  /** The durable lane: publishes one attempt to the pool's JetStream subject and resolves with its reply. */
  async send(input: CallInput): Promise<ReplyOk> {
    const settings = this.pools[input.pool]!;
    const id = input.requestId;
    let subject = requestSubject(input.pool, "any");
    // a pool without partitions (optimizer and gpu by default) has no affinity: any worker takes it
    if (input.options.session && settings.partitions > 0) {
      subject = partitionSubject(input.pool, partitionOf(input.options.session, settings.partitions));
    }
    const body = this.encodeChecked(input);
    const h = this.headers(input);
    h.set(HEADERS.replyTo, this.replySubject(id));
    if (this.options.confirmReplies !== false) h.set(HEADERS.replyAck, "1");
    return this.expect(input, {
      start: (fail) => {
        tracedPublish({ headers: h, subject, pool: input.pool, messageId: id, bodySize: body.byteLength }, () =>
          publishWithRetry(this.js, subject, body, {
            msgID: id,
            headers: h,
            deadline: input.deadline,
            stopped: () => !this.pending.has(id),
            onRetry: () => void (this.republished += 1),
          }),
        ).catch((err: unknown) => fail(err instanceof TransportError ? err : new TransportError(`publish to JetStream failed: ${String(err)}`, { cause: err })));
      },
    });
  }

  async close(): Promise<void> {
    this.stopped = true;
    for (const w of this.reconnectWaiters) w();
    for (const [id, p] of this.pending) p.reject(new TransportError(`client closed before request ${id} was answered`));
    this.pending.clear();
    this.sub.unsubscribe();
    this.noticeSub.unsubscribe();
  }
}
