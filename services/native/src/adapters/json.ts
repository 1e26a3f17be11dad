/**
 * DSPy 3.4.1's JSONAdapter (dspy/adapters/json_adapter.py): ChatAdapter's messages with a JSON output
 * structure, answers parsed from a JSON object, and the `response_format` DSPy asks the LM for.
 */

import { looseJsonLoads } from "../signature/coerce.js";
import { needsFloatTags, parseValue } from "../signature/validate.js";
import type { SignatureWire } from "@dspex/protocol";
import { STRUCTURED_OUTPUTS_NAME, strictJsonSchema, structuredOutputsSchema, translateFieldType } from "./annotations.js";
import { type AdapterName, AdapterParseError } from "./errors.js";
import { ChatAdapter, checkComplete, type LMCapabilities, type RequestParams, typeInfo } from "./chat.js";
import { has } from "./format.js";
import { isPlainObject, pyJsonDumps, pyStrip, pyStrOf, serializeForJson } from "./python.js";
import { type AdapterField, type AdapterSignature, adapterSignature } from "./signature.js";

export class JSONAdapter extends ChatAdapter {
  override readonly name: AdapterName = "JSONAdapter";

  /**
   * `_prepare_response_format`: nothing when the LM does not take `response_format`; `json_object` when an
   * output is a dict (Structured Outputs need declared properties) or the LM has no response schemas; else
   * the outputs' JSON Schema in strict mode. DSPy sets this on the JSONAdapter call only (also when ChatAdapter
   * falls back to JSONAdapter).
   */
  override requestParams(signature: SignatureWire, capabilities: LMCapabilities): RequestParams {
    if (!capabilities.responseFormat) return {};
    const outputs = adapterSignature(signature).outputs;
    if (outputs.some((f) => f.type.kind === "dict") || !capabilities.responseSchema) {
      return { response_format: { type: "json_object" } };
    }
    let schema = schemas.get(outputs);
    if (schema === undefined) {
      schema = strictJsonSchema(structuredOutputsSchema(outputs)) as Record<string, unknown>;
      schemas.set(outputs, schema);
    }
    // A fresh copy per request: callers may serialize or extend it, the cached one must stay DSPy's.
    return {
      response_format: { type: "json_schema", json_schema: { name: STRUCTURED_OUTPUTS_NAME, schema: structuredClone(schema), strict: true } },
    };
  }

  override formatFieldStructure(sig: AdapterSignature): string {
    const parts = [
      "All interactions will be structured in the following way, with the appropriate values filled in.",
      "Inputs will have the following structure:",
      this.formatFieldsWithValues(sig.inputs.map((f) => [f, translateFieldType(f.name, f.type, f.side)])),
      "Outputs will be a JSON object with the following fields.",
      jsonObject(sig.outputs.map((f) => [f, translateFieldType(f.name, f.type, f.side)])),
    ];
    return pyStrip(parts.join("\n\n"));
  }

  override userMessageOutputRequirements(sig: AdapterSignature): string {
    return `Respond with a JSON object in the following order of fields: ${sig.outputs.map((f) => `\`${f.name}\`${typeInfo(f)}`).join(", then ")}.`;
  }

  override formatAssistantMessageContent(
    sig: AdapterSignature,
    values: Readonly<Record<string, unknown>>,
    missingFieldMessage?: string,
  ): string {
    return jsonObject(sig.outputs.map((f) => [f, has(values, f.name) ? values[f.name] : missingFieldMessage ?? null]));
  }

  /**
   * `JSONAdapter.parse(signature, completion)`: json_repair's reading of the completion (or of its first
   * balanced `{...}` when that is not an object), the output fields among its keys through `parse_value`.
   */
  override parse(signature: SignatureWire, completion: string): Record<string, unknown> {
    const sig = adapterSignature(signature);
    const outputNames = sig.outputs.map((f) => f.name);
    let text = completion;
    let parsed = looseJsonLoads(text);
    if (!isPlainObject(parsed)) {
      const braces = firstBalancedBraces(text);
      if (braces !== undefined) {
        text = braces; // DSPy reports this substring as the LM response from here on
        parsed = looseJsonLoads(text);
      }
    }
    if (!isPlainObject(parsed)) {
      throw new AdapterParseError({
        adapterName: "JSONAdapter",
        outputNames,
        lmResponse: text,
        message: "LM response cannot be serialized to a JSON object.",
      });
    }
    const byName = new Map(sig.outputs.map((f) => [f.name, f]));
    const fields = new Map<string, unknown>(Object.entries(parsed).filter(([k]) => byName.has(k)));
    let tagged: Record<string, unknown> | undefined;
    // Where Python's int/float distinction shows, which JSON.parse loses, the value is read again with its floats
    // marked: `str(value)` of a non-string for a str output (`3.0`, `[1.0]`), and Literals holding both 1 and True.
    const retagged = (name: string, value: unknown): unknown => {
      if (tagged === undefined) {
        const again = looseJsonLoads(text, { tagFloats: true });
        tagged = isPlainObject(again) ? again : {};
      }
      return Object.hasOwn(tagged, name) ? tagged[name] : value;
    };
    for (const [name, value] of fields) {
      const field = byName.get(name)!;
      let r;
      if (field.type.kind === "str" && typeof value !== "string" && containsNumber(value)) {
        r = { ok: true as const, value: pyStrOf(retagged(name, value)) };
      } else {
        r = parseValue(field.type, needsFloatTags(field.type) && containsNumber(value) ? retagged(name, value) : value, name);
      }
      if (!r.ok) {
        const problemText = r.problems.map((p) => p.message).join("; ");
        throw new AdapterParseError({
          adapterName: this.name,
          outputNames,
          lmResponse: text,
          message: `Failed to parse field ${name}: ${problemText}`,
          parsedResult: Object.fromEntries(fields),
          fieldProblem: { field: name, value, problems: r.problems, text: problemText },
        });
      }
      fields.set(name, r.value);
    }
    return checkComplete(sig, fields, "JSONAdapter", text);
  }
}

/** The strict Structured Outputs schema per signature (its outputs array is frozen and cached with it). */
const schemas = new WeakMap<readonly AdapterField[], Record<string, unknown>>();

/** JSONAdapter's assistant-side `format_field_with_value`: `json.dumps(..., indent=2, ensure_ascii=False)`. */
function jsonObject(fields: ReadonlyArray<[AdapterField, unknown]>): string {
  const values = Object.fromEntries(fields.map(([f, v]) => [f.name, v]));
  return pyJsonDumps(serializeForJson(values), 2);
}

function containsNumber(value: unknown): boolean {
  if (typeof value === "number") return true;
  if (Array.isArray(value)) return value.some(containsNumber);
  if (isPlainObject(value)) return Object.values(value).some(containsNumber);
  return false;
}

/**
 * The first match of DSPy's recursive pattern `\{(?:[^{}]|(?R))*\}`: the balanced `{...}` that starts leftmost.
 * Braces pair up as on a stack, so the leftmost opening brace that gets closed is the match's start.
 */
export function firstBalancedBraces(text: string): string | undefined {
  const open: number[] = [];
  let best: [number, number] | undefined;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === "{") open.push(i);
    else if (ch === "}" && open.length > 0) {
      const start = open.pop()!;
      if (best === undefined || start < best[0]) best = [start, i];
    }
  }
  return best === undefined ? undefined : text.slice(best[0], best[1] + 1);
}
