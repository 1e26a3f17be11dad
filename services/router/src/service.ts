/**
 * The router service's wiring (server.ts runs it as a process; tests start it in-process): the HTTP API over
 * a client, the session-program sweeper, consumer-lag gauges, and its breakers and engine split (native, python,
 * fallback calls) answered on `dspex.router.status`.
 */
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { ValidationError } from "@dspex/protocol";
import { jetstreamManager } from "@nats-io/jetstream";
import { STREAMS, routerStatusSubject } from "@dspex/protocol";
import { Client, type ClientOptions } from "@dspex/client";
import { Registry } from "@dspex/registry";
import { createLogger, observeConsumerLag, type Logger, type ReadinessCheck } from "@dspex/observability";
import { buildHttpApi, corsOrigins } from "./http/app.js";
import { loadTokens, TokenTable, type ApiToken } from "./http/tokens.js";
import { startSweeper } from "./sweeper.js";

export interface RouterService {
  client: Client;
  /** The program registry, when enabled. */
  registry?: Registry;
  http: Server;
  port: number;
  ready: ReadinessCheck;
  stop(): Promise<void>;
}

export interface RouterOptions {
  port?: number;
  /** Listen address (default 0.0.0.0, DSPEX_API_HOST). */
  host?: string;
  client?: ClientOptions;
  logger?: Logger;
  /** API tokens (default DSPEX_API_TOKENS_FILE / DSPEX_API_TOKENS). The API refuses to start without one. */
  tokens?: ApiToken[];
  /** Origins allowed to call from a browser (default DSPEX_API_CORS_ORIGINS; none: CORS off). */
  corsOrigins?: string[];
  /**
   * The program registry (docs/api.md): its database (`url`: postgres://… or pglite:<dir>; default
   * DSPEX_REGISTRY_DATABASE_URL, else PGlite in DSPEX_REGISTRY_DIR or ~/.dspex/registry). Needs the `gateway`
   * NATS identity. Default: off (server.ts turns it on unless DSPEX_REGISTRY=off).
   */
  registry?: { url?: string; retentionDays?: number } | false;
}

export async function startRouter(options: RouterOptions = {}): Promise<RouterService> {
  const log = options.logger ?? createLogger("dspex.router");
  const tokens = new TokenTable(options.tokens ?? loadTokens());
  if (tokens.size === 0) {
    throw new ValidationError(
      "no API tokens configured: create one with `dspex api-token create --name <who> --scopes predict` and give the router " +
        "the printed entry in DSPEX_API_TOKENS_FILE (a mounted Secret) or DSPEX_API_TOKENS (docs/security.md)",
      { field: "DSPEX_API_TOKENS_FILE" },
    );
  }
  const client = await Client.connect({ name: "dspex-router", ...options.client });
  let registry: Registry | undefined;
  try {
    if (options.registry) {
      registry = await Registry.open({ client, logger: log, ...options.registry });
      await registry.start();
    }
  } catch (err) {
    await registry?.close();
    await client.close();
    throw err;
  }
  const status = client.nc.subscribe(routerStatusSubject(), {
    callback: (_err, msg) =>
      void msg.respond(
        JSON.stringify({ router: String(client.nc.info?.client_id ?? "router"), breakers: client.breakers.states(), engines: client.router.snapshot() }),
      ),
  });
  const sweeper = startSweeper(client, log);
  // consumer lag as OTel gauges (read at metric collection, at most one JetStream API request per 5 s)
  const lag = observeConsumerLag(async () => (await jetstreamManager(client.nc, { checkAPI: false })).consumers.list(STREAMS.requests.name).next());
  // the registry's database being down does not stop calls: readiness reports it, the registry answers 503
  const ready: ReadinessCheck = async () => ({
    ok: !client.nc.isClosed(),
    detail: {
      nats: client.nc.getServer(),
      ...(registry ? { registry: { database: (await registry.database.ping()) ? "up" : "down", recorder: registry.recorder.status } } : {}),
    },
  });
  const app = await buildHttpApi({ client, ready, tokens, logger: log, corsOrigins: options.corsOrigins ?? corsOrigins(), ...(registry ? { registry } : {}) });
  await app.listen({ port: options.port ?? 8080, host: options.host ?? process.env.DSPEX_API_HOST ?? "0.0.0.0" });
  const http = app.server;
  return {
    client,
    ...(registry ? { registry } : {}),
    http,
    port: (http.address() as AddressInfo).port,
    ready,
    stop: async () => {
      await app.close();
      await registry?.close();
      sweeper.stop();
      lag.stop();
      status.unsubscribe();
      await client.close();
    },
  };
}
