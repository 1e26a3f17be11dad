/**
 * nats-server stopped and restarted (same port, same file store) in the middle of a run of 500 requests
 * (docs/reliability.md). Every request is answered exactly once with its own answer; none is lost: the
 * client re-publishes a publish that got no PubAck (same Nats-Msg-Id, stored once), waits for the reconnect
 * instead of failing, workers re-send replies until the client confirms them, and redelivered requests are
 * answered without surfacing twice.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter, once } from "node:events";
import { jetstreamManager } from "@nats-io/jetstream";
import { STREAMS } from "@dspex/protocol";
import { startHarness, type Harness } from "../integration/harness.js";
import { until } from "./helpers.js";

const TOTAL = 500;
const CALLERS = 40;
const RESTART_AFTER = 150;
// A short AckWait so that requests whose ack was lost with the server come back within the test.
const POOLS = { general: { ackWaitMs: 5_000 } };

describe("nats-server outages: a restart during a run of 500 requests, a server that stops answering", { timeout: 180_000 }, () => {
  let h: Harness;

  before(async () => {
    h = await startHarness({ fleet: { workers: { general: 2 }, bus: { pools: POOLS } }, client: { bus: { pools: POOLS }, lane: "durable" } });
  });
  after(async () => {
    await h?.close();
  });

  test("every request answered once, none lost", async () => {
    const answers = new Map<number, string[]>();
    const failures: Array<[number, unknown]> = [];
    let done = 0;
    const progress = new EventEmitter();
    let next = 0;
    const caller = async () => {
      while (next < TOTAL) {
        const i = next++;
        try {
          const r = await h.client.predict("question -> answer", { question: `What is ${i}+1?` }, { timeoutMs: 90_000 });
          const list = answers.get(i) ?? [];
          list.push(String(r.outputs.answer));
          answers.set(i, list);
        } catch (err) {
          failures.push([i, err]);
        }
        done += 1;
        progress.emit("done", done);
      }
    };
    const t0 = Date.now();
    const run = Promise.all(Array.from({ length: CALLERS }, caller));

    // Restart the server once RESTART_AFTER requests are answered, with the rest in flight or still to come.
    while (done < RESTART_AFTER) await once(progress, "done");
    const inFlightAtRestart = next - done;
    const tRestart = Date.now();
    await h.fleet.nats!.restart();
    const outageMs = Date.now() - tRestart;
    await run;
    const totalMs = Date.now() - t0;

    assert.deepEqual(
      failures.map(([i, e]) => `${i}: ${String(e)}`),
      [],
      "no request failed",
    );
    assert.equal(answers.size, TOTAL);
    for (let i = 0; i < TOTAL; i++) {
      assert.deepEqual(answers.get(i), [String(i + 1)], `request ${i} answered once, with its own answer`);
    }
    // Acks sent just before the server went down are lost: those requests come back after AckWait and are
    // answered from the workers' reply memory (the client drops the repeat). Then nothing is left.
    const jsm = await jetstreamManager(h.admin);
    const left = (await jsm.streams.info(STREAMS.requests.name)).state.messages;
    await until(async () => (await jsm.streams.info(STREAMS.requests.name)).state.messages === 0, 30_000, 250);
    const lmCalls = h.lmDouble.requests().length;
    const dropped = h.client.snapshot().droppedReplies;
    process.stderr.write(
      `# restart: ${inFlightAtRestart} in flight at the restart, outage ${outageMs} ms, run ${totalMs} ms, ` +
        `${left} unacked after the run, LM calls ${lmCalls} (${lmCalls - TOTAL} reruns), ` +
        `re-published ${h.client.snapshot().republished}, dropped replies ${JSON.stringify(dropped)}\n`,
    );
    assert.ok(lmCalls >= TOTAL);
    assert.equal(dropped.unknown, 0);
  });

  test("a publish that gets no PubAck is re-sent with the same Nats-Msg-Id and stored once", async () => {
    const server = h.fleet.nats!.process;
    const ids: string[] = [];
    const spy = h.admin.subscribe("dspex.req.general.any", {
      callback: (_e, m) => void ids.push(m.headers?.get("Nats-Msg-Id") ?? "?"),
    });
    await h.admin.flush();
    const seen = h.lmDouble.requests().length;
    const republished = h.client.snapshot().republished;
    server.kill("SIGSTOP"); // the server takes the publish but answers nothing: no PubAck
    try {
      const call = h.client.predict("question -> answer", { question: "What is 9+9?" }, { timeoutMs: 30_000 });
      // One try waits 5 s for its PubAck; then the same message is published again.
      await until(() => h.client.snapshot().republished > republished, 15_000);
      server.kill("SIGCONT");
      const result = await call;
      assert.equal(result.outputs.answer, "18");
      await h.admin.flush();
      // Every copy that reached the server carried the same id (the first may be lost if the stalled
      // connection was dropped; that is what the re-publish is for).
      assert.ok(ids.length >= 1 && ids.every((id) => id === result.id), `published with one id: ${JSON.stringify(ids)}`);
      assert.equal(h.lmDouble.requests().length - seen, 1, "stored once (JetStream dropped the duplicate), run once");
    } finally {
      server.kill("SIGCONT");
      spy.unsubscribe();
    }
  });
});
