/**
 * The signature wire format (schemas/README.md, types in ../wire/envelope.ts):
 * `{instructions?, inputs: Field[], outputs: Field[]}`, a Field is `{name, type, desc?, prefix?, constraints?}`
 * and a type is a type expression. Values produced here are frozen at run time.
 */

import type { FieldConstraints, FieldWire, SignatureWire, TypeExpr } from "@dspex/protocol";

export type { SignatureWire, TypeExpr };
/** A signature field on the wire: `{name, type, desc?, prefix?, constraints?}`. */
export type Field = FieldWire;
/** Field constraints, snake_case as on the wire. Ranges apply to int/float, lengths to str/list/dict. */
export type Constraints = FieldConstraints;
export type LiteralValue = string | number | boolean;
export type TypeKind = TypeExpr["kind"];

/** Freezes an array at run time while keeping the (mutable) wire types of ../wire/envelope.ts. */
export function frozen<T>(items: T[]): T[] {
  return Object.freeze(items) as T[];
}

export const RANGE_CONSTRAINTS = ["gt", "ge", "lt", "le"] as const;
export const LENGTH_CONSTRAINTS = ["min_length", "max_length"] as const;
/** The order DSPy lists constraints in (dspy/signatures/field.py PYDANTIC_CONSTRAINT_MAP). */
export const CONSTRAINT_KEYS = [...RANGE_CONSTRAINTS, ...LENGTH_CONSTRAINTS] as const;
export type ConstraintKey = (typeof CONSTRAINT_KEYS)[number];

const STR: TypeExpr = Object.freeze({ kind: "str" });
const INT: TypeExpr = Object.freeze({ kind: "int" });
const FLOAT: TypeExpr = Object.freeze({ kind: "float" });
const BOOL: TypeExpr = Object.freeze({ kind: "bool" });
const ANY: TypeExpr = Object.freeze({ kind: "any" });

/** Shared, frozen scalar type expressions. */
export const scalar = { str: STR, int: INT, float: FLOAT, bool: BOOL, any: ANY } as const;

/** Renders a type expression in DSPy/Python notation: `list[str]`, `Optional[int]`, `Literal['a', 'b']`. */
export function formatType(type: TypeExpr): string {
  switch (type.kind) {
    case "str":
    case "int":
    case "float":
    case "bool":
      return type.kind;
    case "any":
      return "Any";
    case "list":
      return `list[${formatType(type.items)}]`;
    case "dict":
      return `dict[${formatType(type.keys)}, ${formatType(type.values)}]`;
    case "optional":
      return `Optional[${formatType(type.inner)}]`;
    case "literal":
      return `Literal[${type.values.map(formatLiteralValue).join(", ")}]`;
    case "union":
      return `Union[${type.members.map(formatType).join(", ")}]`;
    case "object":
      return type.name; // as Python names a pydantic model
    case "history":
      return "History";
    case "ref":
      return type.name;
    case "image":
      return "Image";
    case "audio":
      return "Audio";
  }
}

/** A literal value as Python would write it (`'a'`, `1`, `True`). */
export function formatLiteralValue(value: LiteralValue): string {
  if (typeof value === "string") return pyStringRepr(value);
  if (typeof value === "boolean") return value ? "True" : "False";
  return pyNumberRepr(value);
}

/** Python `repr()` of a str: the quote choice and escapes of CPython (non-printable characters as \\x, \\u, \\U). */
export function pyStringRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === "\\") out += "\\\\";
    else if (ch === quote) out += "\\" + quote;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x7f && code >= 0x20) out += ch;
    else if (!NOT_PRINTABLE.test(ch)) out += ch;
    else if (code < 0x100) out += "\\x" + code.toString(16).padStart(2, "0");
    else if (code < 0x10000) out += "\\u" + code.toString(16).padStart(4, "0");
    else out += "\\U" + code.toString(16).padStart(8, "0");
  }
  return out + quote;
}

/** What `str.isprintable()` rejects: categories Cc, Cf, Cs, Co, Cn, Zl, Zp and Zs other than the space. */
const NOT_PRINTABLE = /^[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]$/u;

/**
 * A number that is a Python `float` even when it is integral (`3.0`). JS numbers do not say whether they were
 * an int or a float in Python; where it shows (`str(3.0)` is `3.0`, `str(3)` is `3`), code that knows the
 * value is a float wraps it in a PyFloat.
 */
export class PyFloat {
  constructor(readonly value: number) {}
  valueOf(): number {
    return this.value;
  }
  toJSON(): number {
    return this.value;
  }
}

/** Python `repr()`/`str()` of a float: `3.0`, `0.1`, `1e+16`, `nan`, `inf`. */
export function pyFloatRepr(n: number): string {
  if (Number.isNaN(n)) return "nan";
  if (n === Infinity) return "inf";
  if (n === -Infinity) return "-inf";
  // Python's float repr: shortest round-trip digits, exponent form when exp < -4 or exp >= 16.
  const [mantissa = "", expText = "0"] = n.toExponential().split("e");
  const exp = Number(expText);
  const negative = mantissa.startsWith("-") || Object.is(n, -0);
  const digits = mantissa.replace("-", "").replace(".", "");
  let body: string;
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    body = `${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  } else if (exp < 0) {
    body = `0.${"0".repeat(-exp - 1)}${digits}`;
  } else if (digits.length > exp + 1) {
    body = `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  } else {
    body = `${digits}${"0".repeat(exp + 1 - digits.length)}.0`;
  }
  return negative ? `-${body}` : body;
}

/**
 * Python `repr()`/`str()` of a number that arrived as a JS number. Integral values print as Python ints
 * (msgpack carries 3.0 from Python as a float, but a JS number cannot tell the two apart).
 */
export function pyNumberRepr(n: number): string {
  if (Object.is(n, -0)) return "-0.0";
  // An integral number JSON writes without an exponent is a Python int: the int JSON's digits spell.
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return String(n);
  return pyFloatRepr(n);
}

/** Equality of type expressions as Python types (literal values compared with their JS type, unions and literals as sets). */
export function typeEquals(a: TypeExpr, b: TypeExpr): boolean {
  if (a.kind !== b.kind) return false;
  switch (a.kind) {
    case "list":
      return typeEquals(a.items, (b as typeof a).items);
    case "dict":
      return typeEquals(a.keys, (b as typeof a).keys) && typeEquals(a.values, (b as typeof a).values);
    case "optional":
      return typeEquals(a.inner, (b as typeof a).inner);
    case "literal": {
      const bv = (b as typeof a).values;
      // compared as sets of (type, value), as typing compares Literal[...] (values are deduplicated on the wire)
      return a.values.length === bv.length && a.values.every((v) => bv.some((x) => x === v));
    }
    case "union": {
      // Python's Union compares as a set of members (Union[int, str] == Union[str, int])
      const bm = (b as typeof a).members;
      return a.members.length === bm.length && a.members.every((m) => bm.some((x) => typeEquals(m, x)));
    }
    case "ref":
      return a.name === (b as typeof a).name;
    case "object": {
      const bo = b as typeof a;
      return (
        a.name === bo.name &&
        a.fields.length === bo.fields.length &&
        a.fields.every((f, i) => {
          const g = bo.fields[i]!;
          return f.name === g.name && (f.required ?? true) === (g.required ?? true) && typeEquals(f.type, g.type);
        })
      );
    }
    default:
      return true;
  }
}

/** The type with one level of `optional` removed, and whether there was one. */
export function unwrapOptional(type: TypeExpr): { inner: TypeExpr; optional: boolean } {
  let inner = type;
  let optional = false;
  while (inner.kind === "optional") {
    inner = inner.inner;
    optional = true;
  }
  return { inner, optional };
}

/** Whether a field of this type may be omitted: its type admits None (DSPy's `annotation_allows_none`). */
export function allowsNone(type: TypeExpr): boolean {
  return type.kind === "optional";
}

/** The characters Python's `str.isspace()` accepts (`str.strip()` removes them; JS `\\s` differs: U+FEFF). */
const PY_SPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";
const PY_SPACE_SET = new Set(PY_SPACE);

/** Python `ch.isspace()` for one character. */
export function isPySpace(ch: string): boolean {
  return PY_SPACE_SET.has(ch);
}

/** Python `s.lstrip()`. */
export function pyLstrip(s: string): string {
  let i = 0;
  while (i < s.length && PY_SPACE_SET.has(s[i]!)) i++;
  return i === 0 ? s : s.slice(i);
}

/** Python `s.rstrip()`. */
export function pyRstrip(s: string): string {
  let j = s.length;
  while (j > 0 && PY_SPACE_SET.has(s[j - 1]!)) j--;
  return j === s.length ? s : s.slice(0, j);
}

/** Python `s.strip()`. */
export function pyStrip(s: string): string {
  return pyRstrip(pyLstrip(s));
}
