/**
 * Pools, the supervisor, session affinity and stored programs, with real nats-server, real Python workers
 * (real dspy) and the LM double.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Fleet, WorkerProcess } from "@dspex/embedded";
import { AffinityError } from "@dspex/protocol";
import { newToken, startRouter } from "@dspex/router";
import { startLmDouble, type LmDouble } from "../lm-double/server.js";
import { startHarness, type Harness } from "./harness.js";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "../..");

interface PartitionsEvent {
  event: string;
  worker: string;
  partitions: number[];
  members: string[];
}

/** Resolves once every general worker reports the same member list covering all of them. */
function converged(fleet: Fleet, partitions: number): Promise<Map<string, number[]>> {
  return new Promise((resolve) => {
    const latest = new Map<string, PartitionsEvent>();
    const check = () => {
      const workers = fleet.workers.filter((w) => w.pool === "general").map((w) => w.id).sort();
      const events = workers.map((w) => latest.get(w));
      if (events.some((e) => !e || e.members.join() !== workers.join())) return;
      const all = events.flatMap((e) => e!.partitions).sort((a, b) => a - b);
      if (all.length === partitions && new Set(all).size === partitions) {
        resolve(new Map(events.map((e) => [e!.worker, e!.partitions])));
      }
    };
    const listen = (w: WorkerProcess) =>
      w.onEvent((e) => {
        if (e.event === "partitions") {
          latest.set(w.id, e as unknown as PartitionsEvent);
          check();
        }
      });
    fleet.workers.forEach((w) => {
      const last = w.lastEvents.get("partitions");
      if (last) latest.set(w.id, last as unknown as PartitionsEvent);
      listen(w);
    });
    check();
    fleet.supervisor.on("ready", (w) => {
      listen(w);
      check();
    });
  });
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe("pools, affinity, supervisor", { timeout: 300_000 }, () => {
  let h: Harness;
  let slowLm: LmDouble;

  before(async () => {
    slowLm = await startLmDouble({ initial: { failure: { mode: "hang" } } });
    // the hanging double is an LM profile of the workers' operator: requests name it, never its endpoint
    const profiles = { profiles: { slow: { model: "openai/slow", api_base: slowLm.url, num_retries: 0 } } };
    h = await startHarness({ fleet: { workers: { general: 3, optimizer: 1 }, workerEnv: { DSPEX_LM_PROFILES: JSON.stringify(profiles) } } });
  });
  after(async () => {
    await h?.close();
    await slowLm?.close();
  });

  test("1,000 requests across 20 sessions keep every session on one worker", async (t) => {
    const assignment = await withTimeout(converged(h.fleet, 16), 30_000, "partition assignment to converge");
    const counts = [...assignment.values()].map((p) => p.length).sort();
    assert.deepEqual(counts, [5, 5, 6], `partitions spread evenly: ${JSON.stringify([...assignment])}`);

    const served = new Map<string, Map<string, number>>();
    const sessions = Array.from({ length: 20 }, (_, i) => `session-${i}`);
    const total = 1_000;
    let next = 0;
    const worker = async () => {
      while (next < total) {
        const i = next++;
        const session = sessions[i % sessions.length]!;
        const r = await h.client.predict("question -> answer", { question: `What is ${i}+1?` }, { session });
        assert.equal(r.outputs.answer, String(i + 1));
        const m = served.get(session) ?? new Map<string, number>();
        m.set(r.worker, (m.get(r.worker) ?? 0) + 1);
        served.set(session, m);
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    const sticky = [...served.values()].filter((m) => m.size === 1).length;
    const onMainWorker = [...served.values()].reduce((sum, m) => sum + Math.max(...m.values()), 0);
    t.diagnostic(`stickiness: ${sticky}/20 sessions on one worker; ${onMainWorker}/${total} requests on their session's worker`);
    t.diagnostic(`sessions per worker: ${JSON.stringify(countBy([...served.values()].map((m) => [...m.keys()][0]!)))}`);
    assert.equal(sticky, 20);
    assert.equal(onMainWorker, total);
    assert.ok(new Set([...served.values()].map((m) => [...m.keys()][0])).size >= 2, "sessions spread over workers");
  });

  test("after kill -9 of a session's worker, its next request runs on another worker with the same program state", async () => {
    const session = "kill-session";
    const demo = { question: "What is the capital of Atlantis?", answer: "Poseidonia" };
    const { definition } = await h.client.createProgram({
      signature: "question -> answer",
      state: { demos: [demo] },
      session,
    });
    const first = await h.client.execute(definition.id, { question: "What is 2+2?" });
    assert.equal(first.outputs.answer, "4");
    const firstPrompt = h.lmDouble.requests().at(-1)!.prompt!;
    assert.ok(firstPrompt.messageCount >= 4, `the demo reaches the LM (${firstPrompt.messageCount} messages)`);

    const victim = h.fleet.workers.find((w) => w.id === first.worker)!;
    const restarted = new Promise((resolve) => h.fleet.supervisor.once("ready", resolve));
    victim.process.kill("SIGKILL");
    await victim.exited;
    const second = await h.client.execute(definition.id, { question: "What is 3+3?" }, { timeoutMs: 60_000 });
    assert.equal(second.outputs.answer, "6");
    assert.notEqual(second.worker, first.worker);
    assert.equal(second.version, first.version);
    assert.equal(h.lmDouble.requests().at(-1)!.prompt!.messageCount, firstPrompt.messageCount, "same demos rebuilt from KV");
    await withTimeout(restarted, 30_000, "the supervisor to restart the killed worker");
  });

  test("strict affinity fails fast when the session's worker is gone", async () => {
    const session = "strict-session";
    const first = await h.client.predict("question -> answer", { question: "What is 5+5?" }, { session, affinity: "strict" });
    const again = await h.client.predict("question -> answer", { question: "What is 5+6?" }, { session, affinity: "strict" });
    assert.equal(again.worker, first.worker);
    const victim = h.fleet.workers.find((w) => w.id === first.worker)!;
    victim.process.kill("SIGKILL");
    await victim.exited;
    await h.client.discovery.refresh();
    await assert.rejects(
      h.client.predict("question -> answer", { question: "q" }, { session, affinity: "strict", timeoutMs: 60_000 }),
      AffinityError,
    );
  });

  test("a hung optimizer request does not delay general predictions", async () => {
    const hung = h.client.predict(
      "question -> answer",
      { question: "optimize forever" },
      { pool: "optimizer", lm: { profile: "slow" }, timeoutMs: 120_000 },
    );
    let settled = false;
    void hung.then(
      () => (settled = true),
      () => (settled = true),
    );
    await slowLm.waitForRequests(1, { timeoutMs: 30_000 });
    for (let i = 0; i < 10; i++) {
      const r = await h.client.predict("question -> answer", { question: `What is ${i}+${i}?` });
      assert.equal(r.outputs.answer, String(2 * i));
    }
    assert.equal(settled, false, "the optimizer request is still running while general predictions completed");
    await slowLm.close(); // drops the hung HTTP request: the optimizer call now ends with an LM error
    await assert.rejects(hung);
  });

  test("dspex status shows the bus, pools and workers without a router, and a router's breakers when one runs", async () => {
    const status = async () => {
      const { stdout } = await run(
        process.execPath,
        ["--conditions=development", "--import", "tsx", join(ROOT, "services/cli/src/cli.ts"), "status", "--json"],
        { env: { ...process.env, NATS_URL: h.fleet.natsUrl, NATS_CREDS: h.fleet.creds.monitor }, cwd: ROOT, timeout: 60_000 },
      );
      return JSON.parse(stdout) as {
        pools: Array<{ pool: string; workers: Array<{ worker: string; uptime_s: number }> }>;
        routers: Array<{ breakers: Array<{ name: string; state: string }> }>;
        bus: { missing: string[]; streams: Array<{ name: string; replicas: number }> };
      };
    };
    const withoutRouter = await status();
    assert.deepEqual(withoutRouter.routers, [], "no router runs: status works without one");
    assert.deepEqual(withoutRouter.bus.missing, []);
    assert.ok(withoutRouter.bus.streams.some((s) => s.name === "DSPEX_REQ" && s.replicas === 1));
    const router = await startRouter({ port: 0, tokens: [newToken("test", ["predict"]).entry], client: { servers: h.fleet.natsUrl, creds: h.fleet.creds.client, lm: h.lm } });
    try {
      await router.client.predict("question -> answer", { question: "What is 1+2?" });
      const st = await status();
      assert.deepEqual(st.pools.map((p) => p.pool), ["general", "optimizer", "gpu"]);
      const general = st.pools.find((p) => p.pool === "general")!;
      const live = h.fleet.workers.filter((w) => w.pool === "general").map((w) => w.id).sort();
      assert.deepEqual(general.workers.map((w) => w.worker).sort(), live);
      assert.ok(general.workers.every((w) => w.uptime_s >= 0));
      assert.equal(st.pools.find((p) => p.pool === "optimizer")!.workers.length, 1);
      assert.equal(st.routers.length, 1, "the running router answers with its breakers");
      assert.ok(st.routers[0]!.breakers.some((b) => b.name === "pool:general" && b.state === "closed"), JSON.stringify(st.routers));
    } finally {
      await router.stop();
    }
  });
});

describe("recycling", { timeout: 180_000 }, () => {
  test("a worker is recycled after N requests with no request lost", async (t) => {
    const h = await startHarness({ fleet: { workers: { general: 2 }, bus: { pools: { general: { maxRequests: 25 } } } } });
    try {
      const recycled: string[] = [];
      const twoRecycled = new Promise<void>((resolve) =>
        h.fleet.supervisor.on("recycled", ({ old, reason }) => {
          recycled.push(`${old.id}: ${reason}`);
          if (recycled.length === 2) resolve();
        }),
      );
      const ask = (i: number) => h.client.predict("question -> answer", { question: `What is ${i}+2?` }, { timeoutMs: 90_000 });
      // Both workers pass their limit; requests keep flowing while replacements start and the old ones drain.
      const first = await Promise.all(Array.from({ length: 60 }, (_, i) => ask(i)));
      const during = Array.from({ length: 60 }, (_, i) => ask(60 + i));
      await withTimeout(twoRecycled, 120_000, "two workers to be recycled");
      const after = await Promise.all(Array.from({ length: 20 }, (_, i) => ask(120 + i)));
      const results = [...first, ...(await Promise.all(during)), ...after];
      results.forEach((r, i) => assert.equal(r.outputs.answer, String(i + 2)));
      const originals = new Set(first.map((r) => r.worker));
      t.diagnostic(`recycled: ${recycled.join("; ")}`);
      assert.ok(recycled.length >= 2, `workers were recycled (${recycled.join("; ")})`);
      assert.ok(after.every((r) => !originals.has(r.worker)), "the replacements answer after the recycle");
    } finally {
      await h.close();
    }
  });
});

function countBy(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}
