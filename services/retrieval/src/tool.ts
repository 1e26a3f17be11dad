/**
 * A retriever as a DSPy tool: served from this process over NATS (`client.tools.serve`), so a ReAct agent on a
 * worker can search the store — DSPy's "retrieval as a tool" pattern. The worker needs no store credentials; the
 * tool answers `[{id, text, score, metadata}]` for `{query, k?}`.
 */
import type { Client, ServedTool } from "@dspex/client";
import type { Retriever } from "./retriever.js";

export interface RetrievalToolOptions {
  name?: string;
  description?: string;
  /** Passages per call when the agent names no k (default 3), and the most it may ask for (default 10). */
  k?: number;
  maxK?: number;
}

export function serveRetrievalTool(client: Client, retriever: Retriever, options: RetrievalToolOptions = {}): Promise<ServedTool> {
  const k = options.k ?? 3;
  const maxK = options.maxK ?? 10;
  return client.tools.serve<{ query: string; k?: number }>({
    name: options.name ?? "search",
    description: options.description ?? `Searches the ${retriever.store.collection.name} collection; returns the passages nearest to the query.`,
    parameters: {
      type: "object",
      properties: { query: { type: "string", description: "what to search for" }, k: { type: "integer", minimum: 1, maximum: maxK } },
      required: ["query"],
    },
    handler: async ({ query, k: asked }) => {
      const hits = await retriever.retrieve(query, Math.min(asked ?? k, maxK));
      return hits.map((h) => ({ id: h.id, text: h.text, score: Number(h.score.toFixed(4)), ...(h.metadata ? { metadata: h.metadata } : {}) }));
    },
  });
}
