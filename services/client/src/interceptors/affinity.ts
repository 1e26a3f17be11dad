/**
 * Strict session affinity: a session bound to the worker that first served it. Before an attempt, the
 * session's worker (KV `dspex_sessions`) must still be alive — else AffinityError at once — and is named in
 * the `Dspex-Session-Worker` header, so any other worker refuses it. After a reply, the session's record is
 * refreshed (its idle TTL restarts) with the worker that answered.
 */
import { AffinityError, HEADERS } from "@dspex/protocol";
import type { Interceptor } from "../call.js";
import type { WorkerDiscovery } from "../discovery.js";
import type { SessionTable } from "../sessions.js";
import { NATIVE_WORKER } from "../engine/lane.js";

export function affinityInterceptor(sessions: SessionTable, discovery: WorkerDiscovery): Interceptor {
  return async (input, next) => {
    const session = input.options.session;
    if (!session) return next(input);
    let attempt = input;
    if (input.options.affinity === "strict") {
      const owner = await sessions.owner(session);
      // a session used only by the native lane (worker "native") is bound by its first strict call
      if (owner !== undefined && owner !== NATIVE_WORKER) {
        const alive = async () => (await discovery.ensureLive(input.pool)).some((w) => w.worker === owner);
        // not among the workers seen lately: ask every worker before saying it is gone
        if (!(await alive()) && !(await discovery.refresh().then(alive))) {
          throw new AffinityError(`session '${session}' is bound to worker ${owner}, which is no longer alive (affinity: strict)`, {
            field: "session",
            details: { session, worker: owner, pool: input.pool },
          });
        }
        attempt = { ...input, headers: { ...input.headers, [HEADERS.sessionWorker]: owner } };
      }
    }
    const reply = await next(attempt);
    sessions.touch(session, reply.worker, input.pool);
    return reply;
  };
}
