/**
 * The router's HTTP API, for callers that are not TypeScript (and the Kubernetes probes):
 *
 *   POST /v1/predict | /v1/chain-of-thought   {signature, inputs, instructions?, lm?, session?, affinity?, timeoutMs?, pool?, demos?}
 *   POST /v1/programs                         {signature, module?, state?, session?, instructions?}  → {id, version}
 *   POST /v1/programs/<id>/execute            {inputs, version?, session?, affinity?, timeoutMs?}
 *   GET  /healthz, /readyz
 *
 * Every call goes through the client (validation, interceptors), so the API's errors are the contract's.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { DspexError, ValidationError } from "@dspex/protocol";
import { handleHealth, type ReadinessCheck } from "@dspex/observability";
import type { CallOptions, Client } from "@dspex/client";

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

/** HTTP status of a contract error. */
export function statusFor(err: DspexError): number {
  switch (err.type) {
    case "ValidationError":
    case "SignatureError":
    case "PayloadTooLarge":
      return 400;
    case "NotFound":
      return 404;
    case "DeadlineExceeded":
      return 504;
    case "NoWorkersError":
    case "CircuitOpenError":
    case "TransportError":
    case "BusError":
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

export function createHttpApi(client: Client, ready: ReadinessCheck): Server {
  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  };
  return createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    void (async () => {
      if (req.method === "GET" && (await handleHealth(path, ready, (s, b) => send(res, s, b)))) return;
      if (req.method !== "POST") return send(res, 404, { error: { type: "NotFound", message: `no route ${req.method} ${path}`, retryable: false } });
      try {
        const body = await readJson(req);
        if (path === "/v1/predict" || path === "/v1/chain-of-thought") {
          const op = path === "/v1/predict" ? "predict" : "chain_of_thought";
          const result = await client.call(op, body.signature as string, (body.inputs ?? {}) as Record<string, unknown>, callOptions(body));
          return send(res, 200, result);
        }
        if (path === "/v1/programs") {
          const created = await client.createProgram(body as never);
          return send(res, 201, { id: created.definition.id, version: created.version });
        }
        const m = /^\/v1\/programs\/([-_a-zA-Z0-9]+)\/execute$/.exec(path);
        if (m) {
          const result = await client.execute(m[1]!, (body.inputs ?? {}) as Record<string, unknown>, {
            ...callOptions(body),
            version: body.version as number | undefined,
          });
          return send(res, 200, result);
        }
        send(res, 404, { error: { type: "NotFound", message: `no route POST ${path}`, retryable: false } });
      } catch (err) {
        if (err instanceof DspexError) return send(res, statusFor(err), { error: err.toWire() });
        send(res, 500, { error: { type: "WorkerError", message: String(err), retryable: false } });
      }
    })();
  });
}
