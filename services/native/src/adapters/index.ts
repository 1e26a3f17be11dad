/**
 * Native DSPy adapters: ChatAdapter and JSONAdapter of DSPy 3.4.1 in TypeScript, producing DSPy's messages
 * byte for byte and parsing answers as DSPy does (test/parity/adapters-parity.test.ts checks both against the
 * real DSPy). Imports stay relative within @dspex/native.
 */

export { ChatAdapter, type Demo, type LMCapabilities, type RequestParams } from "./chat.js";
export { JSONAdapter, firstBalancedBraces } from "./json.js";
export {
  type AdapterCall,
  type AdapterCallResult,
  callAdapter,
  formatRequest,
  type LMCompletions,
  type LMRequest,
  parseCompletions,
} from "./call.js";
export {
  AdapterFormatError,
  type AdapterName,
  AdapterParseError,
  type AdapterParseErrorInit,
  type FieldParseProblem,
} from "./errors.js";
export { type ChatMessage, type ContentPart, formatFieldValue, pythonTyped, workerInputs } from "./format.js";
export {
  type AdapterField,
  type AdapterSignature,
  adapterSignature,
  chainOfThoughtSignature,
  defaultInstructions,
  type ModuleKind,
  moduleSignature,
  REASONING_FIELD,
} from "./signature.js";
export {
  annotationName,
  noteJsonSchema,
  STRUCTURED_OUTPUTS_NAME,
  strictJsonSchema,
  structuredOutputsSchema,
  translateFieldType,
} from "./annotations.js";
export { PyFloat } from "../signature/types.js";
