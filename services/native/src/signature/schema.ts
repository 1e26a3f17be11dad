/** JSON Schema (draft 2020-12) of a signature's inputs object and outputs object. */

import type { Constraints, Field, SignatureWire, TypeExpr } from "./types.js";

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
