/**
 * Indexing a corpus: embed on the fleet and upsert into a store, in batches, with progress. Resumable and
 * idempotent by passage id without any job record: the store is the truth — each batch first asks the store which
 * of its ids are already there and embeds only the others, and an upsert of an id replaces it — so a run killed
 * at any point and started again ends with exactly the corpus's passages, none twice. A batch that fails with a
 * retryable error (StoreUnavailable, the bus's) is retried with backoff.
 */
import { readFileSync } from "node:fs";
import { ValidationError } from "@dspex/protocol";
import type { Retriever } from "./retriever.js";
import type { Metadata, Passage } from "./store.js";

export interface IndexProgress {
  total: number;
  /** Passages handled so far (written or found already stored). */
  done: number;
  written: number;
  skipped: number;
  elapsedMs: number;
  rate: number;
}

export interface IndexOptions {
  batchSize?: number;
  /** Attempts per batch for retryable errors (default 4). */
  attempts?: number;
  onProgress?: (p: IndexProgress) => void;
  signal?: AbortSignal;
}

/** Reads a JSONL corpus: one `{id, text, metadata?}` per line; a bad line is a ValidationError naming it. */
export function readCorpus(path: string): Passage[] {
  const passages: Passage[] = [];
  const seen = new Set<string>();
  readFileSync(path, "utf8")
    .split("\n")
    .forEach((line, i) => {
      if (!line.trim()) return;
      const where = `corpus line ${i + 1}`;
      let row: { id?: unknown; text?: unknown; metadata?: unknown };
      try {
        row = JSON.parse(line) as typeof row;
      } catch {
        throw new ValidationError(`${where}: not JSON`, { field: where });
      }
      if (typeof row.id !== "string" || !row.id) throw new ValidationError(`${where}.id: a non-empty string id is required (indexing is idempotent by id)`, { field: `${where}.id` });
      if (typeof row.text !== "string" || !row.text.trim()) throw new ValidationError(`${where}.text: a non-empty text is required`, { field: `${where}.text` });
      if (seen.has(row.id)) throw new ValidationError(`${where}.id: ${JSON.stringify(row.id)} appears twice`, { field: `${where}.id` });
      seen.add(row.id);
      passages.push({ id: row.id, text: row.text, ...(row.metadata && typeof row.metadata === "object" ? { metadata: row.metadata as Metadata } : {}) });
    });
  return passages;
}

async function withRetries<T>(attempts: number, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const retryable = (err as { retryable?: unknown }).retryable === true;
      if (!retryable || attempt >= attempts || signal?.aborted) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(5_000, 250 * 2 ** attempt)));
    }
  }
}

export async function indexCorpus(retriever: Retriever, passages: Passage[], options: IndexOptions = {}): Promise<IndexProgress> {
  const batchSize = options.batchSize ?? 64;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 512) {
    throw new ValidationError("batch: an integer in 1..512 (texts per embed request)", { field: "batch" });
  }
  const attempts = options.attempts ?? 4;
  const started = performance.now();
  const progress: IndexProgress = { total: passages.length, done: 0, written: 0, skipped: 0, elapsedMs: 0, rate: 0 };
  for (let start = 0; start < passages.length; start += batchSize) {
    options.signal?.throwIfAborted();
    const batch = passages.slice(start, start + batchSize);
    const stored = await withRetries(attempts, () => retriever.existing(batch.map((p) => p.id)), options.signal);
    const todo = batch.filter((p) => !stored.has(p.id));
    if (todo.length > 0) await withRetries(attempts, () => retriever.upsert(todo), options.signal);
    progress.written += todo.length;
    progress.skipped += batch.length - todo.length;
    progress.done += batch.length;
    progress.elapsedMs = performance.now() - started;
    progress.rate = progress.done / Math.max(progress.elapsedMs / 1000, 1e-3);
    options.onProgress?.({ ...progress });
  }
  return progress;
}
