/**
 * The router service process (the Kubernetes Deployment `router`): HTTP API, session housekeeping, breakers
 * for `dspex status` (service.ts), the program registry (DSPEX_REGISTRY_DATABASE_URL or the embedded PGlite in
 * DSPEX_REGISTRY_DIR; DSPEX_REGISTRY=off turns it off; it needs the `gateway` identity in NATS_CREDS).
 * Environment: NATS_URL, NATS_CREDS, PORT (8080), OTEL_*. Calls that name no LM run on the workers' default LM.
 *
 *   NATS_URL=nats://… node services/router/dist/server.js
 */
import { runService } from "@dspex/observability";
import { startRouter } from "./service.js";

await runService("dspex-router", async (logger) => {
  const router = await startRouter({
    port: process.env.PORT === undefined ? 8080 : Number(process.env.PORT),
    logger,
    registry: process.env.DSPEX_REGISTRY === "off" ? false : {},
  });
  return { http: router.http, ready: router.ready, info: { nats: router.client.nc.getServer() }, stop: router.stop };
});
