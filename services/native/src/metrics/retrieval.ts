/**
 * Retrieval metrics on passage ids (DSPy has none by this name; its retrieval evaluations compare gold titles
 * with retrieved ones the same way): what a RAG program retrieved against the passages that answer the question.
 */
import { ValidationError } from "@dspex/protocol";

/**
 * Recall@k of one example: the share of its gold passage ids found among the first `k` retrieved ids (all of
 * them when `k` is omitted). With one gold id it is 1 or 0 — "was the answering passage retrieved" — and its
 * mean over a question set is the set's recall@k.
 */
export function passageRecall(gold: unknown, retrieved: unknown, k?: number, fields = { gold: "gold_ids", pred: "passage_ids" }): number {
  const golds = typeof gold === "string" ? [gold] : gold;
  if (!Array.isArray(golds) || golds.length === 0 || !golds.every((g) => typeof g === "string")) {
    throw new ValidationError(`example.${fields.gold}: a passage id or a non-empty list of them`, { field: `example.${fields.gold}` });
  }
  if (!Array.isArray(retrieved) || !retrieved.every((r) => typeof r === "string")) {
    throw new ValidationError(`outputs.${fields.pred}: the program must return the retrieved passage ids as a list of strings`, { field: `outputs.${fields.pred}` });
  }
  if (k !== undefined && (!Number.isInteger(k) || k < 1)) throw new ValidationError("args.k: a positive integer", { field: "args.k" });
  const top = new Set(k === undefined ? retrieved : retrieved.slice(0, k));
  return golds.filter((g) => top.has(g)).length / golds.length;
}
