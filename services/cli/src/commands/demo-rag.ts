/**
 * The demo's RAG step (docs/retrieval.md): the project's docs chunked by section, embedded by the real model on
 * the gpu pool and kept in the embedded store (PGlite on disk at DSPEX_RETRIEVAL_STORE, else
 * .dspex/retrieval — a second run embeds only what is new), then retrieve → ChainOfThought on the fleet's LM.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { CallResult, Client } from "@dspex/client";
import { defaultStoreLocation, docsCorpus, indexCorpus, openStore, Retriever, type Hit } from "@dspex/retrieval";

export const RAG_QUESTION = "How does a worker keep provider API keys safe?";
// passages are cut for the prompt: the local model is small and slow on long contexts
const PASSAGE_CHARS = 500;

export interface RagDemo {
  indexed: { written: number; skipped: number };
  hits: Hit[];
  result: CallResult<Record<string, unknown>>;
}

/** Null when there are no docs to index (run outside a checkout of the project). */
export async function runRagDemo(client: Client, docsDir = resolve("docs"), k = 2): Promise<RagDemo | null> {
  if (!existsSync(docsDir)) return null;
  const passages = docsCorpus(docsDir);
  const probe = await client.embed([RAG_QUESTION]);
  const store = await openStore(defaultStoreLocation(), "demo_docs", { dim: probe.dim, model: probe.model, fields: ["source"] });
  const retriever = new Retriever(client, store);
  try {
    const indexed = await indexCorpus(retriever, passages, { batchSize: 128 });
    const hits = await retriever.retrieve(RAG_QUESTION, k);
    const result = await client.chainOfThought("context: list[str], question: str -> answer: str", {
      context: hits.map((h) => h.text.slice(0, PASSAGE_CHARS)),
      question: RAG_QUESTION,
    });
    return { indexed: { written: indexed.written, skipped: indexed.skipped }, hits, result };
  } finally {
    retriever.close();
    await store.close();
  }
}
