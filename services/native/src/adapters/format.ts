/**
 * Formatting of field values and field lists shared by ChatAdapter and JSONAdapter (dspy/adapters/utils.py
 * `format_field_value`, `get_field_description_string`, `_format_input_list_field_value`, `_format_blob`; and
 * dspy/adapters/_legacy_type_markers.py, which every user message passes through).
 */

import { compileSignature } from "../signature/compiled.js";
import { looseJsonLoads, NOTHING } from "../signature/coerce.js";
import { PyFloat } from "../signature/types.js";
import type { SignatureWire, TypeExpr } from "@dspex/protocol";
import { annotationName, normalizeType } from "./annotations.js";
import { AdapterFormatError } from "./errors.js";
import { isPlainObject, pyJsonDumps, pyStrip, pyStrOf, pyTypeName, serializeForJson } from "./python.js";
import type { AdapterField } from "./signature.js";

/**
 * Marks the numbers that are Python floats in a value of the given type: in a `float` position (a `float`
 * field, a `list[float]` item, ...) a number is a float even when integral, as pydantic makes it; numbers
 * elsewhere are left as they are (an integral number is an int, as JSON and msgpack read it). A PyFloat stays.
 */
export function pythonTyped(value: unknown, type: TypeExpr): unknown {
  if (value instanceof PyFloat || value === null || value === undefined) return value;
  const t = normalizeType(type);
  switch (t.kind) {
    case "float":
      return typeof value === "number" ? new PyFloat(value) : value;
    case "optional":
      return pythonTyped(value, t.inner);
    case "list":
      return Array.isArray(value) ? value.map((v) => pythonTyped(v, t.items)) : value;
    case "dict":
      return isPlainObject(value) ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, pythonTyped(v, t.values)])) : value;
    default:
      return value;
  }
}

/**
 * The inputs as DSPy receives them on the Python path: validated and coerced as the worker's `validate_inputs`
 * does before it calls the module (throws ValidationError as the router does), with the floats pydantic makes
 * marked as PyFloat, so that `float` fields print as DSPy prints them (`3.0`). `signature` is the request's
 * signature (for ChainOfThought, the signature before its extension).
 */
export function workerInputs(signature: SignatureWire, inputs: unknown): Record<string, unknown> {
  const valid = compileSignature(signature).validateInputs(inputs);
  const out: Record<string, unknown> = {};
  for (const f of signature.inputs) if (Object.hasOwn(valid, f.name)) out[f.name] = pythonTyped(valid[f.name], f.type);
  return out;
}

/** Python's `needle in container` for the containers a JSON value can be; TypeError for the others. */
function pyContains(container: unknown, needle: string): boolean {
  if (typeof container === "string") return container.includes(needle);
  if (Array.isArray(container)) return container.some((item) => item === needle);
  if (isPlainObject(container)) return Object.hasOwn(container, needle);
  throw new AdapterFormatError("TypeError", `argument of type '${pyTypeName(container)}' is not iterable`);
}

/** `_format_blob`: one list item of a `str` field, in «guillemets». */
function formatBlob(blob: unknown): string {
  if (!pyContains(blob, "\n") && !pyContains(blob, "«") && !pyContains(blob, "»")) return `«${pyStrOf(blob)}»`;
  if (typeof blob !== "string") throw new AdapterFormatError("AttributeError", `'${pyTypeName(blob)}' object has no attribute 'replace'`);
  return `«««\n    ${blob.replaceAll("\n", "\n    ")}\n»»»`;
}

/** `_format_input_list_field_value`: a list given to a `str` field, as a numbered list. */
function formatListForText(value: readonly unknown[]): string {
  if (value.length === 0) return "N/A";
  if (value.length === 1) return formatBlob(value[0]);
  return value.map((item, i) => `[${i + 1}] ${formatBlob(item)}`).join("\n");
}

/**
 * DSPy's `format_field_value(field_info, value)`: a list for a `str` field becomes a numbered list, lists and
 * dicts become JSON (`json.dumps(..., ensure_ascii=False)`), anything else its Python `str()`.
 */
export function formatFieldValue(type: TypeExpr, value: unknown): string {
  if (Array.isArray(value) && type.kind === "str") return formatListForText(value);
  const jsonable = serializeForJson(value);
  if (Array.isArray(jsonable) || isPlainObject(jsonable)) return pyJsonDumps(jsonable);
  return pyStrOf(jsonable);
}

/** DSPy's `get_field_description_string(fields)`: "1. `name` (type): desc" lines with their constraints. */
export function fieldDescriptions(fields: readonly AdapterField[]): string {
  const lines = fields.map((f, i) => {
    const desc = f.desc !== `\${${f.name}}` ? f.desc : "";
    const constraints = f.constraints ? `\nConstraints: ${f.constraints}` : "";
    return `${i + 1}. \`${f.name}\` (${annotationName(f.type)}): ${desc}${constraints}`;
  });
  return pyStrip(lines.join("\n"));
}

/** Whether a value counts as given: DSPy tests `k in values` (a key holding None is given, as null here). */
export function has(values: Readonly<Record<string, unknown>>, key: string): boolean {
  return Object.hasOwn(values, key) && values[key] !== undefined;
}

/** A part of a user message whose text carried legacy custom-type markers. */
export type ContentPart = { type: "text"; text: string } | Record<string, unknown>;

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  /** Always a string, except a user message whose text held custom-type markers (DSPy splits it into parts). */
  content: string | ContentPart[];
}

const MARKER_START = "<<CUSTOM-TYPE-START-IDENTIFIER>>";
const MARKER = /<<CUSTOM-TYPE-START-IDENTIFIER>>([\s\S]*?)<<CUSTOM-TYPE-END-IDENTIFIER>>/g;

/**
 * `_expand_legacy_custom_type_markers_in_chat_message`: DSPy scans every user message for the markers its
 * custom types (images, audio) used to serialize to, and splits the text into content parts there. Wire types
 * never produce markers, but an input value can contain them, and DSPy would then send parts.
 */
export function expandLegacyMarkers(message: ChatMessage): ChatMessage {
  if (message.role !== "user" || typeof message.content !== "string" || !message.content.includes(MARKER_START)) {
    return message;
  }
  const text = message.content;
  const parts: ContentPart[] = [];
  let last = 0;
  for (const m of text.matchAll(MARKER)) {
    const start = m.index;
    if (start > last) parts.push({ type: "text", text: text.slice(last, start) });
    parts.push(...payloadParts(pyStrip(m[1]!)));
    last = start + m[0].length;
  }
  if (last < text.length) parts.push({ type: "text", text: text.slice(last) });
  return { ...message, content: parts };
}

function payloadParts(payload: string): ContentPart[] {
  const parsed = parseLegacyPayload(payload);
  if (Array.isArray(parsed)) {
    return parsed.map((block) => (isPlainObject(block) ? block : { type: "text", text: pyStrOf(block) }));
  }
  return [{ type: "text", text: payload }];
}

/** `_parse_legacy_payload`: json.loads, then the doubly-quoted form, then json_repair. */
function parseLegacyPayload(payload: string): unknown {
  try {
    return JSON.parse(payload) as unknown;
  } catch {
    // next
  }
  try {
    return JSON.parse(JSON.parse(`"${payload}"`) as string) as unknown;
  } catch {
    // next
  }
  const repaired = looseJsonLoads(payload);
  return repaired === NOTHING ? "" : repaired;
}
