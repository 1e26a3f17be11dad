/**
 * Makes the live bus match the description (spec.ts): creates what is missing, updates what can be changed
 * in place, and reports what cannot (a stream's storage or retention) instead of deleting anything. The one
 * writer of the bus's configuration: `dspex bus apply`, the embedded fleet, the Kubernetes Job.
 * Idempotent: a second run changes nothing.
 */
import { jetstreamManager, StorageType, type JetStreamManager, type StreamConfig } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { BusError } from "@dspex/protocol";
import { diffBucket, diffConsumer, diffStream, type Difference } from "./diff.js";
import { isConsumerNotFound, isStreamNotFound, jsCode, JS_CODES } from "./jserrors.js";
import { BUS_METADATA_KEY, type BucketSpec, type BusSpec, type ConsumerSpec, type StreamSpec } from "./spec.js";

export interface ApplyReport {
  created: string[];
  updated: Array<{ what: string; changes: Difference[] }>;
  unchanged: string[];
  /** Differences the server cannot make in place; recreate those by hand (after draining them). */
  refused: Difference[];
}

/**
 * Records what a comparison found: nothing (unchanged), or the changes to make and the refusals. Returns the
 * changes the server can make in place (empty: nothing to update).
 */
function triage(report: ApplyReport, what: string, diff: Difference[]): Difference[] {
  if (diff.length === 0) {
    report.unchanged.push(what);
    return [];
  }
  report.refused.push(...diff.filter((d) => d.immutable));
  return diff.filter((d) => !d.immutable);
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamConfig | undefined> {
  try {
    return (await jsm.streams.info(name)).config;
  } catch (err) {
    if (isStreamNotFound(err)) return undefined;
    throw err;
  }
}

async function applyStream(jsm: JetStreamManager, spec: StreamSpec, report: ApplyReport): Promise<void> {
  const live = await streamInfo(jsm, spec.config.name);
  const what = `stream ${spec.config.name}`;
  if (!live) {
    try {
      await jsm.streams.add(spec.config);
      report.created.push(what);
      return;
    } catch (err) {
      // another provisioner created it at the same moment: compare with theirs below
      if (jsCode(err) !== JS_CODES.StreamNameExist) throw err;
    }
  }
  const current = live ?? (await jsm.streams.info(spec.config.name)).config;
  const changes = triage(report, what, diffStream(spec, current));
  if (changes.length === 0) return;
  await jsm.streams.update(spec.config.name, {
    ...current,
    ...spec.config,
    metadata: { ...current.metadata, ...spec.config.metadata },
    // fields the server cannot change stay as they are (reported in `refused`)
    retention: current.retention,
    storage: current.storage,
  } as StreamConfig);
  report.updated.push({ what, changes });
}

async function applyConsumer(jsm: JetStreamManager, spec: ConsumerSpec, report: ApplyReport): Promise<void> {
  const what = `consumer ${spec.stream}/${spec.config.durable_name}`;
  let live;
  try {
    live = (await jsm.consumers.info(spec.stream, spec.config.durable_name)).config;
  } catch (err) {
    if (!isConsumerNotFound(err)) throw err;
  }
  if (!live) {
    await jsm.consumers.add(spec.stream, spec.config);
    report.created.push(what);
    return;
  }
  const changes = triage(report, what, diffConsumer(spec, live));
  if (changes.length === 0) return;
  const { durable_name: _name, ...mutable } = spec.config;
  await jsm.consumers.update(spec.stream, spec.config.durable_name, {
    ack_wait: mutable.ack_wait,
    max_ack_pending: mutable.max_ack_pending,
    max_deliver: mutable.max_deliver,
    filter_subject: mutable.filter_subject,
    backoff: mutable.backoff,
    metadata: mutable.metadata,
    ...(mutable.priority_groups ? { priority_groups: mutable.priority_groups, priority_timeout: mutable.priority_timeout } : {}),
  });
  report.updated.push({ what, changes });
}

async function applyBucket(nc: NatsConnection, jsm: JetStreamManager, spec: BucketSpec, report: ApplyReport): Promise<void> {
  const what = `bucket ${spec.name}`;
  const live = await streamInfo(jsm, spec.stream);
  if (!live) {
    await new Kvm(nc).create(spec.name, {
      history: spec.history,
      ttl: spec.ttlMs,
      max_bytes: spec.maxBytes > 0 ? spec.maxBytes : -1,
      replicas: spec.replicas,
      storage: spec.storage === "memory" ? StorageType.Memory : StorageType.File,
      metadata: { [BUS_METADATA_KEY]: "1" },
    });
    report.created.push(what);
    return;
  }
  const changes = triage(report, what, diffBucket(spec, live));
  if (changes.length === 0) return;
  await jsm.streams.update(spec.stream, {
    ...live,
    num_replicas: spec.replicas,
    max_msgs_per_subject: spec.history,
    max_age: spec.ttlMs * 1e6,
    max_bytes: spec.maxBytes > 0 ? spec.maxBytes : -1,
  });
  report.updated.push({ what, changes });
}

export async function applyBus(nc: NatsConnection, spec: BusSpec): Promise<ApplyReport> {
  const jsm = await jetstreamManager(nc);
  const report: ApplyReport = { created: [], updated: [], unchanged: [], refused: [] };
  try {
    for (const s of spec.streams) await applyStream(jsm, s, report);
    // consumers after their streams; each pool's consumers in parallel (16 partitions each)
    await Promise.all(spec.consumers.map((c) => applyConsumer(jsm, c, report)));
    for (const b of spec.buckets) await applyBucket(nc, jsm, b, report);
  } catch (err) {
    throw new BusError(`applying the bus failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return report;
}

export function formatApplyReport(report: ApplyReport): string {
  const lines: string[] = [];
  for (const c of report.created) lines.push(`created   ${c}`);
  for (const u of report.updated) {
    lines.push(`updated   ${u.what}: ${u.changes.map((d) => `${d.field} ${JSON.stringify(d.have)} → ${JSON.stringify(d.want)}`).join(", ")}`);
  }
  for (const r of report.refused) {
    lines.push(`REFUSED   ${r.what}: ${r.field} is ${JSON.stringify(r.have)}, wanted ${JSON.stringify(r.want)} (cannot change in place; recreate it)`);
  }
  lines.push(`unchanged ${report.unchanged.length}`);
  return lines.join("\n");
}
