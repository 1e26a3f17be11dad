/**
 * The TypeScript side's OpenTelemetry metrics, against `@opentelemetry/api` only.
 *
 * The API has no proxy for meters: a meter taken before an SDK registers stays a no-op. So instruments are
 * created from the global MeterProvider in place at the time of use, and re-created when it changes.
 */
import {
  metrics,
  ValueType,
  type Attributes,
  type Counter,
  type Histogram,
  type Meter,
  type MeterProvider,
  type ObservableGauge,
  type ObservableResult,
  type UpDownCounter,
} from "@opentelemetry/api";

export const METER_NAME = "@dspex/client";
export const METER_VERSION = "0.1.0";

/** Bucket boundaries (seconds) the semantic conventions recommend for request durations. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60];

export interface ClientInstruments {
  meter: Meter;
  /** `dspex.client.request.duration` (s): dspex.operation, dspex.pool, dspex.outcome, error.type. */
  requestDuration: Histogram;
  /** `dspex.client.requests.inflight` ({request}): dspex.operation, dspex.pool. */
  inflight: UpDownCounter;
  /** `dspex.client.lm.tokens` ({token}) as reported in replies: gen_ai.provider.name, gen_ai.request.model, gen_ai.token.type. */
  lmTokens: Counter;
  /**
   * `dspex.client.engine.calls` ({call}) by the execution router: dspex.operation, dspex.engine.requested,
   * dspex.engine.route (native | python | fallback), dspex.engine.reason (why not native).
   */
  engineCalls: Counter;
}

let cached: { provider: MeterProvider; instruments: ClientInstruments } | undefined;

export function meter(): Meter {
  return metrics.getMeterProvider().getMeter(METER_NAME, METER_VERSION);
}

export function clientInstruments(): ClientInstruments {
  const provider = metrics.getMeterProvider();
  if (cached?.provider === provider) return cached.instruments;
  const m = provider.getMeter(METER_NAME, METER_VERSION);
  const instruments: ClientInstruments = {
    meter: m,
    requestDuration: m.createHistogram("dspex.client.request.duration", {
      unit: "s",
      description: "Duration of DSPex calls as the caller sees them (validation, queueing, execution, reply)",
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
    inflight: m.createUpDownCounter("dspex.client.requests.inflight", {
      unit: "{request}",
      description: "DSPex calls waiting for their reply",
      valueType: ValueType.INT,
    }),
    lmTokens: m.createCounter("dspex.client.lm.tokens", {
      unit: "{token}",
      description: "LM tokens reported by workers in replies",
      valueType: ValueType.INT,
    }),
    engineCalls: m.createCounter("dspex.client.engine.calls", {
      unit: "{call}",
      description: "Calls by the engine that ran them: native, python, or fallback (asked for native, run by Python)",
      valueType: ValueType.INT,
    }),
  };
  cached = { provider, instruments };
  return instruments;
}

export interface Stoppable {
  stop(): void;
}

export interface ConsumerSnapshot {
  /** Durable consumer name: `<pool>` or a partition consumer `<pool>-p<n>`. */
  name: string;
  /** Messages stored and not yet delivered. */
  num_pending: number;
  /** Messages delivered and not yet acknowledged. */
  num_ack_pending?: number;
}

export interface ConsumerLagOptions {
  /** How long one listing is reused (default 5000 ms). */
  ttlMs?: number;
  /** How long one collection waits for a fresh listing before reporting the cached one (default 1000 ms). */
  timeoutMs?: number;
  /** Pool of a consumer name (default: the name without a `-p<n>` partition suffix). */
  poolOf?: (consumer: string) => string;
}

export function poolOfConsumer(name: string): string {
  const m = /^(.*)-p\d+$/.exec(name);
  return m?.[1] ?? name;
}

/**
 * Observable gauges of JetStream consumer lag: `dspex.consumer.pending` (`num_pending`: requests stored, not yet
 * delivered) and `dspex.consumer.ack_pending` (delivered, not yet acked), one series per durable consumer with
 * `dspex.pool` and `messaging.consumer.group.name`. `list()` returns consumer info of the request stream (the
 * router passes `jsm.consumers.list(REQUEST_STREAM).next()`); a listing is cached for `ttlMs`, so a collection
 * costs at most one JetStream API request, and a failed listing reports nothing.
 */
export function observeConsumerLag(
  list: () => Promise<Iterable<ConsumerSnapshot>>,
  options: ConsumerLagOptions = {},
): Stoppable {
  const ttlMs = options.ttlMs ?? 5000;
  const timeoutMs = options.timeoutMs ?? 1000;
  const poolOf = options.poolOf ?? poolOfConsumer;
  const m = meter();
  let snapshot: ConsumerSnapshot[] = [];
  let fetchedAt = 0;
  let refreshing: Promise<void> | undefined;
  const refresh = (): Promise<void> => {
    refreshing ??= list()
      .then(
        (infos) => {
          snapshot = [...infos];
        },
        () => {
          snapshot = [];
        },
      )
      .finally(() => {
        fetchedAt = Date.now();
        refreshing = undefined;
      });
    return refreshing;
  };
  const fresh = async (): Promise<ConsumerSnapshot[]> => {
    if (Date.now() - fetchedAt >= ttlMs) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        refresh(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
          timer.unref?.();
        }),
      ]);
      clearTimeout(timer);
    }
    return snapshot;
  };
  const attributes = (c: ConsumerSnapshot): Attributes => ({
    "dspex.pool": poolOf(c.name),
    "messaging.consumer.group.name": c.name,
  });
  const pending = m.createObservableGauge("dspex.consumer.pending", {
    unit: "{message}",
    description: "Requests stored in JetStream and not yet delivered to a worker, per durable consumer",
    valueType: ValueType.INT,
  });
  const ackPending = m.createObservableGauge("dspex.consumer.ack_pending", {
    unit: "{message}",
    description: "Requests delivered to workers and not yet acknowledged, per durable consumer",
    valueType: ValueType.INT,
  });
  const observePending = async (result: ObservableResult<Attributes>) => {
    for (const c of await fresh()) result.observe(c.num_pending, attributes(c));
  };
  const observeAckPending = async (result: ObservableResult<Attributes>) => {
    for (const c of await fresh()) {
      if (c.num_ack_pending !== undefined) result.observe(c.num_ack_pending, attributes(c));
    }
  };
  pending.addCallback(observePending);
  ackPending.addCallback(observeAckPending);
  return {
    stop() {
      pending.removeCallback(observePending);
      ackPending.removeCallback(observeAckPending);
    },
  };
}

export type BreakerState = "closed" | "half_open" | "open";
export const BREAKER_STATE_VALUES: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 };

export interface BreakerReading {
  /** What the breaker protects, e.g. a pool or an LM; reported as `dspex.breaker.name`. */
  name: string;
  state: BreakerState;
  attributes?: Attributes;
}

/**
 * Registers the observable gauge `dspex.breaker.state` (0 closed, 1 half-open, 2 open) over whatever `read`
 * returns at each collection, with the `dspex.breaker.name` attribute (plus any given). For the circuit
 * breaker: call it once the breakers exist, and `stop()` when they go away.
 */
export function registerBreakerStateGauge(read: () => Iterable<BreakerReading>): Stoppable {
  const gauge: ObservableGauge = meter().createObservableGauge("dspex.breaker.state", {
    unit: "1",
    description: "Circuit breaker state: 0 closed, 1 half-open, 2 open",
    valueType: ValueType.INT,
  });
  const callback = (result: ObservableResult<Attributes>) => {
    for (const b of read()) {
      result.observe(BREAKER_STATE_VALUES[b.state], { ...b.attributes, "dspex.breaker.name": b.name });
    }
  };
  gauge.addCallback(callback);
  return { stop: () => gauge.removeCallback(callback) };
}
