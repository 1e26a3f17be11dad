/**
 * The Python string and JSON behaviour DSPy's adapters rely on, reproduced exactly: `str.splitlines`,
 * `str.expandtabs`, `inspect.cleandoc`, `textwrap.dedent`, `str.title`, `json.dumps(ensure_ascii=False)` with
 * and without `indent`, and pydantic's `serialize_for_json` (non-finite floats inside containers become null).
 * Prompts are compared byte for byte with DSPy's, so none of these may be approximated by the JS equivalent
 * (JS `\s`, `String.prototype.split(/\r?\n/)` and `JSON.stringify` number formatting all differ).
 */

import { pyStr } from "../signature/coerce.js";
import { isPySpace, PyFloat, pyFloatRepr, pyLstrip, pyStrip } from "../signature/types.js";

export { isPySpace, pyLstrip, pyStrip };

/** Line boundaries of `str.splitlines()` (besides `\r\n`, which counts as one). */
const LINE_BREAKS = new Set(["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]);

/** Python `s.splitlines()`: no trailing empty line, `""` gives `[]`. */
export function pySplitlines(s: string): string[] {
  const lines: string[] = [];
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (!LINE_BREAKS.has(ch)) continue;
    lines.push(s.slice(start, i));
    if (ch === "\r" && s[i + 1] === "\n") i++;
    start = i + 1;
  }
  if (start < s.length) lines.push(s.slice(start));
  return lines;
}

/** Python `s.expandtabs(tabsize)`: columns count code points and restart after `\n` and `\r`. */
export function pyExpandTabs(s: string, tabsize = 8): string {
  if (!s.includes("\t")) return s;
  let out = "";
  let column = 0;
  for (const ch of s) {
    if (ch === "\t") {
      if (tabsize > 0) {
        const n = tabsize - (column % tabsize);
        out += " ".repeat(n);
        column += n;
      }
    } else {
      out += ch;
      column = ch === "\n" || ch === "\r" ? 0 : column + 1;
    }
  }
  return out;
}

/** `inspect.cleandoc(doc)` of Python 3.11 (what `Signature.instructions` returns). */
export function pyCleandoc(doc: string): string {
  const lines = pyExpandTabs(doc).split("\n");
  let margin = Infinity;
  for (const line of lines.slice(1)) {
    const content = pyLstrip(line).length;
    // Leading whitespace is all in the BMP, so UTF-16 lengths count it as Python counts code points.
    if (content > 0) margin = Math.min(margin, line.length - content);
  }
  if (lines.length > 0) lines[0] = pyLstrip(lines[0]!);
  if (margin < Infinity) for (let i = 1; i < lines.length; i++) lines[i] = lines[i]!.slice(margin);
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  while (lines.length > 0 && lines[0] === "") lines.shift();
  return lines.join("\n");
}

/**
 * `textwrap.dedent(text)` of Python 3.11. Its regexes use `^`/`$` in MULTILINE mode, which in Python only
 * break at `\n` (JS's `m` flag also breaks at `\r`, U+2028 and U+2029), so lines are split on `\n` here.
 */
export function pyDedent(text: string): string {
  const lines = text.split("\n").map((line) => (/^[ \t]+$/.test(line) ? "" : line));
  let margin: string | undefined;
  for (const line of lines) {
    const m = /^([ \t]*)[^ \t\n]/.exec(line);
    if (!m) continue;
    const indent = m[1]!;
    if (margin === undefined) margin = indent;
    else if (indent.startsWith(margin)) continue;
    else if (margin.startsWith(indent)) margin = indent;
    else {
      for (let i = 0; i < Math.min(margin.length, indent.length); i++) {
        if (margin[i] !== indent[i]) {
          margin = margin.slice(0, i);
          break;
        }
      }
    }
  }
  if (!margin) return lines.join("\n");
  const m = margin;
  return lines.map((line) => (line.startsWith(m) ? line.slice(m.length) : line)).join("\n");
}

const CASED = /[\p{Lu}\p{Ll}\p{Lt}]/u;

/** Python `s.title()`: a cased character after an uncased one is upper-cased, any other is lower-cased. */
export function pyTitle(s: string): string {
  let out = "";
  let previousCased = false;
  for (const ch of s) {
    const cased = CASED.test(ch);
    out += cased ? (previousCased ? ch.toLowerCase() : ch.toUpperCase()) : ch;
    previousCased = cased;
  }
  return out;
}

/** The number of code points in `s` (Python's `len`). */
export function pyLen(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** `s[start:]` with `start` in code points, as Python indexes strings. */
export function pySliceFrom(s: string, start: number): string {
  if (start <= 0) return s;
  let i = 0;
  let seen = 0;
  while (i < s.length && seen < start) {
    const code = s.charCodeAt(i);
    i += code >= 0xd800 && code <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
    seen++;
  }
  return s.slice(i);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof PyFloat) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Whether a JS number stands for a Python int: integral and written without an exponent by JSON.stringify
 * (below 1e21), which is how Python's json reads it. Everything else is a float (as is a PyFloat).
 */
export function isPyInt(n: number): boolean {
  return Number.isInteger(n) && Math.abs(n) < 1e21 && !Object.is(n, -0); // -0 only comes from a float
}

/**
 * Python `repr()` of an int given as a JS number: the digits JSON writes for it (beyond 2^53 those are the
 * shortest round-trip digits, e.g. 2**60 is 1152921504606847000, the int Python reads from that JSON).
 */
function pyIntRepr(n: number): string {
  return String(n);
}

/** The Python type name of a JSON-like value: `int`, `float`, `str`, `list`, `dict`, `bool`, `NoneType`. */
export function pyTypeName(value: unknown): string {
  if (value === null || value === undefined) return "NoneType";
  if (value instanceof PyFloat) return "float";
  if (typeof value === "number") return isPyInt(value) ? "int" : "float";
  if (typeof value === "bigint") return "int";
  if (typeof value === "boolean") return "bool";
  if (typeof value === "string") return "str";
  if (Array.isArray(value)) return "list";
  return "dict";
}

/** Python `str()` of a JSON-like value (PyFloat and non-integral numbers as floats, integral numbers as ints). */
export function pyStrOf(value: unknown): string {
  if (typeof value === "number" && isPyInt(value)) return pyIntRepr(value);
  return pyStr(value);
}

function jsonNumber(n: number, isFloat: boolean): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "Infinity";
  if (n === -Infinity) return "-Infinity";
  return isFloat || !isPyInt(n) ? pyFloatRepr(n) : pyIntRepr(n);
}

/**
 * Python `json.dumps(value, ensure_ascii=False[, indent=indent])`. Strings are escaped as Python escapes
 * them, which with `ensure_ascii=False` is what `JSON.stringify` does for well-formed strings.
 */
export function pyJsonDumps(value: unknown, indent?: number): string {
  return dump(value, indent, 0);
}

function dump(value: unknown, indent: number | undefined, level: number): string {
  if (value === null || value === undefined) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (value instanceof PyFloat) return jsonNumber(value.value, true);
  if (typeof value === "number") return jsonNumber(value, false);
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "string") return JSON.stringify(value);
  let items: string[];
  let open: string;
  let close: string;
  if (Array.isArray(value)) {
    items = value.map((v) => dump(v, indent, level + 1));
    [open, close] = ["[", "]"];
  } else if (isPlainObject(value)) {
    items = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${dump(v, indent, level + 1)}`);
    [open, close] = ["{", "}"];
  } else {
    return JSON.stringify(pyStr(value));
  }
  if (items.length === 0) return open + close;
  if (indent === undefined) return open + items.join(", ") + close;
  const inner = "\n" + " ".repeat(indent * (level + 1));
  return open + inner + items.join("," + inner) + "\n" + " ".repeat(indent * level) + close;
}

/**
 * pydantic's `TypeAdapter(type(value)).dump_python(value, mode="json")` as DSPy's `serialize_for_json` uses it:
 * inside lists and dicts, NaN and infinities become null; a top-level float stays as it is.
 */
export function serializeForJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(nested);
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, nested(v)]));
  return value;
}

function nested(value: unknown): unknown {
  if (value instanceof PyFloat) return Number.isFinite(value.value) ? value : null;
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  return serializeForJson(value);
}
