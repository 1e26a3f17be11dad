/** JSON Schema (draft 2020-12) of a signature's inputs object and outputs object. */

import { SignatureError } from "@dspex/protocol";
import type { Constraints, Field, SignatureWire, TypeExpr } from "./types.js";
import { checkType } from "./wire.js";

export type JsonSchema = { [key: string]: unknown };

export const JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema";

const INT_KEY_PATTERN = "^\\s*[+-]?[0-9](_?[0-9])*\\s*$";
const FLOAT_KEY_PATTERN = "^\\s*[+-]?(([0-9](_?[0-9])*)?\\.?[0-9](_?[0-9])*([eE][+-]?[0-9]+)?|inf|infinity|nan)\\s*$";

/** JSON Schema of one type expression (constraints, when given, apply to the non-null part). */
export function typeJsonSchema(type: TypeExpr, constraints?: Constraints): JsonSchema {
  switch (type.kind) {
    case "str":
      return withLengths({ type: "string" }, constraints, "minLength", "maxLength");
    case "int":
      return withRanges({ type: "integer" }, constraints);
    case "float":
      return withRanges({ type: "number" }, constraints);
    case "bool":
      return { type: "boolean" };
    case "any":
      return {};
    case "list":
      return withLengths({ type: "array", items: typeJsonSchema(type.items) }, constraints, "minItems", "maxItems");
    case "dict": {
      const schema: JsonSchema = { type: "object", additionalProperties: typeJsonSchema(type.values) };
      const names = keySchema(type.keys);
      if (names) schema.propertyNames = names;
      return withLengths(schema, constraints, "minProperties", "maxProperties");
    }
    case "optional":
      return { anyOf: [typeJsonSchema(type.inner, constraints), { type: "null" }] };
    case "literal":
      return type.values.length === 1 ? { const: type.values[0] } : { enum: [...type.values] };
    case "union":
      return { anyOf: type.members.map((m) => typeJsonSchema(m)) };
    case "ref":
      // the enclosing object's schema carries `$anchor: <name>` (JSON Schema 2020-12)
      return { $ref: `#${type.name}` };
    case "image":
      return { title: "Image", anyOf: [{ type: "string", description: "an http(s) URL or a data:image/…;base64 URI" }, { type: "object", properties: { data: { contentEncoding: "base64" }, mime: { type: "string" } }, required: ["data", "mime"] }] };
    case "audio":
      return { title: "Audio", anyOf: [{ type: "string", description: "a data:audio/…;base64 URI" }, { type: "object", properties: { data: { contentEncoding: "base64" }, format: { type: "string" } }, required: ["data", "format"] }] };
    case "history":
      return {
        title: "History",
        type: "object",
        properties: { messages: { type: "array", items: { type: "object" }, description: "Earlier turns, oldest first: one map of the signature's fields per turn." } },
        required: ["messages"],
      };
    case "object": {
      const properties: JsonSchema = {};
      for (const f of type.fields) {
        const schema = typeJsonSchema(f.type, f.constraints);
        properties[f.name] = f.desc !== undefined ? { description: f.desc, ...schema } : schema;
      }
      return {
        title: type.name,
        ...(refersTo(type, type.name) ? { $anchor: type.name } : {}),
        ...(type.description !== undefined ? { description: type.description } : {}),
        type: "object",
        properties,
        required: type.fields.filter((f) => f.required ?? true).map((f) => f.name),
      };
    }
  }
}

/**
 * The type a JSON Schema describes — the inverse of `typeJsonSchema` for what the wire format carries: string,
 * integer, number, boolean, array (items), object with properties (an object type named by its `title`, else
 * `name`; `required` as given; `description`s kept), object with only additionalProperties (a dict), enum/const
 * (a literal), anyOf/oneOf (a union; with null, optional), `{}` (any). Anything else is a SignatureError naming
 * the schema path.
 */
export function typeFromJsonSchema(schema: unknown, name: string, path = "schema", depth = 0): TypeExpr {
  const fail = (message: string): never => {
    throw new SignatureError(`${path}: ${message}`, { field: path });
  };
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) return fail("expected a JSON Schema object");
  if (depth > 16) return fail("nested too deep");
  const s = schema as JsonSchema;
  if (s.const !== undefined) return checkType({ kind: "literal", values: [s.const] }, path);
  if (Array.isArray(s.enum)) return checkType({ kind: "literal", values: s.enum }, path);
  const alternatives = (s.anyOf ?? s.oneOf) as unknown[] | undefined;
  if (Array.isArray(alternatives)) {
    const isNull = (x: unknown) => typeof x === "object" && x !== null && (x as JsonSchema).type === "null";
    const members = alternatives.filter((x) => !isNull(x)).map((x, i) => typeFromJsonSchema(x, name, `${path}.anyOf[${i}]`, depth + 1));
    const inner = members.length === 1 ? members[0]! : checkType({ kind: "union", members }, path);
    return members.length < alternatives.length ? { kind: "optional", inner } : inner;
  }
  const type = s.type;
  if (Array.isArray(type)) {
    const rest = type.filter((x) => x !== "null");
    if (rest.length !== 1) return fail("a list of types other than [T, \"null\"] has no wire type");
    return { kind: "optional", inner: typeFromJsonSchema({ ...s, type: rest[0] }, name, path, depth + 1) };
  }
  switch (type) {
    case "string":
      return { kind: "str" };
    case "integer":
      return { kind: "int" };
    case "number":
      return { kind: "float" };
    case "boolean":
      return { kind: "bool" };
    case "array":
      return { kind: "list", items: s.items === undefined ? { kind: "any" } : typeFromJsonSchema(s.items, name, `${path}.items`, depth + 1) };
    case "object": {
      const props = s.properties as Record<string, unknown> | undefined;
      if (props === undefined || Object.keys(props).length === 0) {
        const values = s.additionalProperties;
        return { kind: "dict", keys: { kind: "str" }, values: typeof values === "object" && values !== null ? typeFromJsonSchema(values, name, `${path}.additionalProperties`, depth + 1) : { kind: "any" } };
      }
      const required = new Set(Array.isArray(s.required) ? (s.required as string[]) : []);
      const title = typeof s.title === "string" && /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(s.title) ? s.title : name;
      const fields = Object.entries(props).map(([field, sub]) => {
        const desc = typeof (sub as JsonSchema | null)?.description === "string" ? ((sub as JsonSchema).description as string) : undefined;
        return {
          name: field,
          type: typeFromJsonSchema(sub, `${title}_${field}`, `${path}.properties.${field}`, depth + 1),
          ...(desc !== undefined ? { desc } : {}),
          ...(required.has(field) ? {} : { required: false }),
        };
      });
      return checkType({ kind: "object", name: title, ...(typeof s.description === "string" ? { description: s.description } : {}), fields }, path);
    }
    case undefined:
      return Object.keys(s).filter((k) => k !== "title" && k !== "description").length === 0 ? { kind: "any" } : fail("a schema without a type");
    default:
      return fail(`type ${JSON.stringify(type)} has no wire type`);
  }
}

/** Whether a `ref` to `name` occurs inside the type (so its schema needs an anchor). */
function refersTo(type: TypeExpr, name: string): boolean {
  switch (type.kind) {
    case "ref":
      return type.name === name;
    case "list":
      return refersTo(type.items, name);
    case "dict":
      return refersTo(type.values, name);
    case "optional":
      return refersTo(type.inner, name);
    case "union":
      return type.members.some((m) => refersTo(m, name));
    case "object":
      return type.fields.some((f) => refersTo(f.type, name));
    default:
      return false;
  }
}

function keySchema(keys: TypeExpr): JsonSchema | undefined {
  switch (keys.kind) {
    case "int":
      return { pattern: INT_KEY_PATTERN };
    case "float":
      return { pattern: FLOAT_KEY_PATTERN };
    case "bool":
      return { enum: ["true", "false"] };
    case "literal":
      return { enum: [...new Set(keys.values.map((v) => (typeof v === "boolean" ? String(v) : String(v))))] };
    default:
      return undefined;
  }
}

function withRanges(schema: JsonSchema, c: Constraints | undefined): JsonSchema {
  if (!c) return schema;
  if (c.ge !== undefined) schema.minimum = c.ge;
  if (c.gt !== undefined) schema.exclusiveMinimum = c.gt;
  if (c.le !== undefined) schema.maximum = c.le;
  if (c.lt !== undefined) schema.exclusiveMaximum = c.lt;
  return schema;
}

function withLengths(schema: JsonSchema, c: Constraints | undefined, min: string, max: string): JsonSchema {
  if (!c) return schema;
  if (c.min_length !== undefined) schema[min] = c.min_length;
  if (c.max_length !== undefined) schema[max] = c.max_length;
  return schema;
}

function fieldSchema(field: Field): JsonSchema {
  const schema = typeJsonSchema(field.type, field.constraints);
  return field.desc !== undefined ? { description: field.desc, ...schema } : schema;
}

/**
 * JSON Schema of the inputs object or the outputs object of a signature: an object with one property per
 * field, all fields required except those whose type is optional, no other properties.
 */
export function signatureJsonSchema(sig: SignatureWire, side: "inputs" | "outputs"): JsonSchema {
  const fields = sig[side];
  const properties: JsonSchema = {};
  for (const f of fields) properties[f.name] = fieldSchema(f);
  return {
    $schema: JSON_SCHEMA_DIALECT,
    type: "object",
    properties,
    required: fields.filter((f) => f.type.kind !== "optional").map((f) => f.name),
    additionalProperties: false,
  };
}
