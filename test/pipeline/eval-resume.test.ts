/**
 * A 1,000-example evaluation on 3 real workers (real dspy, LM double at the HTTP boundary) survives a worker
 * SIGKILL and a SIGKILL + restart of the pipeline service process: the job finishes with exactly one result
 * per example, the score the scripted LM rules predict, and the restarted service runs only the examples
 * that had no stored result.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { STREAMS, evalResultSubject, jobProgressSubject } from "@dspex/protocol";
import { PipelineClient, type ProgressEvent } from "@dspex/pipeline";
import { startHarness, type Harness } from "../integration/harness.js";

const ROOT = join(import.meta.dirname, "../..");
const TOTAL = 1_000;
// A killed worker's unacknowledged requests come back after AckWait; keep it short so the test is quick.
process.env.DSPEX_GENERAL_ACK_WAIT_MS ??= "4000";
const LEASE_MS = "3000";

/** Expected per example from the scripted rules below. */
function expected(i: number): "fail" | 1 | 0 {
  if (i % 50 === 49) return "fail"; // "garbage" reply: LMOutputError
  return i % 10 <= 6 ? 1 : 0; // answer "yes" (gold) for last digit 0-6, "no" otherwise
}

interface ServiceProcess {
  child: ChildProcess;
  port: number;
  logs: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
}

function startService(natsUrl: string, creds: string | undefined): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ["--conditions=development", "--import", "tsx", "services/pipeline/src/server.ts"], {
    cwd: ROOT,
    env: { ...process.env, NATS_URL: natsUrl, NATS_CREDS: creds, PORT: "0", DSPEX_PIPELINE_LEASE_MS: LEASE_MS },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Array<Record<string, unknown>> = [];
  let stderrTail = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let buf = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    buf += chunk;
    stderrTail = (stderrTail + chunk).slice(-4000);
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* not a log line */
      }
    }
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pipeline service not ready in 30 s:\n${stderrTail}`)), 30_000);
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
      const line = out.split("\n").find((l) => l.includes('"ready"'));
      if (line) {
        clearTimeout(timer);
        resolve({ child, port: (JSON.parse(line) as { port: number }).port, logs, exited });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`pipeline service exited with ${code}:\n${stderrTail}`));
    });
  });
}

/** Progress events of every job, with a way to wait for one matching a predicate. */
function progressFeed(nc: NatsConnection, job: () => string | undefined) {
  const waiters: Array<{ pred: (e: ProgressEvent) => boolean; resolve: (e: ProgressEvent) => void }> = [];
  let last: ProgressEvent | undefined;
  const sub = nc.subscribe(jobProgressSubject("*"), {
    callback: (_err, msg) => {
      const e = JSON.parse(new TextDecoder().decode(msg.data)) as ProgressEvent;
      if (e.job !== job()) return;
      last = e;
      for (const w of [...waiters]) {
        if (w.pred(e)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(e);
        }
      }
    },
  });
  return {
    last: () => last,
    until(pred: (e: ProgressEvent) => boolean, what: string, timeoutMs = 60_000): Promise<ProgressEvent> {
      if (last && pred(last)) return Promise.resolve(last);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; last event ${JSON.stringify(last)}`)), timeoutMs);
        waiters.push({ pred, resolve: (e) => (clearTimeout(timer), resolve(e)) });
      });
    },
    stop: () => sub.unsubscribe(),
  };
}

describe("evaluation job survives a worker kill and a pipeline service kill + restart", { timeout: 180_000 }, () => {
  let h: Harness;
  let client: PipelineClient;
  const services: ServiceProcess[] = [];

  before(async () => {
    h = await startHarness({ fleet: { workers: { general: 3 } } });
    h.lmDouble.control.apply({
      latencyMs: 5,
      rules: [
        { field: "question", match: { regex: "^question \\d*(49|99)$" }, reply: "garbage" },
        { field: "question", match: { regex: "^question \\d*[0-6]$" }, outputs: { answer: "yes" } },
        { field: "question", match: { regex: "^question \\d*[7-9]$" }, outputs: { answer: "no" } },
      ],
    });
    client = await PipelineClient.connect({ servers: h.fleet.natsUrl, creds: h.fleet.creds.client });
  });
  after(async () => {
    for (const s of services) s.child.kill("SIGKILL");
    await client?.close();
    await h?.close();
  });

  test("1,000 examples: exactly one result each, the undisturbed score, nothing redone after the restart", async () => {
    const t0 = performance.now();
    let service = await startService(h.fleet.natsUrl, h.fleet.creds.pipeline);
    services.push(service);
    const health = await fetch(`http://127.0.0.1:${service.port}/readyz`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { ready: boolean }).ready, true);
    assert.equal((await fetch(`http://127.0.0.1:${service.port}/healthz`)).status, 200);

    const jsm = await jetstreamManager(client.nc);
    let job: string | undefined;
    const feed = progressFeed(client.nc, () => job);
    const examples = Array.from({ length: TOTAL }, (_, i) => ({ question: `question ${i}`, answer: "yes" }));
    job = await client.submit(
      // A short per-call deadline: workers stop retrying replies to the killed service's inbox sooner.
      { name: "resume-test", program: { signature: "question -> answer", lm: h.lm, timeout_ms: 10_000 }, metrics: ["exact_match"], concurrency: 24 },
      examples,
    );
    assert.match(job, /^ev-/);

    // 1. SIGKILL one worker mid-run.
    const atWorkerKill = await feed.until((e) => (e.done ?? 0) >= 150, "150 examples done");
    const victim = h.fleet.workers[0]!;
    victim.process.kill("SIGKILL");
    await victim.exited;

    // 2. SIGKILL the pipeline service mid-run.
    const atServiceKill = await feed.until((e) => (e.done ?? 0) >= 450, "450 examples done");
    service.child.kill("SIGKILL");
    await service.exited;
    assert.ok((atWorkerKill.done ?? 0) < TOTAL && (atServiceKill.done ?? 0) < TOTAL, "both kills happened mid-run");
    const storedAtKill = (await client.results(job)).size;
    assert.ok(storedAtKill >= 450 && storedAtKill < TOTAL, `stored at kill: ${storedAtKill}`);
    const requestsAtKill = (await jsm.streams.info(STREAMS.requests.name)).state.last_seq;
    const recordAtKill = await client.record(job);
    assert.equal(recordAtKill?.status, "running");

    // 3. Restart: the new process picks the unfinished job up on its own.
    service = await startService(h.fleet.natsUrl, h.fleet.creds.pipeline);
    services.push(service);
    const final = await feed.until((e) => e.status !== "running", "the job to finish", 120_000);
    assert.equal(final.status, "succeeded", JSON.stringify(final));
    const record = await client.wait(job, { timeoutMs: 30_000 });
    const wallS = (performance.now() - t0) / 1000;

    // Exactly one stored result per example: 1,000 subjects, one message each, indices 0..999.
    const info = await jsm.streams.info(STREAMS.evalResults.name, { subjects_filter: evalResultSubject(job, ">") });
    const perSubject = Object.values(info.state.subjects ?? {});
    assert.equal(perSubject.length, TOTAL);
    assert.ok(perSubject.every((n) => n === 1), "no subject holds two results");
    const results = await client.results(job);
    assert.equal(results.size, TOTAL);
    assert.deepEqual([...results.keys()].sort((a, b) => a - b), Array.from({ length: TOTAL }, (_, i) => i));

    // Each example as the scripted rules say, so the score is the undisturbed run's.
    for (const [i, r] of results) {
      const want = expected(i);
      if (want === "fail") {
        assert.equal(r.ok, false, `example ${i}`);
        assert.equal(r.error?.type, "LMOutputError");
        assert.equal(r.score, 0);
      } else {
        assert.equal(r.ok, true, `example ${i}: ${JSON.stringify(r.error)}`);
        assert.equal(r.score, want, `example ${i}`);
      }
    }
    const expectedScore = (100 * [...Array(TOTAL).keys()].filter((i) => expected(i) === 1).length) / TOTAL;
    assert.equal(record.status, "succeeded");
    assert.equal(record.result?.score, expectedScore);
    assert.equal(record.result?.done, TOTAL);
    assert.equal(record.result?.failed, TOTAL / 50);
    assert.deepEqual(record.result?.errors_by_type, { LMOutputError: TOTAL / 50 });
    assert.equal(final.score, expectedScore);
    assert.equal(record.runs, 2, "picked up once after the restart");

    // The restarted service loaded every stored result and published requests only for the rest.
    const start = service.logs.find((l) => l.msg === "job-start" && l.job === job);
    assert.equal(start?.done, storedAtKill);
    const requestsAfter = (await jsm.streams.info(STREAMS.requests.name)).state.last_seq - requestsAtKill;
    assert.equal(requestsAfter, TOTAL - storedAtKill, "no finished example was run again");

    const s = record.result!;
    process.stderr.write(
      `eval-resume: ${TOTAL} examples in ${wallS.toFixed(1)} s wall (${(TOTAL / wallS).toFixed(1)} examples/s incl. kills and restart); ` +
        `job rate ${s.rate?.toFixed(1)}/s; worker killed at ${atWorkerKill.done}, service killed at ${atServiceKill.done} ` +
        `(${storedAtKill} stored); after restart ${requestsAfter} requests; latency p50 ${s.latency_ms?.p50.toFixed(0)} ms, p99 ${s.latency_ms?.p99.toFixed(0)} ms\n`,
    );
    feed.stop();
  });
});
