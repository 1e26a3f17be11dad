/**
 * The gateway's OpenAPI document and GraphQL schema, built without NATS or a database (`npm run generate`
 * writes them to services/router/openapi.json and schema.graphql).
 */
import { printSchema, type GraphQLSchema } from "graphql";
import { createLogger } from "@dspex/observability";
import { buildHttpApi } from "./app.js";
import { TokenTable } from "./tokens.js";

export async function describeApi(): Promise<{ openapi: Record<string, unknown>; graphql: string }> {
  const app = await buildHttpApi({ tokens: new TokenTable([]), ready: async () => ({ ok: true }), logger: createLogger("dspex.describe"), describe: true });
  await app.ready();
  const openapi = app.swagger() as unknown as Record<string, unknown>;
  const graphql = printSchema((app as unknown as { graphql: { schema: GraphQLSchema } }).graphql.schema);
  await app.close();
  return { openapi, graphql };
}
