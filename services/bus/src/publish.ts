/**
 * A JetStream publish that survives a moment without the server: the *same* message (same Nats-Msg-Id, so
 * JetStream stores it once) is published again after transient transport errors — no PubAck in time, no
 * responders while JetStream restarts, a 503 — until the deadline. Any other error is thrown at once.
 */
import type { JetStreamClient, PubAck } from "@nats-io/jetstream";
import type { MsgHdrs } from "@nats-io/transport-node";

/** Errors of a JetStream publish that a re-publish of the same message may get past. */
export function isTransientPublishError(err: unknown): boolean {
  const e = err as { name?: string; status?: number } | undefined;
  switch (e?.name) {
    case "TimeoutError": // no PubAck in time (server down, or the ack was lost)
    case "RequestError":
    case "NoResponders":
    case "JetStreamNotEnabled": // JetStream not up yet after a restart
    case "ConnectionError":
      return true;
    case "JetStreamApiError":
      return e.status === 503;
    default:
      return false;
  }
}

export interface PublishRetryOptions {
  msgID: string;
  headers?: MsgHdrs;
  /** Absolute deadline (epoch ms): no publish is tried after it. */
  deadline: number;
  /** Upper bound on one try's wait for the PubAck (default 5000 ms). */
  tryTimeoutMs?: number;
  /** Called before each re-publish (for logs and counters). */
  onRetry?: (err: unknown, tryNumber: number) => void;
  /** Stops retrying (e.g. the call was answered or abandoned). */
  stopped?: () => boolean;
}

export async function publishWithRetry(js: JetStreamClient, subject: string, body: Uint8Array, options: PublishRetryOptions): Promise<PubAck> {
  for (let n = 1; ; n++) {
    const remaining = options.deadline - Date.now();
    try {
      return await js.publish(subject, body, {
        msgID: options.msgID,
        ...(options.headers ? { headers: options.headers } : {}),
        timeout: Math.max(1, Math.min(options.tryTimeoutMs ?? 5_000, remaining)),
      });
    } catch (err) {
      if (!isTransientPublishError(err) || options.stopped?.()) throw err;
      // at least a little between tries: a disconnected client fails fast with no responders;
      // full jitter up to 100 ms · 2^n, at most 1 s
      const delay = Math.max(50, Math.floor(Math.random() * Math.min(1_000, 100 * 2 ** (n - 1))));
      if (Date.now() + delay >= options.deadline) throw err;
      options.onRetry?.(err, n + 1);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
