/**
 * The router service process (the Kubernetes Deployment `router`): HTTP API, session housekeeping, breakers
 * for `dspex status` (service.ts). Environment: NATS_URL, PORT (8080), OTEL_*. Calls that name no LM run on
 * the workers' default LM (the operator's).
 *
 *   NATS_URL=nats://… node services/router/dist/server.js
 */
import { runService } from "@dspex/observability";
import { startRouter } from "./service.js";

await runService("dspex-router", async (logger) => {
  const router = await startRouter({ port: process.env.PORT === undefined ? 8080 : Number(process.env.PORT), logger });
  return { http: router.http, ready: router.ready, info: { nats: router.client.nc.getServer() }, stop: router.stop };
});
