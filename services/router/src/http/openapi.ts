/**
 * The OpenAPI 3.1 document of the gateway (@fastify/swagger), generated from the routes' schemas: served at
 * GET /v1/openapi.json, written to services/router/openapi.json by `npm run generate` (the TypeScript client
 * in services/api-client is generated from that file). The wire contract's schemas become components named
 * after their files (`request`, `signature`, …).
 */
import type { FastifyInstance } from "fastify";
import swagger from "@fastify/swagger";

export const API_VERSION = "1.0.0";

const componentName = (file: string) => file.replace(/\.schema\.json$/, "").replace(/[^A-Za-z0-9_]/g, "_");

/**
 * The contract's schemas refer to each other by file (`request.schema.json#/definitions/lm`); in the document
 * they are components, so those references are rewritten to `#/components/schemas/request-lm`.
 */
function localRefs(node: unknown): void {
  if (Array.isArray(node)) return node.forEach(localRefs);
  if (node === null || typeof node !== "object") return;
  const o = node as Record<string, unknown>;
  if (typeof o.$ref === "string") {
    const m = /^(?:https:\/\/dspex\.dev\/schemas\/v1\/)?([a-z][-a-z0-9]*\.schema\.json)(?:#\/(?:definitions|components\/schemas)\/(.+))?$/.exec(o.$ref);
    if (m) o.$ref = `#/components/schemas/${componentName(m[1]!)}${m[2] ? `-${m[2]}` : ""}`;
  }
  delete o.$schema; // draft-07 markers of the contract's files: the document's schemas are OpenAPI 3.1's dialect
  for (const value of Object.values(o)) localRefs(value);
}

export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "DSPex gateway",
        version: API_VERSION,
        description:
          "DSPy programs as a service: calls, stored programs, and the program registry (programs with a lifecycle, versions, datasets, jobs, executions). " +
          "Every call needs `Authorization: Bearer <token>` with the scope each operation names; bodies are JSON (`application/json`) and closed: " +
          "an unknown field is a 400 naming it. GraphQL: POST /graphql. See docs/api.md.",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "An API token from `dspex api-token create`" } } },
      tags: [
        { name: "Calls", description: "Predict, chain of thought, KV programs" },
        { name: "Program", description: "Programs, their versions and lifecycle" },
        { name: "Dataset", description: "Named, immutable sets of examples" },
        { name: "Job", description: "Optimizer jobs linked to versions and datasets" },
        { name: "Execution", description: "Running programs and their history" },
      ],
    },
    refResolver: {
      buildLocalReference: (json: { $id?: unknown }, _base: unknown, _fragment: unknown, i: number) =>
        typeof json.$id === "string" ? componentName(json.$id.split("/").pop()!) : `def-${i}`,
    },
    transformObject: (doc) => {
      const openapi = (doc as { openapiObject: Record<string, unknown> }).openapiObject;
      localRefs(openapi);
      return openapi;
    },
  });
}
