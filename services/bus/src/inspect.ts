/**
 * Reading the live bus without changing it: what is missing, what differs from the description (drift),
 * and each stream's replicas, leader and fill. Components call `requireBus` on connect — it fails with a
 * BusError naming what is missing — and `dspex status` shows `inspectBus`.
 */
import { jetstreamManager, type JetStreamManager, type StreamInfo } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { BUCKETS, BUS_VERSION, BusError, STREAMS } from "@dspex/protocol";
import { diffBucket, diffConsumer, diffStream, type Difference } from "./diff.js";
import { isConsumerNotFound, isStreamNotFound } from "./jserrors.js";
import { BUS_METADATA_KEY, type BusNeeds, type BusSpec } from "./spec.js";

export interface StreamState {
  name: string;
  /** `stream` or `bucket` (a KV bucket's stream). */
  kind: "stream" | "bucket";
  replicas: number;
  leader: string | undefined;
  /** Replicas that are not current (lagging or offline). */
  lagging: string[];
  messages: number;
  bytes: number;
  maxBytes: number;
  maxAgeMs: number;
  /** Messages kept per subject (a bucket's history); 0: unlimited. */
  maxMsgsPerSubject: number;
}

export interface BusInspection {
  missing: string[];
  drift: Difference[];
  streams: StreamState[];
}

async function info(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (isStreamNotFound(err)) return undefined;
    throw err;
  }
}

function state(i: StreamInfo, kind: StreamState["kind"]): StreamState {
  return {
    name: i.config.name,
    kind,
    replicas: i.config.num_replicas,
    leader: i.cluster?.leader,
    lagging: (i.cluster?.replicas ?? []).filter((r) => !r.current || r.offline).map((r) => r.name),
    messages: i.state.messages,
    bytes: i.state.bytes,
    maxBytes: i.config.max_bytes,
    maxAgeMs: Math.round(i.config.max_age / 1e6),
    maxMsgsPerSubject: Math.max(0, i.config.max_msgs_per_subject ?? 0),
  };
}

/** The whole bus against its description. */
export async function inspectBus(nc: NatsConnection, spec: BusSpec): Promise<BusInspection> {
  const jsm = await jetstreamManager(nc);
  const out: BusInspection = { missing: [], drift: [], streams: [] };
  for (const s of spec.streams) {
    const i = await info(jsm, s.config.name);
    if (!i) out.missing.push(`stream ${s.config.name}`);
    else {
      out.streams.push(state(i, "stream"));
      out.drift.push(...diffStream(s, i.config));
    }
  }
  await Promise.all(
    spec.consumers.map(async (c) => {
      try {
        out.drift.push(...diffConsumer(c, (await jsm.consumers.info(c.stream, c.config.durable_name)).config));
      } catch (err) {
        if (!isConsumerNotFound(err) && !isStreamNotFound(err)) throw err;
        out.missing.push(`consumer ${c.stream}/${c.config.durable_name}`);
      }
    }),
  );
  for (const b of spec.buckets) {
    const i = await info(jsm, b.stream);
    if (!i) out.missing.push(`bucket ${b.name}`);
    else {
      out.streams.push(state(i, "bucket"));
      out.drift.push(...diffBucket(b, i.config));
    }
  }
  out.missing.sort();
  return out;
}

/**
 * Checks that what a component needs exists and follows this bus layout version; throws BusError naming
 * everything missing. Returns the drift of those parts against `spec` (the component's own idea of the
 * deployment), which a component reports and never acts on.
 */
export async function requireBus(nc: NatsConnection, needs: BusNeeds, spec?: BusSpec): Promise<Difference[]> {
  const jsm = await jetstreamManager(nc);
  const missing: string[] = [];
  const drift: Difference[] = [];
  for (const key of needs.streams ?? []) {
    const name = STREAMS[key].name;
    const i = await info(jsm, name);
    if (!i) {
      missing.push(`stream ${name}`);
      continue;
    }
    const version = i.config.metadata?.[BUS_METADATA_KEY];
    if (version !== String(BUS_VERSION)) {
      throw new BusError(
        `stream ${name} was provisioned for bus layout ${version ?? "(none)"}, this component speaks ${BUS_VERSION}: run \`dspex bus apply\``,
        { details: { stream: name, version, expected: BUS_VERSION } },
      );
    }
    const described = spec?.streams.find((s) => s.key === key);
    if (described) drift.push(...diffStream(described, i.config));
  }
  for (const key of needs.buckets ?? []) {
    const name = BUCKETS[key].name;
    const i = await info(jsm, `KV_${name}`);
    if (!i) missing.push(`bucket ${name}`);
    else {
      const described = spec?.buckets.find((b) => b.key === key);
      if (described) drift.push(...diffBucket(described, i.config));
    }
  }
  await Promise.all(
    (needs.consumers ?? []).map(async (c) => {
      try {
        await jsm.consumers.info(c.stream, c.name);
      } catch (err) {
        if (!isConsumerNotFound(err) && !isStreamNotFound(err)) throw err;
        missing.push(`consumer ${c.stream}/${c.name}`);
      }
    }),
  );
  if (missing.length > 0) {
    throw new BusError(`the bus is not provisioned: missing ${missing.sort().join(", ")}; run \`dspex bus apply\``, {
      details: { missing },
    });
  }
  return drift;
}

export function formatDrift(drift: Difference[]): string[] {
  return drift.map((d) => `${d.what}: ${d.field} is ${JSON.stringify(d.have)}, the deployment says ${JSON.stringify(d.want)}`);
}
