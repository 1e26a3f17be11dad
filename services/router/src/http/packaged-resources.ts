/**
 * Users' packaged programs the fleet serves (docs/programs.md) as an API resource: the listing of what the
 * workers advertise, and calling one. REST (`GET /v1/packaged-programs`, `POST /v1/packaged-programs/:name/call`)
 * and GraphQL (`packagedPrograms`, `packagedProgramGraph`, `callPackagedProgram`) are generated from these definitions (resource.ts).
 * The client keeps one handle per served program, so a call does not ask the workers again (the handle re-learns
 * the program after a version change); an unknown name is UnknownProgram (404) before anything is sent.
 */
import { DspexError, isPool } from "@dspex/protocol";
import { mermaid, servedPrograms, workerStatuses } from "@dspex/bus";
import type { JsonSchema } from "./registry-schemas.js";
import type { Operation, Resource } from "./resource.js";
import { callOptions, packagedCallBody, packagedParams } from "./schemas.js";

const str = { type: "string" };
/** A wire field `{name, type}` (the type expression nests: JSON in GraphQL). */
const field = { type: "object", additionalProperties: true };

export const packagedProgramSchema: JsonSchema = {
  title: "PackagedProgram",
  type: "object",
  additionalProperties: false,
  required: ["name", "path", "version", "pool", "inputs", "outputs", "predictors"],
  description: "A program a worker advertises: its wire fields, package version, pool and predictors.",
  properties: {
    name: str,
    path: str,
    version: { type: ["string", "null"] },
    pool: str,
    inputs: { type: "array", items: field },
    outputs: { type: "array", items: field },
    predictors: { type: "array", items: str },
  },
};

const failureSchema: JsonSchema = {
  title: "PackagedProgramFailure",
  type: "object",
  additionalProperties: false,
  required: ["name", "path", "error"],
  description: "A declared program a worker could not serve, and why.",
  properties: { name: str, path: str, error: str },
};

const listSchema: JsonSchema = {
  title: "PackagedProgramList",
  type: "object",
  additionalProperties: false,
  required: ["programs", "failures"],
  properties: { programs: { type: "array", items: packagedProgramSchema }, failures: { type: "array", items: failureSchema } },
};

const resultSchema: JsonSchema = {
  title: "CallResult",
  type: "object",
  additionalProperties: false,
  required: ["id", "outputs", "lm", "usage", "timings", "worker"],
  description: "The answer of a call: the program's outputs (checked against its advertised types), usage, timings, the worker.",
  properties: {
    id: str,
    outputs: { type: "object", additionalProperties: true },
    lm: str,
    usage: { type: "object", additionalProperties: true },
    timings: { type: "object", additionalProperties: true },
    worker: str,
  },
};

const graphSchema: JsonSchema = {
  title: "ProgramGraph",
  type: "object",
  additionalProperties: false,
  required: ["program", "version", "graph", "mermaid"],
  description: "A packaged program's module tree (each node: name, type, signature of a predictor, children) and its Mermaid flowchart.",
  properties: { program: str, version: { type: ["string", "null"] }, graph: { type: "object", additionalProperties: true }, mermaid: str },
};

const graph: Operation = {
  name: "packagedProgramGraph",
  kind: "get",
  method: "GET",
  path: "/v1/packaged-programs/:name/graph",
  scope: "predict",
  summary: "A packaged program's module and predictor tree, as JSON and as a Mermaid flowchart",
  params: packagedParams.properties,
  response: graphSchema,
  run: async ({ client }, input) => {
    const name = input.params.name as string;
    const advert = await client.program(name).describe();
    if (!advert.graph) throw new DspexError(`program: the workers serving ${name} do not advertise its module tree`, { type: "NotFound", field: "program" });
    return { program: name, version: advert.version, graph: advert.graph, mermaid: mermaid(name, advert.graph) };
  },
};

const list: Operation = {
  name: "packagedPrograms",
  kind: "list",
  method: "GET",
  path: "/v1/packaged-programs",
  scope: "predict",
  summary: "The packaged programs the fleet serves, with their fields, and the declared ones it could not serve",
  response: listSchema,
  run: async ({ client }) => {
    const statuses = await workerStatuses(client.nc);
    return {
      programs: [...servedPrograms(statuses).values()].sort((a, b) => a.name.localeCompare(b.name)),
      failures: statuses.flatMap((st) => st.programs?.failures ?? []),
    };
  },
};

const call: Operation = {
  name: "callPackagedProgram",
  kind: "action",
  method: "POST",
  path: "/v1/packaged-programs/:name/call",
  scope: "predict",
  summary: "Call a packaged program the fleet serves",
  params: packagedParams.properties,
  body: packagedCallBody,
  response: resultSchema,
  poolOf: async ({ client }, input) => {
    const advert = await client.program(input.params.name as string).describe();
    return isPool(advert.pool) ? advert.pool : "general";
  },
  run: ({ client }, input) => client.program(input.params.name as string).call(input.body.inputs as Record<string, unknown>, callOptions(input.body)),
};

export const PACKAGED_RESOURCE: Resource = {
  name: "Packaged programs",
  description: "Users' own DSPy programs, shipped as Python packages and served by the workers (docs/programs.md).",
  schema: packagedProgramSchema,
  operations: [list, graph, call],
};
