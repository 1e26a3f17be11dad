/**
 * The router service's wiring (server.ts runs it as a process; tests start it in-process): the HTTP API over
 * a client, the session-program sweeper, consumer-lag gauges, and its breakers answered on `dspex.router.status`.
 */
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { jetstreamManager } from "@nats-io/jetstream";
import { STREAMS, routerStatusSubject } from "@dspex/protocol";
import { Client, type ClientOptions } from "@dspex/client";
import { createLogger, observeConsumerLag, type Logger, type ReadinessCheck } from "@dspex/observability";
import { createHttpApi } from "./http.js";
import { startSweeper } from "./sweeper.js";

export interface RouterService {
  client: Client;
  http: Server;
  port: number;
  ready: ReadinessCheck;
  stop(): Promise<void>;
}

export async function startRouter(options: { port?: number; client?: ClientOptions; logger?: Logger } = {}): Promise<RouterService> {
  const log = options.logger ?? createLogger("dspex.router");
  const client = await Client.connect({ name: "dspex-router", ...options.client });
  const status = client.nc.subscribe(routerStatusSubject(), {
    callback: (_err, msg) => void msg.respond(JSON.stringify({ router: String(client.nc.info?.client_id ?? "router"), breakers: client.breakers.states() })),
  });
  const sweeper = startSweeper(client, log);
  // consumer lag as OTel gauges (read at metric collection, at most one JetStream API request per 5 s)
  const lag = observeConsumerLag(async () => (await jetstreamManager(client.nc, { checkAPI: false })).consumers.list(STREAMS.requests.name).next());
  const ready: ReadinessCheck = async () => ({ ok: !client.nc.isClosed(), detail: { nats: client.nc.getServer() } });
  const http = createHttpApi(client, ready);
  await new Promise<void>((resolve) => http.listen(options.port ?? 8080, resolve));
  return {
    client,
    http,
    port: (http.address() as AddressInfo).port,
    ready,
    stop: async () => {
      http.close();
      sweeper.stop();
      lag.stop();
      status.unsubscribe();
      await client.close();
    },
  };
}
