/**
 * A retriever: the fleet's embeddings (op `embed` on the gpu pool, through any `Embedder` — a `Client` is one)
 * over one vector store. `retrieve(query, k, filter?)` embeds the query and searches; `upsert` embeds passages
 * and writes them. Spans follow the semantic conventions: `db.system`, `db.operation`, `db.collection.name` on
 * the store's work; the embedding call itself is the client's `dspex.embed` span and the worker's
 * `embeddings <model>` span (`gen_ai.operation.name=embeddings`).
 *
 * Every store operation goes through the store's circuit breaker (the client's opossum `Breaker`, kind `store`):
 * once more than half of the recent operations (at least `volumeThreshold` of them) found the store unavailable,
 * operations fail fast with CircuitOpenError (retryable, field `store`) instead of each waiting for a connect
 * timeout; after `resetTimeoutMs` one probe goes through. Settings: DSPEX_BREAKER_STORE_* (as the pool's).
 */
import { SpanKind, type Span } from "@opentelemetry/api";
import { Breaker, breakerSettings, type BreakerSettings, type EmbedCallOptions, type Embeddings, type StateChange } from "@dspex/client";
import { CircuitOpenError, ValidationError, type EmbedOptions } from "@dspex/protocol";
import { createLogger, recordError, tracer } from "@dspex/observability";
import type { Filter, Hit, Passage, VectorStore } from "./store.js";

export interface Embedder {
  embed(texts: string[], options?: EmbedCallOptions): Promise<Embeddings>;
}

export interface RetrieverOptions {
  /** The `embed` op's options (model, truncate); must give the collection's model. */
  embed?: EmbedOptions;
  /** Per embed call (default: the pool's timeout). */
  timeoutMs?: number;
  /** The store's breaker settings over DSPEX_BREAKER_STORE_* and the defaults (`enabled: false` turns it off). */
  breaker?: Partial<BreakerSettings>;
  /** Called on each of the breaker's state changes (after it is logged). */
  onBreakerChange?: (change: StateChange) => void;
}

const log = createLogger("dspex.retrieval");

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
  /** The store's circuit breaker, named `store:<kind>/<collection>`. */
  readonly breaker: Breaker;

  constructor(
    readonly embedder: Embedder,
    readonly store: VectorStore,
    private readonly options: RetrieverOptions = {},
  ) {
    const settings = breakerSettings({ store: options.breaker ?? {} }).store;
    this.breaker = new Breaker("store", `${store.kind}/${store.collection.name}`, settings, (change: StateChange) => {
      log[change.to === "open" ? "warn" : "info"](`circuit breaker ${change.name}: ${change.from} -> ${change.to}`, { ...change });
      options.onBreakerChange?.(change);
    });
  }

  /** One store operation: in its span, through the breaker (failing fast while it is open). */
  private guarded<T>(operation: string, fn: (span: Span) => Promise<T>): Promise<T> {
    return storeSpan(this.store, operation, (span) => {
      if (this.breaker.refuses()) {
        this.breaker.rejected += 1;
        throw new CircuitOpenError(`store: the circuit breaker ${this.breaker.name} is ${this.breaker.state.replace("_", "-")}; the store was not asked`, {
          field: "store",
          details: { breaker: this.breaker.name, state: this.breaker.state, since: this.breaker.snapshot().since },
        });
      }
      return this.breaker.fire(() => fn(span));
    });
  }

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
    return this.guarded("search", async (span) => {
      const hits = await this.store.search(vector!, k, filter);
      span.setAttribute("db.response.returned_rows", hits.length);
      return hits;
    });
  }

  /** Embeds and upserts passages (by id: a second upsert of an id replaces it). */
  async upsert(passages: Passage[]): Promise<number> {
    if (passages.length === 0) return 0;
    const vectors = await this.vectors(passages.map((p) => p.text));
    return this.guarded("upsert", () => this.store.upsert(passages.map((p, i) => ({ ...p, vector: vectors[i]! }))));
  }

  delete(ids: string[]): Promise<number> {
    return this.guarded("delete", () => this.store.delete(ids));
  }

  count(): Promise<number> {
    return this.guarded("count", () => this.store.count());
  }

  /** Which of these ids the store holds (indexing resumes by it). */
  existing(ids: string[]): Promise<Set<string>> {
    return this.guarded("existing", () => this.store.existing(ids));
  }

  /** Stops the breaker's timer (the store is the caller's to close). */
  close(): void {
    this.breaker.shutdown();
  }
}
