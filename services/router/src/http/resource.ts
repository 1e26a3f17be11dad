/**
 * A resource definition: a schema and its operations — list, get, create, actions — each with its path, scope,
 * path parameters, filters, body and response schemas, and what it runs. The REST routes with their OpenAPI
 * description (rest.ts) and the GraphQL schema (graphql-schema.ts) are both generated from these, so the two
 * APIs cannot say different things.
 */
import type { Pool } from "@dspex/protocol";
import type { Registry } from "@dspex/registry";
import type { Client } from "@dspex/client";
import type { Caller, Scope } from "./tokens.js";
import type { JsonSchema } from "./registry-schemas.js";
import type { ExecutionRecorder } from "./execute.js";

export interface OperationDeps {
  registry: Registry;
  client: Client;
  executions: ExecutionRecorder;
}

export interface OperationInput {
  params: Record<string, unknown>;
  query: Record<string, unknown>;
  body: Record<string, unknown>;
}

export interface Operation {
  /** The GraphQL field: a query for list/get, a mutation otherwise. */
  name: string;
  kind: "list" | "get" | "create" | "action";
  method: "GET" | "POST";
  /** fastify path (`:param`). */
  path: string;
  scope: Scope;
  summary: string;
  params?: Record<string, JsonSchema>;
  /** Filters of a listing (query string; GraphQL arguments). */
  query?: Record<string, JsonSchema>;
  body?: JsonSchema;
  response: JsonSchema;
  /** HTTP status of success (default 200). */
  status?: number;
  /** The request body is checked against this pool's payload limit... */
  pool?: "general";
  /** ...or the pool this finds (a packaged program's own); either before `run`. */
  poolOf?(deps: OperationDeps, input: OperationInput): Promise<Pool>;
  run(deps: OperationDeps, input: OperationInput, caller: Caller): Promise<unknown>;
}

export interface Resource {
  name: string;
  description: string;
  schema: JsonSchema;
  operations: Operation[];
}
