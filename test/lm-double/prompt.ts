// Reads the prompts DSPy 3.4.1's ChatAdapter and JSONAdapter send, for the LM test double.
//
// What DSPy sends (dspy/adapters/{base,chat_adapter,json_adapter,utils}.py):
//   system message = format_field_description + format_field_structure + format_task_description
//     "Your input fields are:\n1. `question` (str): <desc>\n..."
//     "Your output fields are:\n1. `answer` (str): <desc>\n2. `label` (Literal['a', 'b']): ..."
//     "All interactions will be structured in the following way, ..."
//       ChatAdapter: "[[ ## label ## ]]\n{label}        # note: the value you produce must ..."
//       JSONAdapter: "Outputs will be a JSON object with the following fields.\n\n{ \"label\": \"{label}        # note: ...\" }"
//     "In adhering to this structure, your objective is: ..."
//   then few-shot demos / history as user+assistant pairs, and LAST the user message of the
//   current call: "[[ ## question ## ]]\n<value>\n\n..." followed by an output reminder
//   ("Respond with the corresponding output fields, ..." or "Respond with a JSON object in the following order of fields: ...").

export type LiteralValue = string | number | boolean | null;
export type JsonSchema = { [key: string]: unknown };

/** The type of an output field, as far as the test double needs it to produce a parseable value. */
export type ValueType =
  | { kind: "str" }
  | { kind: "int" }
  | { kind: "float" }
  | { kind: "bool" }
  /** Literal[...] or an Enum: one of these values. */
  | { kind: "choice"; values: LiteralValue[] }
  /** Anything else (list, dict, Optional, pydantic models, ...): DSPy's JSON schema for the field. */
  | { kind: "schema"; schema: JsonSchema };

export interface FieldSpec {
  name: string;
  /** Python annotation name as DSPy prints it, e.g. `list[str]`, `Literal['a', 'b']`. */
  typeName: string;
  description: string;
  /** Text after "# note: the value you produce " in the field structure, if any. */
  note: string | null;
  type: ValueType;
}

export type AdapterKind = "chat" | "json" | "plain";

export type ResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | { type: "json_schema"; name: string | null; schema: JsonSchema };

export interface ParsedPrompt {
  /** chat: answer with [[ ## field ## ]] markers; json: answer with a JSON object; plain: not a DSPy prompt. */
  adapter: AdapterKind;
  inputFields: FieldSpec[];
  outputFields: FieldSpec[];
  /** Input values found in the last user message, by field name (text exactly as DSPy formatted it, trimmed). */
  inputs: Record<string, string>;
  lastUserText: string;
  systemText: string;
  instructions: string;
  responseFormat: ResponseFormat | null;
  /** Number of messages in the request (demos and history included). */
  messageCount: number;
}

const CHAT_REMINDER = "Respond with the corresponding output fields";
const JSON_REMINDER = "Respond with a JSON object in the following order of fields:";
const JSON_STRUCTURE = "Outputs will be a JSON object with the following fields.";
const INPUTS_HEADER = "Your input fields are:\n";
const OUTPUTS_HEADER = "\nYour output fields are:\n";
const STRUCTURE_HEADER = "\nAll interactions will be structured in the following way";
const TASK_HEADER = "In adhering to this structure, your objective is:";
const NOTE_PATTERN = /^\{(\w+)\} {8}# note: the value you produce ([\s\S]*)$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Text of an OpenAI message `content`: a string, or an array of parts of which the text parts count. */
export function messageText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((part) => (isRecord(part) && typeof part["text"] === "string" ? part["text"] : ""))
      .filter((text) => text.length > 0)
      .join("\n");
  }
  return "";
}

/** Index of the `)` closing a type annotation that starts at 0 (the `(` already consumed), or -1. */
function closingParen(text: string): number {
  let depth = 0;
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quote !== null) {
      if (ch === "\\") i++;
      else if (ch === quote) quote = null;
      continue;
    }
    if (ch === "'" || ch === '"') quote = ch;
    else if (ch === "(" || ch === "[" || ch === "{") depth++;
    else if (ch === "]" || ch === "}") depth--;
    else if (ch === ")") {
      if (depth === 0) return i;
      depth--;
    }
  }
  return -1;
}

interface RawField {
  name: string;
  typeName: string;
  description: string;
}

/** Parses DSPy's get_field_description_string output: "1. `name` (type): desc" entries, descs may span lines. */
export function parseFieldList(section: string): RawField[] {
  const fields: RawField[] = [];
  for (const line of section.split("\n")) {
    const match = /^(\d+)\. `(\w+)` \((.*)$/.exec(line);
    if (match && Number(match[1]) === fields.length + 1) {
      const rest = match[3] ?? "";
      const end = closingParen(rest);
      if (end >= 0 && rest[end + 1] === ":") {
        fields.push({ name: match[2] ?? "", typeName: rest.slice(0, end), description: rest.slice(end + 2).trim() });
        continue;
      }
    }
    const last = fields[fields.length - 1];
    if (last) last.description = `${last.description}\n${line}`.trim();
  }
  return fields;
}

/** Field notes ("must be True or False", "must adhere to the JSON schema: {...}") from either adapter's structure section. */
export function extractNotes(systemText: string): Map<string, string> {
  const notes = new Map<string, string>();
  // ChatAdapter: one line per field, "{name}        # note: the value you produce ...".
  for (const line of systemText.split("\n")) {
    const match = NOTE_PATTERN.exec(line);
    if (match?.[1] && match[2] !== undefined) notes.set(match[1], match[2]);
  }
  // JSONAdapter: the same text as values of a JSON object (json.dumps(indent=2)).
  const structureAt = systemText.indexOf(JSON_STRUCTURE);
  if (structureAt >= 0) {
    const start = systemText.indexOf("{", structureAt);
    const taskAt = systemText.indexOf(`\n${TASK_HEADER}`, start);
    const end = systemText.lastIndexOf("}", taskAt >= 0 ? taskAt : systemText.length);
    if (start >= 0 && end > start) {
      try {
        const blob: unknown = JSON.parse(systemText.slice(start, end + 1));
        if (isRecord(blob)) {
          for (const value of Object.values(blob)) {
            if (typeof value !== "string") continue;
            const match = NOTE_PATTERN.exec(value);
            if (match?.[1] && match[2] !== undefined) notes.set(match[1], match[2]);
          }
        }
      } catch {
        // Not the JSON DSPy writes; the annotation names still give the types.
      }
    }
  }
  return notes;
}

/** Splits a comma-separated list at depth 0, honouring Python quotes. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let current = "";
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] ?? "";
    if (quote !== null) {
      current += ch;
      if (ch === "\\" && i + 1 < text.length) current += text[++i];
      else if (ch === quote) quote = null;
      continue;
    }
    if (ch === "'" || ch === '"') quote = ch;
    else if (ch === "[" || ch === "(" || ch === "{") depth++;
    else if (ch === "]" || ch === ")" || ch === "}") depth--;
    if (ch === "," && depth === 0) {
      parts.push(current.trim());
      current = "";
      continue;
    }
    current += ch;
  }
  if (current.trim().length > 0) parts.push(current.trim());
  return parts;
}

function pythonLiteral(token: string): LiteralValue {
  const quote = token[0];
  if ((quote === "'" || quote === '"') && token.endsWith(quote) && token.length >= 2) {
    return token.slice(1, -1).replace(/\\(.)/g, "$1");
  }
  if (token === "True") return true;
  if (token === "False") return false;
  if (token === "None") return null;
  const number = Number(token);
  return Number.isFinite(number) && token.trim() !== "" ? number : token;
}

/** Splits `name[args]` into name and its top-level args. */
function splitGeneric(typeName: string): { head: string; args: string[] } {
  const open = typeName.indexOf("[");
  if (open < 0 || !typeName.endsWith("]")) return { head: typeName.trim(), args: [] };
  return { head: typeName.slice(0, open).trim(), args: splitTopLevel(typeName.slice(open + 1, -1)) };
}

/** A JSON schema for a Python annotation name, for when DSPy gave no note (only simple shapes). */
function annotationSchema(typeName: string): JsonSchema | null {
  const { head, args } = splitGeneric(typeName);
  switch (head) {
    case "str":
      return { type: "string" };
    case "int":
      return { type: "integer" };
    case "float":
      return { type: "number" };
    case "bool":
      return { type: "boolean" };
    case "NoneType":
      return { type: "null" };
    case "Literal":
      return { enum: args.map(pythonLiteral) };
    case "list":
    case "List":
    case "set":
    case "Set":
    case "frozenset": {
      const item = args[0] ? annotationSchema(args[0]) : {};
      return { type: "array", items: item ?? {} };
    }
    case "tuple":
    case "Tuple":
      return { type: "array", prefixItems: args.filter((a) => a !== "...").map((a) => annotationSchema(a) ?? {}) };
    case "dict":
    case "Dict": {
      const value = args[1] ? annotationSchema(args[1]) : null;
      return { type: "object", additionalProperties: value ?? true };
    }
    case "Optional":
    case "Union":
      return { anyOf: args.map((a) => annotationSchema(a) ?? {}) };
    default:
      return null;
  }
}

/** The value type of an output field: DSPy's note first (authoritative), then the annotation name. */
export function resolveType(typeName: string, note: string | null): ValueType {
  if (note !== null) {
    if (/^must be True or False$/.test(note)) return { kind: "bool" };
    if (/^must be a single int value$/.test(note)) return { kind: "int" };
    if (/^must be a single float value$/.test(note)) return { kind: "float" };
    const literal = /^must exactly match \(no extra characters\) one of: ([\s\S]*)$/.exec(note);
    if (literal) {
      const { head, args } = splitGeneric(typeName);
      if (head === "Literal" && args.length > 0) return { kind: "choice", values: args.map(pythonLiteral) };
      return { kind: "choice", values: (literal[1] ?? "").split("; ") };
    }
    const enumMatch = /^must be one of: ([\s\S]*)$/.exec(note);
    if (enumMatch) return { kind: "choice", values: (enumMatch[1] ?? "").split("; ") };
    const schemaMatch = /^must adhere to the JSON schema: ([\s\S]*)$/.exec(note);
    if (schemaMatch) {
      try {
        const schema: unknown = JSON.parse(schemaMatch[1] ?? "");
        if (isRecord(schema)) return { kind: "schema", schema };
      } catch {
        // fall through to the annotation
      }
    }
  }
  const { head, args } = splitGeneric(typeName);
  if (head === "str") return { kind: "str" };
  if (head === "int") return { kind: "int" };
  if (head === "float") return { kind: "float" };
  if (head === "bool") return { kind: "bool" };
  if (head === "Literal" && args.length > 0) return { kind: "choice", values: args.map(pythonLiteral) };
  const schema = annotationSchema(typeName);
  if (schema !== null) return { kind: "schema", schema };
  return { kind: "str" };
}

/**
 * Input values of a user message formatted by DSPy: "[[ ## name ## ]]\nvalue" sections, with the
 * trailing output reminder removed. Only headers naming known input fields split sections (any header
 * when none are known).
 */
export function parseUserInputs(text: string, inputNames: readonly string[]): Record<string, string> {
  const known = new Set(inputNames);
  const sections: Array<{ name: string; lines: string[] }> = [];
  for (const line of text.split("\n")) {
    const match = /^\[\[ ## (\w+) ## \]\]$/.exec(line.trim());
    if (match?.[1] && (known.size === 0 || known.has(match[1]))) {
      sections.push({ name: match[1], lines: [] });
    } else {
      sections[sections.length - 1]?.lines.push(line);
    }
  }
  const inputs: Record<string, string> = {};
  for (const section of sections) {
    let value = section.lines.join("\n");
    for (const reminder of [CHAT_REMINDER, JSON_REMINDER]) {
      const at = value.lastIndexOf(`\n\n${reminder}`);
      if (at >= 0) value = value.slice(0, at);
      else if (value.startsWith(reminder)) value = "";
    }
    if (!(section.name in inputs)) inputs[section.name] = value.trim();
  }
  return inputs;
}

function parseResponseFormat(raw: unknown): ResponseFormat | null {
  if (!isRecord(raw)) return null;
  if (raw["type"] === "json_object") return { type: "json_object" };
  if (raw["type"] === "text") return { type: "text" };
  if (raw["type"] === "json_schema") {
    const inner = isRecord(raw["json_schema"]) ? raw["json_schema"] : {};
    const schema = isRecord(inner["schema"]) ? inner["schema"] : {};
    return { type: "json_schema", name: typeof inner["name"] === "string" ? inner["name"] : null, schema };
  }
  return null;
}

/** Reads a chat-completions request body as the prompt DSPy built. */
export function parsePrompt(body: Record<string, unknown>): ParsedPrompt {
  const messages = Array.isArray(body["messages"]) ? body["messages"].filter(isRecord) : [];
  const system = messages.find((m) => m["role"] === "system" || m["role"] === "developer");
  const systemText = system ? messageText(system["content"]) : "";
  const lastUser = [...messages].reverse().find((m) => m["role"] === "user");
  const lastUserText = lastUser ? messageText(lastUser["content"]) : "";
  const responseFormat = parseResponseFormat(body["response_format"]);

  let inputRaw: RawField[] = [];
  let outputRaw: RawField[] = [];
  let instructions = "";
  const inputsAt = systemText.indexOf(INPUTS_HEADER);
  const outputsAt = inputsAt >= 0 ? systemText.indexOf(OUTPUTS_HEADER, inputsAt) : -1;
  if (inputsAt >= 0 && outputsAt >= 0) {
    const structureAt = systemText.indexOf(STRUCTURE_HEADER, outputsAt);
    inputRaw = parseFieldList(systemText.slice(inputsAt + INPUTS_HEADER.length, outputsAt));
    outputRaw = parseFieldList(
      systemText.slice(outputsAt + OUTPUTS_HEADER.length, structureAt >= 0 ? structureAt : undefined),
    );
    const taskAt = systemText.indexOf(TASK_HEADER, outputsAt);
    if (taskAt >= 0) instructions = systemText.slice(taskAt + TASK_HEADER.length).replace(/\s+/g, " ").trim();
  }
  const notes = extractNotes(systemText);
  const toSpec = (raw: RawField, output: boolean): FieldSpec => {
    const note = output ? (notes.get(raw.name) ?? null) : null;
    return { ...raw, note, type: output ? resolveType(raw.typeName, note) : { kind: "str" } };
  };
  const inputFields = inputRaw.map((f) => toSpec(f, false));
  const outputFields = outputRaw.map((f) => toSpec(f, true));

  let adapter: AdapterKind = "plain";
  if (
    systemText.includes(JSON_STRUCTURE) ||
    lastUserText.includes(JSON_REMINDER) ||
    responseFormat?.type === "json_object" ||
    responseFormat?.type === "json_schema"
  ) {
    adapter = "json";
  } else if (outputFields.length > 0 || systemText.includes("[[ ## completed ## ]]")) {
    adapter = "chat";
  }

  const inputs = parseUserInputs(
    lastUserText,
    inputFields.map((f) => f.name),
  );
  return {
    adapter,
    inputFields,
    outputFields,
    inputs: adapter === "plain" && inputFields.length === 0 ? {} : inputs,
    lastUserText,
    systemText,
    instructions,
    responseFormat,
    messageCount: messages.length,
  };
}
