/**
 * The declarative description of the bus: every stream, consumer and KV bucket DSPex uses, with the
 * deployment's replicas and limits. Names and subjects come from schemas/bus.json (through @dspex/protocol);
 * this module adds what is deployment-specific. `applyBus` makes the live bus match it; `inspectBus` compares.
 */
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type StreamConfig,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import {
  BUCKETS,
  BUS_VERSION,
  PARTITION_GROUP,
  POOLS,
  STREAMS,
  deadLettersConsumer,
  registryConsumer,
  partitionConsumer,
  poolConsumer,
  requestSubject,
  partitionSubject,
  type Pool,
} from "@dspex/protocol";
import { consumerBackoffMs } from "./backoff.js";
import type { BusSettings, LimitName } from "./settings.js";

/** Metadata stamped on everything the provisioner applies: the bus layout version it follows. */
export const BUS_METADATA_KEY = "dspex.bus.version";

export type StreamKey = keyof typeof STREAMS;
export type BucketKey = keyof typeof BUCKETS;

export interface StreamSpec {
  key: StreamKey;
  config: Partial<StreamConfig> & { name: string; subjects: string[] };
}

export interface ConsumerSpec {
  stream: string;
  config: Partial<ConsumerConfig> & { durable_name: string };
  /** Which pool's requests it delivers (request consumers only). */
  pool?: Pool;
}

export interface BucketSpec {
  key: BucketKey;
  name: string;
  /** The KV bucket's stream. */
  stream: string;
  history: number;
  ttlMs: number;
  maxBytes: number;
  replicas: number;
  storage: "file" | "memory";
}

export interface BusSpec {
  settings: BusSettings;
  streams: StreamSpec[];
  consumers: ConsumerSpec[];
  buckets: BucketSpec[];
}

const STREAM_LIMITS: Record<StreamKey, LimitName> = {
  requests: "requests",
  deadLetters: "deadLetters",
  advisories: "advisories",
  evalData: "evalData",
  evalResults: "evalResults",
  executions: "executions",
};

function streamConfig(key: StreamKey, settings: BusSettings): StreamSpec["config"] {
  const s = STREAMS[key] as (typeof STREAMS)[StreamKey] & { maxMsgsPerSubject?: number };
  const limits = settings.limits[STREAM_LIMITS[key]];
  const config: StreamSpec["config"] = {
    name: s.name,
    subjects: [...s.subjects],
    retention: s.retention === "workqueue" ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
    storage: settings.storage === "memory" ? StorageType.Memory : StorageType.File,
    num_replicas: settings.replicas,
    max_bytes: limits.maxBytes > 0 ? limits.maxBytes : -1,
    max_age: nanos(limits.maxAgeMs),
    // A full stream refuses new messages (the publisher gets an error) rather than dropping stored ones.
    discard: DiscardPolicy.New,
    metadata: { [BUS_METADATA_KEY]: String(BUS_VERSION) },
  };
  if (limits.maxMsgsPerSubject > 0) config.max_msgs_per_subject = limits.maxMsgsPerSubject;
  if (s.maxMsgsPerSubject !== undefined) {
    // One message per subject, a second one refused: an example's result can never be stored twice.
    config.discard_new_per_subject = true;
  }
  switch (key) {
    case "requests": {
      const maxPayload = Math.max(...POOLS.map((p) => settings.pools[p].maxPayloadBytes));
      config.duplicate_window = nanos(settings.duplicateWindowMs);
      // headers (reply subject, ids, trace context) count towards the size
      config.max_msg_size = maxPayload + 16 * 1024;
      break;
    }
    case "deadLetters":
      // `dlq:<seq>` ids: a redelivered advisory, or the worker's own copy of a terminated request, stored once
      config.duplicate_window = nanos(Math.min(DAY_MS, limits.maxAgeMs || DAY_MS));
      break;
    case "evalData":
    case "evalResults":
      config.duplicate_window = nanos(120_000);
      config.max_msg_size = 1024 * 1024;
      break;
    case "executions":
      // the gateway publishes an execution with its request id: a re-sent publish is stored once
      config.duplicate_window = nanos(120_000);
      config.max_msg_size = 2 * 1024 * 1024;
      break;
    case "advisories":
      break;
  }
  return config;
}

const DAY_MS = 24 * 3600_000;

function requestConsumer(name: string, filter: string, pool: Pool, settings: BusSettings, pinned: boolean): ConsumerSpec {
  const p = settings.pools[pool];
  const backoff = consumerBackoffMs(pool, p);
  return {
    stream: STREAMS.requests.name,
    pool,
    config: {
      durable_name: name,
      filter_subject: filter,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      // BackOff overrides AckWait: the server stores BackOff[0] as AckWait, so they start equal.
      ack_wait: nanos(backoff[0] ?? p.ackWaitMs),
      max_ack_pending: p.maxAckPending,
      max_deliver: p.maxDeliver,
      backoff: backoff.map((ms) => nanos(ms)),
      metadata: { [BUS_METADATA_KEY]: String(BUS_VERSION) },
      ...(pinned
        ? {
            priority_policy: "pinned_client" as const,
            priority_groups: [PARTITION_GROUP],
            priority_timeout: nanos(settings.pinTimeoutMs),
          }
        : {}),
    },
  };
}

/** The whole desired bus for these settings. */
export function busSpec(settings: BusSettings): BusSpec {
  const streams = (Object.keys(STREAMS) as StreamKey[]).map((key) => ({ key, config: streamConfig(key, settings) }));
  const consumers: ConsumerSpec[] = [];
  for (const pool of POOLS) {
    consumers.push(requestConsumer(poolConsumer(pool), requestSubject(pool, "any"), pool, settings, false));
    for (let n = 0; n < settings.pools[pool].partitions; n++) {
      consumers.push(requestConsumer(partitionConsumer(pool, n), partitionSubject(pool, n), pool, settings, true));
    }
  }
  consumers.push({
    stream: STREAMS.advisories.name,
    config: {
      durable_name: deadLettersConsumer(),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(30_000),
      max_deliver: 20,
      metadata: { [BUS_METADATA_KEY]: String(BUS_VERSION) },
    },
  });
  consumers.push({
    stream: STREAMS.executions.name,
    config: {
      durable_name: registryConsumer(),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(30_000),
      // never gives up: while the registry's database is down an execution waits here (naked with a delay)
      max_deliver: -1,
      max_ack_pending: 1_000,
      metadata: { [BUS_METADATA_KEY]: String(BUS_VERSION) },
    },
  });
  const buckets = (Object.keys(BUCKETS) as BucketKey[]).map((key) => {
    const b = BUCKETS[key];
    const limits = settings.limits[key as LimitName];
    return {
      key,
      name: b.name,
      stream: `KV_${b.name}`,
      history: limits.maxMsgsPerSubject,
      ttlMs: limits.maxAgeMs,
      maxBytes: limits.maxBytes,
      replicas: settings.replicas,
      storage: settings.storage,
    };
  });
  return { settings, streams, consumers, buckets };
}

/** Names of what a component needs, for `requireBus`. */
export interface BusNeeds {
  streams?: StreamKey[];
  buckets?: BucketKey[];
  /** Consumers by stream and durable name. */
  consumers?: Array<{ stream: string; name: string }>;
}
