/**
 * Node loss is a non-event (docs/reliability.md): a 3-node JetStream cluster on loopback (the project's own
 * nats-server), the bus applied with 3 replicas, workers connected across the nodes, an evaluation of 2,000
 * examples; the node leading the request stream (and, in the second case, the one leading the job store) is
 * killed with SIGKILL mid-run. The job completes without operator action, with exactly N results and the score
 * of an undisturbed run; the time from the kill to the next progress is measured and reported; the node,
 * started again, rejoins and catches up.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { BUCKETS, STREAMS } from "@dspex/protocol";
import { startNatsCluster, type ClusterNode, type EmbeddedCluster } from "@dspex/embedded";
import { PipelineClient, PipelineService, type ProgressEvent } from "@dspex/pipeline";
import { startHarness, type Harness } from "../integration/harness.js";

const N = 2_000;
const QA = "question -> answer";
const examples = Array.from({ length: N }, (_, i) => ({ question: `question ${i}`, answer: "yes" }));
/** Questions ending in 0–4 are answered "yes" (right), 5–9 "no" (wrong): the undisturbed score is 50.0. */
const EXPECTED_SCORE = 50;

describe("a 3-node JetStream cluster loses a node mid-evaluation", { timeout: 600_000 }, () => {
  let cluster: EmbeddedCluster;
  let h: Harness;
  let service: PipelineService;
  let client: PipelineClient;
  let jsm: JetStreamManager;

  before(async () => {
    cluster = await startNatsCluster({ nodes: 3 });
    h = await startHarness({ fleet: { natsUrl: cluster.url, creds: cluster.creds, bus: { replicas: 3 }, workers: { general: 2 }, dlq: false } });
    h.lmDouble.control.apply({
      rules: [
        { field: "question", match: { regex: "[0-4]$" }, outputs: { answer: "yes" } },
        { field: "question", match: { regex: "[5-9]$" }, outputs: { answer: "no" } },
      ],
    });
    service = await PipelineService.start({ servers: cluster.url, creds: cluster.creds.pipeline, lm: h.lm });
    client = await PipelineClient.connect({ servers: cluster.url, creds: cluster.creds.client });
    jsm = await jetstreamManager(h.admin);
  });
  after(async () => {
    await client?.close();
    await service?.close();
    await h?.close();
    await cluster?.stop();
  });

  const leaderOf = async (stream: string): Promise<ClusterNode> => {
    const name = (await jsm.streams.info(stream)).cluster?.leader;
    const node = cluster.nodes.find((n) => n.name === name);
    assert.ok(node, `stream ${stream} has a leader among the nodes (got ${name})`);
    return node;
  };

  /** Runs the evaluation, kills `victim()` once a third is done; returns the gap from the kill to the next progress. */
  async function evaluateThroughLoss(victim: () => Promise<ClusterNode>): Promise<{ gapMs: number; killed: ClusterNode }> {
    const calls = h.lmDouble.control.state().totalRequests;
    const job = await client.submit({ program: { signature: QA }, metrics: ["exact_match"], concurrency: 32 }, examples);
    let killedAt: number | undefined;
    let killed: ClusterNode | undefined;
    let resumedAt: number | undefined;
    let doneAtKill = 0;
    let killing: Promise<void> | undefined;
    const onProgress = (e: ProgressEvent) => {
      if (killedAt === undefined && killing === undefined && (e.done ?? 0) >= N / 3) {
        doneAtKill = e.done ?? 0;
        killing = (async () => {
          killed = await victim();
          killedAt = Date.now();
          await killed.kill();
        })();
      } else if (killedAt !== undefined && resumedAt === undefined && (e.done ?? 0) > doneAtKill) {
        resumedAt = Date.now();
      }
    };
    const record = await client.wait(job, { onProgress, timeoutMs: 300_000 });
    await killing;
    assert.ok(killed && killedAt !== undefined, "a node was killed mid-run");
    assert.equal(record.status, "succeeded", `the job completed without operator action: ${JSON.stringify(record.error ?? record.status)}`);
    const results = await client.results(job);
    assert.equal(results.size, N, "exactly N results");
    assert.equal(record.result?.total, N);
    assert.equal(record.result?.score, EXPECTED_SCORE, "the undisturbed score");
    const lmCalls = h.lmDouble.control.state().totalRequests - calls;
    assert.ok(lmCalls >= N, `every example ran (${lmCalls} LM calls)`);
    const gapMs = (resumedAt ?? Date.now()) - killedAt;
    process.stderr.write(`[node-loss] killed ${killed.name} at ${doneAtKill}/${N}; progress resumed after ${gapMs} ms; ${lmCalls - N} duplicate executions\n`);
    return { gapMs, killed };
  }

  async function rejoins(node: ClusterNode): Promise<void> {
    await node.start();
    // caught up: every replica of the request stream and the job store current again
    const deadline = Date.now() + 60_000;
    for (;;) {
      const infos = await Promise.all([STREAMS.requests.name, `KV_${BUCKETS.jobs.name}`].map((s) => jsm.streams.info(s)));
      const lagging = infos.flatMap((i) => (i.cluster?.replicas ?? []).filter((r) => !r.current || r.offline).map((r) => `${i.config.name}/${r.name}`));
      const present = infos.every((i) => [i.cluster?.leader, ...(i.cluster?.replicas ?? []).map((r) => r.name)].includes(node.name));
      if (lagging.length === 0 && present) return;
      if (Date.now() > deadline) throw new Error(`${node.name} did not catch up within 60 s: lagging ${lagging.join(", ")}`);
      await new Promise<void>((resolve) => h.admin.flush().then(() => setTimeout(resolve, 250)));
    }
  }

  test("the node leading the request stream", async () => {
    const { gapMs, killed } = await evaluateThroughLoss(() => leaderOf(STREAMS.requests.name));
    assert.ok(gapMs < 60_000, `progress resumed ${gapMs} ms after the kill`);
    await rejoins(killed);
  });

  test("the node leading the job store", async () => {
    const { gapMs, killed } = await evaluateThroughLoss(() => leaderOf(`KV_${BUCKETS.jobs.name}`));
    assert.ok(gapMs < 60_000, `progress resumed ${gapMs} ms after the kill`);
    await rejoins(killed);
  });
});
