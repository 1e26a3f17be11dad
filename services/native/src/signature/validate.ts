/**
 * Validation and coercion of inputs (before publish) and outputs (when replies arrive), precompiled per
 * signature. Coercion follows DSPy's `parse_value` (dspy/adapters/utils.py) on top of pydantic's lax mode:
 * `"0.9"` → 0.9 for a float, `"3"` → 3 for an int, `"yes"` → true for a bool, JSON (or Python literal) text
 * for lists and dicts, `"Literal['a']"` / `"'a'"` → `"a"` for a Literal.
 *
 * Inputs: a field typed `str` (or `Optional[str]`, including untyped fields) accepts any non-null value
 * unchanged, because DSPy formats non-string inputs itself (a list becomes a numbered list in the prompt).
 * A field whose type is `optional` may be omitted. Constraints are checked after coercion.
 */

import { ValidationError } from "@dspex/protocol";
import {
  type Check,
  type CheckResult,
  compileParseValue,
  type Ctx,
  describeValue,
  FAIL,
  isPlainObject,
  typeProblem,
  untagFloats,
  type ValidationProblem,
} from "./lax.js";
import { closest } from "./names.js";
import { type Constraints, type Field, formatType, type SignatureWire, type TypeExpr, unwrapOptional } from "./types.js";

export { describeValue, needsFloatTags, untagFloats, type CheckResult, type ProblemCode, type ValidationProblem } from "./lax.js";


/**
 * What to do with keys that are not fields of the signature: `error`, `keep` (unchecked) or `drop`; or a list
 * of names that are kept (e.g. `["reasoning"]` for ChainOfThought) while any other key is an error.
 */
export type ExtraPolicy = "error" | "keep" | "drop" | readonly string[];

function length(v: unknown): number | undefined {
  if (typeof v === "string") {
    let n = 0;
    for (let i = 0; i < v.length; i++) {
      const c = v.charCodeAt(i);
      if (c < 0xdc00 || c > 0xdfff || i === 0 || (v.charCodeAt(i - 1) & 0xfc00) !== 0xd800) n++;
    }
    return n; // code points, as Python's len()
  }
  if (Array.isArray(v)) return v.length;
  if (isPlainObject(v)) return Object.keys(v).length;
  return undefined;
}

function compileConstraints(type: TypeExpr, c: Constraints | undefined): ((v: unknown, path: string, ctx: Ctx) => boolean) | undefined {
  if (!c) return undefined;
  const inner = unwrapOptional(type).inner;
  const unit = inner.kind === "str" ? "character" : inner.kind === "list" ? "item" : "entry";
  const plural = (n: number) => (n === 1 ? unit : unit === "entry" ? "entries" : `${unit}s`);
  const checks: [string, (v: number) => boolean, string][] = [];
  if (c.gt !== undefined) checks.push([`> ${c.gt}`, (v) => v > c.gt!, `must be greater than ${c.gt}`]);
  if (c.ge !== undefined) checks.push([`>= ${c.ge}`, (v) => v >= c.ge!, `must be greater than or equal to ${c.ge}`]);
  if (c.lt !== undefined) checks.push([`< ${c.lt}`, (v) => v < c.lt!, `must be less than ${c.lt}`]);
  if (c.le !== undefined) checks.push([`<= ${c.le}`, (v) => v <= c.le!, `must be less than or equal to ${c.le}`]);
  const { min_length: min, max_length: max } = c;
  return (v, path, ctx) => {
    if (v === null || v === undefined) return true;
    let ok = true;
    if (typeof v === "number") {
      for (const [expected, test, text] of checks) {
        if (!test(v)) {
          ok = false;
          ctx.problems.push({
            field: ctx.field,
            path,
            code: "constraint",
            expected,
            got: describeValue(v),
            message: `${ctx.side} '${path}': ${text}, got ${String(v)}`,
          });
        }
      }
    }
    if (min !== undefined || max !== undefined) {
      const n = length(v);
      if (n !== undefined) {
        if (min !== undefined && n < min) {
          ok = false;
          ctx.problems.push({
            field: ctx.field,
            path,
            code: "constraint",
            expected: `min_length ${min}`,
            got: `${n} ${plural(n)}`,
            message: `${ctx.side} '${path}': must have at least ${min} ${plural(min)}, got ${n}`,
          });
        }
        if (max !== undefined && n > max) {
          ok = false;
          ctx.problems.push({
            field: ctx.field,
            path,
            code: "constraint",
            expected: `max_length ${max}`,
            got: `${n} ${plural(n)}`,
            message: `${ctx.side} '${path}': must have at most ${max} ${plural(max)}, got ${n}`,
          });
        }
      }
    }
    return ok;
  };
}

interface FieldValidator {
  readonly name: string;
  readonly type: TypeExpr;
  readonly required: boolean;
  readonly check: Check;
}

function compileField(field: Field, side: "input" | "output"): FieldValidator {
  const { type } = field;
  const expected = formatType(type);
  const passThrough = side === "input" && unwrapOptional(type).inner.kind === "str";
  const parse = passThrough ? (v: unknown) => v : compileParseValue(type);
  const constraints = compileConstraints(type, field.constraints);
  const nullable = type.kind === "optional" || type.kind === "any";
  const check: Check = (v, path, ctx) => {
    if (v === null || v === undefined) return nullable ? null : typeProblem(ctx, path, expected, v);
    const r = parse(v, path, ctx);
    if (r === FAIL) return FAIL;
    if (constraints && !constraints(r, path, ctx)) return FAIL;
    return r;
  };
  return { name: field.name, type, required: type.kind !== "optional", check };
}

/** A precompiled validator for one side of a signature. */
export class SideValidator {
  private readonly fields: readonly FieldValidator[];
  private readonly byName: ReadonlyMap<string, FieldValidator>;

  constructor(
    fields: readonly Field[],
    readonly side: "input" | "output",
  ) {
    this.fields = fields.map((f) => compileField(f, side));
    this.byName = new Map(this.fields.map((f) => [f.name, f]));
  }

  check(values: unknown, extra: ExtraPolicy): CheckResult<Record<string, unknown>> {
    const side = this.side;
    if (!isPlainObject(values)) {
      const what = side === "input" ? "inputs" : "outputs";
      return {
        ok: false,
        problems: [
          {
            field: "",
            path: "",
            code: "type",
            expected: "object",
            got: describeValue(values),
            message: `${what} must be an object mapping field names to values, got ${describeValue(values)}`,
          },
        ],
      };
    }
    const problems: ValidationProblem[] = [];
    const out: Record<string, unknown> = {};
    for (const f of this.fields) {
      const v = values[f.name];
      if (v === undefined) {
        if (f.required) {
          problems.push({
            field: f.name,
            path: f.name,
            code: "missing",
            expected: formatType(f.type),
            message: `missing ${side} '${f.name}' (${formatType(f.type)})`,
          });
        } else if (side === "output") {
          out[f.name] = null; // DSPy fills missing outputs that allow None with None
        }
        continue;
      }
      const ctx: Ctx = { field: f.name, problems, side };
      const r = f.check(v, f.name, ctx);
      if (r !== FAIL) out[f.name] = r;
    }
    for (const key of Object.keys(values)) {
      if (this.byName.has(key)) continue;
      if (extra === "keep" || (typeof extra !== "string" && extra.includes(key))) out[key] = values[key];
      else if (extra !== "drop" && values[key] !== undefined) {
        const names = this.fields.map((f) => f.name);
        const guess = closest(key, names);
        problems.push({
          field: key,
          path: key,
          code: "unexpected",
          message:
            `unexpected ${side} '${key}'` +
            (guess ? `; did you mean '${guess}'?` : `; the signature's ${side}s are ${names.join(", ")}`),
        });
      }
    }
    return problems.length === 0 ? { ok: true, value: out } : { ok: false, problems };
  }
}

/** Turns problems into one ValidationError (`field` = the first problem's field, all problems in details). */
export function problemsToError(problems: readonly ValidationProblem[], side: "input" | "output"): ValidationError {
  const first = problems[0];
  const message =
    problems.length === 1
      ? (first?.message ?? `invalid ${side}s`)
      : `${problems.length} problems with the ${side}s: ${problems.map((p) => p.message).join("; ")}`;
  return new ValidationError(message, {
    ...(first?.field ? { field: first.field } : {}),
    details: { side, problems: problems.map((p) => ({ ...p })) },
  });
}

/** Compiles validators for both sides of a (checked) signature. */
export function compileValidators(sig: SignatureWire): { inputs: SideValidator; outputs: SideValidator } {
  return { inputs: new SideValidator(sig.inputs, "input"), outputs: new SideValidator(sig.outputs, "output") };
}

const parsers = new WeakMap<TypeExpr, Check>();

/**
 * DSPy's `parse_value(value, annotation)` (dspy/adapters/utils.py), which the adapters apply to each output
 * field: the value coerced to the type, or the problem. Unlike `validateOutputs` it checks no constraints and
 * gives null no special meaning (`str(None)` is `"None"`, `None` is no int).
 */
export function parseValue(type: TypeExpr, value: unknown, name = "value"): CheckResult<unknown> {
  let parse = parsers.get(type);
  if (parse === undefined) {
    parse = compileParseValue(type);
    parsers.set(type, parse);
  }
  const ctx: Ctx = { field: name, problems: [], side: "output" };
  const r = parse(value, name, ctx);
  return r === FAIL ? { ok: false, problems: ctx.problems } : { ok: true, value: untagFloats(r) };
}
