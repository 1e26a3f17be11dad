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
import { literalEval, looseJsonLoads, NOTHING, pyStr } from "./coerce.js";
import { closest } from "./names.js";
import {
  type Constraints,
  type Field,
  formatType,
  type LiteralValue,
  PyFloat,
  pyStrip,
  type SignatureWire,
  type TypeExpr,
  unwrapOptional,
} from "./types.js";

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

/**
 * What to do with keys that are not fields of the signature: `error`, `keep` (unchecked) or `drop`; or a list
 * of names that are kept (e.g. `["reasoning"]` for ChainOfThought) while any other key is an error.
 */
export type ExtraPolicy = "error" | "keep" | "drop" | readonly string[];

const FAIL: unique symbol = Symbol("fail");
type Out = unknown;

interface Ctx {
  field: string;
  problems: ValidationProblem[];
  side: "input" | "output";
}

type Check = (value: unknown, path: string, ctx: Ctx) => Out;

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

function typeProblem(ctx: Ctx, path: string, expected: string, value: unknown, detail?: string): typeof FAIL {
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

// pydantic's lax str → number parsing.
const INT_STR_RE = /^[+-]?\d(?:_?\d)*(?:\.0+)?$/;
const FLOAT_STR_RE = /^[+-]?(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?$/;
const INF_NAN_RE = /^([+-]?)(inf|infinity|nan)$/i;
const TRUE_STRINGS = new Set(["1", "on", "t", "true", "y", "yes"]);
const FALSE_STRINGS = new Set(["0", "off", "f", "false", "n", "no"]);

function intFromString(s: string): number | typeof FAIL {
  const t = s.trim();
  if (!INT_STR_RE.test(t)) return FAIL;
  const n = Number(t.replace(/_/g, "").replace(/\.0+$/, ""));
  return Object.is(n, -0) ? 0 : n;
}

function floatFromString(s: string): number | typeof FAIL {
  const t = s.trim();
  const special = INF_NAN_RE.exec(t);
  if (special) {
    if (special[2]!.toLowerCase() === "nan") return NaN;
    return special[1] === "-" ? -Infinity : Infinity;
  }
  if (!FLOAT_STR_RE.test(t)) return FAIL;
  return Number(t.replace(/_/g, ""));
}

function boolFromString(s: string): boolean | typeof FAIL {
  const lower = s.toLowerCase();
  if (TRUE_STRINGS.has(lower)) return true;
  if (FALSE_STRINGS.has(lower)) return false;
  return FAIL;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Python `==` between JSON scalars (True == 1 == 1.0; strings only equal strings). */
function pyEquals(a: unknown, b: unknown): boolean {
  if (typeof a === "string" || typeof b === "string") return a === b;
  const na = typeof a === "boolean" ? Number(a) : a;
  const nb = typeof b === "boolean" ? Number(b) : b;
  return typeof na === "number" && na === nb;
}

/** pydantic lax-mode validation of one value (what `TypeAdapter(T).validate_python` accepts). */
/**
 * pydantic lax-mode validation, also of values whose floats are marked as PyFloat (parse_value's reading of a
 * text for a type where Python's float/int distinction matters, see `needsFloatTags`): numbers unwrap them.
 */
function compileLax(type: TypeExpr): Check {
  const check = compileLaxUntagged(type);
  if (type.kind === "int" || type.kind === "float" || type.kind === "bool") {
    return (v, path, ctx) => check(v instanceof PyFloat ? v.value : v, path, ctx);
  }
  if (type.kind === "any") return (v, path, ctx) => check(untagFloats(v), path, ctx);
  return check;
}

/** The value with PyFloat markers replaced by their numbers. */
export function untagFloats(v: unknown): unknown {
  if (v instanceof PyFloat) return v.value;
  if (Array.isArray(v)) return v.some((x) => typeof x === "object" && x !== null) ? v.map(untagFloats) : v;
  if (isPlainObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, untagFloats(x)]));
  return v;
}

/**
 * Whether parsing a value of this type depends on Python's float/int distinction, which JSON.parse loses: a
 * Literal with both `True` and `1` (or `False` and `0`), anywhere in the type — pydantic maps the float `1.0`
 * to `True` there and the int `1` to `1`.
 */
export function needsFloatTags(type: TypeExpr): boolean {
  switch (type.kind) {
    case "literal": {
      const values = type.values;
      return values.some((a) => typeof a === "boolean" && values.some((b) => typeof b === "number" && b === Number(a)));
    }
    case "list":
      return needsFloatTags(type.items);
    case "dict":
      return needsFloatTags(type.values);
    case "optional":
      return needsFloatTags(type.inner);
    default:
      return false;
  }
}

function compileLaxUntagged(type: TypeExpr): Check {
  switch (type.kind) {
    case "str":
      return (v, path, ctx) => (typeof v === "string" ? v : typeProblem(ctx, path, "str", v));
    case "int":
      return (v, path, ctx) => {
        if (typeof v === "number") {
          if (Number.isInteger(v)) return Object.is(v, -0) ? 0 : v;
          return typeProblem(ctx, path, "int", v, Number.isFinite(v) ? "it has a fractional part" : undefined);
        }
        if (typeof v === "boolean") return v ? 1 : 0;
        if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v;
        if (typeof v === "string") {
          const n = intFromString(v);
          return n === FAIL ? typeProblem(ctx, path, "int", v) : n;
        }
        return typeProblem(ctx, path, "int", v);
      };
    case "float":
      return (v, path, ctx) => {
        if (typeof v === "number") return v;
        if (typeof v === "boolean") return v ? 1 : 0;
        if (typeof v === "bigint") return Number(v);
        if (typeof v === "string") {
          const n = floatFromString(v);
          return n === FAIL ? typeProblem(ctx, path, "float", v) : n;
        }
        return typeProblem(ctx, path, "float", v);
      };
    case "bool":
      return (v, path, ctx) => {
        if (typeof v === "boolean") return v;
        if (typeof v === "number" && (v === 0 || v === 1)) return v === 1;
        if (typeof v === "string") {
          const b = boolFromString(v);
          return b === FAIL ? typeProblem(ctx, path, "bool", v) : b;
        }
        return typeProblem(ctx, path, "bool", v);
      };
    case "any":
      return (v) => (v === undefined ? null : v);
    case "optional": {
      const inner = compileLax(type.inner);
      return (v, path, ctx) => (v === null || v === undefined ? null : inner(v, path, ctx));
    }
    case "literal": {
      const values = type.values;
      const expected = formatType(type);
      return (v, path, ctx) => {
        if (v instanceof PyFloat) {
          // pydantic-core's literal lookup for a float: the bool and float members first (1.0 == True), then
          // the int members (lax int validation).
          const x = v.value;
          for (const allowed of values) {
            if ((typeof allowed === "boolean" || (typeof allowed === "number" && !Number.isInteger(allowed))) && Number(allowed) === x) return allowed;
          }
          for (const allowed of values) if (typeof allowed === "number" && allowed === x) return allowed;
          return typeProblem(ctx, path, expected, x);
        }
        for (const allowed of values) if (allowed === v) return allowed;
        if (typeof v !== "string") for (const allowed of values) if (pyEquals(allowed, v)) return allowed;
        return typeProblem(ctx, path, expected, v);
      };
    }
    case "list": {
      const item = compileLax(type.items);
      const expected = formatType(type);
      return (v, path, ctx) => {
        if (!Array.isArray(v)) return typeProblem(ctx, path, expected, v);
        const out = new Array<unknown>(v.length);
        let failed = false;
        for (let i = 0; i < v.length; i++) {
          const r = item(v[i], `${path}[${i}]`, ctx);
          if (r === FAIL) failed = true;
          else out[i] = r;
        }
        return failed ? FAIL : out;
      };
    }
    case "dict": {
      const key = compileKey(type.keys);
      const value = compileLax(type.values);
      const expected = formatType(type);
      return (v, path, ctx) => {
        let entries: [unknown, unknown][];
        if (isPlainObject(v)) entries = Object.entries(v);
        else if (v instanceof Map) entries = [...(v as Map<unknown, unknown>).entries()];
        else return typeProblem(ctx, path, expected, v);
        const out: Record<string, unknown> = {};
        let failed = false;
        for (const [k, item] of entries) {
          const sub = `${path}.${String(k)}`;
          const kk = key(k, `${sub}.[key]`, ctx); // pydantic's location for a dict key
          const vv = value(item, sub, ctx);
          if (kk === FAIL || vv === FAIL) failed = true;
          else out[kk as string] = vv;
        }
        return failed ? FAIL : out;
      };
    }
  }
}

/** Dict keys arrive as strings; they are validated against the key type and re-keyed in canonical form. */
function compileKey(type: TypeExpr): Check {
  if (type.kind === "str" || type.kind === "any") {
    return (k, path, ctx) => (typeof k === "string" ? k : type.kind === "any" ? String(k) : typeProblem(ctx, path, "str", k));
  }
  const lax = compileLax(type);
  return (k, path, ctx) => {
    const r = lax(k, path, ctx);
    return r === FAIL ? FAIL : String(r);
  };
}

/** DSPy's `parse_value(value, annotation)` for a top-level field value. */
function compileParseValue(type: TypeExpr): Check {
  if (type.kind === "str") return (v) => pyStr(v);
  const lax = compileLax(type);
  const optionalStr = type.kind === "optional" && type.inner.kind === "str";
  const literal: readonly LiteralValue[] | undefined = type.kind === "literal" ? type.values : undefined;
  const tagFloats = needsFloatTags(type);
  return (v, path, ctx) => {
    let value = v;
    if (literal) {
      // `value in allowed` returns the value itself (a float stays a float).
      const plain = value instanceof PyFloat ? value.value : value;
      for (const allowed of literal) if (pyEquals(allowed, plain)) return plain;
      if (typeof value === "string") {
        let s = pyStrip(value);
        if ((s.startsWith("Literal[") || s.startsWith("str[")) && s.endsWith("]")) s = s.slice(s.indexOf("[") + 1, -1);
        if (s.length > 1 && s[0] === s[s.length - 1] && (s[0] === '"' || s[0] === "'")) s = s.slice(1, -1);
        for (const allowed of literal) if (allowed === s) return s;
        value = s;
      }
    }
    if (typeof value !== "string" || optionalStr) return lax(value, path, ctx);
    let candidate = looseJsonLoads(value, { tagFloats });
    if (candidate === NOTHING || candidate === "") {
      if (value !== "") {
        const evaluated = literalEval(value);
        candidate = evaluated.ok ? evaluated.value : value;
      } else {
        candidate = value;
      }
    }
    const problemsBefore = ctx.problems.length;
    const r = lax(candidate, path, ctx);
    if (r === FAIL && candidate !== value) {
      // Report the value as it was given, not the intermediate parse, when the whole value is rejected.
      const last = ctx.problems[ctx.problems.length - 1];
      if (ctx.problems.length === problemsBefore + 1 && last?.path === path) {
        ctx.problems.pop();
        typeProblem(ctx, path, last.expected ?? formatType(type), value);
      }
    }
    return r;
  };
}

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
