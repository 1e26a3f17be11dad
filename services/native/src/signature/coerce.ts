/**
 * The value-level pieces of DSPy's `parse_value` (dspy/adapters/utils.py), in TypeScript:
 * Python `str()` of a value, a lenient JSON loader standing in for `json_repair.loads`, and
 * `ast.literal_eval` for the literal subset.
 */

import { MAX_JSON_DEPTH, nestingExceeds, REPAIR_LIMIT_CHARS } from "./bounds.js";
import { type Token, TokenCursor, tokenize } from "./pytokens.js";
import { isPySpace, PyFloat, pyFloatRepr, pyNumberRepr, pyRstrip, pyStringRepr } from "./types.js";

/** Python `repr()` of a JSON/msgpack value. */
export function pyRepr(value: unknown): string {
  if (value === null || value === undefined) return "None";
  switch (typeof value) {
    case "string":
      return pyStringRepr(value);
    case "boolean":
      return value ? "True" : "False";
    case "number":
      return pyNumberRepr(value);
    case "bigint":
      return value.toString();
    default:
      break;
  }
  if (value instanceof PyFloat) return pyFloatRepr(value.value);
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(", ")}]`;
  if (value instanceof Uint8Array) {
    let text = "";
    for (let i = 0; i < value.length; i += 8192) text += String.fromCharCode(...value.subarray(i, i + 8192)); // no spread of a huge array
    return `b${pyStringRepr(text)}`;
  }
  if (value instanceof Map) {
    return `{${[...value.entries()].map(([k, v]) => `${pyRepr(k)}: ${pyRepr(v)}`).join(", ")}}`;
  }
  if (typeof value === "object") {
    return `{${Object.entries(value).map(([k, v]) => `${pyStringRepr(k)}: ${pyRepr(v)}`).join(", ")}}`;
  }
  return String(value);
}

/** Python `str()` of a JSON/msgpack value (strings unchanged, everything else its repr). */
export function pyStr(value: unknown): string {
  return typeof value === "string" ? value : pyRepr(value);
}

export interface LooseJsonOptions {
  /**
   * Return the numbers Python would read as floats (`3.0`, `1e3`, `NaN`) as PyFloat, so that `str()` of the
   * result matches Python's. Valid JSON then goes through the lenient parser, which reads it the same way.
   */
  tagFloats?: boolean;
}

/** Marker for "json_repair found nothing" (it returns "" then). */
export const NOTHING: unique symbol = Symbol("nothing");

/**
 * A stand-in for `json_repair.loads(text)`: valid JSON (with Python's NaN/Infinity) parses as JSON; otherwise
 * the first `[`/`{` container in the text is parsed leniently (single quotes, Python True/False/None,
 * trailing commas, bare words, unclosed at the end); otherwise NOTHING. json_repair has many more repair
 * heuristics for badly broken JSON; those are not reproduced.
 */
export function looseJsonLoads(text: string, options: LooseJsonOptions = {}): unknown {
  const tagFloats = options.tagFloats === true;
  if (!tagFloats && mayBeJson(text)) {
    try {
      const value = JSON.parse(text) as unknown;
      // JSON "-0" is the Python int 0; only "-0.0" (or an exponent form) is the float -0.0.
      return Object.is(value, -0) && !/[.eE]/.test(text) ? 0 : value;
    } catch {
      // fall through
    }
  }
  const trimmed = text.trim();
  const float = tagFloats ? (n: number) => new PyFloat(n) : (n: number) => n;
  if (trimmed === "NaN") return float(NaN);
  if (trimmed === "Infinity") return float(Infinity);
  if (trimmed === "-Infinity") return float(-Infinity);
  if (tagFloats && mayBeJson(text)) {
    let value: unknown;
    try {
      value = JSON.parse(text) as unknown;
    } catch {
      value = NOTHING;
    }
    if (value !== NOTHING) {
      // Valid JSON: read it again with the number texts at hand (strictly: no repairs apply to valid JSON).
      const start = text.search(/\S/);
      if (text[start] === "[" || text[start] === "{") return new LenientJson(text, start, true, true).value();
      if (typeof value !== "number") return value;
      if (/[.eE]/.test(trimmed)) return new PyFloat(value);
      return Number.isSafeInteger(value) ? (Object.is(value, -0) ? 0 : value) : BigInt(trimmed);
    }
  }
  // Repairs (json_repair's) read character by character: text longer than this that is not valid JSON is not
  // repaired, so that a huge malformed value costs a bounded time (docs/security.md). Valid JSON of any size
  // was read above.
  if (text.length > REPAIR_LIMIT_CHARS) return NOTHING;
  const start = text.search(/[[{]/);
  if (start < 0) return NOTHING;
  const parser = new LenientJson(text, start, tagFloats);
  let values: unknown[];
  try {
    // json_repair first tries the initial container as strict JSON (json's raw_decode) when text precedes it
    // or non-comma text follows it: a valid object inside prose or code fences is read exactly, without repairs.
    const strict = start !== 0 || nonCommaTrailing(text) ? strictContainer(text, start, tagFloats) : undefined;
    if (strict) {
      values = [strict.value];
      parser.i = strict.end;
    } else {
      values = [parser.value()];
    }
    // Further top-level containers: json_repair collects them into a list, a repeated same-shaped value
    // replacing the previous one (an "update"), an empty one being dropped.
    for (;;) {
      const rest = text.slice(parser.i);
      const offset = rest.search(/[[{]/);
      if (offset < 0) break;
      const commaSeparated = rest.slice(0, offset).trim().startsWith(",");
      parser.i += offset;
      const next = parser.value();
      if (!pyTruthy(next)) continue;
      const last = values[values.length - 1];
      if ((!commaSeparated && sameShape(last, next)) || !pyTruthy(last)) values.pop();
      values.push(next);
    }
  } catch {
    return NOTHING;
  }
  return values.length === 1 ? values[0] : values;
}

/** The container starting at `start` if it is valid JSON (Python's `json.JSONDecoder().raw_decode`), and its end. */
function strictContainer(text: string, start: number, tagFloats: boolean): { value: unknown; end: number } | undefined {
  const open: string[] = [];
  let inString = false;
  let escaped = false;
  for (let i = start; i < text.length; i++) {
    const ch = text[i]!;
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === "\\") escaped = true;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === "{" || ch === "[") open.push(ch === "{" ? "}" : "]");
    else if (ch === "}" || ch === "]") {
      if (open.pop() !== ch) return undefined;
      if (open.length === 0) {
        const slice = text.slice(start, i + 1);
        try {
          const value = JSON.parse(slice) as unknown;
          // Tagging floats needs the number texts: read the (valid) slice again with the tagging parser.
          return { value: tagFloats ? new LenientJson(slice, 0, true, true).value() : value, end: i + 1 };
        } catch {
          return undefined;
        }
      }
    }
  }
  return undefined;
}

/** json_repair's `_initial_container_has_non_comma_trailing_content` for a container at index 0. */
function nonCommaTrailing(text: string): boolean {
  const open: string[] = [];
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === "\\") escaped = true;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    else if (ch === "{" || ch === "[") open.push(ch);
    else if (ch === "}" || ch === "]") {
      const top = open.pop();
      if (top === undefined || ch !== (top === "{" ? "}" : "]")) return false;
      if (open.length === 0) {
        let j = i + 1;
        while (j < text.length && isPySpace(text[j]!)) j++;
        return j < text.length && text[j] !== ",";
      }
    }
  }
  return false;
}

const JSON_START = new Set(["{", "[", '"', "-", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "t", "f", "n"]);

/** False when JSON.parse would certainly fail (a failing JSON.parse costs microseconds). */
function mayBeJson(text: string): boolean {
  let i = 0;
  while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r")) i++;
  const c = text[i];
  if (c === undefined || !JSON_START.has(c)) return false;
  // A single quote outside double-quoted strings is never valid JSON.
  if ((c === "[" || c === "{") && text.includes("'") && !text.includes('"')) return false;
  // Deeper than Python's json can read (its recursion limit): not parsed at all, so that a megabyte of `[`
  // does not build a million nested arrays before failing.
  if ((c === "[" || c === "{") && nestingExceeds(text, i, MAX_JSON_DEPTH)) return false;
  return true;
}


/** Thrown (without a stack trace) by the lenient parsers below. */
const GIVE_UP = Object.freeze({ giveUp: true });

function pyTruthy(v: unknown): boolean {
  if (v instanceof PyFloat) return v.value !== 0;
  if (Array.isArray(v)) return v.length > 0;
  if (v !== null && typeof v === "object") return Object.keys(v).length > 0;
  return Boolean(v);
}

/** json_repair's ObjectComparer.is_same_object: same types and the same structure. */
function sameShape(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameShape(x, b[i]));
  }
  if (a !== null && typeof a === "object") {
    if (b === null || typeof b !== "object") return false;
    const ka = Object.keys(a);
    const ob = b as Record<string, unknown>;
    return (
      ka.length === Object.keys(ob).length &&
      ka.every((k) => k in ob && sameShape((a as Record<string, unknown>)[k], ob[k]))
    );
  }
  return (a === null) === (b === null) && typeof a === typeof b;
}

class LenientJson {
  constructor(
    readonly s: string,
    public i: number,
    readonly tagFloats = false,
    /** The text is known to be valid JSON: no repairs (json_repair's string trimming) apply. */
    readonly valid = false,
  ) {}

  ws(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i]!)) this.i++;
  }

  value(): unknown {
    this.ws();
    const ch = this.s[this.i];
    if (ch === undefined) throw GIVE_UP;
    if (ch === "{") return this.object();
    if (ch === "[") return this.array();
    if (ch === '"' || ch === "'") return this.string(ch);
    return this.bare();
  }

  object(): Record<string, unknown> {
    this.i++;
    const out: Record<string, unknown> = {};
    for (;;) {
      this.ws();
      const ch = this.s[this.i];
      if (ch === undefined) return out;
      if (ch === "}") {
        this.i++;
        return out;
      }
      if (ch === ",") {
        this.i++;
        continue;
      }
      const key = ch === '"' || ch === "'" ? this.string(ch) : this.word(":}");
      this.ws();
      if (this.s[this.i] !== ":") throw GIVE_UP;
      this.i++;
      out[String(key)] = this.value();
    }
  }

  array(): unknown[] {
    this.i++;
    const out: unknown[] = [];
    for (;;) {
      this.ws();
      const ch = this.s[this.i];
      if (ch === undefined || ch === "}") return out; // a '}' closes the enclosing object, as in json_repair
      if (ch === "]") {
        this.i++;
        return out;
      }
      if (ch === ",") {
        this.i++;
        continue;
      }
      out.push(this.value());
    }
  }

  string(quote: string): string {
    this.i++;
    let out = "";
    while (this.i < this.s.length) {
      const ch = this.s[this.i]!;
      if (ch === quote) {
        this.i++;
        // json_repair's _finalize_string_result: a repaired string ending in a newline loses its trailing space.
        return !this.valid && out.endsWith("\n") ? pyRstrip(out) : out;
      }
      if (ch === "\\") {
        const next = this.s[this.i + 1] ?? "";
        const simple: Record<string, string> = { n: "\n", t: "\t", r: "\r", b: "\b", f: "\f", "/": "/", "\\": "\\", '"': '"', "'": "'" };
        if (next === "u" && /^[0-9a-fA-F]{4}$/.test(this.s.slice(this.i + 2, this.i + 6))) {
          out += String.fromCharCode(parseInt(this.s.slice(this.i + 2, this.i + 6), 16));
          this.i += 6;
          continue;
        }
        out += simple[next] ?? next;
        this.i += 2;
        continue;
      }
      out += ch;
      this.i++;
    }
    return pyRstrip(out); // no closing quote: json_repair strips the end
  }

  word(stops: string): string {
    const begin = this.i;
    while (this.i < this.s.length && !stops.includes(this.s[this.i]!) && this.s[this.i] !== ",") this.i++;
    return this.s.slice(begin, this.i).trim();
  }

  bare(): unknown {
    const word = this.word("]}");
    if (word === "") throw GIVE_UP;
    switch (word) {
      case "true":
      case "True":
        return true;
      case "false":
      case "False":
        return false;
      case "null":
      case "None":
        return null;
      case "NaN":
        return this.tagFloats ? new PyFloat(NaN) : NaN;
      case "Infinity":
        return this.tagFloats ? new PyFloat(Infinity) : Infinity;
      case "-Infinity":
        return this.tagFloats ? new PyFloat(-Infinity) : -Infinity;
      default:
        break;
    }
    if (/^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/.test(word)) {
      const n = Number(word);
      if (this.tagFloats && /[.eE]/.test(word)) return new PyFloat(n);
      // Python ints have every digit: where str() of the value shows them, keep them.
      if (this.tagFloats && !Number.isSafeInteger(n)) return BigInt(word);
      return Object.is(n, -0) && !/[.eE]/.test(word) ? 0 : n;
    }
    return word;
  }
}

/** `ast.literal_eval(text)` for the literal subset (numbers, strings, True/False/None, tuples, lists, dicts). */
export function literalEval(text: string): { ok: true; value: unknown } | { ok: false } {
  // bounded work: a Python literal longer than the repair limit is not evaluated (docs/security.md)
  if (text.length > REPAIR_LIMIT_CHARS) return { ok: false };
  let tokens: Token[];
  try {
    const stripped = text.replace(/^[ \t]+/, "");
    tokens = tokenize(stripped);
  } catch {
    return { ok: false };
  }
  const p = new LiteralParser(tokens);
  try {
    const value = p.top();
    return { ok: true, value };
  } catch {
    return { ok: false };
  }
}

class LiteralParser extends TokenCursor {
  top(): unknown {
    const first = this.expr();
    if (this.isOp(",")) {
      const items = [first];
      while (this.isOp(",")) {
        this.next();
        if (this.peek().t === "end") break;
        items.push(this.expr());
      }
      this.expectEnd();
      return items;
    }
    this.expectEnd();
    return first;
  }

  expectEnd(): void {
    if (this.peek().t !== "end") throw GIVE_UP;
  }

  expr(): unknown {
    const tok = this.next();
    switch (tok.t) {
      case "number":
        if (tok.imaginary) throw GIVE_UP;
        return tok.value;
      case "string": {
        if (tok.bytes || tok.fstring) throw GIVE_UP;
        let value = tok.value;
        while (this.peek().t === "string") {
          const more = this.next() as Extract<Token, { t: "string" }>;
          if (more.bytes || more.fstring) throw GIVE_UP;
          value += more.value;
        }
        return value;
      }
      case "name":
        if (tok.value === "True") return true;
        if (tok.value === "False") return false;
        if (tok.value === "None") return null;
        throw GIVE_UP;
      case "op":
        if (tok.value === "-" || tok.value === "+") {
          const operand = this.expr();
          if (typeof operand !== "number") throw GIVE_UP;
          return tok.value === "-" ? -operand : operand;
        }
        if (tok.value === "(") return this.seq(")", true);
        if (tok.value === "[") return this.seq("]", false);
        if (tok.value === "{") return this.brace();
        throw GIVE_UP;
      default:
        throw GIVE_UP;
    }
  }

  seq(closer: string, tuple: boolean): unknown {
    const items: unknown[] = [];
    let comma = false;
    while (!this.isOp(closer)) {
      items.push(this.expr());
      comma = false;
      if (this.isOp(",")) {
        this.next();
        comma = true;
      } else if (!this.isOp(closer)) {
        throw GIVE_UP;
      }
    }
    this.next();
    if (tuple && items.length === 1 && !comma) return items[0];
    return items;
  }

  brace(): unknown {
    if (this.isOp("}")) {
      this.next();
      return {};
    }
    const first = this.expr();
    if (this.isOp(":")) {
      const out: Record<string, unknown> = {};
      let key = first;
      for (;;) {
        this.next(); // ':'
        if (typeof key !== "string" && typeof key !== "number" && typeof key !== "boolean" && key !== null) {
          throw GIVE_UP;
        }
        out[typeof key === "string" ? key : pyRepr(key)] = this.expr();
        if (this.isOp(",")) this.next();
        if (this.isOp("}")) {
          this.next();
          return out;
        }
        key = this.expr();
        if (!this.isOp(":")) throw GIVE_UP;
      }
    }
    const items = [first];
    while (this.isOp(",")) {
      this.next();
      if (this.isOp("}")) break;
      items.push(this.expr());
    }
    if (!this.isOp("}")) throw GIVE_UP;
    this.next();
    return items; // a set; pydantic turns it into a list
  }
}
