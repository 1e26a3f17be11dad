/**
 * Creates (or updates) the request stream and each pool's durable pull consumer. The router owns this so
 * the bus has one definition; workers only bind to consumers that exist.
 */
import {
  AckPolicy,
  DeliverPolicy,
  RetentionPolicy,
  jetstreamManager,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import {
  KV_MEMBERS,
  KV_PROGRAMS,
  KV_SESSIONS,
  PARTITION_GROUP,
  POOLS,
  REQUEST_STREAM,
  REQUEST_SUBJECT_PREFIX,
  consumerName,
  partitionConsumerName,
  partitionSubject,
  requestSubject,
  type Pool,
  type PoolSettings,
} from "@dspex/shared";
import { consumerBackoffMs } from "./retry.js";

export interface ProvisionOptions {
  pools: Record<Pool, PoolSettings>;
  /** Stream replicas (3 in a clustered production deployment). */
  replicas?: number;
  storage?: "file" | "memory";
  /** Window in which a repeated Nats-Msg-Id is dropped as a duplicate. */
  duplicateWindowMs?: number;
  /** How long a pinned partition stays with a worker that stopped pulling before another takes it. */
  pinTimeoutMs?: number;
  /** Idle time after which a session and the programs created in it expire. */
  sessionTtlMs?: number;
}

/** Durable consumer config of one consumer; partition consumers are pinned to one client at a time. */
function consumerConfig(name: string, filter: string, settings: PoolSettings & { backoffMs?: number[] }, pinTimeoutMs?: number) {
  return {
    durable_name: name,
    filter_subject: filter,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    // BackOff (redelivery delays, docs/reliability.md) overrides AckWait: the server stores BackOff[0] as AckWait.
    ack_wait: nanos(settings.backoffMs?.[0] ?? settings.ackWaitMs),
    max_ack_pending: settings.maxAckPending,
    max_deliver: settings.maxDeliver,
    backoff: (settings.backoffMs ?? []).map((ms) => nanos(ms)),
    ...(pinTimeoutMs === undefined
      ? {}
      : {
          priority_policy: "pinned_client" as const,
          priority_groups: [PARTITION_GROUP],
          priority_timeout: nanos(pinTimeoutMs),
        }),
  };
}

/** Stream and KV replicas: the option, else DSPEX_STREAM_REPLICAS (3 in a clustered deployment), else 1. */
function streamReplicas(options: { replicas?: number }): number {
  const fromEnv = Number(process.env.DSPEX_STREAM_REPLICAS ?? 1);
  return options.replicas ?? (Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : 1);
}

function isNotFound(err: unknown): boolean {
  const text = String((err as { message?: string })?.message ?? err);
  return /not found/i.test(text);
}

/** Everything the bus needs: the request stream, each pool's consumers, and the KV buckets. Idempotent. */
export async function provisionBus(nc: NatsConnection, options: ProvisionOptions): Promise<void> {
  await provisionStream(await jetstreamManager(nc), options);
  await provisionKv(nc, { replicas: streamReplicas(options), sessionTtlMs: options.sessionTtlMs });
}

async function provisionStream(jsm: JetStreamManager, options: ProvisionOptions): Promise<void> {
  const maxPayload = Math.max(...POOLS.map((p) => options.pools[p].maxPayloadBytes));
  const config: Partial<StreamConfig> & { name: string } = {
    name: REQUEST_STREAM,
    // Only the pools' subjects: a publish to an unknown pool is refused (no stream) instead of stored unconsumed.
    subjects: POOLS.map((p) => `${REQUEST_SUBJECT_PREFIX}.${p}.>`),
    retention: RetentionPolicy.Workqueue,
    storage: options.storage === "memory" ? StorageType.Memory : StorageType.File,
    num_replicas: streamReplicas(options),
    duplicate_window: nanos(options.duplicateWindowMs ?? 120_000),
    // Headers (reply subject, ids, trace context) count towards the size, so leave room for them.
    max_msg_size: maxPayload + 16 * 1024,
  };
  try {
    const info = await jsm.streams.info(REQUEST_STREAM);
    const current = info.config;
    if (
      current.max_msg_size !== config.max_msg_size ||
      current.duplicate_window !== config.duplicate_window ||
      current.subjects.join() !== config.subjects!.join() ||
      current.num_replicas !== config.num_replicas
    ) {
      await jsm.streams.update(REQUEST_STREAM, { ...current, ...config } as StreamConfig);
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.streams.add(config);
  }
  for (const pool of POOLS) {
    const settings = { ...options.pools[pool], backoffMs: consumerBackoffMs(pool, options.pools[pool]) };
    const wanted = [consumerConfig(consumerName(pool), requestSubject(pool), settings)];
    for (let p = 0; p < settings.partitions; p++) {
      wanted.push(
        consumerConfig(partitionConsumerName(pool, p), partitionSubject(pool, p), settings, options.pinTimeoutMs ?? 3_000),
      );
    }
    await Promise.all(wanted.map((consumer) => ensureConsumer(jsm, consumer)));
  }
}

async function ensureConsumer(jsm: JetStreamManager, consumer: ReturnType<typeof consumerConfig>): Promise<void> {
  try {
    const c = (await jsm.consumers.info(REQUEST_STREAM, consumer.durable_name)).config;
    if (
      c.ack_wait !== consumer.ack_wait ||
      c.max_ack_pending !== consumer.max_ack_pending ||
      c.max_deliver !== consumer.max_deliver ||
      c.filter_subject !== consumer.filter_subject ||
      (c.backoff ?? []).join() !== consumer.backoff.join()
    ) {
      await jsm.consumers.update(REQUEST_STREAM, consumer.durable_name, {
        ack_wait: consumer.ack_wait,
        max_ack_pending: consumer.max_ack_pending,
        max_deliver: consumer.max_deliver,
        filter_subject: consumer.filter_subject,
        backoff: consumer.backoff,
      });
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.consumers.add(REQUEST_STREAM, consumer);
  }
}

/** KV buckets: worker membership (heartbeats), program definitions and state, sessions (idle TTL), jobs. */
export async function provisionKv(
  nc: NatsConnection,
  options: { replicas?: number; sessionTtlMs?: number } = {},
): Promise<void> {
  const kvm = new Kvm(nc);
  const replicas = options.replicas ?? 1;
  await kvm.create(KV_MEMBERS, { history: 1, ttl: 30_000, replicas });
  await kvm.create(KV_PROGRAMS, { history: 5, replicas });
  await kvm.create(KV_SESSIONS, { history: 1, ttl: options.sessionTtlMs ?? 30 * 60_000, replicas });
  // Job records (schemas/bus.json buckets.jobs): workers verify the bucket exists and never create it.
  await kvm.create("dspex_jobs", { history: 1, ttl: 7 * 24 * 3_600_000, replicas });
}
