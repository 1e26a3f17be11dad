/**
 * @dspex/protocol — the wire contract in TypeScript. Everything under generated/ comes from schemas/
 * (npm run generate); this package adds only what a schema cannot say: the msgpack codec, the error
 * mapping, path-naming checks and the session partition hash.
 */
export * from "./generated/types.js";
export * from "./generated/bus.js";
export * from "./generated/ops.js";
export { SCHEMAS } from "./generated/schemas.js";
export * from "./errors.js";
export { encode, decode } from "./codec.js";
export {
  check,
  checkCompile,
  checkDlqRedactedBody,
  checkLmProfiles,
  checkModuleOptions,
  checkRequest,
  checkRetrievalReply,
  checkRetrievalRequest,
  requiredFor,
} from "./validate.js";
export { partitionOf, partitionSubject } from "./partition.js";
import { POOLS, type Pool } from "./generated/bus.js";

/** Version of the envelopes (`v`). */
export const ENVELOPE_VERSION = 1;

export function isPool(value: unknown): value is Pool {
  return typeof value === "string" && (POOLS as readonly string[]).includes(value);
}
