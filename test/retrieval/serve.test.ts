/**
 * The retrieval service on the bus (schemas/retrieval.schema.json): a collection in a real store (PGlite on disk;
 * PostgreSQL for the outage) served from this process, searched over the wire with plain msgpack as any language
 * would, and from DSPy programs on a worker (test/programs/dspex_test_programs/rag.py: `Retrieve` in forward and
 * aforward, `dspy.Retrieve` through the rm the worker gives each request). The worker role may search but not
 * write; a collection nobody serves is StoreUnavailable naming `collection`; a store that goes down opens its
 * breaker, which fails fast and closes again once the store is back.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { connectNats } from "@dspex/bus";
import { CircuitOpenError, StoreUnavailable, decode, encode, errorFromWire, retrievalSubject, type RetrievalReply } from "@dspex/protocol";
import { openStore, Retriever, serveRetrieval, type Passage } from "@dspex/retrieval";
import type { StateChange } from "@dspex/client";
import { PipelineClient, PipelineService } from "@dspex/pipeline";
import { startHarness, type Harness } from "../integration/harness.js";
import { startPostgres, type PostgresServer } from "../registry/postgres.js";
import { serveCollection, type ServedCollection } from "./served-collection.js";

const CORPUS: Passage[] = [
  { id: "a1", text: "NATS JetStream keeps every request in a stream until a worker acknowledges it.", metadata: { source: "a.md" } },
  { id: "a2", text: "Circuit breakers open when most recent calls failed and fail fast until a probe succeeds.", metadata: { source: "a.md" } },
  { id: "a3", text: "Workers pull requests from their pool's consumer and reply to the caller's inbox.", metadata: { source: "a.md" } },
  { id: "b1", text: "Sessions stick to one worker through partition subjects chosen by a hash of the session key.", metadata: { source: "b.md" } },
  { id: "b2", text: "The optimizer pool runs compile jobs that store the learned program as a new version.", metadata: { source: "b.md" } },
  { id: "b3", text: "Vector stores hold passages with embeddings and answer nearest-neighbour searches.", metadata: { source: "b.md" } },
];

async function ask(h: Harness, op: string, body: unknown, collection = "docs"): Promise<RetrievalReply> {
  const msg = await h.client.nc.request(retrievalSubject(collection, op), encode(body), { timeout: 10_000 });
  return decode(msg.data) as RetrievalReply;
}

describe("the retrieval service on the bus", { timeout: 240_000 }, () => {
  let h: Harness;
  let docs: ServedCollection;
  let retriever: Retriever;

  before(async () => {
    h = await startHarness({
      fleet: {
        workers: { general: 1, gpu: 1 },
        bus: { pools: { gpu: { concurrency: 8 } } },
        workerEnv: { DSPEX_PROGRAMS: "dspex_test_programs.rag:RAG,dspex_test_programs.rag:AsyncRAG,dspex_test_programs.rag:DspyRetrieveRAG,dspex_test_programs.rag:SearchAgent" },
      },
    });
    docs = await serveCollection(h, CORPUS);
    retriever = docs.retriever;
    assert.equal(await retriever.count(), CORPUS.length);
  });
  after(async () => {
    await docs?.close();
    await h?.close();
  });

  test("over the wire in plain msgpack: search with a filter, count, upsert, delete", async () => {
    const question = "how do breakers fail fast?";
    const reply = await ask(h, "search", { v: 1, query: question, k: 2 });
    assert.equal(reply.ok, true, JSON.stringify(reply));
    const result = reply.result as { hits: Array<{ id: string; score: number }>; collection: string; model: string };
    const expected = await retriever.retrieve(question, 2);
    assert.deepEqual(result.hits.map((hit) => hit.id), expected.map((hit) => hit.id));
    assert.equal(result.hits[0]!.id, "a2");
    assert.equal(result.collection, "docs");
    assert.equal(result.model, retriever.store.collection.model);

    const filtered = await ask(h, "search", { v: 1, query: question, k: 5, filter: { source: "b.md" } });
    assert.deepEqual(
      (filtered.result as { hits: Array<{ id: string }> }).hits.map((hit) => hit.id).sort(),
      ["b1", "b2", "b3"],
    );

    assert.deepEqual((await ask(h, "count", { v: 1 })).result, { count: 6 });
    assert.deepEqual((await ask(h, "upsert", { v: 1, passages: [{ id: "c1", text: "A passage added over the wire.", metadata: { source: "c.md" } }] })).result, { count: 1 });
    assert.deepEqual((await ask(h, "count", { v: 1 })).result, { count: 7 });
    assert.deepEqual((await ask(h, "delete", { v: 1, ids: ["c1", "zz"] })).result, { count: 1 });
    assert.deepEqual((await ask(h, "count", { v: 1 })).result, { count: 6 });
    assert.ok(docs.served.calls.search >= 2 && docs.served.calls.count === 3);
  });

  test("bad requests are typed errors naming the field, and the store is untouched", async () => {
    const cases: Array<[string, unknown, string, string]> = [
      ["search", { v: 1, query: "x", k: 0 }, "ValidationError", "k"],
      ["search", { v: 1, query: "x", filter: { year: 2020 } }, "ValidationError", "filter.year"],
      ["search", { v: 1, query: "" }, "ValidationError", "query"],
      ["search", { v: 1, query: "x", top: 3 }, "ValidationError", "top"],
      ["upsert", { v: 1, passages: [{ id: "", text: "t" }] }, "ValidationError", "passages[0].id"],
      ["delete", { v: 1 }, "ValidationError", "ids"],
    ];
    for (const [op, body, type, field] of cases) {
      const reply = await ask(h, op, body);
      assert.equal(reply.ok, false, `${op} ${JSON.stringify(body)}`);
      assert.equal(reply.error!.type, type, JSON.stringify(reply.error));
      assert.equal(reply.error!.field, field, JSON.stringify(reply.error));
    }
    for (const body of [new Uint8Array([0x93, 0x01]), encode([1, 2])]) {
      const bad = await h.client.nc.request(retrievalSubject("docs", "search"), body, { timeout: 10_000 });
      assert.equal((decode(bad.data) as RetrievalReply).error?.type, "DecodeError", "truncated msgpack, or not a map");
    }
    assert.deepEqual((await ask(h, "count", { v: 1 })).result, { count: 6 });
  });

  test("a program's Retrieve module (forward, in a thread) searches the collection; the passages reach DSPy's prompt", async () => {
    const question = "What do workers pull from?";
    const before = h.lmDouble.requests().length;
    const out = await h.client.program<{ question: string }, { answer: string; context: string[]; passage_ids: string[] }>("RAG").call({ question });
    const expected = await retriever.retrieve(question, 3);
    assert.deepEqual(out.outputs.passage_ids, expected.map((hit) => hit.id));
    assert.deepEqual(out.outputs.context, expected.map((hit) => hit.text));
    const sent = JSON.stringify(h.lmDouble.requests().slice(before).map((r) => r.body));
    assert.ok(sent.includes(expected[0]!.text), "the first passage is in the prompt");
  });

  test("aforward (on the event loop) with k and a filter, and dspy.Retrieve through the request's rm", async () => {
    const question = "Where do passages live?";
    const a = await h.client.program<{ question: string }, { passage_ids: string[] }>("AsyncRAG").call({ question });
    assert.equal(a.outputs.passage_ids.length, 2);
    assert.ok(a.outputs.passage_ids.every((id) => id.startsWith("b")), JSON.stringify(a.outputs.passage_ids));
    assert.equal(a.outputs.passage_ids[0], "b3");

    const d = await h.client.program<{ question: string }, { context: string[] }>("DspyRetrieveRAG").call({ question });
    assert.deepEqual(d.outputs.context, (await retriever.retrieve(question, 2)).map((hit) => hit.text));
  });

  test("a ReAct agent in a program searches the collection through search_tool", async () => {
    const question = "How do sessions stick to a worker?";
    h.lmDouble.control.setRules([
      {
        field: "trajectory",
        match: { contains: "observation_0" },
        outputs: { next_thought: "Found it.", next_tool_name: "finish", next_tool_args: {}, reasoning: "from the passages", answer: "partition subjects" },
      },
      {
        field: "trajectory",
        match: { regex: "^(?![\\s\\S]*observation_0)" },
        outputs: { next_thought: "Search.", next_tool_name: "search_docs", next_tool_args: { query: question } },
      },
    ]);
    try {
      const out = await h.client.program<{ question: string }, { answer: string; first_observation: string }>("SearchAgent").call({ question });
      const observed = JSON.parse(out.outputs.first_observation) as Array<{ id: string; text: string }>;
      assert.deepEqual(observed.map((p) => p.id), (await retriever.retrieve(question, 2)).map((hit) => hit.id));
      assert.equal(observed[0]!.id, "b1");
    } finally {
      h.lmDouble.control.setRules([]);
    }
  });

  test("an eval job on the packaged RAG program scores recall@k of its passage ids and DSPy's answer_passage_match", async () => {
    const service = await PipelineService.start({ servers: h.fleet.natsUrl, creds: h.fleet.creds.pipeline, resume: false });
    const jobs = await PipelineClient.connect({ servers: h.fleet.natsUrl, creds: h.fleet.creds.client });
    try {
      const examples = [
        { question: "how do breakers fail fast?", gold_ids: ["a2"], answer: "fail fast" },
        { question: "What do workers pull from?", gold_ids: ["a3"], answer: "consumer" },
        { question: "How do sessions stick to a worker?", gold_ids: "b1", answer: "partition subjects" },
        { question: "Which pool compiles programs?", gold_ids: ["b2", "b9"], answer: "optimizer pool" },
      ];
      const job = await jobs.submit(
        { program: { package: "RAG" }, metrics: [{ name: "recall_at_k", as: "recall@1", args: { k: 1 } }, { name: "recall_at_k", as: "recall@3" }, "answer_passage_match"], concurrency: 4 },
        examples,
      );
      const record = await jobs.wait(job);
      assert.equal(record.status, "succeeded", JSON.stringify(record.error));
      const summary = (await jobs.summary(job))!;
      assert.equal(summary.ok, examples.length);
      // the same numbers from the retriever itself
      const expected = { "recall@1": 0, "recall@3": 0, answer_passage_match: 0 };
      for (const ex of examples) {
        const hits = await retriever.retrieve(ex.question, 3);
        const gold = typeof ex.gold_ids === "string" ? [ex.gold_ids] : ex.gold_ids;
        expected["recall@1"] += gold.filter((g) => hits[0]!.id === g).length / gold.length;
        expected["recall@3"] += gold.filter((g) => hits.some((hit) => hit.id === g)).length / gold.length;
        expected.answer_passage_match += hits.some((hit) => hit.text.toLowerCase().includes(ex.answer)) ? 1 : 0;
      }
      for (const [key, total] of Object.entries(expected)) {
        assert.ok(Math.abs(summary.metrics[key]! - (100 * total) / examples.length) < 1e-9, `${key}: ${summary.metrics[key]} vs ${(100 * total) / examples.length}`);
      }
      assert.ok(summary.metrics["recall@3"]! > 0, "the fixture's questions find their passages");

      // DSPy's own answer_passage_match on the worker, beside the program (op evaluate), agrees with the native one
      const py = await jobs.submit({ program: { package: "RAG" }, metrics: ["py:answer_passage_match", "recall_at_k"], concurrency: 4 }, examples);
      const pyRecord = await jobs.wait(py);
      assert.equal(pyRecord.status, "succeeded", JSON.stringify(pyRecord.error));
      assert.deepEqual(pyRecord.spec.program, { package: "RAG" }, "the record keeps the packaged program (its examples run as op evaluate)");
      const pySummary = (await jobs.summary(py))!;
      assert.equal(pySummary.metrics["py:answer_passage_match"], summary.metrics.answer_passage_match);
      assert.equal(pySummary.metrics.recall_at_k, summary.metrics["recall@3"]);

      const bad = await jobs.submit({ program: { package: "RAG" }, metrics: ["recall_at_k"] }, [{ question: "what is a stream?" }]);
      await jobs.wait(bad);
      const [failed] = [...(await jobs.results(bad)).values()];
      assert.equal(failed?.ok, false);
      assert.match(failed!.error!.message, /example\.gold_ids/);
      await assert.rejects(jobs.submit({ program: { package: "RAG", signature: "x -> y" } as never, metrics: ["exact_match"] }, examples), (e: unknown) => (e as { field?: string }).field === "program.signature");
    } finally {
      await jobs.close();
      await service.close();
    }
  });

  test("the worker role may search but not write; a collection nobody serves is StoreUnavailable naming it", async () => {
    const worker = await connectNats({ servers: h.fleet.natsUrl, creds: h.fleet.creds["worker-general"], name: "test-as-worker" });
    try {
      const found = decode((await worker.request(retrievalSubject("docs", "search"), encode({ v: 1, query: "streams", k: 1 }), { timeout: 10_000 })).data) as RetrievalReply;
      assert.equal(found.ok, true);
      await assert.rejects(worker.request(retrievalSubject("docs", "upsert"), encode({ v: 1, passages: [{ id: "w1", text: "forged" }] }), { timeout: 3_000 }), (e: unknown) =>
        /permission/i.test(String((e as Error).message) + String((e as { cause?: Error }).cause?.message ?? "")),
      );
      assert.deepEqual((await ask(h, "count", { v: 1 })).result, { count: 6 }, "nothing was written");
    } finally {
      await worker.close();
    }

    await docs.served.stop();
    try {
      await assert.rejects(h.client.program("RAG").call({ question: "anything?" }), (e: unknown) => e instanceof StoreUnavailable && e.field === "collection" && /docs/.test(e.message));
    } finally {
      await docs.serve();
    }
  });
});

const ROOT = join(import.meta.dirname, "../..");

describe("a PostgreSQL collection served on the bus", { timeout: 180_000 }, () => {
  let h: Harness;
  let pg: PostgresServer;

  before(async () => {
    [h, pg] = await Promise.all([startHarness({ fleet: { workers: { general: 0, gpu: 1 } } }), startPostgres()]);
  });
  after(async () => {
    await h?.close();
    await pg?.close();
  });

  test("dspex retrieval serve: read-only serving of a deployment's collection until SIGTERM", async () => {
    const probe = await h.client.embed(["probe"]);
    const store = await openStore(pg.url, "served", { dim: probe.dim, model: probe.model });
    const retriever = new Retriever(h.client, store);
    await retriever.upsert(CORPUS);
    const child = spawn(process.execPath, ["--conditions=development", "--import", "tsx", join(ROOT, "services/cli/src/cli.ts"), "retrieval", "serve", pg.url, "served", "--read-only"], {
      env: { ...process.env, NATS_URL: h.fleet.natsUrl, NATS_CREDS: h.fleet.creds.client },
      cwd: ROOT,
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      const [line] = (await once(createInterface({ input: child.stdout! }), "line")) as [string];
      const ready = JSON.parse(line) as { serving: string; count: number; subjects: string[] };
      assert.deepEqual([ready.serving, ready.count], ["served", CORPUS.length]);
      assert.deepEqual(ready.subjects, [retrievalSubject("served", "search"), retrievalSubject("served", "count")]);
      const found = decode((await h.client.nc.request(retrievalSubject("served", "search"), encode({ v: 1, query: "sessions and partitions", k: 1 }), { timeout: 10_000 })).data) as RetrievalReply;
      assert.deepEqual((found.result as { hits: Array<{ id: string }> }).hits.map((hit) => hit.id), ["b1"]);
      await assert.rejects(h.client.nc.request(retrievalSubject("served", "upsert"), encode({ v: 1, passages: [{ id: "x", text: "y" }] }), { timeout: 5_000 }), /no responders|503/i);
      child.kill("SIGTERM");
      const [code] = (await once(child, "exit")) as [number | null];
      assert.equal(code, 0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      retriever.close();
      await store.close();
    }
  });

  test("opens after the store is found unavailable, fails fast (over the wire too), and closes once the store is back", async () => {
    const probe = await h.client.embed(["probe"]);
    const store = await openStore(pg.url, "outage", { dim: probe.dim, model: probe.model });
    const changes: StateChange[] = [];
    const waiters: Array<{ to: string; resolve: () => void }> = [];
    const retriever = new Retriever(h.client, store, {
      breaker: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeoutMs: 500 },
      onBreakerChange: (change) => {
        changes.push(change);
        for (const w of waiters.filter((w) => w.to === change.to)) w.resolve();
      },
    });
    const reached = (to: string) => new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`breaker never became ${to}: ${JSON.stringify(changes)}`)), 30_000);
      waiters.push({ to, resolve: () => (clearTimeout(timer), resolve()) });
    });
    const served = await serveRetrieval(h.client.nc, retriever);
    try {
      await retriever.upsert([{ id: "p1", text: "a passage that survives the outage" }]);
      await pg.stop();
      const opened = reached("open");
      for (let i = 0; i < 2; i++) {
        await assert.rejects(retriever.retrieve("passage", 1), (e: unknown) => e instanceof StoreUnavailable && e.field === "store");
      }
      await opened;
      assert.equal(retriever.breaker.state, "open");
      await assert.rejects(retriever.count(), (e: unknown) => e instanceof CircuitOpenError && e.field === "store" && e.retryable);
      const wire = decode((await h.client.nc.request(retrievalSubject("outage", "count"), encode({ v: 1 }), { timeout: 10_000 })).data) as RetrievalReply;
      assert.equal(errorFromWire(wire.error!).type, "CircuitOpenError");
      assert.ok(retriever.breaker.snapshot().rejected >= 2);

      await pg.start();
      await reached("half_open");
      const closed = reached("closed");
      assert.equal(await retriever.count(), 1, "the probe reaches the store again");
      await closed;
      assert.deepEqual((await retriever.retrieve("passage", 1)).map((hit) => hit.id), ["p1"]);
    } finally {
      await served.stop();
      retriever.close();
      await store.close();
    }
  });
});
