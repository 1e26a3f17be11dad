/**
 * The coercions under validation: pydantic's lax mode (what `TypeAdapter(T).validate_python` accepts) and
 * DSPy's `parse_value(value, annotation)` (dspy/adapters/utils.py) on top of it, compiled per type.
 */
import { literalEval, looseJsonLoads, NOTHING, pyStr } from "./coerce.js";
import { formatType, type LiteralValue, PyFloat, pyStrip, type TypeExpr } from "./types.js";
import { compileMedia } from "./media.js";
import { FAIL, MAX_PROBLEMS, isPlainObject, typeProblem, type Check, type Ctx } from "./problems.js";

export { FAIL, MAX_PROBLEMS, describeValue, isPlainObject, typeProblem, type Check, type CheckResult, type Ctx, type ProblemCode, type ValidationProblem } from "./problems.js";
export { mediaMaxBytes } from "./media.js";


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
/** The checks of the object types enclosing a value, by name (what a `ref` field refers to). */
type Refs = ReadonlyMap<string, Check>;
const NO_REFS: Refs = new Map();

export function compileLax(type: TypeExpr, refs: Refs = NO_REFS): Check {
  const check = compileLaxUntagged(type, refs);
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
    case "union":
      return type.members.some(needsFloatTags);
    case "object":
      return type.fields.some((f) => needsFloatTags(f.type));
    default:
      return false;
  }
}

/** The least exactness of the items, stopping at LAX (nothing is lower). */
function leastOf(type: TypeExpr, items: readonly unknown[], start: number): number {
  let e = start;
  for (let i = 0; i < items.length && e > LAX; i++) e = Math.min(e, exactness(type, items[i]));
  return e;
}

/** pydantic-core's Exactness of a validation: how closely the input already was of the type. */
const EXACT = 3;
const STRICT = 2;
const LAX = 1;

/**
 * The exactness pydantic-core records when `value` validates as `type` (Python input): an int for a float is
 * strict, a string for a number or a float for an int lax, containers the least of their items. Smart-mode
 * unions pick the member with the highest (the first on a tie, the first exact at once).
 */
function exactness(type: TypeExpr, v: unknown): number {
  switch (type.kind) {
    case "str":
    case "any":
      return EXACT;
    case "int":
      return (typeof v === "number" && Number.isInteger(v)) || typeof v === "bigint" ? EXACT : LAX;
    case "float":
      if (v instanceof PyFloat) return EXACT;
      if (typeof v === "number") return Number.isInteger(v) ? STRICT : EXACT; // an integral JS number is a Python int
      return LAX;
    case "bool":
      return typeof v === "boolean" ? EXACT : LAX;
    case "literal": {
      // pydantic looks the value up by Python equality first (True finds 1); a string for a number is lax
      const plain = v instanceof PyFloat ? v.value : v;
      if (v instanceof PyFloat && type.values.some((x) => typeof x === "number" && Number.isInteger(x) && x === plain)) return LAX;
      return type.values.some((x) => pyEquals(x, plain)) ? EXACT : LAX;
    }
    case "optional":
      return v === null || v === undefined ? EXACT : exactness(type.inner, v);
    case "list":
      return Array.isArray(v) ? leastOf(type.items, v, EXACT) : LAX;
    case "dict": {
      if (!isPlainObject(v)) return LAX;
      const values = Object.values(v);
      const keyExact = values.length > 0 && type.keys.kind !== "str" && type.keys.kind !== "any" ? LAX : EXACT; // keys arrive as strings
      return leastOf(type.values, values, keyExact);
    }
    case "union":
      return type.members.reduce((e, m) => Math.max(e, exactness(m, v)), LAX);
    case "history":
    case "image":
    case "audio":
    case "ref":
      return isPlainObject(v) || typeof v === "string" ? EXACT : LAX;
    case "object": {
      if (!isPlainObject(v)) return LAX;
      let e = EXACT;
      for (const f of type.fields) if (e > LAX && f.name in v) e = Math.min(e, exactness(f.type, v[f.name]));
      return e;
    }
  }
}

function compileLaxUntagged(type: TypeExpr, refs: Refs): Check {
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
      const inner = compileLax(type.inner, refs);
      return (v, path, ctx) => (v === null || v === undefined ? null : inner(v, path, ctx));
    }
    case "union": {
      // pydantic's smart mode: every member in order, the first exact match at once, else the most exact success
      const members = type.members.map((m) => ({ type: m, check: compileLax(m, refs) }));
      const expected = formatType(type);
      return (v, path, ctx) => {
        let best: { value: unknown; exactness: number } | undefined;
        for (let i = 0; i < members.length; i++) {
          const m = members[i]!;
          const scratch: Ctx = { field: ctx.field, problems: [], side: ctx.side };
          const r = m.check(v, path, scratch);
          if (r === FAIL) continue;
          if (best === undefined && i === members.length - 1) return r; // the only success: no comparison to make
          const e = exactness(m.type, v);
          if (e === EXACT) return r;
          if (best === undefined || e > best.exactness) best = { value: r, exactness: e };
        }
        return best !== undefined ? best.value : typeProblem(ctx, path, expected, v);
      };
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
      const item = compileLax(type.items, refs);
      const expected = formatType(type);
      return (v, path, ctx) => {
        if (!Array.isArray(v)) return typeProblem(ctx, path, expected, v);
        const out = new Array<unknown>(v.length);
        let failed = false;
        for (let i = 0; i < v.length; i++) {
          const r = item(v[i], `${path}[${i}]`, ctx);
          if (r === FAIL) {
            failed = true;
            if (ctx.problems.length >= MAX_PROBLEMS) break;
          } else out[i] = r;
        }
        return failed ? FAIL : out;
      };
    }
    case "dict": {
      const key = compileKey(type.keys);
      const value = compileLax(type.values, refs);
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
          if (kk === FAIL || vv === FAIL) {
            failed = true;
            if (ctx.problems.length >= MAX_PROBLEMS) break;
          } else out[kk as string] = vv;
        }
        return failed ? FAIL : out;
      };
    }
    case "object":
      return compileObject(type, refs);
    case "ref": {
      // the enclosing object's check, looked up when a value is checked (it is being compiled when this is)
      const name = type.name;
      return (v, path, ctx) => {
        const target = refs.get(name);
        return target ? target(v, path, ctx) : typeProblem(ctx, path, name, v, "a reference outside its object type");
      };
    }
    case "image":
    case "audio":
      return compileMedia(type.kind);
    case "history":
      // dspy.History: {messages: [{field: value, …}, …]} (pydantic checks the list of maps; the turns' fields are free)
      return (v, path, ctx) => {
        if (!isPlainObject(v) || !Array.isArray(v.messages)) return typeProblem(ctx, path, "History ({messages: [...]})", v);
        const bad = v.messages.findIndex((m) => !isPlainObject(m));
        if (bad >= 0) return typeProblem(ctx, `${path}.messages[${bad}]`, "dict", v.messages[bad]);
        return { messages: v.messages };
      };
  }
}


/**
 * A pydantic model in lax mode: a mapping with every required field (a missing one is reported at
 * `<path>.<field>`), each field validated by its type; keys the model does not declare are dropped, as pydantic's
 * default (`extra="ignore"`) does; a field that is not required (its Python annotation `Optional[T] = None`) may be
 * missing or null, and is null then.
 */
function compileObject(type: Extract<TypeExpr, { kind: "object" }>, refs: Refs): Check {
  const inner = new Map(refs);
  const check: Check = (v, path, ctx) => {
    if (!isPlainObject(v)) return typeProblem(ctx, path, type.name, v);
    const out: Record<string, unknown> = {};
    let failed = false;
    for (const f of fields) {
      const sub = `${path}.${f.name}`;
      if (!(f.name in v) || v[f.name] === undefined || (v[f.name] === null && !f.required)) {
        if (!f.required) {
          out[f.name] = null;
          continue;
        }
        failed = true;
        if (ctx.problems.length < MAX_PROBLEMS) {
          ctx.problems.push({ field: ctx.field, path: sub, code: "missing", message: `${ctx.side} '${sub}': required by ${type.name}, missing` });
        }
        continue;
      }
      const r = f.check(v[f.name], sub, ctx);
      if (r === FAIL) failed = true;
      else out[f.name] = r;
      if (ctx.problems.length >= MAX_PROBLEMS) break;
    }
    return failed ? FAIL : out;
  };
  inner.set(type.name, check);
  const fields = type.fields.map((f) => ({ name: f.name, required: f.required ?? true, check: compileLax(f.type, inner) }));
  return check;
}

/** Dict keys arrive as strings; they are validated against the key type and re-keyed in canonical form. */
export function compileKey(type: TypeExpr): Check {
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
export function compileParseValue(type: TypeExpr): Check {
  if (type.kind === "str") return (v) => pyStr(v);
  const lax = compileLax(type);
  // parse_value validates the raw text of a union with both str and None (`Optional[str]`, `str | int | None`)
  const optionalStr =
    type.kind === "optional" && (type.inner.kind === "str" || (type.inner.kind === "union" && type.inner.members.some((m) => m.kind === "str")));
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
