/**
 * RAG end to end through the bus: the project's docs (docs/*.md, chunked) embedded by the real model on a gpu
 * worker and indexed in both stores; the shipped question set retrieved (recall@k, the same in both stores);
 * a metadata filter; then retrieve → ChainOfThought("context, question -> answer") on a general worker with the
 * LM double as the provider, the retrieved passages in the prompt DSPy built; and ReAct on a worker searching the
 * store through a retrieval tool served from this process.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { callModule, PipelineStepError, runPipeline } from "@dspex/pipeline";
import { ValidationError } from "@dspex/protocol";
import { docsCorpus, indexCorpus, openStore, readQuestions, recallAtK, retrieveStep, Retriever, serveRetrievalTool, type Hit, type VectorStore } from "@dspex/retrieval";
import { startHarness, type Harness } from "../integration/harness.js";
import { startPostgres, type PostgresServer } from "../registry/postgres.js";

const ROOT = join(import.meta.dirname, "../..");

describe("RAG through the bus", { timeout: 240_000 }, () => {
  let h: Harness;
  let server: PostgresServer;
  let dir: string;
  const retrievers = new Map<string, Retriever>();
  const corpus = docsCorpus(join(ROOT, "docs"));
  const questions = readQuestions();

  before(async () => {
    [h, server] = await Promise.all([startHarness({ fleet: { workers: { general: 1, gpu: 1 }, bus: { pools: { gpu: { concurrency: 8 } } } } }), startPostgres()]);
    dir = mkdtempSync(join(tmpdir(), "dspex-rag-"));
    const probe = await h.client.embed(["probe"]);
    for (const [name, location] of [["postgresql", server.url], ["pglite", `pglite:${dir}`]] as const) {
      const store: VectorStore = await openStore(location, "docs", { dim: probe.dim, model: probe.model, fields: ["source"] });
      const retriever = new Retriever(h.client, store);
      const indexed = await indexCorpus(retriever, corpus, { batchSize: 64 });
      assert.equal(indexed.written, corpus.length);
      retrievers.set(name, retriever);
    }
  });
  after(async () => {
    for (const r of retrievers.values()) await r.store.close();
    await h?.close();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("recall@k of the shipped question set, the same in both stores", async () => {
    const recalls = new Map<string, number[]>();
    for (const [name, retriever] of retrievers) {
      assert.equal(await retriever.count(), corpus.length);
      const results: Array<{ hits: Hit[]; isGold: (hit: Hit) => boolean }> = [];
      for (const q of questions) {
        const hits = await retriever.retrieve(q.question, 10);
        assert.equal(hits.length, 10);
        results.push({ hits, isGold: (hit) => hit.metadata?.source === q.gold.source && hit.metadata?.heading === q.gold.heading });
      }
      recalls.set(name, [1, 5, 10].map((k) => recallAtK(results, k)));
    }
    console.log(`recall@1,5,10 over ${questions.length} questions, ${corpus.length} passages: ${JSON.stringify(Object.fromEntries(recalls))}`);
    assert.deepEqual(recalls.get("pglite"), recalls.get("postgresql"), "the same model and the same SQL give the same recall");
    assert.ok(recalls.get("postgresql")![2]! >= 0.5, `recall@10 ${recalls.get("postgresql")![2]}`);
  });

  test("indexing again writes nothing; a bad batch size names it", async () => {
    const retriever = retrievers.get("pglite")!;
    const again = await indexCorpus(retriever, corpus.slice(0, 100), { batchSize: 50 });
    assert.deepEqual([again.written, again.skipped], [0, 100]);
    await assert.rejects(indexCorpus(retriever, corpus, { batchSize: Number("x") }), (e: unknown) => e instanceof ValidationError && e.field === "batch");
  });

  test("a metadata filter keeps to the named source", async () => {
    for (const retriever of retrievers.values()) {
      const hits = await retriever.retrieve("how do retries and breakers work", 5, { source: "reliability.md" });
      assert.equal(hits.length, 5);
      assert.ok(hits.every((hit) => hit.metadata?.source === "reliability.md"));
    }
  });

  test("retrieve → ChainOfThought on a worker: the passages reach DSPy's prompt", async () => {
    const question = questions[0]!.question;
    const hits = await retrievers.get("postgresql")!.retrieve(question, 3);
    const before = h.lmDouble.requests().length;
    const result = await h.client.chainOfThought<{ answer: string }>("context: list[str], question: str -> answer: str", { context: hits.map((hit) => hit.text), question });
    assert.equal(typeof result.outputs.answer, "string");
    assert.equal(typeof result.outputs.reasoning, "string");
    const sent = JSON.stringify(h.lmDouble.requests().slice(before).map((r) => r.body));
    const snippet = hits[0]!.text.split("\n").find((l) => l.length > 20)!.slice(0, 40);
    assert.ok(sent.includes(JSON.stringify(snippet).slice(1, -1)), `the prompt holds the first passage (${snippet})`);
  });

  test("ReAct on a worker searches the store through the retrieval tool", async () => {
    const question = questions[1]!; // one whose answering section is among the first five (recall@5 test above)
    const tool = await serveRetrievalTool(h.client, retrievers.get("pglite")!, { name: "search_docs", k: 5 });
    try {
      h.lmDouble.control.setRules([
        {
          field: "trajectory",
          match: { contains: "observation_0" },
          outputs: { next_thought: "The passages answer it.", next_tool_name: "finish", next_tool_args: {}, reasoning: "from the docs", answer: "see the passages" },
        },
        {
          field: "trajectory",
          match: { regex: "^(?![\\s\\S]*observation_0)" },
          outputs: { next_thought: "Search the docs.", next_tool_name: "search_docs", next_tool_args: { query: question.question } },
        },
      ]);
      const r = await h.client.modules.react("question -> answer", { question: question.question }, { tools: [tool], max_iters: 3 });
      assert.deepEqual(r.trajectory.map((s) => s.tool_name), ["search_docs", "finish"]);
      const observed = r.trajectory[0]!.observation as Array<{ id: string; metadata?: { source: string; heading: string } }>;
      assert.equal(observed.length, 5);
      const expected = await retrievers.get("pglite")!.retrieve(question.question, 5);
      assert.deepEqual(observed.map((p) => p.id), expected.map((p) => p.id), "the agent saw what the retriever finds");
      assert.ok(observed.some((p) => p.metadata?.source === question.gold.source && p.metadata?.heading === question.gold.heading), JSON.stringify(observed.map((p) => p.id)));
      assert.equal(tool.calls, 1);
    } finally {
      h.lmDouble.control.setRules([]);
      await tool.stop();
    }
  });

  test("a pipeline: a retrieve step, then ChainOfThought on the passages", async () => {
    const question = questions[1]!.question;
    const result = await runPipeline(
      {
        name: "rag",
        steps: [
          { kind: "native", name: "retrieve", fn: "retrieve", args: { query: "question", k: 3, filter: { source: "deploy.md" } } },
          { kind: "module", name: "answer", module: "chain_of_thought", signature: "context: list[str], question: str -> answer: str" },
        ],
      },
      { question },
      {
        callModule: (step, inputs, signal) => callModule(h.client, step, inputs, signal),
        functions: new Map([["retrieve", retrieveStep(retrievers.get("postgresql")!)]]),
      },
    );
    const passages = result.values.passages as Hit[];
    assert.equal(passages.length, 3);
    assert.ok(passages.every((p) => p.metadata?.source === "deploy.md"));
    assert.deepEqual(result.values.context, passages.map((p) => p.text));
    assert.equal(typeof result.values.answer, "string");
    assert.equal(typeof result.values.reasoning, "string");
    await assert.rejects(
      runPipeline({ steps: [{ kind: "native", name: "r", fn: "retrieve", args: { query: "missing" } }] }, { question }, {
        callModule: (step, inputs, signal) => callModule(h.client, step, inputs, signal),
        functions: new Map([["retrieve", retrieveStep(retrievers.get("postgresql")!)]]),
      }),
      (e: unknown) => e instanceof PipelineStepError && e.type === "ValidationError" && e.step === "r" && (e.cause as { field?: string }).field === "missing",
    );
  });
});
