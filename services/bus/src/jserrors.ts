/**
 * JetStream API errors by code (nats.js `JetStreamApiError.code`), never by message text. nats.js exports
 * constants for a few codes; the others are the server's (nats-server errors.json).
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import { PermissionViolationError } from "@nats-io/transport-node";
import { Forbidden } from "@dspex/protocol";

export const JS_CODES = {
  ...JetStreamApiCodes,
  /** stream name already in use with a different configuration */
  StreamNameExist: 10058,
  /** consumer already exists (with a different configuration) */
  ConsumerExists: 10148,
  ConsumerNameExist: 10013,
  /** a second message on a subject of a stream with max_msgs_per_subject and discard_new_per_subject */
  StreamStoreFailed: 10077,
  /** no message matched a direct get */
  NoMessageFound: 10037,
} as const;

export function jsCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

export function isStreamNotFound(err: unknown): boolean {
  return jsCode(err) === JS_CODES.StreamNotFound;
}

export function isConsumerNotFound(err: unknown): boolean {
  return jsCode(err) === JS_CODES.ConsumerNotFound;
}

/** A compare-and-set write (expected last sequence/revision) lost to another writer. */
export function isWrongLastSequence(err: unknown): boolean {
  const code = jsCode(err);
  return code === JS_CODES.StreamWrongLastSequence || code === JS_CODES.StreamWrongLastSequenceUnknown;
}

/** The server refused a publish or subscription: the connection's role may not use that subject. */
export function isPermissionViolation(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    if (e instanceof PermissionViolationError) return true;
  }
  return false;
}

/**
 * A permission refusal as the typed error `Forbidden`, naming what was attempted and the identity it needs
 * (docs/security.md); any other error unchanged.
 */
export function forbiddenOr(err: unknown, what: string, needs: string): unknown {
  if (!isPermissionViolation(err)) return err;
  return new Forbidden(`${what} needs the ${needs} identity: this connection's credentials (NATS_CREDS) do not allow it`, {
    details: { needs },
    cause: err,
  });
}
