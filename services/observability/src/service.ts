/**
 * The shell every DSPex TypeScript process runs in, so each `server.ts` is only its own wiring: telemetry
 * initialised (OTLP when OTEL_* says so), one JSON logger, /healthz and /readyz on PORT (default 8080; 0 picks
 * a free port) unless the service serves HTTP itself, a `{"event":"ready"}` line on stdout once it serves,
 * and a drain on SIGTERM/SIGINT. A failure to start is logged and exits 1.
 */
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { DEFAULT_HTTP_PORT, startHealthServer, type ReadinessCheck } from "./health.js";
import { createLogger, type Logger } from "./log.js";
import { initTelemetry } from "./sdk.js";

export interface RunningService {
  ready: ReadinessCheck;
  stop(): Promise<void>;
  /** The service's own HTTP server (it answers the health paths itself); else a health-only one is started. */
  http?: Server;
  /** Fields for the ready line. */
  info?: Record<string, unknown>;
}

export async function runService(name: string, start: (log: Logger) => Promise<RunningService>): Promise<void> {
  const telemetry = initTelemetry({ serviceName: name });
  const log = createLogger(name);
  try {
    const service = await start(log);
    const port = process.env.PORT === undefined ? DEFAULT_HTTP_PORT : Number(process.env.PORT);
    const http = service.http ?? (await startHealthServer(port, service.ready));
    const actual = (http.address() as AddressInfo | null)?.port ?? port;
    process.stdout.write(`${JSON.stringify({ event: "ready", service: name, port: actual, ...service.info })}\n`);
    log.info(`${name} ready`, { port: actual, ...service.info });
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info(`${name} stopping`, { signal });
      http.close();
      await service.stop();
      await telemetry.shutdown();
      log.info(`${name} stopped`);
      process.exit(0);
    };
    process.once("SIGTERM", () => void stop("SIGTERM"));
    process.once("SIGINT", () => void stop("SIGINT"));
  } catch (err) {
    log.error(`${name} failed to start: ${err instanceof Error ? err.message : String(err)}`, { error: err });
    await telemetry.shutdown();
    process.exit(1);
  }
}
