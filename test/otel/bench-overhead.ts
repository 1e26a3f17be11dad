/**
 * Tracing overhead per request, measured through the integration harness (real NATS, worker, dspy, LM double).
 *
 *   node --conditions=development --import tsx test/otel/bench-overhead.ts off 200
 *   node --conditions=development --import tsx test/otel/bench-overhead.ts on 200
 *
 * `off`: no OTLP endpoint on either side (the default). `on`: both sides export traces and metrics over OTLP/HTTP
 * to receiver.py with the default batching. Prints one JSON line: end-to-end latency, the worker's exec_ms, and
 * end-to-end minus JetStream queue wait (which isolates what the two sides add from how soon a pull arrives).
 */
import { initTelemetry, type Telemetry } from "@dspex/observability";
import { startHarness } from "../integration/harness.js";
import { startReceiver } from "./receiver.js";

const mode = process.argv[2] === "on" ? "on" : "off";
const n = Number(process.argv[3] ?? 200);

const receiver = await startReceiver();
const workerEnv: Record<string, string | undefined> = {
  OTEL_EXPORTER_OTLP_ENDPOINT: undefined,
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: undefined,
  OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: undefined,
};
let telemetry: Telemetry | undefined;
if (mode === "on") {
  telemetry = initTelemetry({ endpoint: receiver.url, env: {} });
  workerEnv.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
}
const h = await startHarness({ fleet: { workerEnv } });

const stats = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const at = (q: number) => +sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]!.toFixed(2);
  return { mean: +(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(2), p50: at(0.5), p95: at(0.95) };
};

const run = async (count: number) => {
  const total: number[] = [];
  const exec: number[] = [];
  const withoutQueue: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const r = await h.client.predict("question -> answer: int", { question: `What is ${i}+1?` });
    const ms = performance.now() - started;
    total.push(ms);
    exec.push(r.timings.exec_ms);
    withoutQueue.push(ms - r.timings.queue_ms);
  }
  return { total_ms: stats(total), exec_ms: stats(exec), total_minus_queue_ms: stats(withoutQueue) };
};

try {
  await run(20); // warm-up: first LM client, signature cache, JIT
  const result = await run(n);
  await telemetry?.forceFlush();
  console.log(JSON.stringify({ mode, requests: n, ...result, receiver: await receiver.stats() }));
} finally {
  await h.close();
  await telemetry?.shutdown();
  await receiver.close();
}
