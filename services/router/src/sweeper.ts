/**
 * Deletes the programs created in sessions that expired (idle past the session TTL): the router service's
 * housekeeping, every `intervalMs`. KV cannot expire them by itself — a session program must live as long as
 * its session is used, not a fixed time after it was written.
 */
import type { Client } from "@dspex/client";
import type { Logger } from "@dspex/observability";

export function startSweeper(client: Client, log: Logger, intervalMs = 60_000): { stop(): void } {
  const timer = setInterval(() => {
    client.programs
      .sweepExpired(client.sessions)
      .then((removed) => removed.length > 0 && log.info("programs of expired sessions deleted", { programs: removed }))
      .catch((err: unknown) => log.warn(`session sweep failed: ${String(err)}`));
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
