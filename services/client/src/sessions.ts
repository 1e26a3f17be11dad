/**
 * Sessions: which worker served a session last (for strict affinity) and when it was last used. Kept in
 * the KV bucket `dspex_sessions`, whose TTL is the idle timeout, so an idle session simply ages out and the
 * programs created in it are swept (see programs.ts).
 */
import type { KV } from "@nats-io/kv";
import { LazyBucket, isLive } from "@dspex/bus";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Pool } from "@dspex/protocol";

export interface SessionRecord {
  worker: string;
  pool: Pool;
  lastUsed: number;
}

/** KV keys allow `[-/_=.a-zA-Z0-9]`; other session ids are stored base64url-encoded with a `b64.` prefix. */
export function sessionKey(session: string): string {
  return /^[-_=a-zA-Z0-9]+$/.test(session) ? session : `b64.${Buffer.from(session).toString("base64url")}`;
}

export class SessionTable {
  private readonly kv: LazyBucket;
  private readonly local = new Map<string, SessionRecord>();

  constructor(nc: NatsConnection) {
    this.kv = new LazyBucket(nc, "sessions");
  }

  private bucket(): Promise<KV> {
    return this.kv.get();
  }

  /** Worker that last served the session, if the session is still alive. */
  async owner(session: string): Promise<string | undefined> {
    const cached = this.local.get(session);
    if (cached) return cached.worker;
    const entry = await (await this.bucket()).get(sessionKey(session));
    if (!isLive(entry)) return undefined;
    const record = entry.json<SessionRecord>();
    this.local.set(session, record);
    return record.worker;
  }

  async exists(session: string): Promise<boolean> {
    const entry = await (await this.bucket()).get(sessionKey(session));
    return isLive(entry);
  }

  /** Records a use; refreshes the idle TTL. Written in the background: a call never waits on it. */
  touch(session: string, worker: string, pool: Pool): void {
    const record: SessionRecord = { worker, pool, lastUsed: Date.now() };
    this.local.set(session, record);
    if (this.local.size > 100_000) this.local.delete(this.local.keys().next().value!);
    void this.bucket()
      .then((kv) => kv.put(sessionKey(session), JSON.stringify(record)))
      .catch(() => {
        /* best effort: the next use writes again */
      });
  }
}
