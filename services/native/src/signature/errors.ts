/**
 * SignatureError with a position: the message gains where the problem is (and a caret under the signature
 * string when it is one line) and a suggestion; both also travel in `details` as data.
 */
import { SignatureError } from "@dspex/protocol";

export interface SignatureProblem {
  field?: string;
  /** 0-based offset in the signature string where the problem is. */
  position?: number;
  suggestion?: string;
  /** The signature string, shown with a caret under `position` when it is one line. */
  source?: string;
  cause?: unknown;
}

export function signatureError(message: string, problem: SignatureProblem = {}): SignatureError {
  let text = message;
  if (problem.position !== undefined) text += ` (at position ${problem.position})`;
  if (problem.suggestion !== undefined) text += `; did you mean ${problem.suggestion}?`;
  if (problem.source !== undefined && problem.position !== undefined && !/[\r\n]/.test(problem.source)) {
    text += `\n  ${problem.source}\n  ${" ".repeat(problem.position)}^`;
  }
  const details: Record<string, unknown> = {};
  if (problem.position !== undefined) details.position = problem.position;
  if (problem.suggestion !== undefined) details.suggestion = problem.suggestion;
  return new SignatureError(text, {
    field: problem.field,
    cause: problem.cause,
    ...(Object.keys(details).length > 0 ? { details } : {}),
  });
}
