/**
 * Hand-written examples for the native metrics. Every expected value below is what DSPy 3.4.1 on
 * Python 3.11 returns for the same call (test/parity/metrics-parity.test.ts checks thousands more
 * against dspy itself).
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  answerExactMatch,
  answerPassageMatch,
  dprNormalize,
  dprTokenize,
  emScore,
  evaluateScore,
  exactMatch,
  f1,
  f1Score,
  hasAnswer,
  hotpotF1,
  normalizeText,
  passageMatch,
  precisionScore,
  pyLower,
  pythonRound,
  pythonSum,
  pySplit,
} from "@dspex/native";
import { ValidationError } from "@dspex/protocol";

test("normalizeText: lower-case, drop ASCII punctuation and articles, collapse whitespace", () => {
  assert.equal(normalizeText("The,  Eiffel  Tower!"), "eiffel tower");
  assert.equal(normalizeText("U.S.A."), "usa");
  assert.equal(normalizeText("an_apple"), "anapple"); // '_' is in string.punctuation
  assert.equal(normalizeText("A cat and an owl, the end"), "cat and owl end");
  assert.equal(normalizeText("the the the"), "");
  assert.equal(normalizeText(""), "");
  assert.equal(normalizeText("then another theater"), "then another theater");
});

test("normalizeText: only string.punctuation goes; Unicode punctuation stays", () => {
  assert.equal(normalizeText("«Paris»"), "«paris»");
  assert.equal(normalizeText("Paris。"), "paris。");
  assert.equal(normalizeText("¿Qué?"), "¿que\u0301");
});

test("normalizeText: NFD first, so accents become separate combining marks", () => {
  assert.equal(normalizeText("café"), "cafe\u0301");
  assert.equal(normalizeText("cafe\u0301"), normalizeText("café"));
  assert.equal(normalizeText("\u212a"), "k"); // KELVIN SIGN decomposes canonically to K
  assert.equal(normalizeText("ﬁ"), "ﬁ"); // compatibility ligature: NFD leaves it
  assert.equal(normalizeText("ＡＢＣ"), "ａｂｃ"); // full-width letters are not folded to ASCII
});

test("normalizeText: Python's \\b — combining marks are not word characters, other scripts are", () => {
  // "thé" -> NFD "the\u0301": the accent is not a word character, so "the" is an article.
  assert.equal(normalizeText("thé"), "\u0301");
  assert.equal(normalizeText("Thé au lait"), "\u0301 au lait");
  // JS /\bthe\b/ would strip these, Python's Unicode-aware \b does not.
  assert.equal(normalizeText("the日本"), "the日本");
  assert.equal(normalizeText("a½"), "a½"); // ½ is numeric, hence a word character for re
  assert.equal(normalizeText("theλ"), "theλ");
  // A letter newer than Python 3.11's Unicode 14 database is not a word character there.
  assert.equal(normalizeText("a\u{10940}"), "\u{10940}");
  assert.equal(normalizeText("ＴＨＥ ａｎｓｗｅｒ"), "ｔｈｅ ａｎｓｗｅｒ"); // full-width "the" is no article
});

test("pyLower / normalizeText: Python's str.lower, not JavaScript's toLowerCase", () => {
  assert.equal(normalizeText("ΟΔΟΣ"), "οδος"); // final sigma
  assert.equal(normalizeText("ΣΑΣ ΣΑΣ"), "σας σας");
  assert.equal(normalizeText("İstanbul"), "i\u0307stanbul");
  assert.equal(normalizeText("Straße"), "straße");
  // U+0295 ʕ is a cased letter in Python 3.11 (Unicode 14) but not in Node's newer Unicode, so the
  // Final_Sigma context differs: Python gives ς, a naive "ʕΣ".toLowerCase() gives σ.
  assert.equal(pyLower("ʕΣ"), "ʕς");
  assert.equal(pyLower("AΣʕ"), "aσʕ");
  // U+A7DC (added in Unicode 16) is unknown to Python 3.11, so lower() leaves it alone.
  assert.equal(pyLower("\ua7dc"), "\ua7dc");
  assert.notEqual("\ua7dc".toLowerCase(), "\ua7dc");
});

test("pySplit / normalizeText: Python's whitespace, not JavaScript's \\s", () => {
  assert.equal(normalizeText("a\u00a0b\u3000c\u2028d"), "b c d");
  assert.deepEqual(pySplit("x\u001fy\u001cz\u0085w"), ["x", "y", "z", "w"]); // Python whitespace, not JS \s
  assert.deepEqual(pySplit("x\ufeffy"), ["x\ufeffy"]); // BOM: JS \s, not Python whitespace
  assert.deepEqual(pySplit("x\u200by"), ["x\u200by"]); // zero-width space is whitespace in neither
  assert.deepEqual(pySplit("  \t "), []);
});

test("exactMatch (DSPy's EM) and emScore", () => {
  assert.equal(exactMatch("The Eiffel Tower", ["Eiffel Tower", "Louvre"]), true);
  assert.equal(exactMatch("paris", ["Paris"]), true);
  assert.equal(exactMatch("paris", "Paris"), true); // a single answer string is accepted too
  assert.equal(exactMatch("paris", ["Paris, France"]), false);
  assert.equal(exactMatch("ΟΔΟΣ", ["οδοσ"]), false); // σ vs final ς
  assert.equal(emScore("", "the"), true); // both normalise to ""
  assert.throws(() => exactMatch("paris", []), ValidationError); // DSPy: max() of an empty list
});

test("f1 (DSPy's F1), f1Score, precisionScore, hotpotF1: exact doubles", () => {
  assert.equal(f1("Eiffel Tower is in Paris", ["Paris"]), 0.33333333333333337); // not 1/3: same float ops as Python
  assert.equal(f1("the cat sat", ["cat sat on mat"]), 0.6666666666666666);
  assert.equal(f1("x x x y", ["x y y"]), 0.5714285714285715); // token multiset overlap: min counts
  assert.equal(f1("Paris", ["London", "paris!", "Paris France"]), 1);
  assert.equal(f1Score("a b c d", "a b"), 0.5); // "a" is an article: "b c d" vs "b"
  assert.equal(f1Score("", ""), 0); // DSPy prints a note here but still scores 0
  assert.equal(precisionScore("eiffel tower in paris", "eiffel tower"), 0.5);
  assert.equal(hotpotF1("yes", ["no"]), 0);
  assert.equal(hotpotF1("yes it is", ["yes"]), 0);
  assert.equal(hotpotF1("Yes.", ["yes"]), 1);
  assert.throws(() => f1("x", []), ValidationError);
});

test("dprTokenize / dprNormalize: SimpleTokenizer runs of letters/digits/marks, single other symbols", () => {
  assert.deepEqual(dprTokenize("Hello, Wörld! 日本 don't"), ["Hello", ",", "Wo\u0308rld", "!", "日本", "don", "'", "t"]);
  assert.deepEqual(dprNormalize("Hello, Wörld!"), ["hello", ",", "wo\u0308rld", "!"]);
  // Each token is lower-cased on its own, so Σ at the end of a token is final.
  assert.deepEqual(dprNormalize("ΟΔΟΣ-ΣΑΣ"), ["οδος", "-", "σας"]);
  assert.deepEqual(dprTokenize(" \t\u00a0\u200b"), []); // separators and format characters are skipped
});

test("passageMatch / hasAnswer: contiguous DPR tokens of the normalised texts", () => {
  assert.equal(passageMatch(["The Eiffel Tower is in Paris.", "..."], ["Eiffel Tower"]), true);
  assert.equal(passageMatch(["Tower of Eiffel"], ["Eiffel Tower"]), false);
  assert.equal(passageMatch(["The Eiffel Tower"], ["tower eiffel"]), false);
  assert.equal(passageMatch(["Café de Flore"], ["cafe\u0301 de flore"]), true);
  assert.equal(passageMatch(["Eiffelturm"], ["Eiffel"]), false); // whole tokens only
  assert.equal(passageMatch([], ["x"]), false);
  // An answer that normalises to nothing matches every passage, even an empty one.
  assert.equal(passageMatch([""], ["the"]), true);
  assert.equal(passageMatch(["anything"], []), false);
  assert.equal(hasAnswer([["eiffel", "tower"]], "THE EIFFEL TOWER!"), true);
});

test("answerExactMatch: EM at frac >= 1, otherwise best F1 >= frac", () => {
  const example = { answer: ["Eiffel Tower", "Louvre"] };
  assert.equal(answerExactMatch(example, { answer: "The Eiffel Tower" }), true);
  assert.equal(answerExactMatch(example, { answer: "Eiffel Tower Paris" }), false);
  assert.equal(answerExactMatch(example, { answer: "Eiffel Tower Paris" }, { frac: 0.8 }), true); // F1 = 0.8
  assert.equal(answerExactMatch(example, { answer: "Eiffel Paris London" }, { frac: 0.5 }), false); // F1 = 0.4
  assert.equal(answerExactMatch({ answer: "Louvre" }, { answer: "the louvre." }, { frac: 2 }), true);
  assert.equal(answerExactMatch({ answer: "x" }, { answer: "y" }, { frac: NaN }), false);
  assert.throws(() => answerExactMatch({ answer: [] }, { answer: "x" }), ValidationError);
  assert.throws(() => answerExactMatch({ answer: 42 } as never, { answer: "x" }), /Invalid answer type/);
});

test("answerPassageMatch: any passage of pred.context contains any answer", () => {
  assert.equal(answerPassageMatch({ answer: "Eiffel Tower" }, { context: ["The Eiffel Tower is in Paris.", "..."] }), true);
  assert.equal(answerPassageMatch({ answer: ["Louvre", "Orsay"] }, { context: ["Musée d’Orsay"] }), true);
  // The ASCII apostrophe is removed first, which glues "d" and "orsay" into one token.
  assert.equal(answerPassageMatch({ answer: ["Louvre", "Orsay"] }, { context: ["Musée d'Orsay"] }), false);
  assert.equal(answerPassageMatch({ answer: "Louvre" }, { context: [] }), false);
  // A string context is iterated per character, as DSPy's `for psg in passages` does.
  assert.equal(answerPassageMatch({ answer: "b" }, { context: "abc" }), true);
  assert.equal(answerPassageMatch({ answer: "bc" }, { context: "abc" }), false);
});

test("pythonRound: the exact binary value, ties to even", () => {
  assert.equal(pythonRound(0.125, 2), 0.12); // exactly representable tie -> even
  assert.equal(pythonRound(0.375, 2), 0.38);
  assert.equal(pythonRound(2.675, 2), 2.67); // the double is 2.67499999...
  assert.equal(pythonRound(1.005, 2), 1); // the double is 1.00499999...
  assert.equal(pythonRound(2.5, 0), 2);
  assert.equal(pythonRound(3.5, 0), 4);
  assert.equal(pythonRound(125, -1), 120);
  assert.equal(pythonRound(135, -1), 140);
  assert.equal(pythonRound(66.66666666666667, 2), 66.67);
  assert.equal(pythonRound(5e-324, 2), 0);
  assert.ok(Object.is(pythonRound(-0.001, 2), -0)); // the sign of zero survives
  assert.ok(Number.isNaN(pythonRound(NaN, 2)));
  assert.equal(pythonRound(-Infinity, 2), -Infinity);
  assert.equal(pythonRound(1.7976931348623157e308, 400), 1.7976931348623157e308);
  assert.throws(() => pythonRound(1.7976931348623157e308, -308), RangeError); // Python: OverflowError
  assert.throws(() => pythonRound(1.5, 0.5), TypeError);
  // (0.125).toFixed(2) is "0.13": JS rounds ties away from zero.
  assert.notEqual(Number((0.125).toFixed(2)), pythonRound(0.125, 2));
});

test("evaluateScore: dspy.Evaluate's round(100 * sum(scores) / n, 2)", () => {
  assert.equal(evaluateScore([true, false, true]), 66.67);
  assert.equal(evaluateScore([true, false, false, false, false, false, false, false]), 12.5);
  assert.equal(evaluateScore([1, ...new Array<number>(799).fill(0)]), 0.12); // 0.125 -> 0.12
  assert.equal(evaluateScore([3, ...new Array<number>(799).fill(0)]), 0.38); // 0.375 -> 0.38
  assert.equal(evaluateScore([1 / 3, 1 / 3, 1 / 3]), 33.33);
  assert.equal(evaluateScore([true, 0.5, 0]), 50);
  assert.equal(pythonSum([true, true, 0.5]), 2.5);
  assert.throws(() => evaluateScore([]), ValidationError);
  assert.throws(() => evaluateScore(["1" as never]), ValidationError);
});
