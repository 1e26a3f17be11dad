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
  }
}

/** A literal value as Python would write it (`'a'`, `1`, `True`). */
export function formatLiteralValue(value: LiteralValue): string {
  if (typeof value === "string") return pyStringRepr(value);
  if (typeof value === "boolean") return value ? "True" : "False";
  return pyNumberRepr(value);
}

/** Python `repr()` of a str. */
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
    else if (code < 0x20 || code === 0x7f) out += "\\x" + code.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + quote;
}

/**
 * Python `repr()`/`str()` of a number that arrived as a JS number. Integral values print as Python ints
 * (msgpack carries 3.0 from Python as a float, but a JS number cannot tell the two apart).
 */
export function pyNumberRepr(n: number): string {
  if (Number.isNaN(n)) return "nan";
  if (n === Infinity) return "inf";
  if (n === -Infinity) return "-inf";
  if (Number.isSafeInteger(n)) return Object.is(n, -0) ? "-0.0" : String(n);
  // Python's float repr: shortest round-trip digits, exponent form when exp < -4 or exp >= 16.
  const [mantissa = "", expText = "0"] = n.toExponential().split("e");
  const exp = Number(expText);
  const negative = mantissa.startsWith("-");
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

/** Structural equality of type expressions (literal values compared with their JS type). */
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
      return a.values.length === bv.length && a.values.every((v, i) => v === bv[i]);
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
