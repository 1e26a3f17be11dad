/**
 * A tokenizer for the small part of Python's expression syntax that signature strings (and `ast.literal_eval`
 * inputs) use: names, numbers, string literals and punctuation. Positions are UTF-16 offsets into the source.
 */

import { IDENT_CONTINUE_RE, IDENT_START_RE } from "./names.js";

export type Token =
  | { readonly t: "name"; readonly value: string; readonly start: number; readonly end: number }
  | {
      readonly t: "number";
      readonly value: number;
      readonly float: boolean;
      readonly imaginary: boolean;
      readonly start: number;
      readonly end: number;
    }
  | {
      readonly t: "string";
      readonly value: string;
      readonly bytes: boolean;
      readonly fstring: boolean;
      readonly start: number;
      readonly end: number;
    }
  | { readonly t: "op"; readonly value: string; readonly start: number; readonly end: number }
  | { readonly t: "end"; readonly start: number; readonly end: number };

export class TokenError extends Error {
  constructor(
    message: string,
    readonly position: number,
    readonly suggestion?: string,
  ) {
    super(message);
  }
}

const OPS = new Set([":", ",", "[", "]", "(", ")", "{", "}", "|", ".", "=", "*", "/", "-", "+", "~", "@", "%", "&", "^", "<", ">", "!", ";"]);
const WS = new Set([" ", "\t", "\n", "\r", "\f", "\v"]);

// Python numeric literals (Lexical analysis, 2.4.5-2.4.7).
const DIGITPART = String.raw`\d(?:_?\d)*`;
const NUMBER_RE = new RegExp(
  String.raw`0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+` +
    String.raw`|(?:(?:${DIGITPART})?\.${DIGITPART}|${DIGITPART}\.?)(?:[eE][+-]?${DIGITPART})?[jJ]?`,
  "y",
);
const DECIMAL_INT_RE = /^(?:[1-9](?:_?\d)*|0(?:_?0)*)$/;

function isIdentStart(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c < 128) return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;
  return IDENT_START_RE.test(ch);
}

function isIdentContinue(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c < 128) return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95;
  return IDENT_CONTINUE_RE.test(ch);
}

/** Tokenizes `src.slice(start, end)`. Throws TokenError on anything Python's tokenizer would reject. */
export function tokenize(src: string, start = 0, end = src.length): Token[] {
  const tokens: Token[] = [];
  let i = start;
  while (i < end) {
    const ch = src[i] ?? "";
    if (WS.has(ch)) {
      i++;
      continue;
    }
    if (ch === "\\" && (src[i + 1] === "\n" || (src[i + 1] === "\r" && src[i + 2] === "\n"))) {
      i += src[i + 1] === "\n" ? 2 : 3; // explicit line joining
      continue;
    }
    if (ch === "#") throw new TokenError("comments are not allowed in a signature", i);
    const cpChar = ch.charCodeAt(0) < 0xd800 ? ch : String.fromCodePoint(src.codePointAt(i) ?? 0);
    if (isIdentStart(cpChar)) {
      let j = i + cpChar.length;
      while (j < end) {
        const unit = src[j] ?? "";
        const c = unit.charCodeAt(0) < 0xd800 ? unit : String.fromCodePoint(src.codePointAt(j) ?? 0);
        if (!isIdentContinue(c)) break;
        j += c.length;
      }
      // String prefixes: r, u, b, f and their two-letter combinations.
      const word = src.slice(i, j);
      const quote = src[j];
      if ((quote === "'" || quote === '"') && /^(?:[rRuUbBfF]|[bBrR][rRbB]|[fFrR][rRfF])$/.test(word)) {
        const lower = word.toLowerCase();
        if (!(lower.length === 2 && (lower === "rr" || lower === "bb" || lower === "ff" || lower === "bf" || lower === "fb"))) {
          const tok = readString(src, i, j, end, lower);
          tokens.push(tok);
          i = tok.end;
          continue;
        }
      }
      // Python NFKC-normalises identifiers; ASCII ones are already normal.
      const value = /^[\x00-\x7f]*$/.test(word) ? word : word.normalize("NFKC");
      tokens.push({ t: "name", value, start: i, end: j });
      i = j;
      continue;
    }
    if (ch === "'" || ch === '"') {
      const tok = readString(src, i, i, end, "");
      tokens.push(tok);
      i = tok.end;
      continue;
    }
    if ((ch >= "0" && ch <= "9") || (ch === "." && /[0-9]/.test(src[i + 1] ?? ""))) {
      NUMBER_RE.lastIndex = i;
      const m = NUMBER_RE.exec(src);
      const raw = m?.[0] ?? "";
      let j = i + raw.length;
      if (j > end) j = end;
      const next = src[j] ?? "";
      if (j < end && (isIdentContinue(next) || next === ".")) {
        throw new TokenError(`invalid number literal '${src.slice(i, j + 1)}'`, i);
      }
      tokens.push(numberToken(raw.slice(0, j - i), i, j));
      i = j;
      continue;
    }
    if (OPS.has(ch)) {
      const two = src.slice(i, i + 2);
      const value = two === "**" || two === "->" || two === "//" ? two : ch;
      tokens.push({ t: "op", value, start: i, end: i + value.length });
      i += value.length;
      continue;
    }
    throw new TokenError(`unexpected character '${cpChar}'`, i);
  }
  tokens.push({ t: "end", start: end, end });
  return tokens;
}

function numberToken(raw: string, start: number, end: number): Token {
  const imaginary = /[jJ]$/.test(raw);
  const body = (imaginary ? raw.slice(0, -1) : raw).replace(/_/g, "");
  const lower = body.toLowerCase();
  if (lower.startsWith("0x") || lower.startsWith("0o") || lower.startsWith("0b")) {
    const radix = lower[1] === "x" ? 16 : lower[1] === "o" ? 8 : 2;
    return { t: "number", value: parseInt(body.slice(2), radix), float: false, imaginary, start, end };
  }
  const isFloat = /[.eE]/.test(body);
  if (!isFloat && !imaginary && !DECIMAL_INT_RE.test(raw)) {
    throw new TokenError("leading zeros in decimal integer literals are not permitted", start);
  }
  return { t: "number", value: Number(body), float: isFloat, imaginary, start, end };
}

function readString(src: string, start: number, quoteAt: number, end: number, prefix: string): Token {
  const raw = prefix.includes("r");
  const bytes = prefix.includes("b");
  const fstring = prefix.includes("f");
  const q = src[quoteAt] ?? "'";
  const triple = src.slice(quoteAt, quoteAt + 3) === q.repeat(3);
  const delim = triple ? q.repeat(3) : q;
  let i = quoteAt + delim.length;
  let value = "";
  for (;;) {
    if (i >= end) throw new TokenError("unterminated string literal", start);
    const ch = src[i] ?? "";
    if (src.startsWith(delim, i)) {
      i += delim.length;
      break;
    }
    if (!triple && (ch === "\n" || ch === "\r")) throw new TokenError("unterminated string literal", start);
    if (ch === "\\") {
      const next = src[i + 1];
      if (next === undefined || i + 1 >= end) throw new TokenError("unterminated string literal", start);
      if (raw) {
        value += ch + next;
        i += 2;
        continue;
      }
      const esc = readEscape(src, i, bytes);
      value += esc.text;
      i = esc.end;
      continue;
    }
    if (bytes && (src.codePointAt(i) ?? 0) > 0x7f) {
      throw new TokenError("bytes can only contain ASCII literal characters", i);
    }
    value += ch;
    i++;
  }
  return { t: "string", value, bytes, fstring, start, end: i };
}

const SIMPLE_ESCAPES: Record<string, string> = {
  "\\": "\\", "'": "'", '"': '"', a: "\x07", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v",
};

function readEscape(src: string, i: number, bytes: boolean): { text: string; end: number } {
  const next = src[i + 1] ?? "";
  if (next === "\n") return { text: "", end: i + 2 };
  if (next === "\r") return { text: "", end: src[i + 2] === "\n" ? i + 3 : i + 2 };
  const simple = SIMPLE_ESCAPES[next];
  if (simple !== undefined) return { text: simple, end: i + 2 };
  if (/[0-7]/.test(next)) {
    const m = /^[0-7]{1,3}/.exec(src.slice(i + 1, i + 4));
    const digits = m?.[0] ?? next;
    return { text: String.fromCodePoint(parseInt(digits, 8)), end: i + 1 + digits.length };
  }
  const hexLen = next === "x" ? 2 : !bytes && next === "u" ? 4 : !bytes && next === "U" ? 8 : 0;
  if (hexLen > 0) {
    const hex = src.slice(i + 2, i + 2 + hexLen);
    if (hex.length !== hexLen || !/^[0-9a-fA-F]+$/.test(hex)) {
      throw new TokenError(`truncated \\${next} escape`, i);
    }
    const cp = parseInt(hex, 16);
    if (cp > 0x10ffff) throw new TokenError(`illegal Unicode character in \\${next} escape`, i);
    return { text: String.fromCodePoint(cp), end: i + 2 + hexLen };
  }
  if (!bytes && next === "N") throw new TokenError("\\N{...} escapes are not supported", i);
  return { text: "\\" + next, end: i + 2 }; // unknown escapes keep the backslash, as in Python
}

/** A cursor over a token list (the last token is `end`): what the recursive-descent parsers share. */
export class TokenCursor {
  i = 0;
  constructor(readonly tokens: Token[]) {}

  peek(): Token {
    return this.tokens[this.i] ?? this.tokens[this.tokens.length - 1]!;
  }

  /** The current token; moves on, but never past the final `end` token. */
  next(): Token {
    const tok = this.peek();
    if (this.i < this.tokens.length - 1) this.i++;
    return tok;
  }

  isOp(value: string): boolean {
    const tok = this.peek();
    return tok.t === "op" && tok.value === value;
  }
}
