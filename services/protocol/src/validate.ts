/**
 * Checks against the wire contract with the validators generated from schemas/ (ajv standalone): a failure is
 * a ValidationError whose `field` is the path of the offending value (`module.n`, `compile.options.auto`),
 * the same path the worker reports for the same mistake.
 */
import type { ErrorObject, ValidateFunction } from "ajv";
import { ValidationError } from "./generated/errors.js";
import { MODULE_OPTION_VALIDATORS, OPERATION_REQUIRES, type Operation } from "./generated/ops.js";
import {
  validateCompile,
  validateDlqRedactedBody,
  validateLmProfiles,
  validateRequest,
  validateRetrievalCount,
  validateRetrievalDelete,
  validateRetrievalReply,
  validateRetrievalSearch,
  validateRetrievalUpsert,
} from "./generated/validators.js";

/** `/module/tools/0/name` → `module.tools[0].name` under `prefix`. */
function fieldPath(prefix: string, pointer: string, missing?: string): string {
  const parts = pointer.split("/").slice(1).map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
  if (missing !== undefined) parts.push(missing);
  let path = prefix;
  for (const p of parts) path += /^\d+$/.test(p) ? `[${p}]` : path === "" ? p : `.${p}`;
  return path;
}

/** The most specific error ajv reported (an if/then failure reports the inner error first). */
function describe(error: ErrorObject, prefix: string): ValidationError {
  const params = error.params as Record<string, unknown>;
  const extra = typeof params.additionalProperty === "string" ? params.additionalProperty : undefined;
  const missing = typeof params.missingProperty === "string" ? params.missingProperty : undefined;
  const field = fieldPath(prefix, error.instancePath, extra ?? missing);
  let text: string;
  if (extra !== undefined) text = `unknown option \`${field}\``;
  else if (missing !== undefined) text = `\`${field}\` is required`;
  else if (error.keyword === "enum") text = `\`${field}\` must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
  else text = `\`${field}\` ${error.message ?? "is invalid"}`;
  return new ValidationError(text, { field, details: { keyword: error.keyword, params } });
}

/** Runs a generated validator; throws the ValidationError naming the first bad field. */
export function check(validate: ValidateFunction, value: unknown, prefix: string): void {
  if (validate(value)) return;
  const errors = validate.errors ?? [];
  // if/then reports "must match then schema" after the error inside; the inner one names the field
  const first = errors.find((e) => e.keyword !== "if") ?? errors[0];
  if (!first) throw new ValidationError(`\`${prefix}\` is invalid`, { field: prefix });
  throw describe(first, prefix);
}

/** The `module` options of an operation (modules.schema.json). */
export function checkModuleOptions(op: Operation, options: unknown, prefix = "module"): void {
  check(MODULE_OPTION_VALIDATORS[op], options ?? {}, prefix);
}

/** An optimizer job's `compile` map (optimizers.schema.json). */
export function checkCompile(compile: unknown, prefix = "compile"): void {
  check(validateCompile as ValidateFunction, compile, prefix);
}

/** An operator's LM profiles document (lm-profiles.schema.json: DSPEX_LM_PROFILES, DSPEX_LM_PROFILES_FILE). */
export function checkLmProfiles(document: unknown, prefix = ""): void {
  check(validateLmProfiles as ValidateFunction, document, prefix);
}

/** The body of a redacted dead letter (dlq.schema.json#/definitions/redactedBody). */
export function checkDlqRedactedBody(body: unknown, prefix = ""): void {
  check(validateDlqRedactedBody as ValidateFunction, body, prefix);
}

const RETRIEVAL_REQUESTS = {
  search: validateRetrievalSearch,
  upsert: validateRetrievalUpsert,
  delete: validateRetrievalDelete,
  count: validateRetrievalCount,
} as const;

/** The body of a retrieval service request (retrieval.schema.json, the definition named by the op). */
export function checkRetrievalRequest(op: keyof typeof RETRIEVAL_REQUESTS, body: unknown): void {
  check(RETRIEVAL_REQUESTS[op] as ValidateFunction, body, "");
}

/** A retrieval service reply (retrieval.schema.json#/definitions/reply). */
export function checkRetrievalReply(reply: unknown): void {
  check(validateRetrievalReply as ValidateFunction, reply, "");
}

/** A whole request envelope (request.schema.json, every rule). */
export function checkRequest(envelope: unknown): void {
  check(validateRequest as ValidateFunction, envelope, "");
}

/** Envelope fields `op` needs (e.g. `evaluate` for op evaluate). */
export function requiredFor(op: Operation): readonly string[] {
  return OPERATION_REQUIRES[op] ?? [];
}
