/**
 * Conditions of `branch` steps: JSON tests on the pipeline's flat map of values (pipeline.ts), checked when a
 * pipeline is validated and evaluated when a branch runs.
 */
import { ValidationError } from "@dspex/protocol";

/** JSON conditions on the flat map of values. */
export type Condition =
  | { field: string; equals: unknown }
  | { field: string; not_equals: unknown }
  | { field: string; in: unknown[] }
  | { field: string; exists: boolean }
  | { field: string; matches: string; flags?: string }
  | { field: string; gt?: number; gte?: number; lt?: number; lte?: number }
  | { all: Condition[] }
  | { any: Condition[] }
  | { not: Condition };

/** A value as text: strings as they are, null/undefined as "", objects as JSON (templates and `matches`). */
export function str(value: unknown): string {
  if (typeof value === "string") return value;
  if (value === undefined || value === null) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

/** Checks a condition's shape (ValidationError naming `where`). */
export function checkCondition(c: unknown, where: string): void {
  if (!c || typeof c !== "object") throw new ValidationError(`${where} must be a condition`, { field: where });
  const cond = c as Record<string, unknown>;
  if (Array.isArray(cond.all)) return cond.all.forEach((x, i) => checkCondition(x, `${where}.all[${i}]`));
  if (Array.isArray(cond.any)) return cond.any.forEach((x, i) => checkCondition(x, `${where}.any[${i}]`));
  if ("not" in cond) return checkCondition(cond.not, `${where}.not`);
  if (typeof cond.field !== "string") throw new ValidationError(`${where}.field must be a field name`, { field: where });
  const ops = ["equals", "not_equals", "in", "exists", "matches", "gt", "gte", "lt", "lte"];
  if (!ops.some((op) => op in cond)) {
    throw new ValidationError(`${where} needs one of ${ops.join(", ")}`, { field: where });
  }
  if ("matches" in cond) new RegExp(String(cond.matches), typeof cond.flags === "string" ? cond.flags : undefined);
}

export function evaluateCondition(cond: Condition, values: Record<string, unknown>): boolean {
  if ("all" in cond) return cond.all.every((c) => evaluateCondition(c, values));
  if ("any" in cond) return cond.any.some((c) => evaluateCondition(c, values));
  if ("not" in cond) return !evaluateCondition(cond.not, values);
  const v = values[cond.field];
  if ("equals" in cond) return deepEqual(v, cond.equals);
  if ("not_equals" in cond) return !deepEqual(v, cond.not_equals);
  if ("in" in cond) return cond.in.some((x) => deepEqual(v, x));
  if ("exists" in cond) return (v !== undefined && v !== null) === cond.exists;
  if ("matches" in cond) return new RegExp(cond.matches, cond.flags).test(str(v));
  const c = cond as { gt?: number; gte?: number; lt?: number; lte?: number };
  if (typeof v !== "number") return false;
  return (
    (c.gt === undefined || v > c.gt) &&
    (c.gte === undefined || v >= c.gte) &&
    (c.lt === undefined || v < c.lt) &&
    (c.lte === undefined || v <= c.lte)
  );
}

function deepEqual(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}
