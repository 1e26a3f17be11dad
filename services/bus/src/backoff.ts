/**
 * The redelivery BackOff of a pool's consumers (JetStream redelivery delays, ms). `DSPEX_<POOL>_BACKOFF_MS`
 * (a comma-separated list) overrides it; by default it doubles from the pool's AckWait: [A, 2A, 4A, …] with
 * MaxDeliver − 1 entries (at most 4; the server requires len(BackOff) ≤ MaxDeliver, and delivery n waits
 * BackOff[n-1], the last entry repeating). Its first value is the first delivery's ack wait, so it starts
 * at AckWait: the ack wait a worker paces its in-progress acks by stays the one configured.
 */
import type { Pool } from "@dspex/protocol";
import type { PoolSettings } from "./pools.js";

export function consumerBackoffMs(pool: Pool, settings: PoolSettings, env: NodeJS.ProcessEnv = process.env): number[] {
  const name = `DSPEX_${pool.toUpperCase()}_BACKOFF_MS`;
  const raw = env[name];
  if (raw !== undefined && raw.trim() !== "") {
    const values = raw.split(",").map((s) => Number(s.trim()));
    if (values.some((v) => !Number.isInteger(v) || v <= 0)) {
      throw new RangeError(`${name} must be a comma-separated list of positive integers (got ${JSON.stringify(raw)})`);
    }
    if (settings.maxDeliver > 0 && values.length > settings.maxDeliver) {
      throw new RangeError(`${name} has ${values.length} entries; MaxDeliver of pool '${pool}' is ${settings.maxDeliver}`);
    }
    return values;
  }
  const entries = Math.min(4, Math.max(0, settings.maxDeliver - 1));
  return Array.from({ length: entries }, (_, i) => settings.ackWaitMs * 2 ** i);
}
