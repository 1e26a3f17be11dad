/**
 * Native TypeScript evaluation metrics, result-for-result identical to DSPy 3.4.1's
 * (dspy.evaluate.metrics, dspy.dsp.utils.dpr, dspy.Evaluate's aggregate score).
 */

export { normalizeText, normalizedTokens, dprTokenize, dprNormalize, hasAnswer, pyNfd, pyLower, pySplit } from "./text.js";
export {
  emScore,
  f1Score,
  precisionScore,
  hotpotF1Score,
  exactMatch,
  f1,
  hotpotF1,
  passageMatch,
  answerExactMatch,
  answerPassageMatch,
} from "./scores.js";
export type {
  Answers,
  AnswerExample,
  AnswerPrediction,
  ContextPrediction,
  AnswerExactMatchOptions,
  AnswerPassageMatchOptions,
} from "./scores.js";
export { pythonRound, pythonSum, evaluateScore } from "./evaluate.js";
export { passageRecall } from "./retrieval.js";
export { TABLES_SOURCE } from "./unicode-tables.js";
