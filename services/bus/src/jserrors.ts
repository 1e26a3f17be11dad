/**
 * JetStream API errors by code (nats.js `JetStreamApiError.code`), never by message text. nats.js exports
 * constants for a few codes; the others are the server's (nats-server errors.json).
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";

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
