/**
 * A collection served on a test fleet's bus: an embedded PGlite store in a temporary directory (the fleet's model
 * embeds), filled with passages, served from this process — and everything undone by `close()`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { indexCorpus, openStore, Retriever, serveRetrieval, type Passage, type ServeRetrievalOptions, type ServedRetrieval } from "@dspex/retrieval";
import type { Harness } from "../integration/harness.js";

export interface ServedCollection {
  retriever: Retriever;
  served: ServedRetrieval;
  /** Serves the collection again (after a test stopped it). */
  serve(): Promise<void>;
  close(): Promise<void>;
}

export async function serveCollection(h: Harness, passages: Passage[], options: ServeRetrievalOptions & { collection?: string } = {}): Promise<ServedCollection> {
  const dir = mkdtempSync(join(tmpdir(), "dspex-collection-"));
  const probe = await h.client.embed(["probe"]);
  const store = await openStore(`pglite:${dir}`, options.collection ?? "docs", { dim: probe.dim, model: probe.model, fields: ["source"] });
  const retriever = new Retriever(h.client, store);
  await indexCorpus(retriever, passages, { batchSize: 128 });
  const out: ServedCollection = {
    retriever,
    served: await serveRetrieval(h.client.nc, retriever, options),
    async serve() {
      out.served = await serveRetrieval(h.client.nc, retriever, options);
    },
    async close() {
      await out.served.stop();
      retriever.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return out;
}
