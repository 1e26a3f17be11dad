/**
 * Native DSPy signatures for TypeScript: parse DSPy's string syntax, build signatures with a typed builder,
 * produce the wire format (schemas/README.md), JSON Schemas, and validate/coerce inputs and outputs the way
 * the Python worker (real DSPy) does.
 */

// SignatureWire, TypeExpr, FieldWire and FieldConstraints are exported from ../wire/envelope.ts.
export type { ConstraintKey, LiteralValue, TypeKind } from "./types.js";
export { CONSTRAINT_KEYS, allowsNone, formatType, typeEquals } from "./types.js";
export { parseSignature, parseType, signatureCacheStats } from "./parser.js";
export { checkConstraints, checkField, checkSignature, checkType } from "./wire.js";
export { fieldNameProblem, RESERVED_FIELD_NAMES } from "./names.js";
export {
  clearSignatureCache,
  CompiledSignature,
  compileSignature,
  resolveSignature,
  type SignatureInput,
  type SignatureSource,
  type ValidateOptions,
  validateInputs,
  validateOutputs,
} from "./compiled.js";
export type { CheckResult, ExtraPolicy, ProblemCode, ValidationProblem } from "./validate.js";
export { describeValue } from "./validate.js";
export { JSON_SCHEMA_DIALECT, type JsonSchema, signatureJsonSchema, typeFromJsonSchema, typeJsonSchema } from "./schema.js";
export {
  type FieldOptions,
  type ItemsOptions,
  type LengthOptions,
  type ObjectFieldDef,
  type ObjectValue,
  type RangeOptions,
  signature,
  SignatureBuilder,
  t,
  type TypeDef,
} from "./builder.js";
