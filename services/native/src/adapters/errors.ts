/** The errors DSPy's adapters raise, with DSPy's messages. */

import { LMOutputError, WorkerError } from "@dspex/protocol";
import type { ValidationProblem } from "../signature/validate.js";

export type AdapterName = "ChatAdapter" | "JSONAdapter";

/** Why a field's value could not be parsed: DSPy's `parse_value` raised (a pydantic ValidationError). */
export interface FieldParseProblem {
  readonly field: string;
  readonly value: unknown;
  readonly problems: readonly ValidationProblem[];
  /**
   * The text standing where DSPy's message embeds `str(pydantic.ValidationError)`. pydantic's wording is not
   * reproduced (it is pydantic's, not DSPy's, and not part of any contract); everything around it is DSPy's.
   */
  readonly text: string;
}

export interface AdapterParseErrorInit {
  adapterName: AdapterName;
  /** The signature's output field names, in order (DSPy lists them in the message). */
  outputNames: readonly string[];
  lmResponse: string;
  message?: string;
  parsedResult?: Readonly<Record<string, unknown>>;
  fieldProblem?: FieldParseProblem;
}

/**
 * dspy.utils.exceptions.AdapterParseError: the LM's answer does not parse into the signature's outputs. The
 * message is DSPy's, byte for byte, except the embedded pydantic error text (see FieldParseProblem.text).
 * ChatAdapter's call falls back to JSONAdapter on this error (see callAdapter). On the wire it is an
 * LMOutputError, as when a worker's DSPy raises it.
 */
export class AdapterParseError extends LMOutputError {
  readonly adapterName: AdapterName;
  readonly lmResponse: string;
  readonly parsedResult: Readonly<Record<string, unknown>> | undefined;
  readonly fieldProblem: FieldParseProblem | undefined;

  constructor(init: AdapterParseErrorInit) {
    let message = init.message ? `${init.message}\n\n` : "";
    message +=
      `Adapter ${init.adapterName} failed to parse the LM response. \n\n` +
      `LM Response: ${init.lmResponse} \n\n` +
      `Expected to find output fields in the LM response: [${init.outputNames.join(", ")}] \n\n`;
    if (init.parsedResult !== undefined) {
      message += `Actual output fields parsed from the LM response: [${Object.keys(init.parsedResult).join(", ")}] \n\n`;
    }
    super(message, {
      details: { adapter: init.adapterName, ...(init.fieldProblem ? { field: init.fieldProblem.field } : {}) },
      ...(init.fieldProblem ? { field: init.fieldProblem.field } : {}),
    });
    this.adapterName = init.adapterName;
    this.lmResponse = init.lmResponse;
    this.parsedResult = init.parsedResult;
    this.fieldProblem = init.fieldProblem;
  }
}

/**
 * A Python exception DSPy's formatting raises for values it cannot format (e.g. a list of numbers given to a
 * `str` input: `_format_blob` tests `"\n" in 3`). `pythonType` and `message` are Python's. On the wire it is a WorkerError, as the worker reports the same exception.
 */
export class AdapterFormatError extends WorkerError {
  constructor(
    readonly pythonType: "TypeError" | "AttributeError",
    message: string,
  ) {
    super(message);
  }
}
