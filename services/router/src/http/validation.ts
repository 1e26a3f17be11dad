/**
 * The API's validators. Bodies are checked strictly — no coercion ("10" is not 10), nothing removed, an unknown
 * field refused — while path parameters and query strings, which are text by nature, are coerced to the types
 * their schemas name (`?limit=10`). The wire contract's schemas are registered with both. GraphQL arguments are
 * checked with the same schemas (`check`), so both APIs refuse the same inputs naming the same field.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import type { FastifySchemaCompiler } from "fastify";
import { ValidationError } from "@dspex/protocol";
import { CONTRACT_SCHEMAS } from "./schemas.js";

function make(coerce: boolean): Ajv {
  const ajv = new Ajv({ strict: false, coerceTypes: coerce, removeAdditional: false, allErrors: false, useDefaults: true, addUsedSchema: false });
  for (const s of CONTRACT_SCHEMAS) ajv.addSchema(s as object);
  return ajv;
}

const strict = make(false);
const coercing = make(true);

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) =>
  (httpPart === "body" ? strict : coercing).compile(schema as object) as ReturnType<FastifySchemaCompiler<unknown>>;

/** The field an ajv error is about, as a path (`timeoutMs`, `lm.model`, `state.demos[2]`). */
export function fieldOf(err: Pick<ErrorObject, "instancePath" | "params">): string {
  const path = err.instancePath
    .split("/")
    .slice(1)
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p.replace(/~1/g, "/").replace(/~0/g, "~")}`))
    .join("")
    .replace(/^\./, "");
  const params = err.params as { missingProperty?: string; additionalProperty?: string };
  const missing = params.missingProperty ?? params.additionalProperty;
  return [path, missing].filter(Boolean).join(".") || "body";
}

const compiled = new WeakMap<object, ValidateFunction>();

/** Checks a value against a schema (`coerce` for arguments that are text by nature); a ValidationError names the field. */
export function check(schema: object, value: unknown, coerce = false, prefix = ""): void {
  let fn = compiled.get(schema);
  if (!fn) {
    fn = (coerce ? coercing : strict).compile(schema);
    compiled.set(schema, fn);
  }
  if (!fn(value)) {
    const err = fn.errors![0]!;
    const field = [prefix, fieldOf(err)].filter((p) => p && p !== "body").join(".") || prefix || "body";
    throw new ValidationError(`${field}: ${err.message ?? "invalid"}`, { field });
  }
}
