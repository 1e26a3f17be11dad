/**
 * Embeddings on the fleet: op `embed` on the gpu pool. The request is an ordinary envelope with the signature
 * `texts: list[str] -> vectors` (so the inputs are checked like any call's); the reply's `vectors` is msgpack
 * bin holding `count × dim` little-endian float32 values, row-major (schemas/README.md, docs/retrieval.md).
 */
import { ValidationError, type EmbedOptions } from "@dspex/protocol";
import type { CallOptions, CallRequest, CallResult } from "./call.js";

export const EMBED_SIGNATURE = "texts: list[str] -> vectors";

export interface Embeddings {
  vectors: Float32Array[];
  dim: number;
  model: string;
  /** Indices of texts cut to the model's token limit (`truncate: true`). */
  truncated: number[];
  usage: CallResult<unknown>["usage"];
  worker: string;
}

export interface EmbedCallOptions extends CallOptions {
  module?: EmbedOptions;
}

/** The request a `client.embed` sends. */
export function embedRequest(texts: string[], module?: EmbedOptions): CallRequest {
  return { op: "embed", signature: EMBED_SIGNATURE, inputs: { texts }, rawOutputs: true, ...(module ? { module: { ...module } } : {}) };
}

/** Float32 rows from the reply's bin (read little-endian whatever this machine's byte order). */
export function decodeVectors(outputs: Record<string, unknown>): { vectors: Float32Array[]; dim: number } {
  const { vectors: bin, count, dim } = outputs as { vectors: unknown; count: unknown; dim: unknown };
  if (!(bin instanceof Uint8Array) || typeof count !== "number" || typeof dim !== "number" || bin.byteLength !== count * dim * 4) {
    throw new ValidationError("outputs.vectors: not count × dim float32 values", { field: "outputs.vectors" });
  }
  const view = new DataView(bin.buffer, bin.byteOffset, bin.byteLength);
  const rows: Float32Array[] = [];
  for (let i = 0; i < count; i++) {
    const row = new Float32Array(dim);
    for (let j = 0; j < dim; j++) row[j] = view.getFloat32((i * dim + j) * 4, true);
    rows.push(row);
  }
  return { vectors: rows, dim };
}
