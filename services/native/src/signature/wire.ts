/**
 * Checks a signature in wire form (from JSON, msgpack, or the builder) and returns a normalised, frozen copy.
 * The Python worker applies the same rules (workers/dspex_worker/signatures.py).
 */

import { signatureError } from "./errors.js";
import { fieldNameProblem } from "./names.js";
import {
  CONSTRAINT_KEYS,
  type Constraints,
  type Field,
  formatType,
  frozen,
  type LiteralValue,
  type SignatureWire,
  type TypeExpr,
  typeEquals,
  unwrapOptional,
} from "./types.js";

const TYPE_KEYS: Record<string, readonly string[]> = {
  str: [],
  int: [],
  float: [],
  bool: [],
  any: [],
  list: ["items"],
  dict: ["keys", "values"],
  optional: ["inner"],
  literal: ["values"],
  union: ["members"],
  object: ["name", "description", "fields"],
  history: [],
  image: [],
  audio: [],
  ref: ["name"],
};
const OBJECT_FIELD_KEYS = new Set(["name", "type", "desc", "required", "constraints"]);
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** How deep objects may nest (an object inside an object's field is one level). */
export const MAX_OBJECT_DEPTH = 8;
const FIELD_KEYS = new Set(["name", "type", "desc", "prefix", "constraints"]);
const SIGNATURE_KEYS = new Set(["instructions", "inputs", "outputs"]);
const DICT_KEY_KINDS = new Set(["str", "int", "float", "bool", "literal", "any"]);

function fail(path: string, message: string, suggestion?: string): never {
  throw signatureError(`${path}: ${message}`, {
    field: path,
    ...(suggestion !== undefined ? { suggestion } : {}),
  });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

/** An object type: identifier names, unique field names, nesting at most MAX_OBJECT_DEPTH deep. */
function checkObject(value: Record<string, unknown>, path: string, depth: number, scope: readonly string[]): TypeExpr {
  if (depth > MAX_OBJECT_DEPTH) fail(path, `objects nest at most ${MAX_OBJECT_DEPTH} deep`);
  const name = value.name;
  if (typeof name !== "string" || !IDENTIFIER.test(name)) fail(`${path}.name`, "an object type needs a name that is a Python identifier (a pydantic model's class name)");
  if (value.description !== undefined && typeof value.description !== "string") fail(`${path}.description`, "expected a string");
  const fields = value.fields;
  if (!Array.isArray(fields) || fields.length === 0 || fields.length > 128) fail(`${path}.fields`, "an object type needs 1 to 128 fields");
  const seen = new Set<string>();
  const out = fields.map((f: unknown, i: number) => {
    const where = `${path}.fields[${i}]`;
    if (!isPlainObject(f)) fail(where, `expected a field object, got ${kindOf(f)}`);
    for (const key of Object.keys(f)) if (!OBJECT_FIELD_KEYS.has(key)) fail(`${where}.${key}`, "unexpected key for an object field");
    if (typeof f.name !== "string" || !IDENTIFIER.test(f.name)) fail(`${where}.name`, "a field name must be a Python identifier");
    if (seen.has(f.name)) fail(`${where}.name`, `duplicate field ${JSON.stringify(f.name)}`);
    seen.add(f.name);
    const type = checkType(f.type, `${where}.type`, depth, [...scope, name]);
    if (f.desc !== undefined && typeof f.desc !== "string") fail(`${where}.desc`, "expected a string");
    if (f.required !== undefined && typeof f.required !== "boolean") fail(`${where}.required`, "expected a boolean");
    const constraints = checkConstraints(f.constraints, type, `${where}.constraints`);
    return Object.freeze({
      name: f.name,
      type,
      ...(f.desc !== undefined ? { desc: f.desc as string } : {}),
      ...(f.required === false ? { required: false } : {}),
      ...(constraints !== undefined ? { constraints } : {}),
    });
  });
  return Object.freeze({ kind: "object", name, ...(value.description !== undefined ? { description: value.description as string } : {}), fields: frozen(out) }) as TypeExpr;
}

/** Checks one type expression; returns a normalised frozen copy. */
export function checkType(value: unknown, path = "type", depth = 0, scope: readonly string[] = []): TypeExpr {
  if (!isPlainObject(value)) fail(path, `expected a type expression object, got ${kindOf(value)}`);
  const kind = value.kind;
  if (typeof kind !== "string" || !(kind in TYPE_KEYS)) {
    fail(`${path}.kind`, `unknown type kind ${JSON.stringify(kind)}; expected one of ${Object.keys(TYPE_KEYS).join(", ")}`);
  }
  const allowed = TYPE_KEYS[kind]!;
  for (const key of Object.keys(value)) {
    if (key !== "kind" && !allowed.includes(key)) fail(`${path}.${key}`, `unexpected key for a '${kind}' type`);
  }
  switch (kind) {
    case "list":
      return Object.freeze({ kind, items: checkType(value.items, `${path}.items`, depth, scope) });
    case "dict": {
      const keys = checkType(value.keys, `${path}.keys`, depth, scope);
      if (!DICT_KEY_KINDS.has(keys.kind)) {
        fail(`${path}.keys`, `dict keys must be str, int, float, bool, any or literal, not ${formatType(keys)}`);
      }
      return Object.freeze({ kind, keys, values: checkType(value.values, `${path}.values`, depth, scope) });
    }
    case "optional":
      return Object.freeze({ kind, inner: checkType(value.inner, `${path}.inner`, depth, scope) });
    case "literal": {
      const values = value.values;
      if (!Array.isArray(values) || values.length === 0) {
        fail(`${path}.values`, "a literal type needs a non-empty array of values");
      }
      const out: LiteralValue[] = [];
      values.forEach((v: unknown, i: number) => {
        const ok = typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v));
        if (!ok) fail(`${path}.values[${i}]`, `literal values must be strings, finite numbers or booleans, got ${kindOf(v)}`);
        if (!out.some((x) => x === v)) out.push(v as LiteralValue);
      });
      return Object.freeze({ kind, values: frozen(out) });
    }
    case "union": {
      const members = value.members;
      if (!Array.isArray(members) || members.length < 2) {
        fail(`${path}.members`, "a union type needs an array of at least two member types");
      }
      const out: TypeExpr[] = [];
      members.forEach((m: unknown, i: number) => {
        const member = checkType(m, `${path}.members[${i}]`, depth, scope);
        // one spelling per Python type: Union[A, B, None] is optional(union(A, B)), nested unions are flattened
        if (member.kind === "optional") fail(`${path}.members[${i}]`, "a union member cannot be optional; wrap the union in optional instead");
        if (member.kind === "union") fail(`${path}.members[${i}]`, "a union member cannot be a union; list its members instead");
        if (out.some((x) => typeEquals(x, member))) fail(`${path}.members[${i}]`, `duplicate union member ${formatType(member)}`);
        out.push(member);
      });
      return Object.freeze({ kind, members: frozen(out) });
    }
    case "object":
      return checkObject(value, path, depth + 1, scope);
    case "ref": {
      const name = value.name;
      if (typeof name !== "string" || !scope.includes(name)) {
        fail(`${path}.name`, `a ref names an enclosing object type (${scope.join(", ") || "none here"}), not ${JSON.stringify(name)}`);
      }
      return Object.freeze({ kind, name }) as TypeExpr;
    }
    default:
      return Object.freeze({ kind }) as TypeExpr;
  }
}

/** Checks constraints against the field type; returns a normalised frozen copy (keys in DSPy's order). */
export function checkConstraints(value: unknown, type: TypeExpr, path = "constraints"): Constraints | undefined {
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) fail(path, `expected an object, got ${kindOf(value)}`);
  const inner = unwrapOptional(type).inner;
  const numeric = inner.kind === "int" || inner.kind === "float";
  const sized = inner.kind === "str" || inner.kind === "list" || inner.kind === "dict";
  const out: Record<string, number> = {};
  for (const key of Object.keys(value)) {
    if (!(CONSTRAINT_KEYS as readonly string[]).includes(key)) {
      const camel: Record<string, string> = { minLength: "min_length", maxLength: "max_length", minItems: "min_length", maxItems: "max_length" };
      fail(`${path}.${key}`, `unknown constraint; expected one of ${CONSTRAINT_KEYS.join(", ")}`, camel[key]);
    }
  }
  for (const key of CONSTRAINT_KEYS) {
    const v = value[key];
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isFinite(v)) fail(`${path}.${key}`, `expected a finite number, got ${kindOf(v)}`);
    if (key === "min_length" || key === "max_length") {
      if (!Number.isInteger(v) || v < 0) fail(`${path}.${key}`, "a length must be a non-negative integer");
      if (!sized) fail(`${path}.${key}`, `length constraints apply to str, list and dict fields, not ${formatType(type)}`);
    } else if (!numeric) {
      fail(`${path}.${key}`, `range constraints apply to int and float fields, not ${formatType(type)}`);
    }
    out[key] = v;
  }
  const lower = Math.max(out.ge ?? -Infinity, out.gt ?? -Infinity);
  const upper = Math.min(out.le ?? Infinity, out.lt ?? Infinity);
  const lowerExclusive = out.gt !== undefined && out.gt >= (out.ge ?? -Infinity);
  const upperExclusive = out.lt !== undefined && out.lt <= (out.le ?? Infinity);
  if (lower > upper || (lower === upper && (lowerExclusive || upperExclusive))) {
    fail(path, "no value satisfies these range constraints");
  }
  if (out.min_length !== undefined && out.max_length !== undefined && out.min_length > out.max_length) {
    fail(path, "min_length is greater than max_length");
  }
  return Object.keys(out).length === 0 ? undefined : Object.freeze(out);
}

/** Checks one field; returns a normalised frozen copy. */
export function checkField(value: unknown, path = "field"): Field {
  if (!isPlainObject(value)) fail(path, `expected a field object, got ${kindOf(value)}`);
  for (const key of Object.keys(value)) {
    if (!FIELD_KEYS.has(key)) fail(`${path}.${key}`, "unexpected key in a field", key === "description" ? "desc" : undefined);
  }
  const name = value.name;
  if (typeof name !== "string") fail(`${path}.name`, `expected a string, got ${kindOf(name)}`);
  const problem = fieldNameProblem(name);
  if (problem) fail(`${path}.name`, problem.problem, problem.suggestion);
  const type = checkType(value.type, `${path}.type`);
  const field: { -readonly [K in keyof Field]: Field[K] } = { name, type };
  for (const key of ["desc", "prefix"] as const) {
    const v = value[key];
    if (v === undefined) continue;
    if (typeof v !== "string") fail(`${path}.${key}`, `expected a string, got ${kindOf(v)}`);
    field[key] = v;
  }
  const constraints = checkConstraints(value.constraints, type, `${path}.constraints`);
  if (constraints) field.constraints = constraints;
  return Object.freeze(field);
}

/**
 * Checks a signature in wire form (e.g. received from an API caller) and returns a normalised frozen copy.
 * Throws SignatureError whose `field` is the path of the problem, e.g. `signature.outputs[1].type`.
 */
export function checkSignature(value: unknown, path = "signature"): SignatureWire {
  if (!isPlainObject(value)) fail(path, `expected a signature object, got ${kindOf(value)}`);
  for (const key of Object.keys(value)) {
    if (!SIGNATURE_KEYS.has(key)) fail(`${path}.${key}`, "unexpected key in a signature");
  }
  const instructions = value.instructions;
  if (instructions !== undefined && typeof instructions !== "string") {
    fail(`${path}.instructions`, `expected a string, got ${kindOf(instructions)}`);
  }
  const seen = new Map<string, string>();
  const sides: Field[][] = [];
  for (const side of ["inputs", "outputs"] as const) {
    const list = value[side];
    if (!Array.isArray(list)) fail(`${path}.${side}`, `expected an array of fields, got ${kindOf(list)}`);
    // input-less signatures are DSPy's `-> answer`; a signature without outputs asks for nothing
    if (list.length === 0 && side === "outputs") fail(`${path}.${side}`, "a signature needs at least one output");
    sides.push(
      list.map((f: unknown, i: number) => {
        const fieldPath = `${path}.${side}[${i}]`;
        const field = checkField(f, fieldPath);
        // a conversation's history is what the caller sends; DSPy cannot produce one
        if (side === "outputs" && ["history", "image", "audio"].includes(field.type.kind)) fail(`${fieldPath}.type`, `${formatType(field.type)} is an input type`);
        const previous = seen.get(field.name);
        if (previous !== undefined) {
          fail(
            `${fieldPath}.name`,
            previous.startsWith(`${path}.${side}`)
              ? `duplicate field '${field.name}' (also ${previous})`
              : `field '${field.name}' is both an input and an output (also ${previous})`,
          );
        }
        seen.set(field.name, fieldPath);
        return field;
      }),
    );
  }
  const inputs = frozen(sides[0]!);
  const outputs = frozen(sides[1]!);
  return Object.freeze(instructions === undefined ? { inputs, outputs } : { instructions, inputs, outputs });
}
