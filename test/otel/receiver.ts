/**
 * Test helpers around receiver.py (an OTLP/HTTP receiver that decodes both protobuf and JSON): start it, read
 * what it got, and wait until a condition over it holds.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";

export const ROOT = join(import.meta.dirname, "../..");
export const PYTHON = join(ROOT, ".venv/bin/python");

export interface FlatSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  kind: "INTERNAL" | "SERVER" | "CLIENT" | "PRODUCER" | "CONSUMER" | "UNSPECIFIED";
  service: string | undefined;
  resource: Record<string, unknown>;
  scope: string;
  attributes: Record<string, unknown>;
  status: { code: "UNSET" | "OK" | "ERROR"; message: string };
  events: Array<{ name: string; attributes: Record<string, unknown> }>;
  encoding: "json" | "protobuf";
}

export interface FlatPoint {
  name: string;
  unit: string;
  type: "sum" | "gauge" | "histogram" | "exponential_histogram";
  service: string | undefined;
  scope: string;
  encoding: "json" | "protobuf";
  attributes: Record<string, unknown>;
  value?: number;
  count?: number;
  sum?: number;
}

export interface Receiver {
  url: string;
  spans(): Promise<FlatSpan[]>;
  metrics(): Promise<FlatPoint[]>;
  stats(): Promise<Record<string, number>>;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const child: ChildProcess = spawn(PYTHON, [join(import.meta.dirname, "receiver.py"), "--port", "0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error("OTLP receiver did not start within 15 s")), 15_000);
    lines.once("line", (line) => {
      clearTimeout(timer);
      resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`OTLP receiver exited with ${code}`));
    });
  });
  const get = async <T>(path: string): Promise<T> => (await (await fetch(url + path)).json()) as T;
  return {
    url,
    spans: () => get<FlatSpan[]>("/spans"),
    metrics: () => get<FlatPoint[]>("/metrics"),
    stats: () => get<Record<string, number>>("/stats"),
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** Resolves with probe()'s first defined result; polls until `timeoutMs`, then fails with `what`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The spans of one trace, once `done` holds for them. */
export function waitForTrace(
  receiver: Receiver,
  traceId: string,
  done: (spans: FlatSpan[]) => boolean,
  timeoutMs?: number,
): Promise<FlatSpan[]> {
  return waitFor(
    `spans of trace ${traceId}`,
    async () => {
      const spans = (await receiver.spans()).filter((s) => s.traceId === traceId);
      return done(spans) ? spans : undefined;
    },
    timeoutMs,
  );
}

export function one(spans: FlatSpan[], predicate: (s: FlatSpan) => boolean, what: string): FlatSpan {
  const found = spans.filter(predicate);
  if (found.length !== 1) {
    throw new Error(`expected one ${what}, found ${found.length}: ${spans.map((s) => s.name).join(", ")}`);
  }
  return found[0]!;
}

/** Whether `span` descends from `ancestor` (following parentSpanId within `spans`). */
export function descendsFrom(spans: FlatSpan[], span: FlatSpan, ancestor: FlatSpan): boolean {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  for (let s: FlatSpan | undefined = span; s; s = byId.get(s.parentSpanId)) {
    if (s.parentSpanId === ancestor.spanId) return true;
  }
  return false;
}
