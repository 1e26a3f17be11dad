// Deterministic answers of the LM test double: the same prompt always gets the same answer.
import type { FieldSpec, JsonSchema, LiteralValue, ParsedPrompt, ValueType } from "./prompt.js";

/** Assistant text for the `malformed` failure mode: no [[ ## field ## ]] markers and no JSON object. */
export const MALFORMED_REPLY =
  "The LM test double was told to answer in a malformed way, so this reply has no field markers and no JSON object.";

const ANSWER_LIKE = /^(answer|result|solution|output|value|total|sum|product|difference|quotient|number)$|answer/i;
const REASONING_LIKE = /^(reasoning|rationale|thought|thoughts|explanation)$/i;
const STOP_WORDS = new Set([
  "the", "and", "what", "which", "who", "how", "why", "when", "where", "for", "with", "that", "this",
  "from", "are", "was", "were", "does", "did", "into", "about", "is", "of",
]);

/** 32-bit FNV-1a over UTF-16 code units. */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Arithmetic: "What is 2+3?" -> 5, "What is (2 + 3) * 4?" -> 20, "12 divided by 4" -> 3.

type Token = { kind: "num"; value: number } | { kind: "op"; value: string };

function tokenize(expression: string): Token[] | null {
  const tokens: Token[] = [];
  const pattern = /\s*(?:(\d+(?:\.\d+)?|\.\d+)|(\*\*|[-+*/^()]))/y;
  let at = 0;
  while (at < expression.length) {
    if (/^\s*$/.test(expression.slice(at))) break;
    pattern.lastIndex = at;
    const match = pattern.exec(expression);
    if (!match) return null;
    if (match[1] !== undefined) tokens.push({ kind: "num", value: Number(match[1]) });
    else tokens.push({ kind: "op", value: match[2] === "**" ? "^" : (match[2] ?? "") });
    at = pattern.lastIndex;
  }
  return tokens;
}

function evaluate(tokens: Token[]): number | null {
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const isOp = (value: string): boolean => {
    const token = peek();
    return token?.kind === "op" && token.value === value;
  };
  const expr = (): number => {
    let value = term();
    while (isOp("+") || isOp("-")) {
      const op = tokens[pos++]?.value;
      const right = term();
      value = op === "+" ? value + right : value - right;
    }
    return value;
  };
  const term = (): number => {
    let value = power();
    while (isOp("*") || isOp("/")) {
      const op = tokens[pos++]?.value;
      const right = power();
      value = op === "*" ? value * right : value / right;
    }
    return value;
  };
  const power = (): number => {
    const base = unary();
    if (isOp("^")) {
      pos++;
      return base ** power();
    }
    return base;
  };
  const unary = (): number => {
    if (isOp("-")) {
      pos++;
      return -unary();
    }
    if (isOp("+")) {
      pos++;
      return unary();
    }
    return primary();
  };
  const primary = (): number => {
    const token = tokens[pos++];
    if (token?.kind === "num") return token.value;
    if (token?.kind === "op" && token.value === "(") {
      const value = expr();
      if (!isOp(")")) throw new Error("unbalanced");
      pos++;
      return value;
    }
    throw new Error("unexpected token");
  };
  try {
    const value = expr();
    return pos === tokens.length && Number.isFinite(value) ? value : null;
  } catch {
    return null;
  }
}

export interface Arithmetic {
  expression: string;
  value: number;
}

/** The first arithmetic expression in the text (at least one operator between numbers), evaluated. */
export function solveArithmetic(text: string): Arithmetic | null {
  const normalised = text
    .toLowerCase()
    .replace(/\bmultiplied by\b|\btimes\b/g, "*")
    .replace(/\bdivided by\b/g, "/")
    .replace(/\bplus\b/g, "+")
    .replace(/\bminus\b/g, "-")
    .replace(/×/g, "*")
    .replace(/÷/g, "/")
    .replace(/(\d)\s*x\s*(?=\d)/g, "$1*");
  for (const match of normalised.matchAll(/[\d.+\-*/^()\s]+/g)) {
    const candidate = match[0].trim().replace(/[-+*/^(\s]+$/, "");
    if (!/\d[\s)]*(?:\*\*|[-+*/^])[\s(+-]*[\d.(]/.test(candidate)) continue;
    const tokens = tokenize(candidate);
    if (tokens === null) continue;
    const value = evaluate(tokens);
    if (value !== null) return { expression: candidate.replace(/\s+/g, " "), value };
  }
  return null;
}

export function formatNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : String(Number.parseFloat(value.toFixed(6)));
}

// ---------------------------------------------------------------------------------------------
// Values per output field.

interface Context {
  /** The main input: `question` if present, else the first input value, else the last user message. */
  subject: string;
  /** Canonical text of all inputs, hashed with a field name to choose values deterministically. */
  key: string;
  arithmetic: Arithmetic | null;
  keywords: string[];
}

function oneLine(text: string, max = 160): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

function contextFor(prompt: ParsedPrompt): Context {
  const entries = Object.entries(prompt.inputs);
  const subject = prompt.inputs["question"] ?? entries[0]?.[1] ?? prompt.lastUserText;
  const key =
    entries.length > 0
      ? entries
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([name, value]) => `${name}=${value}`)
          .join("\u0000")
      : prompt.lastUserText;
  const words = subject.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  const keywords = [...new Set(words.filter((w) => w.length >= 3 && !STOP_WORDS.has(w)))].slice(0, 3);
  return { subject: oneLine(subject), key, arithmetic: solveArithmetic(subject), keywords };
}

function pick<T>(values: readonly T[], ctx: Context, salt: string): T | undefined {
  return values.length === 0 ? undefined : values[fnv1a(`${ctx.key}\u0001${salt}`) % values.length];
}

function stringValue(name: string, ctx: Context): string {
  if (REASONING_LIKE.test(name)) {
    return ctx.arithmetic
      ? `Evaluating ${ctx.arithmetic.expression} gives ${formatNumber(ctx.arithmetic.value)}.`
      : `The test double read "${oneLine(ctx.subject, 80)}" and answered deterministically.`;
  }
  if (ANSWER_LIKE.test(name)) {
    return ctx.arithmetic ? formatNumber(ctx.arithmetic.value) : `answer to: ${ctx.subject}`;
  }
  return `${name} for: ${ctx.subject}`;
}

function intValue(name: string, ctx: Context, salt: string): number {
  if (ctx.arithmetic && ANSWER_LIKE.test(name)) return Math.round(ctx.arithmetic.value);
  return 1 + (fnv1a(`${ctx.key}\u0001${salt}`) % 10);
}

function floatValue(name: string, ctx: Context, salt: string): number {
  if (ctx.arithmetic && ANSWER_LIKE.test(name)) return ctx.arithmetic.value;
  return (50 + (fnv1a(`${ctx.key}\u0001${salt}`) % 46)) / 100; // 0.50 .. 0.95
}

function boolValue(ctx: Context, salt: string): boolean {
  return fnv1a(`${ctx.key}\u0001${salt}`) % 2 === 0;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function resolveRef(ref: string, root: JsonSchema): JsonSchema {
  const match = /^#\/(\$defs|definitions)\/(.+)$/.exec(ref);
  const defs = match ? root[match[1] ?? ""] : undefined;
  const target = match && isRecord(defs) ? defs[match[2] ?? ""] : undefined;
  return isRecord(target) ? target : {};
}

/** A value satisfying the JSON schema; `name` is the property the value is for (drives answer/reasoning text). */
export function valueForSchema(
  schema: JsonSchema,
  name: string,
  ctx: Context,
  root: JsonSchema = schema,
  salt: string = name,
  depth = 0,
): unknown {
  if (depth > 12) return null;
  const next = (s: unknown, n: string, sa: string): unknown =>
    valueForSchema(isRecord(s) ? s : {}, n, ctx, root, sa, depth + 1);
  if (typeof schema["$ref"] === "string") return next(resolveRef(schema["$ref"], root), name, salt);
  if ("const" in schema) return schema["const"];
  if (Array.isArray(schema["enum"])) return pick(schema["enum"] as unknown[], ctx, salt) ?? null;
  for (const key of ["anyOf", "oneOf"] as const) {
    const options = schema[key];
    if (Array.isArray(options)) {
      const chosen = options.find((o) => !(isRecord(o) && o["type"] === "null"));
      return chosen === undefined ? null : next(chosen, name, salt);
    }
  }
  if (Array.isArray(schema["allOf"]) && schema["allOf"].length > 0) return next(schema["allOf"][0], name, salt);
  let type = schema["type"];
  if (Array.isArray(type)) type = type.find((t) => t !== "null") ?? "null";
  if (type === undefined && isRecord(schema["properties"])) type = "object";
  if (type === undefined && (schema["items"] !== undefined || schema["prefixItems"] !== undefined)) type = "array";
  switch (type) {
    case "string": {
      switch (schema["format"]) {
        case "date":
          return "2024-01-01";
        case "date-time":
          return "2024-01-01T00:00:00Z";
        case "time":
          return "00:00:00";
        case "uuid":
          return "00000000-0000-4000-8000-000000000000";
        case "email":
          return "test.double@example.com";
        case "uri":
          return "https://example.com/lm-double";
        default:
          return stringValue(name, ctx);
      }
    }
    case "integer":
      return intValue(name, ctx, salt);
    case "number":
      return floatValue(name, ctx, salt);
    case "boolean":
      return boolValue(ctx, salt);
    case "null":
      return null;
    case "array": {
      if (Array.isArray(schema["prefixItems"])) {
        return schema["prefixItems"].map((item, i) => next(item, name, `${salt}[${i}]`));
      }
      const items = isRecord(schema["items"]) ? schema["items"] : {};
      const min = typeof schema["minItems"] === "number" ? schema["minItems"] : 0;
      const max = typeof schema["maxItems"] === "number" ? schema["maxItems"] : Number.POSITIVE_INFINITY;
      let values: unknown[];
      if (items["type"] === "string" && items["enum"] === undefined && items["format"] === undefined) {
        values = ctx.keywords.length > 0 ? [...ctx.keywords] : [`${name} 1`, `${name} 2`];
      } else {
        values = [0, 1].map((i) => next(items, name, `${salt}[${i}]`));
      }
      for (let i = values.length; i < min; i++) values.push(next(items, `${name} ${i + 1}`, `${salt}[${i}]`));
      return values.slice(0, Math.max(min, Math.min(values.length, max)));
    }
    case "object": {
      const result: Record<string, unknown> = {};
      const properties = isRecord(schema["properties"]) ? schema["properties"] : {};
      for (const [prop, propSchema] of Object.entries(properties)) {
        result[prop] = next(propSchema, prop, `${salt}.${prop}`);
      }
      if (Object.keys(properties).length === 0) {
        const additional = schema["additionalProperties"];
        result[name || "key"] = isRecord(additional) ? next(additional, name, `${salt}.*`) : stringValue(name, ctx);
      }
      return result;
    }
    default:
      return stringValue(name, ctx);
  }
}

function valueForType(type: ValueType, name: string, ctx: Context): unknown {
  switch (type.kind) {
    case "str":
      return stringValue(name, ctx);
    case "int":
      return intValue(name, ctx, name);
    case "float":
      return floatValue(name, ctx, name);
    case "bool":
      return boolValue(ctx, name);
    case "choice":
      return pick<LiteralValue>(type.values, ctx, name) ?? null;
    case "schema":
      return valueForSchema(type.schema, name, ctx);
  }
}

/** Generated output values for every output field, with `overrides` (scripted answers) taking precedence. */
export function outputValues(
  prompt: ParsedPrompt,
  fields: readonly FieldSpec[],
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const ctx = contextFor(prompt);
  const values: Record<string, unknown> = {};
  for (const field of fields) {
    values[field.name] = field.name in overrides ? overrides[field.name] : valueForType(field.type, field.name, ctx);
  }
  return values;
}

/** A value as DSPy's ChatAdapter writes it (format_field_value): strings raw, Python-style scalars, JSON otherwise. */
export function chatValue(value: unknown): string {
  if (typeof value === "string") return value;
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return formatNumber(value);
  return JSON.stringify(value);
}

export interface Answer {
  /** Assistant message content. */
  content: string;
  /** Output values the content encodes (null for plain prompts without fields). */
  values: Record<string, unknown> | null;
}

/** The deterministic answer to a prompt, formatted for the adapter that wrote it. */
export function answerPrompt(prompt: ParsedPrompt, overrides: Record<string, unknown> = {}): Answer {
  const fields = prompt.outputFields;
  if (fields.length > 0) {
    const values = outputValues(prompt, fields, overrides);
    if (prompt.adapter === "json") return { content: JSON.stringify(values, null, 2), values };
    const sections = fields.map((f) => `[[ ## ${f.name} ## ]]\n${chatValue(values[f.name])}`);
    return { content: `${sections.join("\n\n")}\n\n[[ ## completed ## ]]`, values };
  }
  const ctx = contextFor(prompt);
  const format = prompt.responseFormat;
  if (format?.type === "json_schema") {
    const generated = valueForSchema(format.schema, format.name ?? "answer", ctx);
    const values = isRecord(generated) ? { ...generated, ...overrides } : generated;
    return { content: JSON.stringify(values, null, 2), values: isRecord(values) ? values : null };
  }
  if (format?.type === "json_object") {
    const values = { answer: stringValue("answer", ctx), ...overrides };
    return { content: JSON.stringify(values, null, 2), values };
  }
  const text = typeof overrides["answer"] === "string" ? overrides["answer"] : stringValue("answer", ctx);
  return { content: text, values: null };
}
