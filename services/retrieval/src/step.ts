/**
 * A pipeline's `retrieve` step: a native step function (services/pipeline registers it by name:
 * `service.registerStep("retrieve", retrieveStep(retriever))`, or `functions` of `runPipeline`) that reads the
 * query from a field, retrieves, and adds the passages' texts (`context`, for a `context: list[str]` input of the
 * next module step) and the hits themselves (`passages`: ids, scores, metadata).
 *
 * Step args: `query` (the field holding the query, default `question`), `k` (default 3), `filter`, `as` (the
 * field the texts go to, default `context`).
 */
import { ValidationError } from "@dspex/protocol";
import type { Retriever } from "./retriever.js";
import type { Filter } from "./store.js";

export type RetrieveStepFunction = (input: Record<string, unknown>, args: Record<string, unknown>) => Promise<Record<string, unknown>>;

export function retrieveStep(retriever: Retriever): RetrieveStepFunction {
  return async (input, args) => {
    const field = typeof args.query === "string" ? args.query : "question";
    const query = input[field];
    if (typeof query !== "string" || !query.trim()) {
      throw new ValidationError(`${field}: the retrieve step's query field holds no text`, { field });
    }
    const k = args.k === undefined ? 3 : Number(args.k);
    const as = typeof args.as === "string" ? args.as : "context";
    const hits = await retriever.retrieve(query, k, args.filter as Filter | undefined);
    return { [as]: hits.map((h) => h.text), passages: hits };
  };
}
