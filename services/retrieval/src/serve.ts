/**
 * The retrieval service: one collection of a store served over NATS (schemas/retrieval.schema.json), so any
 * process on the bus — a Python worker's program (`dspex_worker.retrieval`), a service in another language —
 * can search it without the store's credentials. Subjects `dspex.retrieval.<collection>.<op>` (op search, upsert,
 * delete, count), queue group `dspex-retrieval` (several processes serving one collection share its calls),
 * msgpack both ways, replies `{ok: true, result}` or `{ok: false, error}` with the contract's error envelope.
 *
 * Each request body is checked with the validators generated from the schema before the store is touched (a bad
 * one is a ValidationError naming the field: `k`, `filter`, `passages[3].id`); the store's own checks (a filter on
 * an undeclared field) and its breaker answer the same way. The caller's trace context (traceparent header)
 * parents this side's spans, so a worker's search appears under the program that made it.
 */
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { SpanKind, context } from "@opentelemetry/api";
import {
  DecodeError,
  QUEUES,
  checkRetrievalRequest,
  decode,
  encode,
  errorToWire,
  retrievalSubject,
  type RetrievalCountResult,
  type RetrievalDeleteRequest,
  type RetrievalReply,
  type RetrievalSearchRequest,
  type RetrievalSearchResult,
  type RetrievalUpsertRequest,
} from "@dspex/protocol";
import { createLogger, extractTraceContext, recordError, tracer } from "@dspex/observability";
import type { Retriever } from "./retriever.js";
import type { Filter, Hit } from "./store.js";

export const RETRIEVAL_OPS = ["search", "upsert", "delete", "count"] as const;
export type RetrievalOp = (typeof RETRIEVAL_OPS)[number];

export interface ServeRetrievalOptions {
  /** Queue group (default `dspex-retrieval`). */
  queue?: string;
  /** Serve only these ops (e.g. `["search", "count"]` for a read-only replica); default all four. */
  ops?: RetrievalOp[];
}

export interface ServedRetrieval {
  readonly collection: string;
  readonly subjects: string[];
  /** Requests answered so far, per op (successful or not). */
  readonly calls: Record<RetrievalOp, number>;
  stop(): Promise<void>;
}

const log = createLogger("dspex.retrieval.serve");

function hitWire(h: Hit): RetrievalSearchResult["hits"][number] {
  return { id: h.id, text: h.text, score: h.score, ...(h.metadata ? { metadata: h.metadata } : {}) };
}

async function run(retriever: Retriever, op: RetrievalOp, body: unknown): Promise<RetrievalSearchResult | RetrievalCountResult> {
  checkRetrievalRequest(op, body);
  const { collection } = retriever.store;
  switch (op) {
    case "search": {
      const r = body as RetrievalSearchRequest;
      const hits = await retriever.retrieve(r.query, r.k ?? 5, r.filter as Filter | undefined);
      return { hits: hits.map(hitWire), collection: collection.name, model: collection.model };
    }
    case "upsert":
      return { count: await retriever.upsert((body as RetrievalUpsertRequest).passages) };
    case "delete":
      return { count: await retriever.delete((body as RetrievalDeleteRequest).ids) };
    case "count":
      return { count: await retriever.count() };
  }
}

async function answer(retriever: Retriever, op: RetrievalOp, msg: Msg): Promise<Uint8Array> {
  const parent = extractTraceContext(msg.headers);
  return context.with(parent, () =>
    tracer().startActiveSpan(`${msg.subject} process`, { kind: SpanKind.SERVER, attributes: { "messaging.system": "nats", "messaging.destination.name": msg.subject, "dspex.retrieval.op": op } }, async (span) => {
      let reply: RetrievalReply;
      try {
        let body: unknown;
        try {
          body = decode(msg.data);
        } catch (err) {
          throw new DecodeError(`the body is not msgpack: ${err instanceof Error ? err.message : String(err)}`);
        }
        if (typeof body !== "object" || body === null || Array.isArray(body)) throw new DecodeError("the body is not a msgpack map");
        reply = { ok: true, result: await run(retriever, op, body) };
      } catch (err) {
        recordError(span, err);
        const wire = errorToWire(err);
        // an unexpected exception's text stays in this process's log, not in a reply to anyone on the bus
        if (wire.type === "WorkerError") {
          log.error("retrieval request failed", { subject: msg.subject, error: err instanceof Error ? err.message : String(err) });
          reply = { ok: false, error: { type: "InternalError", message: "the retrieval service failed; see its log", retryable: false } };
        } else {
          reply = { ok: false, error: wire };
        }
      } finally {
        span.end();
      }
      return encode(reply);
    }),
  );
}

/** Serves the retriever's collection until `stop()`; resolves once the subscriptions are known to the server. */
export async function serveRetrieval(nc: NatsConnection, retriever: Retriever, options: ServeRetrievalOptions = {}): Promise<ServedRetrieval> {
  const collection = retriever.store.collection.name;
  const ops = options.ops ?? [...RETRIEVAL_OPS];
  const calls = Object.fromEntries(RETRIEVAL_OPS.map((op) => [op, 0])) as Record<RetrievalOp, number>;
  const subs: Subscription[] = ops.map((op) =>
    nc.subscribe(retrievalSubject(collection, op), {
      queue: options.queue ?? QUEUES.retrieval,
      callback: (err, msg) => {
        if (err || !msg.reply) return; // a publish without a reply subject has no one to answer
        calls[op] += 1;
        void answer(retriever, op, msg).then((body) => msg.respond(body));
      },
    }),
  );
  await nc.flush(); // subscribed on the server before anyone is told the collection is served
  return {
    collection,
    subjects: ops.map((op) => retrievalSubject(collection, op)),
    calls,
    async stop() {
      for (const sub of subs) sub.unsubscribe();
      await nc.flush();
    },
  };
}
