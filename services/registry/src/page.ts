/**
 * Keyset pagination: a page of items and an opaque cursor for the next one (base64url of the last item's
 * sort key), so a listing stays correct while rows are added and costs the same on every page.
 */
import { ValidationError } from "@dspex/protocol";

export interface Page<T> {
  items: T[];
  /** Pass as `cursor` for the next page; absent on the last one. */
  next?: string;
}

export interface PageRequest {
  limit?: number;
  cursor?: string;
}

export const MAX_LIMIT = 200;
export const DEFAULT_LIMIT = 50;

export function limitOf(req: PageRequest): number {
  const limit = req.limit ?? DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new ValidationError(`limit must be an integer in 1…${MAX_LIMIT}`, { field: "limit" });
  }
  return limit;
}

export function encodeCursor(key: unknown[]): string {
  return Buffer.from(JSON.stringify(key)).toString("base64url");
}

export function decodeCursor(cursor: string | undefined, arity: number): unknown[] | undefined {
  if (cursor === undefined) return undefined;
  try {
    const key = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown;
    if (Array.isArray(key) && key.length === arity) return key;
  } catch {
    /* below */
  }
  throw new ValidationError("cursor is not one this API gave out", { field: "cursor" });
}

/** Rows fetched with limit + 1: the page and, when there were more, the cursor after its last item. */
export function pageOf<R, T>(rows: R[], limit: number, map: (row: R) => T, key: (row: R) => unknown[]): Page<T> {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items: items.map(map), ...(rows.length > limit && last !== undefined ? { next: encodeCursor(key(last)) } : {}) };
}
