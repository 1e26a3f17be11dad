/**
 * Parity: the native TypeScript metrics (services/shared/src/metrics) against DSPy's own functions.
 *
 * A seeded corpus (thousands of prediction/answer pairs, passages, examples, Evaluate score lists and
 * round() inputs) plus an every-code-point sweep goes to ONE Python process
 * (test/parity/metrics_corpus.py, real dspy 3.4.1) as JSON on stdin; every Python result must equal
 * the TypeScript result exactly: booleans, normalised strings, token lists, and floats bit for bit.
 *
 *   node --conditions=development --import tsx --test test/parity/metrics-parity.test.ts
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  answerExactMatch,
  answerPassageMatch,
  dprNormalize,
  emScore,
  evaluateScore,
  exactMatch,
  f1,
  f1Score,
  hasAnswer,
  hotpotF1,
  hotpotF1Score,
  normalizeText,
  passageMatch,
  precisionScore,
  pythonRound,
  TABLES_SOURCE,
  type AnswerExample,
} from "../../services/native/src/metrics/index.js";
import * as charsets from "../../services/native/src/metrics/charsets.js";
import { mulberry32 } from "../support/random.js";

const root = join(import.meta.dirname, "../..");
const python = join(root, ".venv/bin/python");
const script = join(import.meta.dirname, "metrics_corpus.py");

// ---------------------------------------------------------------------------------------------------
// Seeded corpus
// ---------------------------------------------------------------------------------------------------


const rng = mulberry32(0xd5e1_2024);
const int = (lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));
const pick = <T>(items: readonly T[]): T => items[Math.floor(rng() * items.length)] as T;
const chance = (p: number): boolean => rng() < p;

const WORDS = [
  "paris", "Paris", "PARIS", "eiffel", "Eiffel", "Tower", "tower", "France", "1889", "42", "3.14", "1,000",
  "x", "yes", "Yes", "NO", "no", "noanswer", "answer", "New", "York", "the", "The", "THE", "tHe", "a", "A",
  "an", "An", "AN", "then", "theater", "another", "anna", "at", "and", "a.", "the's", "an-", "_the_", "a_b",
  "U.S.A.", "don't", "e-mail", "C++", "#1", "$5", "50%", "x=y", "foo/bar", "it's", "o'clock", "0", "007",
];
const UNICODE = [
  "café", "cafe\u0301", "naïve", "naı\u0308ve", "Straße", "STRASSE", "ẞ", "ß", "ΟΔΟΣ", "Σ", "ς", "σ", "ΣΑΣ",
  "İstanbul", "ISTANBUL", "ıi", "I\u0307", "i\u0307", "日本語", "東京", "タワー", "한국어", "ﾃｽﾄ", "ＡＢＣ",
  "ａｂｃ", "ｔｈｅ", "ＴＨＥ", "שלום", "مرحبا", "العالم", "\u202eabc\u202c", "\u200f", "👍", "👍🏽",
  "👨\u200d👩\u200d👧", "🇺🇸", "ǅ", "ǆ", "Ǆ", "ﬁ", "ﬃ", "Å", "Ω", "K", "ʕ", "ʕΣ", "𑜞", "Ⅻ", "ⅻ", "½",
  "²", "٣", "१२", "Ⓐ", "ⓐ", "ｸ", "Ç", "ç", "Ñ", "ñ", "Ø", "ø", "Æ", "œ", "ŉ", "ǰ", "ΐ", "Ὰ", "ᾼ", "ﬀ",
  "Привет", "МИР", "ё", "Ё", "\u0301", "\u0308", "a\u0308", "\u1e9b\u0323", "\u0345", "Ꙍ", "Ꞌ", "Ａ",
  "\u{1E4D0}", "\u{10940}", "\u{A7CB}", "\u{A7DC}", "\u{1C89}", "\u0558", "\u{16EA0}", "\u{10D50}",
  "\u{1F92F}", "\u{1FAE8}", "\u{E0041}", "\u{E0100}", "\u{F0000}", "\uE000", "\uFFFD", "\u00AD", "\u034F",
  "\ud800", "\udc00", "\ud83d", "ａ", "Ǳ", "ǲ", "ᾈ", "ᾀ",
];
const PUNCT = [
  ".", ",", "!", "?", ";", ":", "'", "\"", "(", ")", "[", "]", "{", "}", "-", "_", "/", "\\", "@", "#", "$", "%",
  "^", "&", "*", "~", "`", "|", "<", ">", "+", "=", "¡", "¿", "«", "»", "—", "–", "…", "“", "”", "‘", "’",
  "„", "•", "·", "、", "。", "！", "？", "「", "」", "『", "』", "【", "】", "﹏", "＿", "§", "¶", "†", "‰",
  "′", "※", "⁂", "‽", "⸘", "·", "׳", "؟", "،", "।",
];
const SPACES = [
  " ", "  ", "\t", "\n", "\r", "\r\n", "\v", "\f", "\u00a0", "\u1680", "\u2000", "\u2003", "\u2007", "\u200a",
  "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\u001c", "\u001d", "\u001e", "\u001f", "\u0085",
  "\ufeff", "\u200b", "\u180e", "\u2060", "\u0000",
];

function fragment(): string {
  const r = rng();
  if (r < 0.45) return pick(WORDS);
  if (r < 0.75) return pick(UNICODE);
  if (r < 0.88) return pick(PUNCT);
  if (r < 0.94) return pick(SPACES);
  // A random code point from an interesting block.
  const block = pick([[0x20, 0x24f], [0x370, 0x3ff], [0x300, 0x36f], [0x2000, 0x206f], [0x3000, 0x30ff], [0xff00, 0xffef], [0x1f300, 0x1faff], [0x10000, 0x1e9ff]] as const);
  return String.fromCodePoint(int(block[0], block[1]));
}

function separator(): string {
  const r = rng();
  if (r < 0.65) return " ";
  if (r < 0.8) return pick(SPACES);
  if (r < 0.9) return "";
  return pick(PUNCT);
}

function text(maxPieces = 7): string {
  const n = int(0, maxPieces);
  let s = "";
  for (let i = 0; i < n; i++) s += (i > 0 ? separator() : chance(0.1) ? pick(SPACES) : "") + fragment();
  return s;
}

const tokensOf = (s: string): string[] => s.split(" ").filter((t) => t !== "");

/** A variant of `s` that often (but not always) still matches it after normalisation. */
function variant(s: string): string {
  switch (int(0, 11)) {
    case 0:
      return s;
    case 1:
      return s.toUpperCase();
    case 2:
      return s.toLowerCase();
    case 3:
      return `${pick(["the ", "The ", "a ", "An ", "THE "])}${s}`;
    case 4:
      return `${s}${pick(PUNCT)}`;
    case 5: {
      const t = tokensOf(s);
      if (t.length > 1) t.splice(int(0, t.length - 1), 1);
      return t.join(" ");
    }
    case 6:
      return `${s} ${pick(WORDS)}`;
    case 7: {
      const t = tokensOf(s);
      for (let i = t.length - 1; i > 0; i--) {
        const j = int(0, i);
        [t[i], t[j]] = [t[j] as string, t[i] as string];
      }
      return t.join(pick([" ", "\t", "\u00a0", "\u3000"]));
    }
    case 8:
      return s.normalize(pick(["NFC", "NFD", "NFKC", "NFKD"] as const));
    case 9:
      return tokensOf(s).join(pick(SPACES));
    case 10: {
      const t = tokensOf(s);
      if (t.length === 0) return s;
      const i = int(0, t.length - 1);
      return t.slice(i, int(i + 1, t.length)).join(" ");
    }
    default:
      return text(4);
  }
}

interface Pair {
  prediction: string;
  answers: string[];
}

const EDGE_PAIRS: Pair[] = [
  { prediction: "", answers: [""] },
  { prediction: "", answers: ["x"] },
  { prediction: "the", answers: ["a"] },
  { prediction: "A", answers: ["an"] },
  { prediction: "an apple", answers: ["apple"] },
  { prediction: "The Eiffel Tower", answers: ["Eiffel Tower", "Louvre"] },
  { prediction: "Eiffel Tower is in Paris", answers: ["Paris"] },
  { prediction: "théâtre", answers: ["theatre"] },
  { prediction: "thé", answers: ["the", ""] },
  { prediction: "Straße", answers: ["strasse", "STRASSE", "straße"] },
  { prediction: "İstanbul", answers: ["istanbul", "i\u0307stanbul"] },
  { prediction: "ΟΔΟΣ", answers: ["οδος", "οδος", "οδοσ"] },
  { prediction: "ΣΑΣ ΣΑΣ.", answers: ["σας σας"] },
  { prediction: "ʕΣ", answers: ["ʕς", "ʕσ"] },
  { prediction: "AΣ𑜞b", answers: ["aσ𑜞b", "aς𑜞b"] },
  { prediction: "ABC", answers: ["ａｂｃ", "abc"] },
  { prediction: "ＴＨＥ answer", answers: ["answer"] },
  { prediction: "a\u00a0b", answers: ["a b", "b"] },
  { prediction: "x\ufeffy", answers: ["x y", "x\ufeffy"] },
  { prediction: "x\u001fy", answers: ["x y"] },
  { prediction: "x\u200by", answers: ["x y"] },
  { prediction: "x\u0085y\u2028z", answers: ["x y z"] },
  { prediction: "1,000", answers: ["1000", "1 000"] },
  { prediction: "3.14", answers: ["314"] },
  { prediction: "U.S.A.", answers: ["usa"] },
  { prediction: "don't", answers: ["dont", "don t"] },
  { prediction: "«Paris»", answers: ["paris"] },
  { prediction: "Paris!", answers: ["Paris"] },
  { prediction: "the the the", answers: [""] },
  { prediction: "naïve", answers: ["naive", "nai\u0308ve"] },
  { prediction: "café", answers: ["cafe\u0301", "cafe"] },
  { prediction: "日本", answers: ["日本", "日 本"] },
  { prediction: "👍🏽", answers: ["👍"] },
  { prediction: "ﬁnal", answers: ["final"] },
  { prediction: "Ⅻ", answers: ["xii", "ⅻ"] },
  { prediction: "\u212a", answers: ["k"] },
  { prediction: "\u212b", answers: ["å", "a\u030a"] },
  { prediction: "ǅ", answers: ["dž", "ǆ"] },
  { prediction: "_the_", answers: ["the", ""] },
  { prediction: "the\u0301 end", answers: ["end", "\u0301 end"] },
  { prediction: "an\u0308", answers: ["n\u0308", "an"] },
  { prediction: "a½ the² an٣", answers: ["a½ the² an٣"] },
  { prediction: "שלום עולם", answers: ["שלום"] },
  { prediction: "مرحبا بالعالم", answers: ["مرحبا"] },
  { prediction: "yes", answers: ["no", "yes"] },
  { prediction: "Yes.", answers: ["yes"] },
  { prediction: "no answer", answers: ["noanswer"] },
  { prediction: "noanswer", answers: ["no answer"] },
  { prediction: "a b c d", answers: ["a b", "c d e", "b c d e f g"] },
  { prediction: "x x x y", answers: ["x y y", "x"] },
  { prediction: "\ud800 lone", answers: ["lone", "\ud800"] },
  { prediction: "anything", answers: [] },
];

function buildPairs(count: number): Pair[] {
  const pairs = [...EDGE_PAIRS];
  while (pairs.length < count) {
    const prediction = text();
    const answers: string[] = [];
    const n = chance(0.01) ? 0 : int(1, 3);
    for (let i = 0; i < n; i++) answers.push(chance(0.7) ? variant(prediction) : text(5));
    pairs.push({ prediction, answers });
  }
  return pairs;
}

interface PassageCase {
  passages: string[];
  answers: string[];
}

const EDGE_PASSAGES: PassageCase[] = [
  { passages: ["The Eiffel Tower is in Paris.", "..."], answers: ["Eiffel Tower"] },
  { passages: ["The Eiffel Tower is in Paris."], answers: ["eiffel paris"] },
  { passages: ["Tower of Eiffel"], answers: ["Eiffel Tower"] },
  { passages: [], answers: ["x"] },
  { passages: [""], answers: ["the"] },
  { passages: [""], answers: [] },
  { passages: ["anything at all"], answers: ["The"] },
  { passages: ["Café de Flore"], answers: ["cafe\u0301 de flore", "cafe de flore"] },
  { passages: ["東京タワーは東京にある"], answers: ["東京タワー", "タワー"] },
  { passages: ["naïve-Bayes!"], answers: ["naïve bayes", "naïve"] },
  { passages: ["ΟΔΟΣ ΣΑΣ"], answers: ["οδος", "οδοσ"] },
  { passages: ["$5 or 50%"], answers: ["5", "50"] },
];

function buildPassages(count: number): PassageCase[] {
  const cases = [...EDGE_PASSAGES];
  while (cases.length < count) {
    const answers: string[] = [];
    const n = chance(0.03) ? 0 : int(1, 3);
    for (let i = 0; i < n; i++) answers.push(text(3));
    const passages: string[] = [];
    const m = chance(0.03) ? 0 : int(1, 4);
    for (let i = 0; i < m; i++) {
      const embed = answers.length > 0 && chance(0.5) ? variant(pick(answers)) : "";
      passages.push(`${text(6)}${separator()}${embed}${separator()}${text(6)}`);
    }
    cases.push({ passages, answers });
  }
  return cases;
}

interface ExampleCase {
  answer: unknown;
  pred_answer?: string;
  frac?: string;
  context?: unknown;
}

const FRACS = [1.0, 1.5, 0.5, 0.0, 1 / 3, 2 / 3, 0.8, 0.4, 1e-9, -1, 0.9999999999999999, NaN];

function buildExamples(count: number): ExampleCase[] {
  const cases: ExampleCase[] = [
    { answer: ["Eiffel Tower", "Louvre"], pred_answer: "The Eiffel Tower", frac: "1.0" },
    { answer: ["Eiffel Tower", "Louvre"], pred_answer: "The Eiffel Tower", frac: "0.5" },
    { answer: "Eiffel Tower", context: ["The Eiffel Tower is in Paris.", "..."] },
    { answer: [], pred_answer: "x", frac: "1.0" },
    { answer: [], pred_answer: "x", frac: "0.5" },
    { answer: [], context: ["x"] },
    { answer: null, pred_answer: "x", frac: "1.0" },
    { answer: 42, context: ["42"] },
    { answer: "a", context: "abc" },
    { answer: "x", context: "Paris" },
    { answer: "", context: "" },
  ];
  while (cases.length < count) {
    const base = text(4);
    const answer = chance(0.5) ? variant(base) : Array.from({ length: int(1, 3) }, () => variant(base));
    const c: ExampleCase = { answer };
    if (chance(0.7)) {
      c.pred_answer = chance(0.6) ? variant(base) : text(4);
      c.frac = encodeFloat(pick(FRACS));
    }
    if (chance(0.5) || c.frac === undefined) {
      c.context = Array.from({ length: int(0, 3) }, () => `${text(4)} ${chance(0.5) ? variant(base) : ""} ${text(3)}`);
    }
    cases.push(c);
  }
  return cases;
}

function buildScoreLists(count: number): Array<Array<number | boolean>> {
  const lists: Array<Array<number | boolean>> = [
    [true],
    [false],
    [true, false, true],
    [0.1, 0.2, 0.3],
    [1 / 3, 1 / 3, 1 / 3],
    // Exact binary ties at the second decimal: 100 * k / 800 = k / 8.
    Array.from({ length: 800 }, (_, i) => i < 1),
    Array.from({ length: 800 }, (_, i) => i < 3),
    Array.from({ length: 800 }, (_, i) => i < 5),
    Array.from({ length: 800 }, (_, i) => i < 7),
    Array.from({ length: 1600 }, (_, i) => i < 2),
    Array.from({ length: 1600 }, (_, i) => i < 1),
    [0.125 / 100],
    [0.375 / 100],
    [0.00125],
    [0.00375],
    [0.02675, 0.02675],
  ];
  const floats = [0, 1, 0.5, 0.25, 0.125, 0.375, 0.0625, 1 / 3, 2 / 3, 0.1, 0.2, 0.7, 0.005, 0.015, 0.025];
  while (lists.length < count) {
    const kind = int(0, 4);
    const n = pick([1, 2, 3, 4, 6, 7, 8, 9, 11, 16, 25, 40, 80, 160]);
    lists.push(
      Array.from({ length: n }, () => {
        if (kind === 0) return chance(0.5);
        if (kind === 1) return pick(floats);
        if (kind === 2) return rng();
        if (kind === 3) return pick<number | boolean>([true, false, 0, 1, 0.5, 0.125, rng()]);
        return int(0, 7) / 8;
      }),
    );
  }
  return lists;
}

function buildRounds(count: number): Array<[string, number]> {
  const specials: Array<[number, number]> = [
    [0.125, 2], [0.375, 2], [0.625, 2], [0.875, 2], [2.675, 2], [1.005, 2], [0.285, 2], [1.115, 2], [66.665, 2],
    [12.5, 0], [13.5, 0], [-12.5, 0], [0.5, 0], [1.5, 0], [2.5, 0], [-0.5, 0], [-0.001, 2], [-0, 2], [0, 2],
    [NaN, 2], [Infinity, 2], [-Infinity, 2], [5e-324, 2], [5e-324, 323], [5e-324, 324], [1e300, -300],
    [1.7976931348623157e308, -308], [1.7976931348623157e308, -307], [1.7976931348623157e308, -309], [123.456, -1],
    [125, -1], [135, -1], [-125, -1], [0.1 + 0.2, 16], [0.1 + 0.2, 17], [1e16, 2], [2 ** 53 + 2, -1], [0.05, 1],
    [0.15, 1], [0.25, 1], [0.35, 1], [33.335, 2], [99.995, 2], [99.985, 2], [100 / 3, 2], [200 / 3, 2],
  ];
  const out: Array<[string, number]> = specials.map(([x, nd]) => [encodeFloat(x), nd]);
  while (out.length < count) {
    const kind = int(0, 5);
    let x: number;
    if (kind === 0) {
      // Exact ties at nd decimals are precisely the odd multiples of 2**-(nd+1).
      const nd = int(0, 6);
      out.push([encodeFloat((2 * int(-50000, 50000) + 1) / 2 ** (nd + 1)), nd]);
      continue;
    }
    else if (kind === 1) x = int(-100000, 100000) / 1024;
    else if (kind === 2) x = (rng() - 0.5) * 10 ** int(-8, 8);
    else if (kind === 3) x = int(0, 100000) / 1000; // decimal-looking values near ties
    else if (kind === 4) x = (100 * int(0, 97)) / int(1, 97); // Evaluate-shaped
    else x = int(-99999, 99999) / 200;
    out.push([encodeFloat(x), int(-3, 6)]);
  }
  return out;
}

/** Whether the exact binary value of x lies exactly halfway between two multiples of 10**-nd (nd >= 0). */
function isExactTie(x: number, nd: number): boolean {
  if (!Number.isFinite(x) || x === 0 || nd < 0) return false;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const hi = view.getUint32(0);
  const biased = (hi >>> 20) & 0x7ff;
  let mantissa = (BigInt(hi & 0xfffff) << 32n) | BigInt(view.getUint32(4));
  if (biased !== 0) mantissa |= 1n << 52n;
  const exponent = biased === 0 ? -1074 : biased - 1075;
  // 2 * |x| * 10**nd = num / den; a tie when that is an odd integer.
  let num = 2n * mantissa * 10n ** BigInt(nd);
  let den = 1n;
  if (exponent >= 0) num <<= BigInt(exponent);
  else den <<= BigInt(-exponent);
  return num % den === 0n && (num / den) % 2n === 1n;
}

function encodeFloat(x: number): string {
  if (Object.is(x, -0)) return "-0.0";
  return String(x); // "NaN", "Infinity", "1e+21": all accepted by Python's float()
}

/** Python's repr() of a float (or encodeFloat's output) back to the double. */
function decodeFloat(s: string): number {
  if (s === "nan" || s === "NaN") return NaN;
  if (s === "inf" || s === "Infinity") return Infinity;
  if (s === "-inf" || s === "-Infinity") return -Infinity;
  const x = Number(s);
  assert.ok(!Number.isNaN(x), `unparseable Python float ${s}`);
  return x;
}

const NORMALIZE_TEMPLATES: Array<[string, string]> = [
  ["", ""],
  ["a", "the"],
  ["A\u03a3", ""],
  ["A", "\u03a3"],
];
const DPR_TEMPLATES: Array<[string, string]> = [["x", "x"]];
/** [first, last, step]: every code point of planes 0 and 1 and of the tag/variation-selector block, every
 * 7th of the CJK planes 2 and 3, and samples of the empty and private-use planes. */
const SWEEP_RANGES: Array<[number, number, number]> = [
  [0, 0x1ffff, 1],
  [0x20000, 0x3ffff, 7],
  [0xe0000, 0xe0fff, 1],
  ...[0x40000, 0x5abcd, 0x7ffff, 0xd0000, 0xdffff, 0xf0000, 0xffffd, 0xfffff, 0x100000, 0x10fffd, 0x10ffff].map(
    (cp): [number, number, number] => [cp, cp, 1],
  ),
];

const corpus = {
  pairs: buildPairs(3000),
  passages: buildPassages(1200),
  examples: buildExamples(800),
  evaluate: buildScoreLists(600),
  rounds: buildRounds(4000),
  normalize: [...WORDS, ...UNICODE, ...PUNCT, ...SPACES, ...SPACES.map((s) => `a${s}the${s}b`)],
  sweep: { ranges: SWEEP_RANGES, normalize_templates: NORMALIZE_TEMPLATES, dpr_templates: DPR_TEMPLATES },
  tables: true,
};

// ---------------------------------------------------------------------------------------------------
// The Python side: one process, started now so it works while the TypeScript side computes.
// ---------------------------------------------------------------------------------------------------

type PyNum = string | { error: string };
interface PyResponse {
  versions: Record<string, string>;
  pairs: Array<{
    em: boolean | { error: string };
    f1: PyNum;
    hotpot: PyNum;
    em_score: boolean;
    f1_score: string;
    precision: string;
    hotpot_score: string;
    norm_pred: string;
    norm_answers: string[];
    dpr_pred: string[];
  }>;
  passages: Array<{ match: boolean; has_answer_raw: boolean[]; dpr_passages: string[][] }>;
  examples: Array<{ exact?: boolean | { error: string }; passage?: boolean | { error: string } }>;
  evaluate: string[];
  rounds: PyNum[];
  normalize: string[];
  sweep: { count: number; normalize: string[][]; dpr: string[][] };
  tables: Record<string, Array<[number, number]>>;
}

function startPython(input: unknown): { written: Promise<void>; result: Promise<PyResponse> } {
  const child = spawn(python, [script], { cwd: root, stdio: ["pipe", "pipe", "pipe"] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (b: Buffer) => out.push(b));
  child.stderr.on("data", (b: Buffer) => err.push(b));
  const written = new Promise<void>((resolve, reject) => {
    child.stdin.on("error", reject);
    child.stdin.end(JSON.stringify(input), () => resolve());
  });
  const result = new Promise<PyResponse>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) {
        reject(new Error(`metrics_corpus.py exited ${code}:\n${Buffer.concat(err).toString().slice(-4000)}`));
        return;
      }
      resolve(JSON.parse(Buffer.concat(out).toString("utf8")) as PyResponse);
    });
  });
  return { written, result };
}

// Debugging aid: METRICS_PARITY_DUMP=/tmp/corpus.json writes the exact stdin of metrics_corpus.py.
if (process.env.METRICS_PARITY_DUMP) writeFileSync(process.env.METRICS_PARITY_DUMP, JSON.stringify(corpus));

assert.ok(existsSync(python), `${python} missing: run scripts/setup.sh`);
const py = startPython(corpus);
py.result.catch(() => undefined); // reported by the tests that await it

/** Run `fn`, mapping a thrown error to {error} like the Python side does. */
function attempt<T>(fn: () => T): T | { error: string } {
  try {
    return fn();
  } catch (e) {
    return { error: (e as Error).name };
  }
}

/** Python's ValueError/TypeError/OverflowError vs the TypeScript error raised for the same input. */
const ERROR_NAMES: Record<string, string[]> = {
  ValueError: ["ValidationError"],
  OverflowError: ["RangeError"],
};

function sameOutcome<A, B>(
  ts: A | { error: string },
  pyv: B | { error: string },
  label: string,
  eq: (a: A, b: B) => boolean,
): void {
  const tsErr = typeof ts === "object" && ts !== null && "error" in ts;
  const pyErr = typeof pyv === "object" && pyv !== null && "error" in pyv;
  if (tsErr || pyErr) {
    assert.ok(tsErr && pyErr, `${label}: TS ${JSON.stringify(ts)} vs Python ${JSON.stringify(pyv)}`);
    const pyName = (pyv as { error: string }).error;
    assert.ok(
      (ERROR_NAMES[pyName] ?? []).includes((ts as { error: string }).error),
      `${label}: Python raised ${pyName}, TS threw ${(ts as { error: string }).error}`,
    );
    return;
  }
  assert.ok(eq(ts as A, pyv as B), `${label}: TS ${fmt(ts)} vs Python ${fmt(pyv)}`);
}

const fmt = (v: unknown): string => (typeof v === "number" ? (Object.is(v, -0) ? "-0" : String(v)) : JSON.stringify(v));
const sameFloat = (a: number, b: string): boolean => Object.is(a, decodeFloat(b));
const compared = { count: 0 };

function check<T>(ts: T, pyv: T, label: string): void {
  compared.count++;
  assert.deepEqual(ts, pyv, label);
}

// ---------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------

test("the corpus is big enough", () => {
  assert.ok(corpus.pairs.length >= 2000);
  assert.ok(corpus.pairs.some((p) => p.answers.length === 0));
  assert.ok(corpus.rounds.length >= 2000);
});

test("every code point: normalize_text and DPR_normalize in context, TypeScript == DSPy", async (t) => {
  await py.written;
  const cps: number[] = [];
  for (const [lo, hi, step] of SWEEP_RANGES) {
    for (let cp = lo; cp <= hi; cp += step) if (cp < 0xd800 || cp > 0xdfff) cps.push(cp);
  }
  const chars = cps.map((cp) => String.fromCodePoint(cp));
  const tsNormalize = NORMALIZE_TEMPLATES.map(([before, after]) => chars.map((c) => normalizeText(before + c + after)));
  const tsDpr = DPR_TEMPLATES.map(([before, after]) => chars.map((c) => dprNormalize(before + c + after).join("\x00")));
  const res = (await py.result).sweep;
  assert.equal(res.count, cps.length);
  const mismatches: string[] = [];
  const compare = (tsLists: string[][], pyLists: string[][], kind: string, templates: Array<[string, string]>) => {
    tsLists.forEach((list, k) => {
      const pyList = pyLists[k] as string[];
      assert.equal(pyList.length, list.length);
      for (let i = 0; i < list.length; i++) {
        compared.count++;
        if (list[i] !== pyList[i] && mismatches.length < 25) {
          mismatches.push(
            `${kind}(${JSON.stringify(templates[k])}) U+${(cps[i] as number).toString(16).toUpperCase()}: TS ${JSON.stringify(list[i])} vs Python ${JSON.stringify(pyList[i])}`,
          );
        }
      }
    });
  };
  compare(tsNormalize, res.normalize, "normalize_text", NORMALIZE_TEMPLATES);
  compare(tsDpr, res.dpr, "DPR_normalize", DPR_TEMPLATES);
  assert.deepEqual(mismatches, []);
  t.diagnostic(`${cps.length} code points x ${NORMALIZE_TEMPLATES.length + DPR_TEMPLATES.length} probes`);
});

test("embedded Unicode tables equal the ones computed from the installed Python, regex and dspy", async (t) => {
  await py.written;
  const res = await py.result;
  // Only the tables themselves must match; a version bump that leaves them unchanged is just reported.
  if (JSON.stringify(res.versions) !== JSON.stringify(TABLES_SOURCE)) {
    t.diagnostic(`tables were generated from ${JSON.stringify(TABLES_SOURCE)}, running ${JSON.stringify(res.versions)}`);
  }
  const sets: Record<string, charsets.CodePointSet> = {
    PY_ASSIGNED: charsets.pyAssigned,
    PY_SPACE: charsets.pySpace,
    PY_PUNCT: charsets.pyPunct,
    PY_WORD: charsets.pyWord,
    PY_CASED: charsets.pyCased,
    PY_CASE_IGNORABLE: charsets.pyCaseIgnorable,
    TOKEN_ALNUM: charsets.tokenAlnum,
    TOKEN_NONWS: charsets.tokenNonWs,
  };
  assert.deepEqual(Object.keys(res.tables).sort(), Object.keys(sets).sort());
  for (const [name, ranges] of Object.entries(res.tables)) {
    const set = sets[name] as charsets.CodePointSet;
    assert.deepEqual(set.ranges(), ranges, `${name} differs: regenerate with test/parity/metrics_unicode_tables.py`);
    // has() agrees with the ranges at every boundary.
    for (const [s, e] of ranges) {
      assert.ok(set.has(s) && set.has(e) && !set.has(s - 1) && !set.has(e + 1), `${name} boundary ${s}-${e}`);
    }
    compared.count += ranges.length;
  }
  t.diagnostic(`tables from ${JSON.stringify(res.versions)}`);
});

test("prediction/answer pairs: EM, F1, HotPotF1, em/f1/precision/hotpot scores, normalize_text, DPR_normalize", async (t) => {
  await py.written;
  const ts = corpus.pairs.map((p) => ({
    em: attempt(() => exactMatch(p.prediction, p.answers)),
    f1: attempt(() => f1(p.prediction, p.answers)),
    hotpot: attempt(() => hotpotF1(p.prediction, p.answers)),
    em_score: emScore(p.prediction, p.answers[0] ?? ""),
    f1_score: f1Score(p.prediction, p.answers[0] ?? ""),
    precision: precisionScore(p.prediction, p.answers[0] ?? ""),
    hotpot_score: hotpotF1Score(p.prediction, p.answers[0] ?? ""),
    norm_pred: normalizeText(p.prediction),
    norm_answers: p.answers.map(normalizeText),
    dpr_pred: dprNormalize(p.prediction),
  }));
  const res = (await py.result).pairs;
  assert.equal(res.length, ts.length);
  let emTrue = 0;
  let f1Fractional = 0;
  ts.forEach((r, i) => {
    const p = res[i] as PyResponse["pairs"][number];
    const label = `pair #${i} ${JSON.stringify(corpus.pairs[i])}`;
    sameOutcome(r.em, p.em, `${label} EM`, (a, b) => a === b);
    sameOutcome(r.f1, p.f1, `${label} F1`, sameFloat);
    sameOutcome(r.hotpot, p.hotpot, `${label} HotPotF1`, sameFloat);
    assert.equal(r.em_score, p.em_score, `${label} em_score`);
    assert.ok(sameFloat(r.f1_score, p.f1_score), `${label} f1_score TS ${r.f1_score} vs Python ${p.f1_score}`);
    assert.ok(sameFloat(r.precision, p.precision), `${label} precision TS ${r.precision} vs Python ${p.precision}`);
    assert.ok(sameFloat(r.hotpot_score, p.hotpot_score), `${label} hotpot TS ${r.hotpot_score} vs Python ${p.hotpot_score}`);
    assert.equal(r.norm_pred, p.norm_pred, `${label} normalize_text(prediction)`);
    assert.deepEqual(r.norm_answers, p.norm_answers, `${label} normalize_text(answers)`);
    assert.deepEqual(r.dpr_pred, p.dpr_pred, `${label} DPR_normalize(prediction)`);
    compared.count += 9 + r.norm_answers.length;
    if (r.em === true) emTrue++;
    if (typeof r.f1 === "number" && r.f1 > 0 && r.f1 < 1) f1Fractional++;
  });
  // The corpus exercises both outcomes, not just mismatches.
  assert.ok(emTrue > ts.length / 10, `only ${emTrue} exact matches`);
  assert.ok(f1Fractional > ts.length / 10, `only ${f1Fractional} fractional F1 values`);
  t.diagnostic(`${ts.length} pairs (${emTrue} EM true, ${f1Fractional} fractional F1)`);
});

test("passage match: _passage_match, has_answer on raw text, DPR tokens of normalised passages", async (t) => {
  await py.written;
  const ts = corpus.passages.map((c) => ({
    match: passageMatch(c.passages, c.answers),
    has_answer_raw: c.passages.map((p) => hasAnswer(c.answers.map(dprNormalize), p)),
    dpr_passages: c.passages.map((p) => dprNormalize(normalizeText(p))),
  }));
  const res = (await py.result).passages;
  let matches = 0;
  ts.forEach((r, i) => {
    check(r, res[i], `passage case #${i} ${JSON.stringify(corpus.passages[i])}`);
    compared.count += r.has_answer_raw.length + r.dpr_passages.length;
    if (r.match) matches++;
  });
  assert.ok(matches > ts.length / 5 && matches < ts.length, `${matches} matches of ${ts.length}`);
  t.diagnostic(`${ts.length} passage cases (${matches} match)`);
});

test("answer_exact_match (with frac) and answer_passage_match on example/prediction objects", async (t) => {
  await py.written;
  const ts = corpus.examples.map((c) => {
    const out: { exact?: boolean | { error: string }; passage?: boolean | { error: string } } = {};
    const example = { answer: c.answer } as AnswerExample;
    if (c.frac !== undefined) {
      const frac = decodeFloat(c.frac);
      out.exact = attempt(() => answerExactMatch(example, { answer: c.pred_answer as string }, { frac }));
    }
    if (c.context !== undefined) {
      out.passage = attempt(() => answerPassageMatch(example, { context: c.context as string[] }));
    }
    return out;
  });
  const res = (await py.result).examples;
  ts.forEach((r, i) => {
    const p = res[i] as (typeof res)[number];
    const label = `example #${i} ${JSON.stringify(corpus.examples[i])}`;
    assert.deepEqual(Object.keys(r).sort(), Object.keys(p).sort(), label);
    if (r.exact !== undefined) sameOutcome(r.exact, p.exact as boolean, `${label} exact`, (a, b) => a === b);
    if (r.passage !== undefined) sameOutcome(r.passage, p.passage as boolean, `${label} passage`, (a, b) => a === b);
    compared.count += Object.keys(r).length;
  });
  t.diagnostic(`${ts.length} examples`);
});

test("dspy.Evaluate's aggregate score == evaluateScore, bit for bit", async (t) => {
  await py.written;
  const ts = corpus.evaluate.map((scores) => evaluateScore(scores));
  const res = (await py.result).evaluate;
  ts.forEach((score, i) => {
    compared.count++;
    assert.ok(sameFloat(score, res[i] as string), `score list #${i}: TS ${fmt(score)} vs Python ${res[i]}`);
  });
  t.diagnostic(`${ts.length} Evaluate runs`);
});

test("round(x, ndigits) == pythonRound, including exact .xx5 ties, signed zero, NaN, overflow", async (t) => {
  await py.written;
  const ts = corpus.rounds.map(([x, nd]) => attempt(() => pythonRound(decodeFloat(x), nd)));
  const res = (await py.result).rounds;
  let ties = 0;
  ts.forEach((r, i) => {
    compared.count++;
    const [x, nd] = corpus.rounds[i] as [string, number];
    sameOutcome(r, res[i] as PyNum, `round(${x}, ${nd})`, sameFloat);
    if (isExactTie(decodeFloat(x), nd)) ties++;
  });
  assert.ok(ties > 100, `only ${ties} tie cases`);
  t.diagnostic(`${ts.length} round() calls (~${ties} exact ties)`);
});

test("standalone normalize_text strings", async () => {
  await py.written;
  const res = (await py.result).normalize;
  corpus.normalize.forEach((s, i) => check(normalizeText(s), res[i], `normalize_text(${JSON.stringify(s)})`));
});

test("report", async (t) => {
  await py.result.catch(() => undefined);
  t.diagnostic(`compared ${compared.count} TypeScript results with DSPy's`);
  assert.ok(compared.count > 500_000, `only ${compared.count} comparisons`);
});
