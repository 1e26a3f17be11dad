/**
 * Bus trouble that passes: a node lost and a new stream leader being elected, a server restarting, a
 * reconnect. Operations that meet it are tried again until a deadline (a cluster recovers in seconds), and
 * whoever waits says so ("waiting for the bus: <reason>") instead of failing or stalling silently.
 */
import { JetStreamApiError } from "@nats-io/jetstream";
import { isTransientPublishError } from "./publish.js";

/** JetStream API errors of a cluster that has not (yet) got a leader for the asset. */
const TRANSIENT_API_CODES = new Set([
  10008, // JetStream system temporarily unavailable
  10118, // stream is offline
]);

export function isTransientBusError(err: unknown): boolean {
  if (isTransientPublishError(err)) return true;
  return err instanceof JetStreamApiError && (err.status === 503 || TRANSIENT_API_CODES.has(err.code));
}

/** What the bus trouble is, in a few words, for a progress line. */
export function busTroubleReason(err: unknown): string {
  const e = err as { name?: string; message?: string };
  return `${e?.name ?? "Error"}: ${String(e?.message ?? err).split("\n")[0]!.slice(0, 120)}`;
}

export interface BusWaitOptions {
  /** Absolute deadline (epoch ms); the last error is thrown after it. */
  deadline: number;
  /** Called at each wait with the reason (and once more with undefined when the operation succeeded after waiting). */
  onWait?: (reason: string | undefined) => void;
  /** Stop trying (e.g. the job was cancelled). */
  stopped?: () => boolean;
}

/** Runs `op`, trying again on transient bus errors with backoff (up to 2 s between tries) until the deadline. */
export async function retryOnBus<T>(op: () => Promise<T>, options: BusWaitOptions): Promise<T> {
  let waited = false;
  for (let n = 0; ; n++) {
    try {
      const value = await op();
      if (waited) options.onWait?.(undefined);
      return value;
    } catch (err) {
      if (!isTransientBusError(err) || options.stopped?.()) throw err;
      const delay = Math.min(2_000, 100 * 2 ** n);
      if (Date.now() + delay >= options.deadline) throw err;
      waited = true;
      options.onWait?.(busTroubleReason(err));
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
