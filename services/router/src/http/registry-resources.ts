/**
 * The registry's resources and their operations (resource.ts): programs with their versions, transitions and
 * lifecycle actions, datasets, jobs, executions. REST routes, the OpenAPI document and the GraphQL schema are all
 * generated from this table.
 */
import type { AddVersionInput, CreateProgramInput, DeployInput, ExecutionFilters, JobFilters, ProgramFilters, TrainInput } from "@dspex/registry";
import { executeRegistryProgram, type ExecuteBody } from "./execute.js";
import {
  BODIES,
  NAME,
  STATE,
  datasetSchema,
  datasetWithExamplesSchema,
  executionResultSchema,
  executionSchema,
  jobSchema,
  pageQuery,
  pageSchema,
  programSchema,
  transitionResultSchema,
  transitionSchema,
  versionSchema,
} from "./registry-schemas.js";
import type { Operation, OperationInput, Resource } from "./resource.js";

const P = "/v1/registry";
const byName = { name: NAME };
const byVersion = { name: NAME, version: { type: "integer", minimum: 1 } };

function page(q: Record<string, unknown>): { limit?: number; cursor?: string } {
  return { ...(q.limit === undefined ? {} : { limit: q.limit as number }), ...(q.cursor === undefined ? {} : { cursor: q.cursor as string }) };
}

const name = (i: OperationInput) => i.params.name as string;

/** The lifecycle actions, one operation each. */
function action(verb: "train" | "optimize" | "deploy" | "rollback" | "deprecate", summary: string, scope: Operation["scope"]): Operation {
  return {
    name: `${verb}Program`,
    kind: "action",
    method: "POST",
    path: `${P}/programs/:name/${verb}`,
    scope,
    summary,
    params: byName,
    body: BODIES[verb],
    response: transitionResultSchema,
    run: ({ registry }, i, caller) => {
      const lc = registry.lifecycle;
      switch (verb) {
        case "train":
          return lc.train(name(i), i.body as unknown as TrainInput, caller.name);
        case "optimize":
          return lc.optimize(name(i), i.body, caller.name);
        case "deploy":
          return lc.deploy(name(i), i.body as unknown as DeployInput, caller.name);
        case "rollback":
          return lc.rollback(name(i), i.body, caller.name);
        case "deprecate":
          return lc.deprecate(name(i), i.body, caller.name);
      }
    },
  };
}

export const REGISTRY_RESOURCES: Resource[] = [
  {
    name: "Program",
    description: "Programs, their immutable versions, their lifecycle transitions",
    schema: programSchema,
    operations: [
      {
        name: "programs",
        kind: "list",
        method: "GET",
        path: `${P}/programs`,
        scope: "programs:read",
        summary: "List programs (by name), filtered by state, module or owner",
        query: { state: STATE, module: { type: "string", maxLength: 64 }, owner: { type: "string", maxLength: 256 }, ...pageQuery },
        response: pageSchema(programSchema),
        run: ({ registry }, i) => registry.programs.list(i.query as ProgramFilters, page(i.query)),
      },
      {
        name: "program",
        kind: "get",
        method: "GET",
        path: `${P}/programs/:name`,
        scope: "programs:read",
        summary: "A program",
        params: byName,
        response: programSchema,
        run: ({ registry }, i) => registry.programs.get(name(i)),
      },
      {
        name: "createProgram",
        kind: "create",
        method: "POST",
        path: `${P}/programs`,
        scope: "programs:write",
        summary: "Create a program (a draft with version 1); 409 when the name is taken",
        body: BODIES.createProgram,
        response: programSchema,
        status: 201,
        pool: "general",
        run: ({ registry }, i, caller) => registry.programs.create(i.body as unknown as CreateProgramInput, caller.name),
      },
      {
        name: "versions",
        kind: "list",
        method: "GET",
        path: `${P}/programs/:name/versions`,
        scope: "programs:read",
        summary: "A program's versions, newest first",
        params: byName,
        query: pageQuery,
        response: pageSchema(versionSchema),
        run: ({ registry }, i) => registry.programs.versions(name(i), page(i.query)),
      },
      {
        name: "version",
        kind: "get",
        method: "GET",
        path: `${P}/programs/:name/versions/:version`,
        scope: "programs:read",
        summary: "One version of a program",
        params: byVersion,
        response: versionSchema,
        run: ({ registry }, i) => registry.programs.version(name(i), i.params.version as number),
      },
      {
        name: "addVersion",
        kind: "create",
        method: "POST",
        path: `${P}/programs/:name/versions`,
        scope: "programs:write",
        summary: "Add a version by hand (curated demos, instructions); the state does not change",
        params: byName,
        body: BODIES.addVersion,
        response: versionSchema,
        status: 201,
        pool: "general",
        run: ({ registry }, i, caller) => registry.programs.addVersion(name(i), i.body as unknown as AddVersionInput, caller.name),
      },
      {
        name: "transitions",
        kind: "list",
        method: "GET",
        path: `${P}/programs/:name/transitions`,
        scope: "programs:read",
        summary: "A program's lifecycle transitions, newest first",
        params: byName,
        query: pageQuery,
        response: pageSchema(transitionSchema),
        run: ({ registry }, i) => registry.programs.transitions(name(i), page(i.query)),
      },
      action("train", "Start an optimizer job on a version with named datasets (→ training)", "programs:write"),
      action("optimize", "Take the finished optimizer job's program as a new version (training → optimized); 409 unless the job succeeded", "programs:write"),
      action("deploy", "Route program:<name>@deployed to a version whose score on the dataset is ≥ threshold (→ deployed); 409 with the score otherwise", "programs:deploy"),
      action("rollback", "Route the alias back to the version deployed before the current one", "programs:deploy"),
      action("deprecate", "Retire the program: no alias any more (→ deprecated)", "programs:deploy"),
    ],
  },
  {
    name: "Dataset",
    description: "Named, immutable sets of examples",
    schema: datasetSchema,
    operations: [
      {
        name: "datasets",
        kind: "list",
        method: "GET",
        path: `${P}/datasets`,
        scope: "programs:read",
        summary: "List datasets (without their examples)",
        query: pageQuery,
        response: pageSchema(datasetSchema),
        run: ({ registry }, i) => registry.datasets.list(page(i.query)),
      },
      {
        name: "dataset",
        kind: "get",
        method: "GET",
        path: `${P}/datasets/:name`,
        scope: "programs:read",
        summary: "A dataset with its examples",
        params: byName,
        response: datasetWithExamplesSchema,
        run: ({ registry }, i) => registry.datasets.get(name(i)),
      },
      {
        name: "createDataset",
        kind: "create",
        method: "POST",
        path: `${P}/datasets`,
        scope: "programs:write",
        summary: "Create a dataset; 409 when the name is taken",
        body: BODIES.createDataset,
        response: datasetSchema,
        status: 201,
        run: ({ registry }, i, caller) => registry.datasets.create(i.body as { name: string; examples: Array<Record<string, unknown>> }, caller.name),
      },
    ],
  },
  {
    name: "Job",
    description: "Jobs the registry started, linked to the version and datasets they used",
    schema: jobSchema,
    operations: [
      {
        name: "jobs",
        kind: "list",
        method: "GET",
        path: `${P}/jobs`,
        scope: "programs:read",
        summary: "Jobs, newest first, filtered by program, kind or status",
        query: { program: NAME, kind: { enum: ["optimize", "eval"] }, status: { enum: ["queued", "running", "succeeded", "failed", "cancelled"] }, ...pageQuery },
        response: pageSchema(jobSchema),
        run: ({ registry }, i) => registry.jobs.list(i.query as JobFilters, page(i.query)),
      },
      {
        name: "job",
        kind: "get",
        method: "GET",
        path: `${P}/jobs/:id`,
        scope: "programs:read",
        summary: "A job (refreshed from its record while it runs)",
        params: { id: { type: "string", pattern: "^[-_a-zA-Z0-9]{1,128}$" } },
        response: jobSchema,
        run: ({ registry }, i) => registry.jobs.get(i.params.id as string),
      },
    ],
  },
  {
    name: "Execution",
    description: "Calls of program versions, recorded once each",
    schema: executionSchema,
    operations: [
      {
        name: "executions",
        kind: "list",
        method: "GET",
        path: `${P}/executions`,
        scope: "executions:read",
        summary: "Executions, newest first, searched by program, version, status and time",
        query: {
          program: NAME,
          version: { type: "integer", minimum: 1 },
          status: { enum: ["ok", "error"] },
          since: { type: "string", maxLength: 64, description: "ISO 8601: at or after" },
          until: { type: "string", maxLength: 64, description: "ISO 8601: before" },
          ...pageQuery,
        },
        response: pageSchema(executionSchema),
        run: ({ registry }, i) => registry.executions.list(i.query as ExecutionFilters, page(i.query)),
      },
      {
        name: "execution",
        kind: "get",
        method: "GET",
        path: `${P}/executions/:id`,
        scope: "executions:read",
        summary: "One execution",
        params: { id: { type: "string", pattern: "^[-_a-zA-Z0-9]{1,200}$" } },
        response: executionSchema,
        run: ({ registry }, i) => registry.executions.get(i.params.id as string),
      },
      {
        name: "execute",
        kind: "create",
        method: "POST",
        path: `${P}/executions`,
        scope: "predict",
        summary: "Run program:<name>@deployed or a pinned version; recorded in the history under the returned id",
        body: BODIES.execute,
        response: executionResultSchema,
        pool: "general",
        run: ({ registry, client, executions }, i, caller) => executeRegistryProgram(registry, client, executions, i.body as unknown as ExecuteBody, caller),
      },
    ],
  },
];
