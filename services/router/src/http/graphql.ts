/**
 * GraphQL at /graphql (mercurius): the generated schema (graphql-schema.ts) with its queries and mutations, and
 * subscriptions fed from NATS subjects — `jobProgress(job)` from `dspex.jobs.progress.<job>`, `executionAdded`
 * from `dspex.executions.<program>` (what the gateways publish as programs run). Queries and mutations need a
 * valid bearer token (app.ts) and each field its scope; a subscription's WebSocket presents the token in its
 * `connection_init` payload (`{"authorization": "Bearer <token>"}`), since a browser cannot set headers there.
 * Errors carry the contract's type, field and details in `extensions`; internal errors only an id.
 */
import { randomUUID } from "node:crypto";
import type { FastifyInstance } from "fastify";
import mercurius, { type IResolvers } from "mercurius";
import { GraphQLError, GraphQLScalarType, Kind, type ValueNode } from "graphql";
import type { NatsConnection } from "@nats-io/transport-node";
import { DspexError, ValidationError, executionSubject, jobProgressSubject } from "@dspex/protocol";
import type { Logger } from "@dspex/observability";
import { parseExecutionEvent, type ExecutionEvent } from "@dspex/registry";
import { contractError } from "./errors.js";
import { generateSchema, operationInput } from "./graphql-schema.js";
import { executionSchema } from "./registry-schemas.js";
import type { OperationDeps, Resource } from "./resource.js";
import { allows, type Caller, type Scope, type TokenTable } from "./tokens.js";

function literal(node: ValueNode): unknown {
  switch (node.kind) {
    case Kind.OBJECT:
      return Object.fromEntries(node.fields.map((f) => [f.name.value, literal(f.value)]));
    case Kind.LIST:
      return node.values.map(literal);
    case Kind.INT:
    case Kind.FLOAT:
      return Number(node.value);
    case Kind.STRING:
    case Kind.ENUM:
      return node.value;
    case Kind.BOOLEAN:
      return node.value;
    default:
      return null;
  }
}

const JSONScalar = new GraphQLScalarType({ name: "JSON", serialize: (v) => v, parseValue: (v) => v, parseLiteral: literal });

interface Context {
  caller?: Caller;
}

function need(ctx: Context, scope: Scope): Caller {
  if (!ctx.caller) throw new DspexError("a valid API token is required", { type: "Unauthorized" });
  if (!allows(ctx.caller, scope)) throw new DspexError(`the token '${ctx.caller.name}' lacks the scope '${scope}'`, { type: "Forbidden", details: { scope } });
  return ctx.caller;
}

/** A NATS subscription as the async iterator a subscription resolver returns; `return()` unsubscribes at once. */
function natsFeed<T>(nc: NatsConnection, subject: string, map: (data: Uint8Array) => T | undefined, max = 1_000): AsyncIterableIterator<T> {
  const queue: T[] = [];
  let waiting: ((r: IteratorResult<T>) => void) | undefined;
  let done = false;
  const sub = nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err || done) return;
      const value = map(msg.data);
      if (value === undefined) return;
      if (waiting) {
        const w = waiting;
        waiting = undefined;
        w({ value, done: false });
      } else {
        queue.push(value);
        if (queue.length > max) queue.shift(); // a slow consumer loses the oldest events, never memory
      }
    },
  });
  const finish = (): IteratorResult<T> => {
    if (!done) {
      done = true;
      sub.unsubscribe();
      waiting?.({ value: undefined, done: true });
      waiting = undefined;
    }
    return { value: undefined, done: true };
  };
  return {
    next: () => (queue.length > 0 ? Promise.resolve({ value: queue.shift()!, done: false }) : done ? Promise.resolve(finish()) : new Promise((r) => (waiting = r))),
    return: async () => finish(),
    throw: async (e: unknown) => {
      finish();
      throw e;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/** An execution event as the Execution type shows it. */
function eventView(e: ExecutionEvent) {
  return {
    id: e.id,
    program: e.program,
    version: e.version,
    ref: `program:${e.program}@${e.version}`,
    status: e.status,
    inputs: e.inputs ?? null,
    inputsSummary: e.inputs_summary,
    outputs: e.outputs ?? null,
    error: e.error ?? null,
    usage: e.usage ?? null,
    latencyMs: e.latency_ms,
    worker: e.worker ?? null,
    traceId: e.trace_id ?? null,
    caller: e.caller ?? null,
    at: e.at,
  };
}

const NAME = /^[a-z][a-z0-9_-]{0,62}$/;
const JOB = /^[-_a-zA-Z0-9]{1,128}$/;

export interface GraphqlOptions {
  resources: Resource[];
  deps: OperationDeps;
  tokens: TokenTable;
  logger: Logger;
}

export async function registerGraphql(app: FastifyInstance, options: GraphqlOptions): Promise<string> {
  const { deps, tokens, logger } = options;
  const generated = generateSchema(options.resources, {
    types: [executionSchema],
    subscriptions: [
      '"Progress events of a job (JobProgress of job.schema.json), from dspex.jobs.progress.<job> (scope programs:read)"\n  jobProgress(job: String!): JSON!',
      '"Executions as they happen, of one program or all (scope executions:read)"\n  executionAdded(program: String): Execution!',
    ],
  });
  const field = (kind: "Query" | "Mutation", ops: typeof generated.queries) =>
    Object.fromEntries(
      [...ops].map(([name, op]) => [
        name,
        async (_root: unknown, args: Record<string, unknown>, ctx: Context) => {
          const caller = need(ctx, op.scope);
          return op.run(deps, operationInput(op, args), caller);
        },
      ]),
    ) as Record<string, unknown> & { kind?: typeof kind };
  const resolvers = {
    JSON: JSONScalar,
    Query: field("Query", generated.queries),
    Mutation: field("Mutation", generated.mutations),
    Subscription: {
      jobProgress: {
        subscribe: (_root: unknown, args: { job: string }, ctx: Context) => {
          need(ctx, "programs:read");
          if (!JOB.test(args.job)) throw new ValidationError("job must be a job id", { field: "job" });
          return natsFeed(deps.client.nc, jobProgressSubject(args.job), (d) => {
            try {
              return { jobProgress: JSON.parse(new TextDecoder().decode(d)) as unknown };
            } catch {
              return undefined;
            }
          });
        },
      },
      executionAdded: {
        subscribe: (_root: unknown, args: { program?: string | null }, ctx: Context) => {
          need(ctx, "executions:read");
          if (args.program != null && !NAME.test(args.program)) throw new ValidationError("program must be a program name", { field: "program" });
          return natsFeed(deps.client.nc, executionSubject(args.program ?? "*"), (d) => {
            try {
              return { executionAdded: eventView(parseExecutionEvent(d)) };
            } catch {
              return undefined;
            }
          });
        },
      },
    },
  } as unknown as IResolvers;

  await app.register(mercurius, {
    schema: generated.sdl,
    resolvers,
    path: "/graphql",
    graphiql: false,
    queryDepth: 10,
    context: (req) => ({ caller: req.caller }),
    subscription: {
      onConnect: (data: { payload?: { authorization?: unknown } | null }) => {
        const header = data.payload?.authorization;
        const caller = typeof header === "string" ? tokens.authenticate(header) : undefined;
        return caller ? { caller } : false;
      },
    },
    errorFormatter: (execution) => {
      const errors = (execution.errors ?? []).map((e: GraphQLError) => {
        const original = e.originalError;
        if (original instanceof DspexError) {
          const id = `req-${randomUUID()}`;
          const { body, status } = contractError(original, id);
          if (status >= 500) logger.warn("graphql call failed", { id, type: original.type, error: original.message });
          return { message: body.error.message, path: e.path, locations: e.locations, extensions: { ...body.error } };
        }
        if (original && !(original instanceof GraphQLError)) {
          const id = `req-${randomUUID()}`;
          logger.error("internal error", { id, error: String(original), stack: original.stack });
          return { message: `internal error; quote ${id} to the operator`, path: e.path, locations: e.locations, extensions: { type: "InternalError", id } };
        }
        return { message: e.message, path: e.path, locations: e.locations, extensions: { type: "ValidationError" } };
      });
      return { statusCode: 200, response: { data: execution.data ?? null, errors } };
    },
  });
  return generated.sdl;
}
