/**
 * The registry's resources as JSON Schemas: what the REST API answers (fastify serializes responses by them),
 * what the OpenAPI document describes, and what the GraphQL types are generated from (graphql-schema.ts). Request
 * bodies are closed (`additionalProperties: false`): an unknown field is a 400 naming it.
 */
import { LIFECYCLE_STATES, MAX_EXAMPLES, MAX_LIMIT, NAME_PATTERN, REF_PATTERN } from "@dspex/registry";
import { MAX_TIMEOUT_MS } from "./schemas.js";

export type JsonSchema = Record<string, unknown>;

const BASE = "https://dspex.dev/schemas/v1";
const str = { type: "string" };
const nstr = { type: ["string", "null"] };
const int = { type: "integer" };
const nint = { type: ["integer", "null"] };
const nnum = { type: ["number", "null"] };
const time = { type: "string", description: "ISO 8601" };
/** Free-form JSON (GraphQL: the JSON scalar). */
const anyObject = { type: "object", additionalProperties: true };
const nobject = { type: ["object", "null"], additionalProperties: true };
const TEXT = { type: "string", minLength: 1, maxLength: 65_536 };

export const NAME = { type: "string", pattern: NAME_PATTERN };
export const STATE = { type: "string", enum: [...LIFECYCLE_STATES] };

function object(title: string, properties: Record<string, JsonSchema>, description?: string): JsonSchema {
  return { title, type: "object", additionalProperties: false, required: Object.keys(properties), properties, ...(description ? { description } : {}) };
}

export const signatureSchema = object("Signature", { id: str, text: str, wire: anyObject, inputSchema: anyObject, outputSchema: anyObject }, "A DSPy signature: its text, parsed wire form and the JSON Schemas of its inputs and outputs.");

export const programSchema = object(
  "Program",
  {
    name: str,
    module: str,
    signature: signatureSchema,
    lmProfile: nstr,
    description: nstr,
    state: STATE,
    deployedVersion: nint,
    latestVersion: int,
    alias: nstr,
    owner: str,
    createdAt: time,
    updatedAt: time,
  },
  "A program: its signature, module, LM profile and lifecycle state; `alias` (program:<name>@deployed) routes to the deployed version.",
);

export const evaluationSchema = object("Evaluation", { dataset: str, score: { type: "number" }, job: nstr, at: time });

export const versionSchema = object(
  "ProgramVersion",
  {
    program: str,
    version: int,
    ref: str,
    state: anyObject,
    instructions: nstr,
    parentVersion: nint,
    job: nstr,
    score: nnum,
    baselineScore: nnum,
    kvKey: str,
    evaluations: { type: "array", items: evaluationSchema },
    createdBy: str,
    createdAt: time,
  },
  "An immutable version: learned state (demos, DSPy state), lineage (parent version, optimizer job), scores on datasets.",
);

export const transitionSchema = object("Transition", { id: int, program: str, action: str, from: str, to: str, version: nint, actor: str, reason: nstr, details: nobject, at: time }, "A lifecycle transition: who, when, why, what its guards saw.");

const datasetProperties = { name: str, contentHash: str, size: int, createdBy: str, createdAt: time };
export const datasetSchema = object("Dataset", datasetProperties, "A named, immutable set of examples with its content hash.");
export const datasetWithExamplesSchema = {
  ...object("DatasetWithExamples", { ...datasetProperties, examples: { type: "array", items: anyObject } }),
};

export const jobSchema = object("Job", { id: str, kind: str, program: str, version: int, dataset: nstr, valset: nstr, status: str, score: nnum, progress: nobject, createdBy: str, createdAt: time, updatedAt: time }, "A job the registry started, linked to the version and datasets it used.");

export const executionSchema = object(
  "Execution",
  {
    id: str,
    program: str,
    version: int,
    ref: str,
    status: { type: "string", enum: ["ok", "error"] },
    inputs: nobject,
    inputsSummary: anyObject,
    outputs: nobject,
    error: nobject,
    usage: nobject,
    latencyMs: { type: "number" },
    worker: nstr,
    traceId: nstr,
    caller: nstr,
    at: time,
  },
  "One call of a program version: inputs (null when redacted, the default: see inputsSummary), outputs, usage, latency, worker, trace id, error.",
);

export const executionResultSchema = object("ExecutionResult", { id: str, program: str, version: int, ref: str, outputs: anyObject, usage: anyObject, latencyMs: { type: "number" }, worker: str, lm: str }, "The answer of an execution (recorded in the history under `id`).");

export const transitionResultSchema = {
  title: "TransitionResult",
  type: "object",
  additionalProperties: false,
  required: ["program"],
  properties: { program: programSchema, version: versionSchema, job: jobSchema },
};

/** A page of a listing: `next` is the cursor of the following page. */
export function pageSchema(item: JsonSchema): JsonSchema {
  return { title: `${String(item.title)}Page`, type: "object", additionalProperties: false, required: ["items"], properties: { items: { type: "array", items: item }, next: str } };
}

export const pageQuery = {
  limit: { type: "integer", minimum: 1, maximum: MAX_LIMIT, description: "Items per page (default 50)." },
  cursor: { type: "string", maxLength: 512, description: "The `next` of the previous page." },
};

const reason = { type: "string", maxLength: 2_000, description: "Why (recorded with the transition)." };
const versionNumber = { type: "integer", minimum: 1 };

function body(properties: Record<string, JsonSchema>, required: string[] = []): JsonSchema {
  return { type: "object", additionalProperties: false, required, properties };
}

const state = {
  type: "object",
  additionalProperties: false,
  properties: { demos: { type: "array", maxItems: 1_000, items: { type: "object" } }, dspy_state: { type: "object" } },
};

export const BODIES = {
  createProgram: body(
    {
      name: NAME,
      signature: TEXT,
      module: { enum: ["predict", "chain_of_thought"] },
      instructions: TEXT,
      lmProfile: { type: "string", pattern: "^[-_.a-zA-Z0-9]{1,64}$" },
      description: { type: "string", maxLength: 2_000 },
      state,
    },
    ["name", "signature"],
  ),
  addVersion: body({ state, instructions: TEXT, parentVersion: versionNumber }, ["state"]),
  createDataset: body({ name: NAME, examples: { type: "array", minItems: 1, maxItems: MAX_EXAMPLES, items: { type: "object" } } }, ["name", "examples"]),
  train: body(
    {
      version: versionNumber,
      optimizer: { type: "string", minLength: 1, maxLength: 64 },
      options: { type: "object" },
      trainset: NAME,
      valset: NAME,
      metric: { oneOf: [{ type: "string", minLength: 1, maxLength: 128 }, { type: "object", required: ["name"], additionalProperties: false, properties: { name: { type: "string" }, args: { type: "object" } } }] },
      reason,
    },
    ["optimizer", "trainset"],
  ),
  optimize: body({ job: { type: "string", pattern: "^[-_a-zA-Z0-9]{1,128}$" }, reason }),
  deploy: body({ version: versionNumber, dataset: NAME, threshold: { type: "number" }, reason }, ["dataset"]),
  rollback: body({ reason }),
  deprecate: body({ reason }),
  execute: body(
    {
      program: { type: "string", pattern: REF_PATTERN, description: "program:<name>@deployed or program:<name>@<version>" },
      inputs: { type: "object" },
      lm: { $ref: `${BASE}/request.schema.json#/definitions/lm` },
      session: { type: "string", minLength: 1, maxLength: 256 },
      affinity: { enum: ["hint", "strict"] },
      timeoutMs: { type: "integer", minimum: 1, maximum: MAX_TIMEOUT_MS },
    },
    ["program", "inputs"],
  ),
};
