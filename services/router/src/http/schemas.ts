/**
 * The HTTP API's request bodies as JSON Schemas. The parts the wire contract defines (the `lm` map, a
 * signature) are referenced from schemas/ by `$id`, so the API cannot drift from the contract; the rest is
 * the API's own (field names in camelCase like the TypeScript client's options). Every body is closed
 * (`additionalProperties: false`): an unknown field is a 400 naming it, never silently dropped.
 */
import { POOLS, SCHEMAS } from "@dspex/protocol";
import type { CallOptions } from "@dspex/client";

const BASE = "https://dspex.dev/schemas/v1";
/** The contract's schemas, registered with the API's validator (fastify `addSchema`). */
export const CONTRACT_SCHEMAS = Object.values(SCHEMAS);

/** Longest call the API accepts (a caller wanting longer runs an optimize or eval job instead). */
export const MAX_TIMEOUT_MS = 3_600_000;
const TEXT = { type: "string", maxLength: 65_536 };

const callFields = {
  inputs: { type: "object" },
  instructions: TEXT,
  lm: { $ref: `${BASE}/request.schema.json#/definitions/lm` },
  session: { type: "string", minLength: 1, maxLength: 256 },
  affinity: { enum: ["hint", "strict"] },
  timeoutMs: { type: "integer", minimum: 1, maximum: MAX_TIMEOUT_MS },
  pool: { enum: [...POOLS] },
  demos: { type: "array", maxItems: 1_000, items: { type: "object" } },
};

const signature = { oneOf: [{ type: "string", minLength: 1, maxLength: 65_536 }, { $ref: `${BASE}/signature.schema.json` }] };

/** A call body's options as the client takes them (the body's other fields are the call's inputs, version, …). */
export function callOptions(body: Record<string, unknown>): CallOptions {
  const out: Record<string, unknown> = {};
  for (const key of ["lm", "timeoutMs", "pool", "session", "affinity", "instructions", "demos"]) if (body[key] !== undefined) out[key] = body[key];
  return out as CallOptions;
}

export const PROGRAM_ID_PATTERN = "^[-_a-zA-Z0-9]{1,128}$";

export const predictBody = {
  type: "object",
  required: ["signature", "inputs"],
  additionalProperties: false,
  properties: { signature, ...callFields },
};

/** Ids of programs created here: the registry's prefix is the registry's (its versions live under it). */
export const OWN_PROGRAM_ID_PATTERN = "^(?!registry-)[-_a-zA-Z0-9]{1,128}$";

export const createProgramBody = {
  type: "object",
  required: ["signature"],
  additionalProperties: false,
  properties: {
    id: { type: "string", pattern: OWN_PROGRAM_ID_PATTERN },
    signature,
    module: { enum: ["predict", "chain_of_thought"] },
    instructions: TEXT,
    session: callFields.session,
    state: {
      type: "object",
      additionalProperties: false,
      properties: { demos: callFields.demos, dspy_state: { type: "object" } },
    },
  },
};

export const executeBody = {
  type: "object",
  required: ["inputs"],
  additionalProperties: false,
  properties: { ...callFields, version: { type: "integer", minimum: 1 } },
};

/** A call of a user's packaged program: its pool is the one the program declares; demos and instructions are its own. */
export const packagedCallBody = {
  type: "object",
  required: ["inputs"],
  additionalProperties: false,
  properties: { inputs: callFields.inputs, lm: callFields.lm, session: callFields.session, affinity: callFields.affinity, timeoutMs: callFields.timeoutMs },
};

/** A packaged program's name, as the contract's ProgramOptions allow it. */
export const packagedParams = {
  type: "object",
  required: ["name"],
  // the contract's own definition, inlined: OpenAPI tools cannot follow a $ref in a path parameter
  properties: { name: { type: "string", pattern: SCHEMAS["modules.schema.json"].definitions.program.properties.name.pattern } },
};

export const programParams = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string", pattern: PROGRAM_ID_PATTERN } },
};
