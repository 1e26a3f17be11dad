/**
 * Shared pieces of the fault tests (docs/reliability.md): requests built and published by hand (so a test
 * can send what the client never would), dead-letter events, and small waits on events, never on sleeps.
 */
import { newInbox } from "@dspex/bus";
import { randomUUID } from "node:crypto";
import { EventEmitter, once } from "node:events";
import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, type PubAck } from "@nats-io/jetstream";
import { decode, encode, type ReplyEnvelope } from "@dspex/protocol";
import type { DeadLetterEvent } from "@dspex/dlq";

export const QA_SIGNATURE = {
  inputs: [{ name: "question", type: { kind: "str" } }],
  outputs: [{ name: "answer", type: { kind: "str" } }],
};

/** A v1 request body (schemas/README.md) with overrides. */
export function requestBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    v: 1,
    id: randomUUID(),
    op: "predict",
    signature: QA_SIGNATURE,
    inputs: { question: "What is 1+1?" },
    ...overrides,
  };
}

export interface HandRequest {
  id: string;
  ack: PubAck;
  /** Resolves with the decoded reply (rejects after `timeoutMs`). */
  reply: Promise<ReplyEnvelope>;
}

/**
 * Publishes a request the way any client could (JetStream publish, headers from schemas/README.md) and
 * listens on its own reply subject. `body` may be raw bytes. `replyTo: null` leaves the header out.
 */
export async function handRequest(
  nc: NatsConnection,
  options: {
    body: Uint8Array | Record<string, unknown>;
    id?: string;
    subject?: string;
    replyTo?: string | null;
    /** Epoch ms (default: 30 s from now); null leaves the Dspex-Deadline header out. */
    deadline?: number | null;
    headers?: Record<string, string>;
    timeoutMs?: number;
  },
): Promise<HandRequest> {
  const body = options.body instanceof Uint8Array ? options.body : encode(options.body);
  const id =
    options.id ??
    (options.body instanceof Uint8Array ? randomUUID() : String((options.body as { id?: unknown }).id ?? randomUUID()));
  // an inbox under the connection's (its role's) prefix: the only place a worker may reply to
  const replyTo = options.replyTo === undefined ? newInbox(nc, "hand") : options.replyTo;
  const h = natsHeaders();
  h.set("Nats-Msg-Id", id);
  if (replyTo) h.set("Dspex-Reply-To", replyTo);
  if (options.deadline !== null) h.set("Dspex-Deadline", String(options.deadline ?? Date.now() + 30_000));
  for (const [k, v] of Object.entries(options.headers ?? {})) h.set(k, v);
  const timeoutMs = options.timeoutMs ?? 30_000;
  let reply: Promise<ReplyEnvelope>;
  if (replyTo) {
    const sub = nc.subscribe(replyTo, { max: 1 });
    reply = (async () => {
      const timer = setTimeout(() => sub.unsubscribe(), timeoutMs);
      try {
        for await (const m of sub) return decode(m.data) as ReplyEnvelope;
      } finally {
        clearTimeout(timer);
      }
      throw new Error(`no reply to hand request ${id} within ${timeoutMs} ms`);
    })();
    reply.catch(() => {}); // a test that does not look at it must not fail on an unhandled rejection
  } else {
    reply = Promise.reject(new Error("no reply subject"));
    reply.catch(() => {});
  }
  const ack = await jetstream(nc).publish(options.subject ?? "dspex.req.general.any", body, { msgID: id, headers: h });
  return { id, ack, reply };
}

/** Collects dead-letter events (pass `collector.onDeadLetter` as the client's `dlq.onDeadLetter`). */
export class DeadLetters extends EventEmitter {
  readonly events: DeadLetterEvent[] = [];
  readonly onDeadLetter = (event: DeadLetterEvent): void => {
    this.events.push(event);
    this.emit("event", event);
  };

  /** The event for DSPEX_REQ sequence `seq` (waits for it). */
  async forSeq(seq: number, timeoutMs = 30_000): Promise<DeadLetterEvent> {
    const found = this.events.find((e) => e.originalSeq === seq);
    if (found) return found;
    const signal = AbortSignal.timeout(timeoutMs);
    while (true) {
      const [event] = (await once(this, "event", { signal }).catch(() => {
        throw new Error(`no dead letter for DSPEX_REQ sequence ${seq} within ${timeoutMs} ms`);
      })) as [DeadLetterEvent];
      if (event.originalSeq === seq) return event;
    }
  }
}

/** Resolves when `predicate` holds, checking every `everyMs` (for states only observable by polling). */
export async function until(predicate: () => boolean | Promise<boolean>, timeoutMs = 30_000, everyMs = 50): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
