/**
 * Creates (or updates) the request stream and each pool's durable pull consumer. The router owns this so
 * the bus has one definition; workers only bind to consumers that exist.
 */
import {
  AckPolicy,
  DeliverPolicy,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import {
  POOLS,
  REQUEST_STREAM,
  REQUEST_SUBJECT_PREFIX,
  consumerName,
  poolFilter,
  type Pool,
  type PoolSettings,
} from "@dspex/shared";

export interface ProvisionOptions {
  pools: Record<Pool, PoolSettings>;
  /** Stream replicas (3 in a clustered production deployment). */
  replicas?: number;
  storage?: "file" | "memory";
  /** Window in which a repeated Nats-Msg-Id is dropped as a duplicate. */
  duplicateWindowMs?: number;
}

function isNotFound(err: unknown): boolean {
  const text = String((err as { message?: string })?.message ?? err);
  return /not found/i.test(text);
}

export async function provisionBus(jsm: JetStreamManager, options: ProvisionOptions): Promise<void> {
  const maxPayload = Math.max(...POOLS.map((p) => options.pools[p].maxPayloadBytes));
  const config: Partial<StreamConfig> & { name: string } = {
    name: REQUEST_STREAM,
    subjects: [`${REQUEST_SUBJECT_PREFIX}.>`],
    retention: RetentionPolicy.Workqueue,
    storage: options.storage === "memory" ? StorageType.Memory : StorageType.File,
    num_replicas: options.replicas ?? 1,
    duplicate_window: nanos(options.duplicateWindowMs ?? 120_000),
    // Headers (reply subject, ids, trace context) count towards the size, so leave room for them.
    max_msg_size: maxPayload + 16 * 1024,
  };
  try {
    const info = await jsm.streams.info(REQUEST_STREAM);
    const current = info.config;
    if (current.max_msg_size !== config.max_msg_size || current.duplicate_window !== config.duplicate_window) {
      await jsm.streams.update(REQUEST_STREAM, { ...current, ...config } as StreamConfig);
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.streams.add(config);
  }
  for (const pool of POOLS) {
    const settings = options.pools[pool];
    const consumer = {
      durable_name: consumerName(pool),
      filter_subject: poolFilter(pool),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(settings.ackWaitMs),
      max_ack_pending: settings.maxAckPending,
      max_deliver: settings.maxDeliver,
    };
    try {
      const info = await jsm.consumers.info(REQUEST_STREAM, consumerName(pool));
      const c = info.config;
      if (
        c.ack_wait !== consumer.ack_wait ||
        c.max_ack_pending !== consumer.max_ack_pending ||
        c.max_deliver !== consumer.max_deliver
      ) {
        await jsm.consumers.update(REQUEST_STREAM, consumerName(pool), {
          ack_wait: consumer.ack_wait,
          max_ack_pending: consumer.max_ack_pending,
          max_deliver: consumer.max_deliver,
        });
      }
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await jsm.consumers.add(REQUEST_STREAM, consumer);
    }
  }
}
