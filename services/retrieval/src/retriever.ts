/**
 * A retriever: the fleet's embeddings (op `embed` on the gpu pool, through any `Embedder` — a `Client` is one)
 * over one vector store. `retrieve(query, k, filter?)` embeds the query and searches; `upsert` embeds passages
 * and writes them. Spans follow the semantic conventions: `db.system`, `db.operation`, `db.collection.name` on
 * the store's work; the embedding call itself is the client's `dspex.embed` span and the worker's
 * `embeddings <model>` span (`gen_ai.operation.name=embeddings`).
 */
import { SpanKind, type Span } from "@opentelemetry/api";
import type { EmbedCallOptions, Embeddings } from "@dspex/client";
import { ValidationError, type EmbedOptions } from "@dspex/protocol";
import { recordError, tracer } from "@dspex/observability";
import type { Filter, Hit, Passage, VectorStore } from "./store.js";

export interface Embedder {
  embed(texts: string[], options?: EmbedCallOptions): Promise<Embeddings>;
}

export interface RetrieverOptions {
  /** The `embed` op's options (model, truncate); must give the collection's model. */
  embed?: EmbedOptions;
  /** Per embed call (default: the pool's timeout). */
  timeoutMs?: number;
}

/** Runs `fn` in a CLIENT span for one operation on a store. */
export async function storeSpan<T>(store: VectorStore, operation: string, fn: (span: Span) => Promise<T>): Promise<T> {
  return tracer().startActiveSpan(
    `${operation} ${store.collection.name}`,
    { kind: SpanKind.CLIENT, attributes: { "db.system": store.kind, "db.operation": operation, "db.collection.name": store.collection.name } },
    async (span) => {
      try {
        return await fn(span);
      } catch (err) {
        recordError(span, err);
        throw err;
      } finally {
        span.end();
      }
    },
  );
}

export class Retriever {
  constructor(
    readonly embedder: Embedder,
    readonly store: VectorStore,
    private readonly options: RetrieverOptions = {},
  ) {}

  private async vectors(texts: string[]): Promise<Float32Array[]> {
    const result = await this.embedder.embed(texts, { module: this.options.embed, ...(this.options.timeoutMs ? { timeoutMs: this.options.timeoutMs } : {}) });
    if (result.model !== this.store.collection.model) {
      throw new ValidationError(`model: collection ${this.store.collection.name} was embedded with ${this.store.collection.model}; the fleet answered with ${result.model}`, {
        field: "model",
        details: { expected: this.store.collection.model, got: result.model },
      });
    }
    return result.vectors;
  }

  /** The k passages nearest to the query (best first), optionally filtered on declared metadata fields. */
  async retrieve(query: string, k = 5, filter?: Filter): Promise<Hit[]> {
    const [vector] = await this.vectors([query]);
    return storeSpan(this.store, "search", async (span) => {
      const hits = await this.store.search(vector!, k, filter);
      span.setAttribute("db.response.returned_rows", hits.length);
      return hits;
    });
  }

  /** Embeds and upserts passages (by id: a second upsert of an id replaces it). */
  async upsert(passages: Passage[]): Promise<number> {
    if (passages.length === 0) return 0;
    const vectors = await this.vectors(passages.map((p) => p.text));
    return storeSpan(this.store, "upsert", () => this.store.upsert(passages.map((p, i) => ({ ...p, vector: vectors[i]! }))));
  }

  delete(ids: string[]): Promise<number> {
    return storeSpan(this.store, "delete", () => this.store.delete(ids));
  }

  count(): Promise<number> {
    return storeSpan(this.store, "count", () => this.store.count());
  }
}
