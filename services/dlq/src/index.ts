/**
 * @dspex/dlq — dead letters: the service loop that records them (listener.ts), and reading, decoding and
 * replaying them (deadletters.ts), which `dspex dlq` uses.
 */
export { DlqListener, type DlqListenerOptions } from "./listener.js";
export {
  DLQ_HEADERS,
  deadLetter,
  decodeDeadLetter,
  getDeadLetter,
  listDeadLetters,
  replayDeadLetter,
  type Advisory,
  type DeadLetterEvent,
  type DeadLetterKind,
  type DlqEntry,
  type ReplayResult,
} from "./deadletters.js";
export { keepInputs, msgpackType, redactedBody } from "./redaction.js";
