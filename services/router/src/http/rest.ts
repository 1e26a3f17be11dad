/**
 * REST routes generated from resource definitions (resource.ts): one route per operation, with its path
 * parameters, filters, body and response as fastify schemas — validated on the way in, serialized on the way
 * out, and described in the OpenAPI document (@fastify/swagger, openapi.ts) under the resource's tag.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Pool } from "@dspex/protocol";
import type { Operation, OperationDeps, Resource } from "./resource.js";

export const errorSchema = {
  title: "Error",
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["type", "message", "retryable"],
      properties: {
        type: { type: "string" },
        message: { type: "string" },
        retryable: { type: "boolean" },
        field: { type: "string" },
        details: { type: "object", additionalProperties: true },
        id: { type: "string" },
      },
    },
  },
};

export function paramsSchema(op: Pick<Operation, "params">) {
  return op.params ? { type: "object", required: Object.keys(op.params), properties: op.params } : undefined;
}

export function querySchema(op: Pick<Operation, "query">) {
  return op.query ? { type: "object", additionalProperties: false, properties: op.query } : undefined;
}

export function registerResources(
  app: FastifyInstance,
  resources: Resource[],
  deps: OperationDeps,
  checkSize: (req: FastifyRequest, pool: Pool) => void,
): void {
  for (const resource of resources) {
    for (const op of resource.operations) {
      const params = paramsSchema(op);
      const querystring = querySchema(op);
      app.route({
        method: op.method,
        url: op.path,
        config: { scope: op.scope },
        schema: {
          tags: [resource.name],
          summary: op.summary,
          operationId: op.name,
          description: `Scope: \`${op.scope}\` (or \`admin\`).`,
          security: [{ bearer: [] }],
          ...(params ? { params } : {}),
          ...(querystring ? { querystring } : {}),
          ...(op.body ? { body: op.body } : {}),
          response: { [op.status ?? 200]: op.response, "4xx": errorSchema, "5xx": errorSchema },
        },
        handler: async (req, reply) => {
          const input = {
            params: (req.params ?? {}) as Record<string, unknown>,
            query: (req.query ?? {}) as Record<string, unknown>,
            body: (req.body ?? {}) as Record<string, unknown>,
          };
          if (op.pool) checkSize(req, op.pool);
          else if (op.poolOf) checkSize(req, await op.poolOf(deps, input));
          const out = await op.run(deps, input, req.caller!);
          return reply.code(op.status ?? 200).send(out);
        },
      });
    }
  }
}
