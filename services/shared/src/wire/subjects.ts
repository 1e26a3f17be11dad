/** Subject and stream layout of the bus (see docs/architecture.md). */

export type Pool = "general" | "optimizer" | "gpu";
export const POOLS: readonly Pool[] = ["general", "optimizer", "gpu"];

export const REQUEST_STREAM = "DSPEX_REQ";
export const REQUEST_SUBJECT_PREFIX = "dspex.req";
/** Key of sessionless requests; any worker of the pool may take them. */
export const ANY_KEY = "any";
/** Priority group the workers use on the pinned partition consumers. */
export const PARTITION_GROUP = "dspex";

/** KV buckets of the bus. */
export const KV_MEMBERS = "dspex_members";
export const KV_PROGRAMS = "dspex_programs";
export const KV_SESSIONS = "dspex_sessions";

export function requestSubject(pool: Pool, key: string = ANY_KEY): string {
  return `${REQUEST_SUBJECT_PREFIX}.${pool}.${key}`;
}

/** Subject of partition `n` of a pool: `dspex.req.<pool>.p<n>`. */
export function partitionSubject(pool: Pool, partition: number): string {
  return `${REQUEST_SUBJECT_PREFIX}.${pool}.p${partition}`;
}

/** Durable consumer of a pool's sessionless requests: the pool name itself. */
export function consumerName(pool: Pool): string {
  return pool;
}

/** Durable consumer of one partition of a pool (pinned to one worker at a time). */
export function partitionConsumerName(pool: Pool, partition: number): string {
  return `${pool}-p${partition}`;
}

/**
 * Partition of a session: FNV-1a (32-bit) of the session id's UTF-8 bytes, modulo the pool's partition
 * count. Documented in schemas/README.md so clients in any language publish to the same partition.
 */
export function partitionOf(session: string, partitions: number): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(session)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % partitions;
}

export function isPool(value: unknown): value is Pool {
  return typeof value === "string" && (POOLS as readonly string[]).includes(value);
}
