/**
 * What differs between the described bus (spec.ts) and the live one, field by field. `applyBus` changes
 * what can be changed; `inspectBus` reports it as drift.
 */
import type { ConsumerConfig, StreamConfig } from "@nats-io/jetstream";
import { BUS_METADATA_KEY, type BucketSpec, type ConsumerSpec, type StreamSpec } from "./spec.js";

export interface Difference {
  /** `stream DSPEX_REQ`, `consumer DSPEX_REQ/general`, `bucket dspex_jobs`. */
  what: string;
  field: string;
  want: unknown;
  have: unknown;
  /** The server cannot change it in place (storage, retention): it must be recreated by hand. */
  immutable?: boolean;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

function compare(what: string, fields: Array<[string, unknown, unknown, boolean?]>): Difference[] {
  const out: Difference[] = [];
  for (const [field, want, have, immutable] of fields) {
    if (!same(want, have)) out.push({ what, field, want, have, ...(immutable ? { immutable: true } : {}) });
  }
  return out;
}

export function diffStream(spec: StreamSpec, live: StreamConfig): Difference[] {
  const want = spec.config;
  return compare(`stream ${want.name}`, [
    ["subjects", [...want.subjects].sort(), [...(live.subjects ?? [])].sort()],
    ["retention", want.retention, live.retention, true],
    ["storage", want.storage, live.storage, true],
    ["num_replicas", want.num_replicas, live.num_replicas],
    ["max_bytes", want.max_bytes, live.max_bytes],
    ["max_age", want.max_age, live.max_age],
    ["max_msg_size", want.max_msg_size ?? -1, live.max_msg_size],
    ["duplicate_window", want.duplicate_window ?? live.duplicate_window, live.duplicate_window],
    ["max_msgs_per_subject", want.max_msgs_per_subject ?? -1, live.max_msgs_per_subject],
    ["discard", want.discard, live.discard],
    ["discard_new_per_subject", want.discard_new_per_subject ?? false, live.discard_new_per_subject ?? false],
    [`metadata.${BUS_METADATA_KEY}`, want.metadata?.[BUS_METADATA_KEY], live.metadata?.[BUS_METADATA_KEY]],
  ]);
}

export function diffConsumer(spec: ConsumerSpec, live: ConsumerConfig): Difference[] {
  const want = spec.config;
  return compare(`consumer ${spec.stream}/${want.durable_name}`, [
    ["filter_subject", want.filter_subject ?? "", live.filter_subject ?? ""],
    ["ack_wait", want.ack_wait, live.ack_wait],
    ["max_ack_pending", want.max_ack_pending ?? live.max_ack_pending, live.max_ack_pending],
    ["max_deliver", want.max_deliver, live.max_deliver],
    ["backoff", want.backoff ?? [], live.backoff ?? []],
    ["priority_policy", want.priority_policy ?? "none", live.priority_policy ?? "none", true],
    ["priority_groups", want.priority_groups ?? [], live.priority_groups ?? []],
    ["priority_timeout", want.priority_timeout ?? 0, live.priority_timeout ?? 0],
  ]);
}

export function diffBucket(spec: BucketSpec, live: StreamConfig): Difference[] {
  return compare(`bucket ${spec.name}`, [
    ["replicas", spec.replicas, live.num_replicas],
    ["history", spec.history, live.max_msgs_per_subject],
    ["ttl_ms", spec.ttlMs, Math.round((live.max_age ?? 0) / 1e6)],
    ["max_bytes", spec.maxBytes > 0 ? spec.maxBytes : -1, live.max_bytes],
    ["storage", spec.storage, live.storage, true],
  ]);
}
