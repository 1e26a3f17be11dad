/**
 * The pipeline service process: connects to NATS_URL, serves the evaluation subjects, resumes unfinished
 * jobs, and answers /healthz and /readyz on PORT (default 8080; 0 picks a free port). Logs are JSON lines
 * on stderr; one `{"event":"ready",...}` line on stdout says it is serving.
 *
 *   NATS_URL=nats://… node services/pipeline/dist/server.js
 */
import type { AddressInfo } from "node:net";
import { DEFAULT_HTTP_PORT, startHealthServer } from "@dspex/shared";
import { configuredLm } from "@dspex/router";
import { PipelineService } from "./service.js";

function log(event: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), event, ...fields })}\n`);
}

async function main(): Promise<void> {
  const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
  const lm = configuredLm();
  const service = await PipelineService.start({ servers: natsUrl, ...(lm ? { lm } : {}), log });
  const port = process.env.PORT === undefined ? DEFAULT_HTTP_PORT : Number(process.env.PORT);
  const http = await startHealthServer(port, () => service.ready());
  const actualPort = (http.address() as AddressInfo).port;
  process.stdout.write(`${JSON.stringify({ event: "ready", id: service.id, port: actualPort, nats: natsUrl })}\n`);
  log("ready", { id: service.id, port: actualPort, nats: natsUrl, leaseMs: service.leaseMs });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log("stopping", { signal });
    http.close();
    await service.close();
    log("stopped");
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
}

main().catch((err: unknown) => {
  log("fatal", { error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
