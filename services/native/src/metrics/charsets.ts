/**
 * Code point sets decoded from the generated range tables in unicode-tables.ts.
 *
 * Membership is a binary search over sorted, disjoint, inclusive [start, end] ranges; code points below
 * 0x800 are answered from a bitmap, since they are by far the most frequent.
 */

import {
  PY_ASSIGNED,
  PY_CASED,
  PY_CASE_IGNORABLE,
  PY_PUNCT,
  PY_SPACE,
  PY_WORD,
  TOKEN_ALNUM,
  TOKEN_NONWS,
} from "./unicode-tables.js";

const FAST_LIMIT = 0x800;

export class CodePointSet {
  /** Inclusive starts and ends, sorted and disjoint. */
  readonly starts: Uint32Array;
  readonly ends: Uint32Array;
  private readonly fast: Uint8Array;

  constructor(encoded: string) {
    const parts = encoded === "" ? [] : encoded.split(",").map((p) => parseInt(p, 36));
    if (parts.length % 2 !== 0 || parts.some((n) => !Number.isInteger(n) || n < 0)) {
      throw new Error("corrupt code point table");
    }
    const count = parts.length / 2;
    this.starts = new Uint32Array(count);
    this.ends = new Uint32Array(count);
    let prevEnd = -1;
    for (let i = 0; i < count; i++) {
      const start = prevEnd + 1 + (parts[2 * i] as number);
      const end = start + (parts[2 * i + 1] as number);
      this.starts[i] = start;
      this.ends[i] = end;
      prevEnd = end;
    }
    this.fast = new Uint8Array(FAST_LIMIT);
    for (let i = 0; i < count; i++) {
      const start = this.starts[i] as number;
      if (start >= FAST_LIMIT) break;
      const stop = Math.min(this.ends[i] as number, FAST_LIMIT - 1);
      for (let cp = start; cp <= stop; cp++) this.fast[cp] = 1;
    }
  }

  has(cp: number): boolean {
    if (cp < FAST_LIMIT) return this.fast[cp] === 1;
    const starts = this.starts;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if ((starts[mid] as number) <= cp) lo = mid + 1;
      else hi = mid - 1;
    }
    return hi >= 0 && cp <= (this.ends[hi] as number);
  }

  /** The ranges as [start, end] pairs (inclusive), e.g. to compare with freshly computed tables. */
  ranges(): Array<[number, number]> {
    return Array.from(this.starts, (s, i) => [s, this.ends[i] as number]);
  }

  /** A regular-expression character class (for the `u` flag) matching exactly this set. */
  toRegExpClass(): string {
    const hex = (cp: number) => `\\u{${cp.toString(16)}}`;
    return `[${this.ranges()
      .map(([s, e]) => (s === e ? hex(s) : `${hex(s)}-${hex(e)}`))
      .join("")}]`;
  }
}

/** Assigned in CPython's unicodedata (Unicode 14.0.0 for Python 3.11): category != 'Cn'. */
export const pyAssigned = new CodePointSet(PY_ASSIGNED);
/** str.isspace(): the separators of str.split(). */
export const pySpace = new CodePointSet(PY_SPACE);
/** string.punctuation. */
export const pyPunct = new CodePointSet(PY_PUNCT);
/** re's `\w` (str patterns): what `\b` in remove_articles treats as a word character. */
export const pyWord = new CodePointSet(PY_WORD);
/** Cased and not case-ignorable, as CPython's Final_Sigma rule in str.lower() sees it. */
export const pyCased = new CodePointSet(PY_CASED);
/** Case-ignorable, as CPython's Final_Sigma rule in str.lower() sees it. */
export const pyCaseIgnorable = new CodePointSet(PY_CASE_IGNORABLE);
/** DPR SimpleTokenizer's ALPHA_NUM class `[\p{L}\p{N}\p{M}]` as the `regex` module evaluates it. */
export const tokenAlnum = new CodePointSet(TOKEN_ALNUM);
/** DPR SimpleTokenizer's NON_WS class `[^\p{Z}\p{C}]` as the `regex` module evaluates it. */
export const tokenNonWs = new CodePointSet(TOKEN_NONWS);
