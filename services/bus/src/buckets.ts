/** Opening the bus's KV buckets (never creating them: `dspex bus apply` does) and reading their entries. */
import { Kvm, type KV, type KvEntry } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { BUCKETS } from "@dspex/protocol";

export type BucketName = keyof typeof BUCKETS;

/** A bucket opened on first use, then shared. */
export class LazyBucket {
  private kv: Promise<KV> | undefined;

  constructor(
    private readonly nc: NatsConnection,
    readonly key: BucketName,
  ) {}

  get(): Promise<KV> {
    this.kv ??= new Kvm(this.nc).open(BUCKETS[this.key].name);
    return this.kv;
  }
}

/** An entry that holds a value: present, a PUT (not a delete or purge marker) and not empty. */
export function isLive(entry: KvEntry | null | undefined): entry is KvEntry {
  return entry !== null && entry !== undefined && entry.operation === "PUT" && entry.length > 0;
}
