/**
 * @dspex/retrieval — vector stores behind one interface (store.ts): PostgreSQL + pgvector (postgres.ts) and the
 * embedded PGlite + pgvector (pglite.ts), the same SQL (sql.ts); a `Retriever` over the fleet's embeddings
 * (retriever.ts); the retrieval service on the bus (serve.ts); resumable corpus indexing (indexer.ts); recall@k (recall.ts). docs/retrieval.md.
 */
export * from "./store.js";
export { SqlVectorStore, vectorLiteral, type SqlDriver } from "./sql.js";
export { PostgresDriver, openPostgresStore, isUnavailable, redactUrl } from "./postgres.js";
export { PgliteDriver, openPgliteStore } from "./pglite.js";
export { openStore, defaultStoreLocation, DEFAULT_STORE } from "./stores.js";
export { Retriever, storeSpan, type Embedder, type RetrieverOptions } from "./retriever.js";
export { indexCorpus, readCorpus, type IndexOptions, type IndexProgress } from "./indexer.js";
export { chunkMarkdown, docsCorpus, readQuestions, slug, QUESTIONS_FILE, type Question } from "./corpus.js";
export { recallAtK } from "./recall.js";
export { serveRetrievalTool, type RetrievalToolOptions } from "./tool.js";
export { retrieveStep, type RetrieveStepFunction } from "./step.js";
export { serveRetrieval, RETRIEVAL_OPS, type RetrievalOp, type ServeRetrievalOptions, type ServedRetrieval } from "./serve.js";
