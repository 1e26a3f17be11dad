/**
 * Retrieval recall@k over a question set: per question, the share of its gold passages among the first k
 * retrieved (here one gold section per question, whose parts all count as it), averaged over the questions.
 */
import type { Hit } from "./store.js";

export function recallAtK(results: Array<{ hits: Hit[]; isGold: (hit: Hit) => boolean }>, k: number): number {
  if (results.length === 0) return 0;
  const found = results.filter(({ hits, isGold }) => hits.slice(0, k).some(isGold)).length;
  return found / results.length;
}
