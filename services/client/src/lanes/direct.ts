/**
 * The direct lane: one core NATS request to the pool's queue group (`dspex.direct.<pool>.any`), or to the
 * worker owning the session's partition (`dspex.direct.<pool>.p<N>`), and one reply into this client's inbox.
 * No stream write, no pull, no ack, no reply confirmation: two messages per call instead of six or seven, and
 * at most once — a request whose worker dies is lost (docs/reliability.md, "Two lanes").
 *
 * The rest of the call is the durable lane's: the same envelope, contract check and payload limit, deadline
 * (header and timer), interceptors (tracing, retries, affinity, breakers, discovery) and typed errors. What only
 * this lane does:
 *   - no responder (the server's 503) is `NoWorkersError` at once; a session's partition nobody holds at the
 *     moment (its owner just changed) falls back once to the pool's queue group, unless affinity is strict;
 *   - the worker sends a heartbeat every `heartbeatMs` while the request runs; silence for `lostAfterMs` means
 *     the worker is gone, and the call fails with `TransportError` (details.lost) instead of waiting out its
 *     deadline.
 */
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import { HEADERS, NoWorkersError, TransportError, directSubject, partitionOf } from "@dspex/protocol";
import type { PoolSettings } from "@dspex/bus";
import { tracedPublish } from "@dspex/observability";
import type { CallInput } from "../call.js";
import type { Transport } from "../transport.js";

export interface DirectLaneOptions {
  /** How often a worker signals that a direct request is still running (default 1000 ms). */
  heartbeatMs?: number;
  /** Silence after which the worker running a direct request counts as gone (default 5000 ms). */
  lostAfterMs?: number;
}

const NO_RESPONDERS = 503;

export class DirectLane {
  readonly heartbeatMs: number;
  readonly lostAfterMs: number;
  /** Calls that ended because their worker went silent. */
  lost = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly transport: Transport,
    private readonly pools: Record<string, PoolSettings>,
    private readonly onNoResponders: (pool: string) => void,
    options: DirectLaneOptions = {},
  ) {
    this.heartbeatMs = Math.max(50, options.heartbeatMs ?? 1_000);
    this.lostAfterMs = Math.max(this.heartbeatMs * 2, options.lostAfterMs ?? 5_000);
  }

  async send(input: CallInput) {
    const settings = this.pools[input.pool]!;
    const id = input.requestId;
    const session = input.options.session;
    const partition = session && settings.partitions > 0 ? partitionOf(session, settings.partitions) : undefined;
    let subject = directSubject(input.pool, partition === undefined ? "any" : `p${partition}`);
    const body = this.transport.encodeChecked(input);
    const h = this.transport.headers(input);
    h.set(HEADERS.heartbeat, String(this.heartbeatMs));
    h.set(HEADERS.msgId, id); // not for deduplication (nothing is stored): the worker's logs and spans name it
    const reply = this.transport.replySubject(id);
    let worker: string | undefined;
    let liveness: NodeJS.Timeout | undefined;
    const publish = (fail: (err: unknown) => void) => {
      try {
        tracedPublish({ headers: h, subject, pool: input.pool, messageId: id, bodySize: body.byteLength }, async () =>
          this.nc.publish(subject, body, { reply, headers: h }),
        ).catch((err: unknown) => fail(new TransportError(`direct publish failed: ${String(err)}`, { cause: err })));
      } catch (err) {
        fail(new TransportError(`direct publish failed: ${String(err)}`, { cause: err }));
      }
    };
    return this.transport.expect(input, {
      start: (fail) => {
        // a deadline within the silence window needs no second timer: the deadline reports a lost worker too
        if (input.deadline - Date.now() > this.lostAfterMs) {
          liveness = setTimeout(() => {
            this.lost += 1;
            fail(
              new TransportError(
                `no reply and no heartbeat for ${this.lostAfterMs} ms from the worker running request ${id} (pool '${input.pool}', ` +
                  `direct lane: at most once, not redelivered); the worker is gone or cut off`,
                { details: { id, pool: input.pool, lane: "direct", lost: true, ...(worker ? { worker } : {}) } },
              ),
            );
          }, this.lostAfterMs);
        }
        publish(fail);
      },
      onSignal: (msg: Msg, fail) => {
        if (msg.headers?.code === NO_RESPONDERS) {
          if (partition !== undefined && subject !== directSubject(input.pool, "any") && input.options.affinity !== "strict") {
            // nobody holds the partition this moment (its owner changed): any worker of the pool, once
            subject = directSubject(input.pool, "any");
            return publish(fail);
          }
          this.onNoResponders(input.pool);
          return fail(
            new NoWorkersError(`no worker of pool '${input.pool}' took the direct request (${subject} has no responder)`, {
              details: { pool: input.pool, lane: "direct", subject },
            }),
          );
        }
        const from = msg.headers?.get(HEADERS.heartbeat);
        if (from) {
          worker = from;
          liveness?.refresh();
        }
      },
      done: () => clearTimeout(liveness),
    });
  }
}
