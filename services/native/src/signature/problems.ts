/**
 * What validation reports (the problems of a value, each naming its path) and the primitives every check uses:
 * the check and context types, the FAIL marker, the bounded problem list.
 */
import { PyFloat } from "./types.js";

export type ProblemCode = "missing" | "unexpected" | "type" | "constraint";

export interface ValidationProblem {
  /** The top-level field name. */
  readonly field: string;
  /** The field name plus the location inside the value, e.g. `context[2]` or `scores.math`. */
  readonly path: string;
  readonly code: ProblemCode;
  readonly message: string;
  /** For `type`: the expected type in DSPy notation. For `constraint`: the constraint, e.g. `<= 1`. */
  readonly expected?: string;
  /** A short description of the offending value. */
  readonly got?: string;
}

export type CheckResult<T> = { ok: true; value: T } | { ok: false; problems: ValidationProblem[] };

export const FAIL: unique symbol = Symbol("fail");
type Out = unknown;

export interface Ctx {
  field: string;
  problems: ValidationProblem[];
  side: "input" | "output";
}

export type Check = (value: unknown, path: string, ctx: Ctx) => Out;

/** A short description of a value for messages: `string "abc"`, `number 3`, `array of 2`. */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (value instanceof PyFloat) return `number ${String(value.value)}`;
  if (value === undefined) return "nothing";
  if (Array.isArray(value)) return `array of ${value.length}`;
  switch (typeof value) {
    case "string": {
      const shown = value.length > 40 ? `${value.slice(0, 37)}...` : value;
      return `string ${JSON.stringify(shown)}`;
    }
    case "number":
    case "bigint":
      return `number ${String(value)}`;
    case "boolean":
      return `boolean ${String(value)}`;
    case "object":
      return "object";
    default:
      return typeof value;
  }
}

/**
 * Problems reported per validation: a container stops checking its elements once this many are known, so a
 * huge wrong value costs as much as a short one to reject (docs/security.md).
 */
export const MAX_PROBLEMS = 20;

export function typeProblem(ctx: Ctx, path: string, expected: string, value: unknown, detail?: string): typeof FAIL {
  if (ctx.problems.length >= MAX_PROBLEMS) return FAIL;
  const got = describeValue(value);
  ctx.problems.push({
    field: ctx.field,
    path,
    code: "type",
    expected,
    got,
    message: `${ctx.side} '${path}': expected ${expected}, got ${got}${detail ? ` (${detail})` : ""}`,
  });
  return FAIL;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}
