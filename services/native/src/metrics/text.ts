/**
 * Python's string primitives as DSPy's metrics use them, and DSPy's text normalisation built on them.
 *
 * DSPy (dspy/evaluate/metrics.py, dspy/dsp/utils/dpr.py) relies on CPython's `unicodedata` and `str`
 * methods (Unicode 14.0.0 in Python 3.11), on `re`'s idea of a word character, and on the `regex`
 * module's own (newer) tables for DPR tokenisation. JavaScript's built-ins follow the Unicode version
 * Node ships and have different definitions of whitespace, word characters and lower-casing context,
 * so every character set here comes from tables generated out of Python (see unicode-tables.ts), and
 * the JS built-ins are only used where they provably agree (NFD and per-character lower-casing of
 * characters that CPython's database knows).
 */

import {
  pyAssigned,
  pyCased,
  pyCaseIgnorable,
  pyPunct,
  pySpace,
  pyWord,
  tokenAlnum,
  tokenNonWs,
} from "./charsets.js";

const ASCII_ONLY = /^[\x00-\x7f]*$/;
const CAPITAL_SIGMA = 0x3a3;

function cpWidth(cp: number): number {
  return cp > 0xffff ? 2 : 1;
}

/** Code points of `s` (lone surrogates stay single code points, as in a Python str). */
function codePoints(s: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.length; ) {
    const cp = s.codePointAt(i) as number;
    out.push(cp);
    i += cpWidth(cp);
  }
  return out;
}

/**
 * `unicodedata.normalize("NFD", s)`.
 *
 * Characters CPython's database does not have (assigned only in later Unicode versions) have no
 * decomposition and combining class 0 there, so they pass through unchanged and block canonical
 * reordering; runs of characters it does have are normalised by JS (decompositions and combining
 * classes of assigned characters are frozen by Unicode's stability policy).
 */
export function pyNfd(s: string): string {
  if (ASCII_ONLY.test(s)) return s;
  let out = "";
  let runStart = 0;
  let i = 0;
  while (i < s.length) {
    const cp = s.codePointAt(i) as number;
    const w = cpWidth(cp);
    if (!pyAssigned.has(cp)) {
      out += s.slice(runStart, i).normalize("NFD") + s.slice(i, i + w);
      runStart = i + w;
    }
    i += w;
  }
  return out + s.slice(runStart).normalize("NFD");
}

/**
 * CPython's handle_capital_sigma: Σ at index `i` of `cps` lowers to final ς when it follows a cased
 * character and does not precede one, skipping case-ignorable characters in both directions.
 */
function lowerSigma(cps: readonly number[], i: number): string {
  let j = i - 1;
  while (j >= 0 && pyCaseIgnorable.has(cps[j] as number)) j--;
  let finalSigma = j >= 0 && pyCased.has(cps[j] as number);
  if (finalSigma && i + 1 < cps.length) {
    j = i + 1;
    while (j < cps.length && pyCaseIgnorable.has(cps[j] as number)) j++;
    finalSigma = j === cps.length || !pyCased.has(cps[j] as number);
  }
  return finalSigma ? "\u03c2" : "\u03c3";
}

/**
 * `str.lower()`: full (SpecialCasing) lower-case mapping per character, with CPython's Final_Sigma rule
 * for U+03A3 evaluated against CPython's Cased / Case_Ignorable sets (which differ from Node's for a
 * few characters, e.g. U+0295 and U+1171E), and characters unknown to CPython left unchanged.
 */
export function pyLower(s: string): string {
  if (ASCII_ONLY.test(s)) return s.toLowerCase();
  const cps = codePoints(s);
  let out = "";
  let run = "";
  for (let i = 0; i < cps.length; i++) {
    const cp = cps[i] as number;
    if (cp === CAPITAL_SIGMA) {
      out += run.toLowerCase() + lowerSigma(cps, i);
      run = "";
    } else if (pyAssigned.has(cp)) {
      // No other context-dependent mapping exists in the default (locale-free) lower-casing.
      run += String.fromCodePoint(cp);
    } else {
      out += run.toLowerCase() + String.fromCodePoint(cp);
      run = "";
    }
  }
  return out + run.toLowerCase();
}

const SPACE_RUN = new RegExp(`${pySpace.toRegExpClass()}+`, "u");
const PUNCT_CHARS = new RegExp(pyPunct.toRegExpClass(), "gu");

/** `str.split()` with no arguments: split on runs of Python whitespace, dropping empty pieces. */
export function pySplit(s: string): string[] {
  return s.split(SPACE_RUN).filter((piece) => piece !== "");
}

function isWordAt(s: string, i: number): boolean {
  return i < s.length && pyWord.has(s.codePointAt(i) as number);
}

function isWordBefore(s: string, i: number): boolean {
  if (i === 0) return false;
  const lo = s.charCodeAt(i - 1);
  if (lo >= 0xdc00 && lo <= 0xdfff && i >= 2) {
    const hi = s.charCodeAt(i - 2);
    if (hi >= 0xd800 && hi <= 0xdbff) return pyWord.has(((hi - 0xd800) << 10) + (lo - 0xdc00) + 0x10000);
  }
  return pyWord.has(lo);
}

/** `re.sub(r"\b(a|an|the)\b", " ", text)` with `re`'s Unicode word boundaries. */
function removeArticles(s: string): string {
  let out = "";
  let last = 0;
  let i = 0;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if ((c === 0x61 || c === 0x74) && !isWordBefore(s, i)) {
      let len = 0;
      if (c === 0x61) {
        // Alternation order matters: "a" is tried before "an".
        if (!isWordAt(s, i + 1)) len = 1;
        else if (s.charCodeAt(i + 1) === 0x6e && !isWordAt(s, i + 2)) len = 2;
      } else if (s.startsWith("the", i) && !isWordAt(s, i + 3)) {
        len = 3;
      }
      if (len > 0) {
        out += s.slice(last, i) + " ";
        i += len;
        last = i;
        continue;
      }
    }
    i++;
  }
  return last === 0 ? s : out + s.slice(last);
}

/**
 * DSPy's `normalize_text`: NFD, lower-case, drop `string.punctuation`, replace the articles a/an/the
 * with a space, and collapse whitespace.
 */
export function normalizeText(s: string): string {
  const lowered = pyLower(pyNfd(s));
  const noPunct = lowered.replace(PUNCT_CHARS, "");
  return pySplit(removeArticles(noPunct)).join(" ");
}

/** `normalize_text(s).split()`: the tokens F1 counts. */
export function normalizedTokens(s: string): string[] {
  const normalized = normalizeText(s);
  return normalized === "" ? [] : normalized.split(" ");
}

/**
 * DPR's `DPR_tokenize(text)` token texts: NFD, then SimpleTokenizer's
 * `([\p{L}\p{N}\p{M}]+)|([^\p{Z}\p{C}])` scanned left to right (other characters are skipped).
 */
export function dprTokenize(text: string): string[] {
  const s = pyNfd(text);
  const tokens: string[] = [];
  let i = 0;
  while (i < s.length) {
    const cp = s.codePointAt(i) as number;
    const w = cpWidth(cp);
    if (tokenAlnum.has(cp)) {
      let j = i + w;
      while (j < s.length) {
        const next = s.codePointAt(j) as number;
        if (!tokenAlnum.has(next)) break;
        j += cpWidth(next);
      }
      tokens.push(s.slice(i, j));
      i = j;
    } else {
      if (tokenNonWs.has(cp)) tokens.push(s.slice(i, i + w));
      i += w;
    }
  }
  return tokens;
}

/** DPR's `DPR_normalize(text)`: the DPR tokens, each lower-cased on its own. */
export function dprNormalize(text: string): string[] {
  return dprTokenize(text).map(pyLower);
}

/**
 * DPR's `has_answer(tokenized_answers, text)`: whether some answer's token list occurs contiguously in
 * `DPR_normalize(text)`. An empty answer token list matches every text, even an empty one.
 */
export function hasAnswer(tokenizedAnswers: ReadonlyArray<readonly string[]>, text: string): boolean {
  const words = dprNormalize(text);
  for (const answer of tokenizedAnswers) {
    for (let i = 0; i <= words.length - answer.length; i++) {
      let same = true;
      for (let k = 0; k < answer.length; k++) {
        if (words[i + k] !== answer[k]) {
          same = false;
          break;
        }
      }
      if (same) return true;
    }
  }
  return false;
}
