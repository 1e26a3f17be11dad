/** Subject and stream layout of the bus (see docs/architecture.md). */

export type Pool = "general" | "optimizer" | "gpu";
export const POOLS: readonly Pool[] = ["general", "optimizer", "gpu"];

export const REQUEST_STREAM = "DSPEX_REQ";
export const REQUEST_SUBJECT_PREFIX = "dspex.req";
/** Key of sessionless requests; any worker of the pool may take them. */
export const ANY_KEY = "any";

export function requestSubject(pool: Pool, key: string = ANY_KEY): string {
  return `${REQUEST_SUBJECT_PREFIX}.${pool}.${key}`;
}

export function poolFilter(pool: Pool): string {
  return `${REQUEST_SUBJECT_PREFIX}.${pool}.>`;
}

/** Durable consumer name of a pool: the pool name itself. */
export function consumerName(pool: Pool): string {
  return pool;
}

export function isPool(value: unknown): value is Pool {
  return typeof value === "string" && (POOLS as readonly string[]).includes(value);
}
