/**
 * How DSPy prints a field's type in prompts (dspy/adapters/utils.py `get_annotation_name`,
 * `translate_field_type`) and the pydantic JSON Schemas it embeds (`_get_json_schema`, and the Structured
 * Outputs schema of json_adapter.py `_get_structured_outputs_response_format`), for the wire type expressions.
 *
 * The Python annotation of a type expression is what the worker builds (workers/dspex_worker/signatures.py
 * `type_from_expr`): `list[T]`, `dict[K, V]`, `typing.Optional[T]`, `typing.Literal[...]`, `typing.Any`.
 * `Optional[Optional[T]]` is `Optional[T]` in Python, so nested optionals collapse here too.
 */

import type { LiteralValue } from "../signature/types.js";
import type { TypeExpr } from "@dspex/protocol";
import { pyJsonDumps, pyStrip, pyStrOf, pyTitle } from "./python.js";

/**
 * Types the native adapters do not render (DSPy's prompts for them are not reproduced here): the engine's
 * `support()` sends signatures using them to the workers (predictor/engine.ts), so this is never reached there.
 */
export function nativeUnsupported(type: TypeExpr): Error {
  return new Error(`the native adapters do not render ${type.kind} types; the call belongs on a worker`);
}

/** The first type in a signature that the native adapters do not render (unions, objects), or undefined. */
export function unrenderedType(signature: { inputs: readonly { name: string; type: TypeExpr }[]; outputs: readonly { name: string; type: TypeExpr }[] }): { field: string; kind: string } | undefined {
  const find = (t: TypeExpr): string | undefined => {
    switch (t.kind) {
      case "list":
        return find(t.items);
      case "dict":
        return find(t.keys) ?? find(t.values);
      case "optional":
        return find(t.inner);
      case "union":
      case "object":
      case "history":
      case "image":
      case "audio":
      case "ref":
        return t.kind;
      default:
        return undefined;
    }
  };
  for (const f of [...signature.inputs, ...signature.outputs]) {
    const kind = find(f.type);
    if (kind !== undefined) return { field: f.name, kind };
  }
  return undefined;
}

/** The type with nested optionals collapsed, as Python's `Optional[Optional[T]]` collapses. */
export function normalizeType(type: TypeExpr): TypeExpr {
  if (type.kind !== "optional") return type;
  let inner = type.inner;
  while (inner.kind === "optional") inner = inner.inner;
  return inner === type.inner ? type : { kind: "optional", inner };
}

/** `_quoted_string_for_literal_type_annotation`: quotes chosen by content, no escaping beyond `\'`. */
function quoteLiteralString(s: string): string {
  const single = s.includes("'");
  const double = s.includes('"');
  if (single && !double) return `"${s}"`;
  if (double && !single) return `'${s}'`;
  if (single && double) return `'${s.replaceAll("'", "\\'")}'`;
  return `'${s}'`;
}

/** `str()` of a literal member, as `translate_field_type` and `get_annotation_name` print it. */
function literalStr(value: LiteralValue): string {
  if (typeof value === "boolean") return value ? "True" : "False";
  return pyStrOf(value);
}

/** DSPy's `get_annotation_name(annotation)`: `list[str]`, `Union[int, NoneType]`, `Literal['a', 1]`, `Any`. */
export function annotationName(type: TypeExpr): string {
  const t = normalizeType(type);
  switch (t.kind) {
    case "str":
    case "int":
    case "float":
    case "bool":
      return t.kind;
    case "any":
      return "Any";
    case "list":
      return `list[${annotationName(t.items)}]`;
    case "dict":
      return `dict[${annotationName(t.keys)}, ${annotationName(t.values)}]`;
    case "optional":
      // DSPy renders PEP 604 unions and Optional alike: as typing.Union with NoneType.
      return `Union[${annotationName(t.inner)}, NoneType]`;
    case "literal":
      return `Literal[${t.values.map((v) => (typeof v === "string" ? quoteLiteralString(v) : literalStr(v))).join(", ")}]`;
    case "union":
    case "object":
    case "history":
    case "image":
    case "audio":
    case "ref":
      throw nativeUnsupported(t);
  }
}

type Schema = { [key: string]: unknown };

/** The JSON Schema pydantic 2 generates for the annotation (`TypeAdapter(T).json_schema()`), keys unsorted. */
export function typeJsonSchema(type: TypeExpr): Schema {
  const t = normalizeType(type);
  switch (t.kind) {
    case "str":
      return { type: "string" };
    case "int":
      return { type: "integer" };
    case "float":
      return { type: "number" };
    case "bool":
      return { type: "boolean" };
    case "any":
      return {};
    case "list":
      return { type: "array", items: typeJsonSchema(t.items) };
    case "dict": {
      const out: Schema = { type: "object" };
      const keys = typeJsonSchema(t.keys);
      delete keys.title;
      const values = typeJsonSchema(t.values);
      delete values.title;
      // `dict[str, Any]` allows any value: pydantic writes `true` rather than an empty schema.
      out.additionalProperties = Object.keys(values).length > 0 ? values : true;
      // pydantic names the keys only when they are strings with more to say than "string" (an enum, a const).
      if (keys.type === "string" && Object.keys(keys).length > 1) {
        delete keys.type;
        out.propertyNames = keys;
      }
      return out;
    }
    case "optional":
      return { anyOf: [typeJsonSchema(t.inner), { type: "null" }] };
    case "literal": {
      const values = t.values;
      const out: Schema = values.length === 1 ? { const: values[0] } : { enum: [...values] };
      // One JSON type only when every member has the same Python type (bool is not int, int is not float).
      const kinds = new Set(values.map((v) => (typeof v === "number" ? (Number.isInteger(v) ? "integer" : "number") : typeof v)));
      if (kinds.size === 1) out.type = [...kinds][0];
      return out;
    }
    case "union":
    case "object":
    case "history":
    case "image":
    case "audio":
    case "ref":
      throw nativeUnsupported(t);
  }
}

/** Python's `sorted()` of str keys: by code point (JS's default sort compares UTF-16 units). */
function byCodePoint(a: string, b: string): number {
  const ca = [...a].map((c) => c.codePointAt(0)!);
  const cb = [...b].map((c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) if (ca[i] !== cb[i]) return ca[i]! - cb[i]!;
  return ca.length - cb.length;
}

/** Recursively rebuilds dicts with their keys in `order`; `skipUnder` names keys whose child dict keeps its order. */
function reorder(value: unknown, order: (keys: string[]) => string[], parentKey?: string, skipUnder?: ReadonlySet<string>): unknown {
  if (Array.isArray(value)) return value.map((v) => reorder(v, order, parentKey, skipUnder));
  if (value === null || typeof value !== "object") return value;
  const obj = value as Schema;
  const keys = skipUnder?.has(parentKey ?? "") ? Object.keys(obj) : order(Object.keys(obj));
  const out: Schema = {};
  for (const k of keys) out[k] = reorder(obj[k], order, k, skipUnder);
  return out;
}

const SORT_SKIPPED = new Set(["properties", "default"]);

/** pydantic's `GenerateJsonSchema.sort`: keys sorted recursively, except the members of `properties`. */
function pydanticSorted(schema: Schema): Schema {
  return reorder(schema, (keys) => [...keys].sort(byCodePoint), undefined, SORT_SKIPPED) as Schema;
}

/** DSPy's `_get_json_schema`: pydantic's schema with `type` first, then the other keys sorted, recursively. */
export function noteJsonSchema(type: TypeExpr): Schema {
  const sorted = pydanticSorted(typeJsonSchema(type));
  return reorder(sorted, (keys) => {
    const rest = keys.filter((k) => k !== "type").sort(byCodePoint);
    return keys.includes("type") ? ["type", ...rest] : rest;
  }) as Schema;
}

/**
 * DSPy's `translate_field_type(name, field)`: the `{name}` placeholder of the field structure, with a note on
 * the value for non-string outputs (inputs never get one).
 */
export function translateFieldType(name: string, type: TypeExpr, side: "input" | "output"): string {
  const t = normalizeType(type);
  let desc: string;
  if (side === "input" || t.kind === "str") desc = "";
  else if (t.kind === "bool") desc = "must be True or False";
  else if (t.kind === "int" || t.kind === "float") desc = `must be a single ${t.kind} value`;
  else if (t.kind === "literal") desc = `must exactly match (no extra characters) one of: ${t.values.map(literalStr).join("; ")}`;
  else desc = `must adhere to the JSON schema: ${pyJsonDumps(noteJsonSchema(t))}`;
  return `{${name}}${desc ? `${" ".repeat(8)}# note: the value you produce ${desc}` : ""}`;
}

/** The name DSPy gives the Structured Outputs model (the `name` of the `json_schema` response format). */
export const STRUCTURED_OUTPUTS_NAME = "DSPyProgramOutputs";

/**
 * The JSON Schema of json_adapter.py `_get_structured_outputs_response_format`: pydantic's model schema of the
 * output fields (titles from `name.title()`, keys sorted) with DSPy's `enforce_required` applied. The caller
 * checks first that no output is a dict (DSPy then sends `json_object` instead).
 */
export function structuredOutputsSchema(outputs: ReadonlyArray<{ name: string; type: TypeExpr }>): Schema {
  const properties: Schema = {};
  for (const f of outputs) {
    properties[f.name] = { ...typeJsonSchema(f.type), title: pyStrip(pyTitle(f.name).replaceAll("_", " ")) };
  }
  const schema = pydanticSorted({
    additionalProperties: false,
    properties,
    required: outputs.map((f) => f.name),
    title: STRUCTURED_OUTPUTS_NAME,
    type: "object",
  });
  enforceRequired(schema);
  return schema;
}

/** DSPy's `enforce_required`, mutating in place as it does (so new keys land where Python puts them: last). */
function enforceRequired(part: Schema): void {
  if (part.type === "object") {
    const props = part.properties;
    if (props !== undefined && props !== null) {
      part.required = Object.keys(props as Schema);
      part.additionalProperties = false;
      for (const sub of Object.values(props as Schema)) {
        if (sub !== null && typeof sub === "object" && !Array.isArray(sub)) enforceRequired(sub as Schema);
      }
    } else {
      part.properties = {};
      part.required = [];
      part.additionalProperties = false;
    }
  }
  const items = part.items;
  if (part.type === "array" && items !== null && typeof items === "object" && !Array.isArray(items)) {
    enforceRequired(items as Schema);
  }
  for (const key of ["$defs", "definitions"]) {
    const defs = part[key];
    if (defs !== null && typeof defs === "object") for (const d of Object.values(defs as Schema)) enforceRequired(d as Schema);
  }
}

/**
 * dspy/clients/legacy_requests.py `_strict_json_schema`: the schema as OpenAI's strict Structured Outputs take
 * it, which DSPy applies to a generated schema before sending it (both the native and the LiteLLM engine).
 */
export function strictJsonSchema(schema: unknown, root?: Schema): unknown {
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) return schema;
  const rootSchema = root ?? (schema as Schema);
  let out: Schema = { ...(schema as Schema) };
  for (const key of ["$defs", "definitions"]) {
    const defs = out[key];
    if (defs !== null && typeof defs === "object" && !Array.isArray(defs)) {
      out[key] = Object.fromEntries(Object.entries(defs as Schema).map(([k, v]) => [k, strictJsonSchema(v, rootSchema)]));
    }
  }
  if (out.type === "object" && !("additionalProperties" in out)) out.additionalProperties = false;
  const props = out.properties;
  if (props !== null && typeof props === "object" && !Array.isArray(props)) {
    out.required = Object.keys(props as Schema);
    out.properties = Object.fromEntries(Object.entries(props as Schema).map(([k, v]) => [k, strictJsonSchema(v, rootSchema)]));
  }
  const items = out.items;
  if (items !== null && typeof items === "object" && !Array.isArray(items)) out.items = strictJsonSchema(items, rootSchema);
  if (Array.isArray(out.anyOf)) out.anyOf = out.anyOf.map((s) => strictJsonSchema(s, rootSchema));
  if (Array.isArray(out.allOf)) {
    if (out.allOf.length === 1) {
      const only = strictJsonSchema(out.allOf[0], rootSchema) as Schema;
      delete out.allOf;
      Object.assign(out, only);
    } else {
      out.allOf = out.allOf.map((s) => strictJsonSchema(s, rootSchema));
    }
  }
  if ("default" in out && out.default === null) delete out.default;
  const ref = out.$ref;
  if (typeof ref === "string" && Object.keys(out).length > 1) {
    const resolved = resolveRef(rootSchema, ref);
    if (resolved !== null && typeof resolved === "object") {
      const rest = Object.fromEntries(Object.entries(out).filter(([k]) => k !== "$ref"));
      out = { ...(strictJsonSchema(resolved, rootSchema) as Schema), ...rest };
    }
  }
  return out;
}

function resolveRef(root: Schema, ref: string): unknown {
  if (!ref.startsWith("#/")) throw new Error(`Unexpected $ref format '${ref}'; only internal references are supported`);
  let node: unknown = root;
  for (const part of ref.slice(2).split("/")) {
    node = node !== null && typeof node === "object" ? (node as Schema)[part] : undefined;
    if (node === undefined || node === null) throw new Error(`Could not resolve $ref '${ref}'`);
  }
  return node;
}
