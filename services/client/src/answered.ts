/**
 * Which failures are answers. A worker's error reply is an answer (the transport marks it: isReplyError), and so
 * is an error the native engine raises after the LM answered or refused — both mean "the call was carried out and
 * this is how it ended", which the retry policy may retry (when `retryable`) and which, unlike a call that got no
 * answer before its deadline, is not evidence that a pool is gone.
 */
import { isReplyError } from "./transport.js";

const answered = new WeakSet<object>();

/** Marks an error raised by a lane other than the bus as that lane's answer. Returns it. */
export function markAnswered<E>(err: E): E {
  if (typeof err === "object" && err !== null) answered.add(err);
  return err;
}

/** An error reply of a worker, or an error another lane marked as its answer. */
export function isAnswered(err: unknown): boolean {
  return isReplyError(err) || (typeof err === "object" && err !== null && answered.has(err));
}
