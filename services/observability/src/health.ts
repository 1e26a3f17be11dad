/** Liveness/readiness endpoints every DSPex service exposes (Kubernetes probes point here). */
import { createServer, type Server } from "node:http";

export const HEALTH_PATHS = { live: "/healthz", ready: "/readyz" } as const;
export const DEFAULT_HTTP_PORT = 8080;

export type ReadinessCheck = () => Promise<{ ok: boolean; detail?: Record<string, unknown> }>;

/** Handles the two health paths; returns false for any other path so the caller can route it. */
export async function handleHealth(
  path: string,
  ready: ReadinessCheck,
  respond: (status: number, body: unknown) => void,
): Promise<boolean> {
  if (path === HEALTH_PATHS.live) {
    respond(200, { status: "ok" });
    return true;
  }
  if (path === HEALTH_PATHS.ready) {
    try {
      const result = await ready();
      respond(result.ok ? 200 : 503, { ready: result.ok, ...result.detail });
    } catch (err) {
      respond(503, { ready: false, error: String(err) });
    }
    return true;
  }
  return false;
}

/** A server that answers only the health paths (for services with no HTTP API of their own). */
export function startHealthServer(port: number, ready: ReadinessCheck): Promise<Server> {
  const server = createServer((req, res) => {
    const respond = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    };
    void handleHealth(new URL(req.url ?? "/", "http://x").pathname, ready, respond).then((handled) => {
      if (!handled) respond(404, { error: "not found" });
    });
  });
  return new Promise((resolve) => server.listen(port, () => resolve(server)));
}
