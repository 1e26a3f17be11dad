/**
 * DSPy's answer metrics (dspy/evaluate/metrics.py), natively in TypeScript with identical results:
 * same normalisation, same token counting, and F1 computed with the same float operations in the same
 * order, so the doubles are bit-identical to Python's.
 */

import { ValidationError } from "@dspex/protocol";
import { dprNormalize, hasAnswer, normalizeText, normalizedTokens } from "./text.js";

/** One reference answer or several (the metric takes the best match over them). */
export type Answers = string | readonly string[];

/** The `example` side of a metric: DSPy reads `example.answer` (a string or a list of strings). */
export interface AnswerExample {
  readonly answer: Answers;
}

/** The `pred` side of `answerExactMatch`: DSPy reads `pred.answer`. */
export interface AnswerPrediction {
  readonly answer: string;
}

/**
 * The `pred` side of `answerPassageMatch`: DSPy reads `pred.context`, a list of passages. A plain
 * string is iterated character by character, exactly as DSPy's `for psg in passages` does.
 */
export interface ContextPrediction {
  readonly context: string | readonly string[];
}

export interface AnswerExactMatchOptions {
  /** Unused, as in DSPy; accepted so metric signatures line up. */
  readonly trace?: unknown;
  /** 1.0 (default) or more: exact match. Below 1.0: best F1 must be >= frac. */
  readonly frac?: number;
}

export interface AnswerPassageMatchOptions {
  /** Unused, as in DSPy. */
  readonly trace?: unknown;
}

function requireString(value: unknown, field: string): string {
  if (typeof value !== "string") {
    throw new ValidationError(`${field} must be a string, got ${describe(value)}`, { field });
  }
  return value;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

/** A non-empty list of answer strings; DSPy's `max(...)` raises on an empty list. */
function answerList(answers: unknown, field: string): readonly string[] {
  const list = typeof answers === "string" ? [answers] : answers;
  if (!Array.isArray(list)) {
    throw new ValidationError(`${field} must be a string or a list of strings, got ${describe(answers)}`, { field });
  }
  if (list.length === 0) {
    throw new ValidationError(`${field} must not be empty (DSPy raises ValueError: max() arg is an empty sequence)`, {
      field,
    });
  }
  list.forEach((a, i) => requireString(a, `${field}[${i}]`));
  return list as readonly string[];
}

/** `em_score(prediction, ground_truth)`: normalised strings are identical. */
export function emScore(prediction: string, groundTruth: string): boolean {
  return normalizeText(requireString(prediction, "prediction")) === normalizeText(requireString(groundTruth, "groundTruth"));
}

/** Number of tokens the two multisets share (`sum((Counter(a) & Counter(b)).values())`). */
function overlap(a: readonly string[], b: readonly string[]): number {
  const counts = new Map<string, number>();
  for (const t of a) counts.set(t, (counts.get(t) ?? 0) + 1);
  let same = 0;
  for (const t of b) {
    const left = counts.get(t) ?? 0;
    if (left > 0) {
      same++;
      counts.set(t, left - 1);
    }
  }
  return same;
}

/** `1.0 * num_same / len(p)`, `1.0 * num_same / len(g)`, `(2 * precision * recall) / (precision + recall)`. */
function tokenF1(predictionTokens: readonly string[], groundTruthTokens: readonly string[]): number {
  const numSame = overlap(predictionTokens, groundTruthTokens);
  if (numSame === 0) return 0;
  const precision = numSame / predictionTokens.length;
  const recall = numSame / groundTruthTokens.length;
  return (2 * precision * recall) / (precision + recall);
}

/**
 * `f1_score(prediction, ground_truth)`: token-level F1 of the normalised strings; 0 without overlap
 * (also when both are empty: DSPy only prints a message in that case, this port prints nothing).
 */
export function f1Score(prediction: string, groundTruth: string): number {
  return tokenF1(
    normalizedTokens(requireString(prediction, "prediction")),
    normalizedTokens(requireString(groundTruth, "groundTruth")),
  );
}

/** `precision_score(prediction, ground_truth)`: shared tokens / prediction tokens; 0 without overlap. */
export function precisionScore(prediction: string, groundTruth: string): number {
  const p = normalizedTokens(requireString(prediction, "prediction"));
  const numSame = overlap(p, normalizedTokens(requireString(groundTruth, "groundTruth")));
  return numSame === 0 ? 0 : numSame / p.length;
}

const HOTPOT_LABELS = new Set(["yes", "no", "noanswer"]);

/** `hotpot_f1_score`: 0 when either side normalises to yes/no/noanswer and they differ, else token F1. */
export function hotpotF1Score(prediction: string, groundTruth: string): number {
  const p = normalizeText(requireString(prediction, "prediction"));
  const g = normalizeText(requireString(groundTruth, "groundTruth"));
  if ((HOTPOT_LABELS.has(p) || HOTPOT_LABELS.has(g)) && p !== g) return 0;
  return tokenF1(p === "" ? [] : p.split(" "), g === "" ? [] : g.split(" "));
}

/**
 * DSPy's `EM(prediction, answers_list)`: true when any answer matches exactly after normalisation.
 * A single string is accepted as a one-element list (DSPy's EM itself insists on a list).
 */
export function exactMatch(prediction: string, answers: Answers): boolean {
  const list = answerList(answers, "answers");
  const p = normalizeText(requireString(prediction, "prediction"));
  return list.some((a) => normalizeText(a) === p);
}

/** The maximum of `score(prediction, answer)` over a non-empty list, as Python's max() picks it. */
function best(prediction: string, answers: Answers, score: (p: string, g: string) => number): number {
  const list = answerList(answers, "answers");
  requireString(prediction, "prediction");
  let top = score(prediction, list[0] as string);
  for (let i = 1; i < list.length; i++) {
    const s = score(prediction, list[i] as string);
    if (s > top) top = s;
  }
  return top;
}

/** DSPy's `F1(prediction, answers_list)`: the best token F1 over the answers. */
export function f1(prediction: string, answers: Answers): number {
  return best(prediction, answers, f1Score);
}

/** DSPy's `HotPotF1(prediction, answers_list)`: the best HotPotQA F1 over the answers. */
export function hotpotF1(prediction: string, answers: Answers): number {
  return best(prediction, answers, hotpotF1Score);
}

/**
 * DSPy's `_passage_match(passages, answers)`: true when some passage contains some answer as a
 * contiguous run of DPR tokens, both sides normalised with `normalize_text` first. An answer that
 * normalises to nothing (e.g. "The") matches any passage; no passages never match.
 */
export function passageMatch(passages: readonly string[], answers: Answers): boolean {
  const list = typeof answers === "string" ? [answers] : answers;
  if (!Array.isArray(list)) {
    throw new ValidationError(`answers must be a string or a list of strings, got ${describe(answers)}`, {
      field: "answers",
    });
  }
  if (!Array.isArray(passages)) {
    throw new ValidationError(`passages must be a list of strings, got ${describe(passages)}`, { field: "passages" });
  }
  list.forEach((a, i) => requireString(a, `answers[${i}]`));
  passages.forEach((p, i) => requireString(p, `passages[${i}]`));
  if (passages.length === 0) return false;
  const tokenized = list.map((a) => dprNormalize(normalizeText(a)));
  return passages.some((passage) => hasAnswer(tokenized, normalizeText(passage)));
}

/** DSPy's `_answer_match`: EM when frac >= 1.0, else best F1 >= frac. */
function answerMatch(prediction: string, answers: readonly string[], frac: number): boolean {
  if (frac >= 1.0) return exactMatch(prediction, answers);
  return f1(prediction, answers) >= frac;
}

function exampleAnswers(example: AnswerExample): readonly string[] {
  const answer: unknown = example?.answer;
  if (typeof answer === "string") return [answer];
  if (Array.isArray(answer)) return answer as readonly string[];
  throw new ValidationError(`Invalid answer type: ${describe(answer)}`, { field: "answer" });
}

/**
 * DSPy's `answer_exact_match(example, pred, trace=None, frac=1.0)`: `pred.answer` against
 * `example.answer` (one string or a list). frac >= 1.0 means exact match; otherwise the best F1 over
 * the answers must reach frac.
 */
export function answerExactMatch(
  example: AnswerExample,
  pred: AnswerPrediction,
  options: AnswerExactMatchOptions = {},
): boolean {
  const frac = options.frac ?? 1.0;
  if (typeof frac !== "number") throw new ValidationError(`frac must be a number, got ${describe(frac)}`, { field: "frac" });
  const answers = exampleAnswers(example);
  return answerMatch(requireString(pred?.answer, "answer"), answers, frac);
}

/**
 * DSPy's `answer_passage_match(example, pred, trace=None)`: whether any passage in `pred.context`
 * contains any of `example.answer`.
 */
export function answerPassageMatch(
  example: AnswerExample,
  pred: ContextPrediction,
  _options: AnswerPassageMatchOptions = {},
): boolean {
  const answers = exampleAnswers(example);
  const context: unknown = pred?.context;
  // Python iterates a str character by character.
  const passages = typeof context === "string" ? Array.from(context) : context;
  return passageMatch(passages as readonly string[], answers);
}
