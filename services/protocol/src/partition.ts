import { requestSubject } from "./generated/bus.js";

/**
 * Partition of a session: FNV-1a (32-bit) of the session id's UTF-8 bytes, modulo the pool's partition
 * count. Documented in schemas/README.md so clients in any language publish to the same partition.
 */
const encoder = new TextEncoder();

export function partitionOf(session: string, partitions: number): number {
  let hash = 0x811c9dc5;
  for (const byte of encoder.encode(session)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % partitions;
}

/** Subject of a session partition: `dspex.req.<pool>.p<N>` (bus.json's request subject, key `p<N>`). */
export function partitionSubject(pool: string, partition: number): string {
  return requestSubject(pool, `p${partition}`);
}
