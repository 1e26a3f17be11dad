/**
 * The one vector-store interface every store implements (docs/retrieval.md, "Adapter interface"): a store holds
 * one collection — passages with ids, text, metadata and a vector of the collection's dimension, made by the
 * collection's embedding model — and answers nearest-neighbour searches with scores (cosine similarity, higher is
 * closer), optionally filtered on the collection's declared metadata fields.
 */
import { ValidationError } from "@dspex/protocol";

export type MetadataValue = string | number | boolean;
export type Metadata = Record<string, MetadataValue>;

export interface Passage {
  /** The passage's id: upserting an id again replaces it (indexing is idempotent by id). */
  id: string;
  text: string;
  metadata?: Metadata;
}

export interface EmbeddedPassage extends Passage {
  vector: Float32Array;
}

export interface Hit extends Passage {
  /** Cosine similarity to the query, in [-1, 1]. */
  score: number;
}

/** Equality on a declared metadata field; an array means "any of". */
export type Filter = Record<string, MetadataValue | MetadataValue[]>;

/** What a collection is: its vectors' dimension, the model that made them, the metadata fields filters may use. */
export interface CollectionSpec {
  name: string;
  dim: number;
  model: string;
  fields?: string[];
}

export interface VectorStore {
  /** `postgres`, `pglite`, … (the `db.system` of its spans). */
  readonly kind: string;
  readonly collection: Required<CollectionSpec>;
  /** Inserts or replaces passages by id; resolves with how many were written. */
  upsert(passages: EmbeddedPassage[]): Promise<number>;
  /** Removes passages by id; resolves with how many existed. */
  delete(ids: string[]): Promise<number>;
  count(): Promise<number>;
  /** Which of these ids are stored (an indexing job skips them when it resumes). */
  existing(ids: string[]): Promise<Set<string>>;
  /** The k passages nearest to the vector, best first. */
  search(vector: Float32Array, k: number, filter?: Filter): Promise<Hit[]>;
  close(): Promise<void>;
}

export const MAX_K = 1000;
const NAME = /^[a-z][a-z0-9_]{0,47}$/;

export function checkCollectionName(name: string, field = "collection"): string {
  if (!NAME.test(name)) {
    throw new ValidationError(`${field}: ${JSON.stringify(name)} is not a collection name (${NAME.source})`, { field });
  }
  return name;
}

export function checkK(k: number): number {
  if (!Number.isInteger(k) || k < 1 || k > MAX_K) throw new ValidationError(`k: must be an integer in 1..${MAX_K}`, { field: "k" });
  return k;
}

/** A filter's fields must be the collection's declared fields, its values scalars (or lists of them). */
export function checkFilter(filter: Filter | undefined, fields: readonly string[]): Array<[string, MetadataValue[]]> {
  if (filter === undefined) return [];
  const scalar = (v: unknown): v is MetadataValue => typeof v === "string" || typeof v === "number" || typeof v === "boolean";
  return Object.entries(filter).map(([name, value]) => {
    const field = `filter.${name}`;
    if (!fields.includes(name)) {
      throw new ValidationError(`${field}: unknown field; the collection's filterable fields: ${fields.join(", ") || "none"}`, {
        field,
        details: { fields: [...fields] },
      });
    }
    const values = Array.isArray(value) ? value : [value];
    if (values.length === 0 || !values.every(scalar)) throw new ValidationError(`${field}: a string, number or boolean, or a non-empty list of them`, { field });
    return [name, values];
  });
}

/** Passages to upsert: ids, texts and vectors of the collection's dimension (a wrong one names the passage). */
export function checkPassages(passages: EmbeddedPassage[], dim: number): void {
  passages.forEach((p, i) => {
    if (typeof p.id !== "string" || p.id.length === 0 || p.id.length > 512) throw new ValidationError(`passages[${i}].id: a string of 1..512 characters`, { field: `passages[${i}].id` });
    if (typeof p.text !== "string") throw new ValidationError(`passages[${i}].text: must be a string`, { field: `passages[${i}].text` });
    if (!(p.vector instanceof Float32Array) || p.vector.length !== dim) {
      const got = p.vector instanceof Float32Array ? p.vector.length : typeof p.vector;
      throw new ValidationError(`passages[${i}].vector: ${got} dimensions; the collection's vectors have ${dim}`, {
        field: `passages[${i}].vector`,
        details: { expected: dim, got },
      });
    }
  });
}
