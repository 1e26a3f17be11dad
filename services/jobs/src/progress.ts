/**
 * Progress events of jobs on `dspex.jobs.progress.<job>` (JSON JobProgress, job.schema.json), and cancel
 * notices on `dspex.jobs.cancel.<job>`. Events are core NATS (not stored): the record in `dspex_jobs` is the
 * truth, so a watcher that joins late or misses an event reads the record.
 */
import { retryOnBus } from "@dspex/bus";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { jobCancelSubject, jobProgressSubject, type JobProgress, type JobRecord } from "@dspex/protocol";
import { isTerminal, type JobStore } from "./store.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const END_TYPES = new Set<JobProgress["type"]>(["done", "failed", "cancelled"]);

export function publishProgress(nc: NatsConnection, event: JobProgress): void {
  nc.publish(jobProgressSubject(event.job), encoder.encode(JSON.stringify(event)));
}

/** Asks a job to stop: the durable request in its record, and a notice to whoever runs it now. */
export async function requestCancel(nc: NatsConnection, store: JobStore, job: string): Promise<JobRecord | null> {
  const record = await store.update(job, (cur) => (isTerminal(cur.status) ? null : { ...cur, cancel_requested: true }));
  nc.publish(jobCancelSubject(job));
  await nc.flush();
  return record;
}

/**
 * A live view of one job's progress: replays what arrived since it was made, then waits for more, and ends
 * with the job (an end event, or the record turning final — checked every `pollMs` in case an event was lost).
 */
export class ProgressFeed {
  readonly events: JobProgress[] = [];
  private waiters: Array<() => void> = [];
  private sub: Subscription | undefined;
  private poller: NodeJS.Timeout | undefined;
  ended = false;

  constructor(
    nc: NatsConnection,
    readonly job: string,
    private readonly store?: JobStore,
    pollMs = 1_000,
  ) {
    this.sub = nc.subscribe(jobProgressSubject(job), {
      callback: (err, msg) => {
        if (err) return;
        try {
          this.push(JSON.parse(decoder.decode(msg.data)) as JobProgress);
        } catch {
          /* not a progress event */
        }
      },
    });
    if (store) {
      this.poller = setInterval(() => void this.checkRecord(), pollMs);
      this.poller.unref();
    }
  }

  private async checkRecord(): Promise<void> {
    const found = await this.store?.get(this.job).catch(() => null);
    if (found && isTerminal(found.record.status)) this.end();
  }

  push(event: JobProgress): void {
    if (this.ended) return;
    this.events.push(event);
    if (END_TYPES.has(event.type)) this.end();
    this.wake();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.sub?.unsubscribe();
    this.sub = undefined;
    if (this.poller) clearInterval(this.poller);
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<JobProgress> {
    let i = 0;
    while (true) {
      while (i < this.events.length) yield this.events[i++]!;
      if (this.ended) return;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
}

/** Resolves with the job's record once it is final (events wake it; the record decides). */
export async function waitForJob(nc: NatsConnection, store: JobStore, job: string, pollMs = 1_000): Promise<JobRecord> {
  const feed = new ProgressFeed(nc, job, store, pollMs);
  try {
    for (;;) {
      // through bus trouble (a node lost, a leader being elected): keep waiting, the job goes on without us
      const record = await retryOnBus(() => store.require(job), { deadline: Date.now() + 3_600_000 });
      if (isTerminal(record.status)) return record;
      // wait for the next event or the poller's verdict
      const it = feed[Symbol.asyncIterator]();
      await Promise.race([it.next(), new Promise((r) => setTimeout(r, pollMs))]);
    }
  } finally {
    feed.end();
  }
}
