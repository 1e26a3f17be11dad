/**
 * The router's HTTP API (fastify), for callers that are not TypeScript, and the Kubernetes probes:
 *
 *   POST /v1/predict | /v1/chain-of-thought   scope predict         {signature, inputs, instructions?, lm?, session?, affinity?, timeoutMs?, pool?, demos?}
 *   POST /v1/programs                         scope programs:write  {signature, module?, state?, session?, instructions?, id?}  → 201 {id, version}
 *   POST /v1/programs/<id>/execute            scope predict         {inputs, version?, session?, affinity?, timeoutMs?, pool?, lm?}
 *   /v1/registry/…                            the program registry's resources (registry-resources.ts; docs/api.md)
 *   POST /graphql (+ WebSocket subscriptions)  the same resources in GraphQL (graphql.ts)
 *   GET  /v1/openapi.json                     the OpenAPI 3.1 document of all of it (no token)
 *   GET  /console/…                           the web console (its page loads without a token; it asks for one)
 *   GET  /healthz, /readyz                    no token
 *
 * Every /v1 call needs `Authorization: Bearer <token>` (401 without a valid one, 403 without the scope) and a
 * JSON body (`Content-Type: application/json`, else 415), checked against schemas.ts (400 naming the field)
 * and against the pool's payload limit (413). Calls go through the client, so other errors are the
 * contract's. CORS is off unless DSPEX_API_CORS_ORIGINS names origins. See docs/security.md.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import cors from "@fastify/cors";
import { DspexError, POOLS, type Pool } from "@dspex/protocol";
import { busSettings, type PoolSettings } from "@dspex/bus";
import { handleHealth, type Logger, type ReadinessCheck } from "@dspex/observability";
import type { Client, CreateProgramOptions } from "@dspex/client";
import type { Registry } from "@dspex/registry";
import { registerConsole } from "../console/routes.js";
import { contractError, errorBody } from "./errors.js";
import { ExecutionRecorder } from "./execute.js";
import { registerGraphql } from "./graphql.js";
import { registerOpenApi } from "./openapi.js";
import { REGISTRY_RESOURCES } from "./registry-resources.js";
import type { OperationDeps } from "./resource.js";
import { registerResources } from "./rest.js";
import { PACKAGED_RESOURCE } from "./packaged-resources.js";
import { CONTRACT_SCHEMAS, callOptions, createProgramBody, executeBody, predictBody, programParams } from "./schemas.js";
import { allows, type Caller, type Scope, type TokenTable } from "./tokens.js";
import { fieldOf, validatorCompiler } from "./validation.js";

export interface HttpApiOptions {
  /** The client every call goes through; absent only when the API is built to describe it (openapi.ts). */
  client?: Client;
  ready: ReadinessCheck;
  tokens: TokenTable;
  logger: Logger;
  /** Origins allowed to call from a browser (default none: CORS off). */
  corsOrigins?: string[];
  /** The program registry: its REST resources, GraphQL and the console are served when given. */
  registry?: Registry;
  /** Build the registry's routes without a registry (to generate the OpenAPI document and the GraphQL schema). */
  describe?: boolean;
}

declare module "fastify" {
  interface FastifyRequest {
    caller?: Caller;
    /** Size of the JSON body as received. */
    bodyBytes?: number;
  }
  interface FastifyContextConfig {
    scope?: Scope;
  }
}

type Body = Record<string, unknown>;

export async function buildHttpApi(options: HttpApiOptions): Promise<FastifyInstance> {
  const { tokens, logger } = options;
  const pools: Record<Pool, PoolSettings> = options.client?.pools ?? busSettings().pools;
  const maxPayload = Math.max(...POOLS.map((p) => pools[p].maxPayloadBytes));
  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new DspexError(`the API was built without ${what}`, { type: "InternalError" });
    return value;
  };
  const client = new Proxy({} as Client, { get: (_t, key) => Reflect.get(need(options.client, "a client"), key) });
  const app = Fastify({
    // no body beyond the largest pool's payload limit is even read (per-pool limits: below)
    bodyLimit: maxPayload,
    // strict schemas: no coercion ("10" stays a string and fails), no silently removed fields
    ajv: { customOptions: { strict: false, coerceTypes: false, removeAdditional: false, allErrors: false } },
    logger: false,
    genReqId: () => `req-${crypto.randomUUID()}`,
  });
  for (const schema of CONTRACT_SCHEMAS) app.addSchema(schema);
  app.setValidatorCompiler(validatorCompiler);
  await registerOpenApi(app);
  if (options.corsOrigins && options.corsOrigins.length > 0) await app.register(cors, { origin: options.corsOrigins });

  // JSON only: a text/plain POST (what a cross-site form can send without a preflight) is a 415
  app.removeAllContentTypeParsers();
  const json = app.getDefaultJsonParser("error", "error"); // rejects __proto__ and constructor.prototype keys
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    req.bodyBytes = Buffer.byteLength(body as string);
    json(req, body as string, done);
  });

  app.addHook("onRequest", async (req, reply) => {
    let scope: Scope | "any" | undefined = req.routeOptions.config.scope;
    // GraphQL: any valid token (each field checks its scope); a subscription's WebSocket authenticates in its
    // connection_init message (graphql.ts), as a browser cannot set headers on it
    if (req.routeOptions.url === "/graphql" && req.headers.upgrade?.toLowerCase() !== "websocket") scope = "any";
    if (!scope) return; // health probes, the OpenAPI document, the console's static page
    const caller = tokens.authenticate(req.headers.authorization);
    if (!caller) {
      return reply
        .code(401)
        .header("www-authenticate", 'Bearer realm="dspex"')
        .send(errorBody("Unauthorized", "a valid API token is required: Authorization: Bearer <token>"));
    }
    if (scope !== "any" && !allows(caller, scope)) {
      return reply.code(403).send(errorBody("Forbidden", `the token '${caller.name}' lacks the scope '${scope}'`, { details: { scope } }));
    }
    req.caller = caller;
  });

  /** The pool's payload limit applies to the body of a call for that pool. */
  const checkSize = (req: FastifyRequest, pool: Pool) => {
    const limit = pools[pool].maxPayloadBytes;
    if ((req.bodyBytes ?? 0) > limit) {
      throw new DspexError(`request body of ${req.bodyBytes} bytes is over the ${pool} pool's limit of ${limit}`, {
        type: "PayloadTooLarge",
        field: "body",
        details: { bytes: req.bodyBytes, limit, pool },
      });
    }
  };
  const poolOf = (body: Body): Pool => (body.pool as Pool | undefined) ?? "general";

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err.validation && err.validation.length > 0) {
      const field = fieldOf(err.validation[0]!);
      const message = `${field}: ${err.validation[0]!.message ?? "invalid"}`;
      return reply.code(400).send(errorBody("ValidationError", message, { field }));
    }
    switch (err.code) {
      case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
        return reply.code(415).send(errorBody("UnsupportedMediaType", "the body must be JSON: Content-Type: application/json", { field: "content-type" }));
      case "FST_ERR_CTP_BODY_TOO_LARGE":
        return reply.code(413).send(errorBody("PayloadTooLarge", `the body is over ${maxPayload} bytes`, { field: "body" }));
      case "FST_ERR_CTP_EMPTY_JSON_BODY":
      case "FST_ERR_CTP_INVALID_JSON_BODY":
        return reply.code(400).send(errorBody("ValidationError", "the body is not a JSON object", { field: "body" }));
    }
    if (err instanceof SyntaxError || err.statusCode === 400) {
      return reply.code(400).send(errorBody("ValidationError", "the body is not valid JSON", { field: "body" }));
    }
    if (err instanceof DspexError) {
      const { status, body } = contractError(err, req.id);
      if (status >= 500) logger.warn("call failed", { id: req.id, caller: req.caller?.name, type: err.type, error: err.message });
      return reply.code(status).send(body);
    }
    logger.error("internal error", { id: req.id, caller: req.caller?.name, error: String(err), stack: (err as Error).stack });
    return reply.code(500).send(errorBody("InternalError", `internal error; quote ${req.id} to the operator`, { id: req.id }));
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send(errorBody("NotFound", `no route ${req.method} ${req.url.split("?")[0]}`)));

  const health = async (req: FastifyRequest, reply: FastifyReply) => {
    await handleHealth(req.url.split("?")[0]!, options.ready, (status, body) => void reply.code(status).send(body));
  };
  app.get("/healthz", { schema: { hide: true } }, health);
  app.get("/readyz", { schema: { hide: true } }, health);

  for (const [path, op] of [
    ["/v1/predict", "predict"],
    ["/v1/chain-of-thought", "chain_of_thought"],
  ] as const) {
    app.post<{ Body: Body }>(path, { schema: { body: predictBody, tags: ["Calls"], summary: `dspy.${op === "predict" ? "Predict" : "ChainOfThought"} of a signature (scope predict)`, security: [{ bearer: [] }] }, config: { scope: "predict" } }, async (req) => {
      checkSize(req, poolOf(req.body));
      return client.call(op, req.body.signature as string, req.body.inputs as Body, callOptions(req.body));
    });
  }

  app.post<{ Body: Body }>("/v1/programs", { schema: { body: createProgramBody, tags: ["Calls"], summary: "Store a program in KV (scope programs:write)", security: [{ bearer: [] }] }, config: { scope: "programs:write" } }, async (req, reply) => {
    checkSize(req, "general");
    const caller = req.caller!;
    const id = req.body.id as string | undefined;
    if (id !== undefined) {
      // an id names the caller's own program: a new version of it, or a new program it then owns
      const existing = await client.programs.get(id).catch((err: unknown) => {
        if (err instanceof DspexError && err.type === "NotFound") return undefined;
        throw err;
      });
      if (existing && existing.definition.owner !== caller.name && !allows(caller, "admin")) {
        return reply.code(403).send(errorBody("Forbidden", `program '${id}' belongs to another caller`, { field: "id" }));
      }
    }
    const created = await client.createProgram({ ...(req.body as unknown as CreateProgramOptions), owner: caller.name });
    return reply.code(201).send({ id: created.definition.id, version: created.version });
  });

  app.post<{ Body: Body; Params: { id: string } }>(
    "/v1/programs/:id/execute",
    { schema: { body: executeBody, params: programParams, tags: ["Calls"], summary: "Run a program stored in KV (scope predict)", security: [{ bearer: [] }] }, config: { scope: "predict" } },
    async (req) => {
      checkSize(req, poolOf(req.body));
      return client.execute(req.params.id, req.body.inputs as Body, { ...callOptions(req.body), version: req.body.version as number | undefined });
    },
  );

  // Users' packaged programs (packaged-resources.ts) always; the registry's resources and the console with a
  // registry. REST and GraphQL are generated from the same resource definitions.
  const recorder = options.client ? new ExecutionRecorder(options.client, logger) : undefined;
  const deps: OperationDeps = {
    get registry() {
      return need(options.registry, "a registry");
    },
    client,
    get executions() {
      return need(recorder, "a client");
    },
  };
  const withRegistry = Boolean(options.registry || options.describe);
  const resources = [PACKAGED_RESOURCE, ...(withRegistry ? REGISTRY_RESOURCES : [])];
  registerResources(app, resources, deps, checkSize);
  await registerGraphql(app, { resources, deps, tokens, logger });
  if (withRegistry) await registerConsole(app);
  app.get("/v1/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  return app;
}

/** DSPEX_API_CORS_ORIGINS: comma-separated origins allowed to call the API from a browser. */
export function corsOrigins(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.DSPEX_API_CORS_ORIGINS ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
}
