/**
 * The router as a service (the Kubernetes Deployment): provisions the bus, then serves an HTTP API for
 * callers that are not TypeScript, plus /healthz and /readyz. Configuration by environment: NATS_URL,
 * PORT (8080), DSPEX_STREAM_REPLICAS (1; 3 in a clustered production deployment), DSPEX_LM*.
 *
 *   POST /v1/predict | /v1/chain-of-thought   {signature, inputs, instructions?, lm?, session?, affinity?, timeoutMs?, pool?}
 *   POST /v1/programs                         {signature, module?, state?, session?, instructions?}  → {id, version}
 *   POST /v1/programs/<id>/execute            {inputs, version?, session?, affinity?, timeoutMs?}
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { jetstreamManager } from "@nats-io/jetstream";
import { DEFAULT_HTTP_PORT, DspexError, REQUEST_STREAM, ValidationError, handleHealth, initTelemetry } from "@dspex/shared";
import { Router, type CallOptions } from "./router.js";
import { configuredLm } from "./embedded/default-lm.js";

const MAX_BODY = 16 * 1024 * 1024;

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new ValidationError(`request body over ${MAX_BODY} bytes`, { field: "body" });
    chunks.push(chunk as Buffer);
  }
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("not an object");
    return value as Record<string, unknown>;
  } catch (err) {
    throw new ValidationError(`request body must be a JSON object: ${String(err)}`, { field: "body" });
  }
}

function statusFor(err: DspexError): number {
  switch (err.type) {
    case "ValidationError":
    case "SignatureError":
      return 400;
    case "TimeoutError":
      return 504;
    case "NoWorkersError":
    case "CircuitOpenError":
    case "TransportError":
      return 503;
    default:
      return 502;
  }
}

function callOptions(body: Record<string, unknown>): CallOptions {
  const pick = <T>(key: string) => body[key] as T | undefined;
  return {
    lm: pick("lm"),
    timeoutMs: pick("timeoutMs"),
    pool: pick("pool"),
    session: pick("session"),
    affinity: pick("affinity"),
    instructions: pick("instructions"),
    demos: pick("demos"),
  };
}

export async function startServer(
  options: { port?: number; natsUrl?: string; lm?: CallOptions["lm"] } = {},
) {
  const port = options.port ?? Number(process.env.PORT ?? DEFAULT_HTTP_PORT);
  // Router.connect provisions the stream (DSPEX_STREAM_REPLICAS), consumers and KV buckets.
  const router = await Router.connect({ servers: options.natsUrl ?? process.env.NATS_URL, lm: options.lm ?? configuredLm() });
  const jsm = await jetstreamManager(router.nc);
  const ready = async () => {
    if (router.nc.isClosed()) return { ok: false, detail: { nats: "closed" } };
    await jsm.streams.info(REQUEST_STREAM);
    return { ok: true, detail: { nats: router.nc.getServer() } };
  };
  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  };
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    void (async () => {
      if (req.method === "GET" && (await handleHealth(path, ready, (s, b) => send(res, s, b)))) return;
      if (req.method !== "POST") return send(res, 404, { error: { type: "NotFound", message: `no route ${req.method} ${path}` } });
      try {
        const body = await readJson(req);
        if (path === "/v1/predict" || path === "/v1/chain-of-thought") {
          const op = path === "/v1/predict" ? "predict" : "chain_of_thought";
          const inputs = (body.inputs ?? {}) as Record<string, unknown>;
          const result = await router.call(op, body.signature as string, inputs, callOptions(body));
          return send(res, 200, result);
        }
        if (path === "/v1/programs") {
          const created = await router.createProgram(body as never);
          return send(res, 201, { id: created.definition.id, version: created.version });
        }
        const m = /^\/v1\/programs\/([-_a-zA-Z0-9]+)\/execute$/.exec(path);
        if (m) {
          const result = await router.execute(m[1]!, (body.inputs ?? {}) as Record<string, unknown>, {
            ...callOptions(body),
            version: body.version as number | undefined,
          });
          return send(res, 200, result);
        }
        send(res, 404, { error: { type: "NotFound", message: `no route POST ${path}` } });
      } catch (err) {
        if (err instanceof DspexError) return send(res, statusFor(err), { error: err.toWire() });
        send(res, 500, { error: { type: "InternalError", message: String(err), retryable: false } });
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(port, resolve));
  const address = server.address();
  const stop = async () => {
    server.close();
    await router.close();
  };
  return { server, router, stop, port: typeof address === "object" && address ? address.port : port };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const telemetry = initTelemetry(); // OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set (docs/observability.md)
  const { stop, port } = await startServer();
  process.stderr.write(`${JSON.stringify({ level: "info", msg: "dspex router listening", port })}\n`);
  const shutdown = () => void stop().then(() => telemetry.shutdown()).then(() => process.exit(0));
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
}
