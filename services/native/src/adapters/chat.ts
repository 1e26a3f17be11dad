/**
 * DSPy 3.4.1's ChatAdapter (dspy/adapters/chat_adapter.py with the formatting of dspy/adapters/base.py):
 * messages byte for byte as `ChatAdapter().format(signature, demos, inputs)` makes them, and answers parsed
 * as `ChatAdapter().parse(signature, completion)` parses them. JSONAdapter (json.ts) extends it, as in DSPy.
 *
 * Values are the Python values DSPy would be given, as JSON-like data: an integral number is a Python int, a
 * PyFloat a float. Inputs of a request reach DSPy through the worker's validation, which makes a `float`
 * field's `3` the float `3.0`: workerInputs(signature, inputs) does that step (demos are not validated).
 */

import { parseValue } from "../signature/validate.js";
import type { SignatureWire } from "@dspex/protocol";
import { annotationName, translateFieldType } from "./annotations.js";
import { type AdapterName, AdapterParseError } from "./errors.js";
import {
  type ChatMessage,
  expandLegacyMarkers,
  fieldDescriptions,
  formatFieldValue,
  has,
} from "./format.js";
import { pyDedent, pyLen, pySliceFrom, pySplitlines, pyStrip } from "./python.js";
import { type AdapterField, type AdapterSignature, adapterSignature } from "./signature.js";

/** One few-shot example: values by field name (inputs and outputs; a missing or undefined key is not given). */
export type Demo = Readonly<Record<string, unknown>>;

/**
 * What DSPy knows about the LM that changes the request an adapter makes (dspy/clients/capabilities.py):
 * whether `response_format` is among `lm.supported_params`, and `lm.supports_response_schema`. For a `dspy.LM`
 * both come from DSPy's model catalog (LiteLLM's model map); unknown models have neither.
 */
export interface LMCapabilities {
  responseFormat: boolean;
  responseSchema: boolean;
}

/** The request parameters an adapter adds to the LM call (beyond messages and the LM's own settings). */
export interface RequestParams {
  /** OpenAI chat-completions `response_format`, as DSPy sends it. */
  response_format?:
    | { type: "json_object" }
    | { type: "json_schema"; json_schema: { name: string; schema: Record<string, unknown>; strict: true } };
}

const INCOMPLETE_DEMO_PREFIX = "This is an example of the task, though some input or output fields are not supplied.";
const MISSING_IN_INCOMPLETE_DEMO = "Not supplied for this particular example. ";
const MISSING_IN_COMPLETE_DEMO = "Not supplied for this conversation history message. ";

/** `[[ ## name ## ]]` at the start of a (stripped) line; Python's `\w` is Unicode letters, digits and `_`. */
const FIELD_HEADER = /^\[\[ ## ([\p{L}\p{N}_]+) ## \]\]/u;

export class ChatAdapter {
  readonly name: AdapterName = "ChatAdapter";
  /** ChatAdapter's `use_json_adapter_fallback` (default true): retry with JSONAdapter after a parse failure. */
  readonly useJsonAdapterFallback: boolean;
  private readonly systemMessages = new WeakMap<AdapterSignature, string>();

  constructor(options: { useJsonAdapterFallback?: boolean } = {}) {
    this.useJsonAdapterFallback = options.useJsonAdapterFallback ?? true;
  }

  /** `adapter.format(signature, demos, inputs)`: system message, demo turns, then the user message. */
  format(signature: SignatureWire, demos: readonly Demo[], inputs: Readonly<Record<string, unknown>>): ChatMessage[] {
    const sig = adapterSignature(signature);
    // The system message depends on the signature only: computed once per signature and adapter.
    let system = this.systemMessages.get(sig);
    if (system === undefined) {
      system = this.formatSystemMessage(sig);
      this.systemMessages.set(sig, system);
    }
    const messages: ChatMessage[] = [{ role: "system", content: system }];
    messages.push(...this.formatDemos(sig, demos));
    const content = this.formatUserMessageContent(sig, inputs, "", "", true);
    if (content) messages.push({ role: "user", content });
    return messages.map(expandLegacyMarkers);
  }

  /** The adapter-specific request parameters (ChatAdapter adds none). */
  requestParams(_signature: SignatureWire, _capabilities: LMCapabilities): RequestParams {
    return {};
  }

  formatSystemMessage(sig: AdapterSignature): string {
    return `${this.formatFieldDescription(sig)}\n${this.formatFieldStructure(sig)}\n${this.formatTaskDescription(sig)}`;
  }

  formatFieldDescription(sig: AdapterSignature): string {
    return `Your input fields are:\n${fieldDescriptions(sig.inputs)}\nYour output fields are:\n${fieldDescriptions(sig.outputs)}`;
  }

  formatFieldStructure(sig: AdapterSignature): string {
    const parts = [
      "All interactions will be structured in the following way, with the appropriate values filled in.",
      this.formatFieldsWithValues(placeholders(sig.inputs)),
      this.formatFieldsWithValues(placeholders(sig.outputs)),
      "[[ ## completed ## ]]\n",
    ];
    return pyStrip(parts.join("\n\n"));
  }

  formatTaskDescription(sig: AdapterSignature): string {
    const instructions = pyDedent(sig.instructions);
    const objective = ["", ...pySplitlines(instructions)].join("\n" + " ".repeat(8));
    return `In adhering to this structure, your objective is: ${objective}`;
  }

  formatUserMessageContent(
    sig: AdapterSignature,
    values: Readonly<Record<string, unknown>>,
    prefix = "",
    suffix = "",
    mainRequest = false,
  ): string {
    const parts = [prefix];
    for (const f of sig.inputs) {
      if (has(values, f.name)) parts.push(`[[ ## ${f.name} ## ]]\n${formatFieldValue(f.type, values[f.name])}`);
    }
    if (mainRequest) parts.push(this.userMessageOutputRequirements(sig));
    parts.push(suffix);
    return pyStrip(parts.join("\n\n"));
  }

  userMessageOutputRequirements(sig: AdapterSignature): string {
    const fields = sig.outputs.map((f) => `\`[[ ## ${f.name} ## ]]\`${typeInfo(f)}`).join(", then ");
    return `Respond with the corresponding output fields, starting with the field ${fields}, and then ending with the marker for \`[[ ## completed ## ]]\`.`;
  }

  formatAssistantMessageContent(
    sig: AdapterSignature,
    values: Readonly<Record<string, unknown>>,
    missingFieldMessage?: string,
  ): string {
    const fields = sig.outputs.map((f): [AdapterField, unknown] => [f, has(values, f.name) ? values[f.name] : missingFieldMessage ?? null]);
    return this.formatFieldsWithValues(fields) + "\n\n[[ ## completed ## ]]\n";
  }

  /** ChatAdapter's `format_field_with_value`: `[[ ## name ## ]]` sections. */
  formatFieldsWithValues(fields: ReadonlyArray<[AdapterField, unknown]>): string {
    return pyStrip(fields.map(([f, v]) => `[[ ## ${f.name} ## ]]\n${formatFieldValue(f.type, v)}`).join("\n\n"));
  }

  /**
   * base.py `format_demos`: a demo with every field given (and not None) is complete; one with at least one
   * input and one output key is incomplete and shown with a notice, before the complete ones; others are dropped.
   */
  formatDemos(sig: AdapterSignature, demos: readonly Demo[]): ChatMessage[] {
    const complete: Demo[] = [];
    const incomplete: Demo[] = [];
    const all = [...sig.inputs, ...sig.outputs];
    for (const demo of demos) {
      const isComplete = all.every((f) => has(demo, f.name) && demo[f.name] !== null);
      const hasInput = sig.inputs.some((f) => has(demo, f.name));
      const hasOutput = sig.outputs.some((f) => has(demo, f.name));
      if (isComplete) complete.push(demo);
      else if (hasInput && hasOutput) incomplete.push(demo);
    }
    const messages: ChatMessage[] = [];
    for (const demo of incomplete) {
      messages.push({ role: "user", content: this.formatUserMessageContent(sig, demo, INCOMPLETE_DEMO_PREFIX) });
      messages.push({ role: "assistant", content: this.formatAssistantMessageContent(sig, demo, MISSING_IN_INCOMPLETE_DEMO) });
    }
    for (const demo of complete) {
      messages.push({ role: "user", content: this.formatUserMessageContent(sig, demo) });
      messages.push({ role: "assistant", content: this.formatAssistantMessageContent(sig, demo, MISSING_IN_COMPLETE_DEMO) });
    }
    return messages;
  }

  /**
   * `ChatAdapter.parse(signature, completion)`: the text under each `[[ ## field ## ]]` header (the first
   * header of a field wins; text before any header and under unknown headers is dropped), each value through
   * DSPy's `parse_value`. Throws AdapterParseError when a value does not parse or an output is missing (outputs
   * whose type admits None default to null).
   */
  parse(signature: SignatureWire, completion: string): Record<string, unknown> {
    const sig = adapterSignature(signature);
    const sections: [string | null, string[]][] = [[null, []]];
    for (const line of pySplitlines(completion)) {
      const m = FIELD_HEADER.exec(pyStrip(line));
      if (m) {
        // DSPy takes the rest of the line from the unstripped line at the offset found in the stripped one.
        const remaining = pyStrip(pySliceFrom(line, pyLen(m[0])));
        sections.push([m[1]!, remaining ? [remaining] : []]);
      } else {
        sections[sections.length - 1]![1].push(line);
      }
    }
    const byName = new Map(sig.outputs.map((f) => [f.name, f]));
    const fields = new Map<string, unknown>();
    for (const [name, lines] of sections) {
      if (name === null || fields.has(name)) continue;
      const field = byName.get(name);
      if (field === undefined) continue;
      const text = pyStrip(lines.join("\n"));
      const r = parseValue(field.type, text, name);
      if (!r.ok) {
        const problemText = r.problems.map((p) => p.message).join("; ");
        throw new AdapterParseError({
          adapterName: "ChatAdapter",
          outputNames: [...byName.keys()],
          lmResponse: completion,
          message: `Failed to parse field ${name} with value ${text} from the LM response. Error message: ${problemText}`,
          fieldProblem: { field: name, value: text, problems: r.problems, text: problemText },
        });
      }
      fields.set(name, r.value);
    }
    return checkComplete(sig, fields, "ChatAdapter", completion);
  }
}

/** `{name}` placeholders with their value notes, as the field structure shows them. */
function placeholders(fields: readonly AdapterField[]): Array<[AdapterField, unknown]> {
  return fields.map((f) => [f, translateFieldType(f.name, f.type, f.side)]);
}

/** The output requirement's note on a non-`str` field's type. */
export function typeInfo(f: AdapterField): string {
  return f.type.kind !== "str" ? ` (must be formatted as a valid Python ${annotationName(f.type)})` : "";
}

/**
 * `apply_output_field_defaults` and the completeness check both adapters end with: outputs whose type admits
 * None default to null; if any output is still missing, AdapterParseError listing what was parsed.
 */
export function checkComplete(
  sig: AdapterSignature,
  fields: ReadonlyMap<string, unknown>,
  adapterName: AdapterName,
  lmResponse: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of sig.outputs) {
    if (fields.has(f.name)) out[f.name] = fields.get(f.name);
    else if (f.type.kind === "optional") out[f.name] = null;
  }
  if (Object.keys(out).length !== sig.outputs.length) {
    throw new AdapterParseError({
      adapterName,
      outputNames: sig.outputs.map((f) => f.name),
      lmResponse,
      parsedResult: out,
    });
  }
  return out;
}
