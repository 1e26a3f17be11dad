/**
 * The example program packages (examples/) end to end on a real fleet with the LM double as the provider:
 * workers load them as a user would point workers at a checkout (PYTHONPATH + DSPEX_PROGRAMS), advertise them,
 * and run them — docs_rag searching a collection served on the bus (the project's docs, embedded by the real
 * model) and evaluated with recall_at_k; ticket_triage's pydantic output as an object type; order_agent's ReAct
 * calling a TypeScript tool served here.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { PipelineClient, PipelineService } from "@dspex/pipeline";
import { docsCorpus, type Retriever } from "@dspex/retrieval";
import { startHarness, type Harness } from "../integration/harness.js";
import { serveCollection, type ServedCollection } from "../retrieval/served-collection.js";

const ROOT = join(import.meta.dirname, "../..");
const run = promisify(execFile);
const EXAMPLES = ["docs_rag", "order_agent", "ticket_triage"].map((e) => join(ROOT, "examples", e));

describe("example program packages", { timeout: 240_000 }, () => {
  let h: Harness;
  let docs: ServedCollection;
  let retriever: Retriever;

  before(async () => {
    h = await startHarness({
      fleet: {
        workers: { general: 1, gpu: 1 },
        bus: { pools: { gpu: { concurrency: 8 } } },
        workerEnv: {
          PYTHONPATH: EXAMPLES.join(":"),
          DSPEX_PROGRAMS: "dspex_example_docs_rag.program:DocsRAG,dspex_example_order_agent.program:OrderAgent,dspex_example_ticket_triage.program:TicketTriage",
        },
      },
    });
    docs = await serveCollection(h, docsCorpus(join(ROOT, "docs")), { ops: ["search"] });
    retriever = docs.retriever;
  });
  after(async () => {
    await docs?.close();
    await h?.close();
  });

  test("the fleet advertises the programs with their fields and predictors", async () => {
    const rag = await h.client.program("DocsRAG").describe();
    assert.deepEqual(rag.inputs.map((f) => f.name), ["question"]);
    assert.deepEqual(rag.outputs.map((f) => f.name), ["answer", "context", "passage_ids", "queries"]);
    assert.deepEqual(rag.predictors, ["follow_up", "answer.predict"]);
    const agent = await h.client.program("OrderAgent").describe();
    assert.deepEqual(agent.outputs.map((f) => f.name), ["answer", "tools_used"]);
  });

  test("dspex programs graph: the module tree as Mermaid and JSON, predictors with their signatures", async () => {
    const graph = (await h.client.program("DocsRAG").describe()).graph!;
    assert.deepEqual(graph.children.map((c) => [c.name, c.type]), [["retrieve", "Retrieve"], ["follow_up", "Predict"], ["answer", "ChainOfThought"]]);
    assert.equal(graph.children[2]!.children[0]!.signature, "context, question -> reasoning, answer");
    const env = { ...process.env, NATS_URL: h.fleet.natsUrl, NATS_CREDS: h.fleet.creds.client };
    const cli = (args: string[]) => run(process.execPath, ["--conditions=development", "--import", "tsx", join(ROOT, "services/cli/src/cli.ts"), "programs", "graph", ...args], { env, cwd: ROOT, timeout: 60_000 });
    const { stdout } = await cli(["DocsRAG"]);
    const lines = stdout.trim().split("\n");
    assert.equal(lines[0], "flowchart TD");
    assert.ok(lines.some((l) => l.includes('[["answer.predict: Predict<br/>context, question -#gt; reasoning, answer"]]')), stdout);
    assert.equal(lines.filter((l) => l.includes("-->")).length, 4, "one edge per module under the program");
    assert.deepEqual(JSON.parse((await cli(["DocsRAG", "--json"])).stdout).graph, graph);
    await assert.rejects(cli(["Nope"]), /UnknownProgram/);
  });

  test("docs_rag: two hops over the served collection; the passages are the retriever's and reach the prompt", async () => {
    const question = "How are provider API keys kept safe?";
    const before = h.lmDouble.requests().length;
    const { outputs } = await h.client
      .program<{ question: string }, { answer: string; context: string[]; passage_ids: string[]; queries: string[] }>("DocsRAG")
      .call({ question });
    assert.equal(outputs.queries.length, 2);
    assert.equal(outputs.queries[0], question);
    const expected: string[] = [];
    for (const query of outputs.queries) for (const hit of await retriever.retrieve(query, 3)) if (!expected.includes(hit.id)) expected.push(hit.id);
    assert.deepEqual(outputs.passage_ids, expected);
    assert.equal(outputs.context.length, expected.length);
    const calls = h.lmDouble.requests().slice(before);
    assert.equal(calls.length, 2, "the follow-up query and the answer");
    // a run of plain words from the first passage (no characters that JSON escapes once or twice)
    const snippet = /[A-Za-z][A-Za-z ,.]{30,}/.exec(outputs.context[0]!)![0].slice(0, 30);
    assert.ok(JSON.stringify(calls[1]!.body).includes(snippet), `the answer's prompt holds the passages (${snippet})`);
  });

  test("docs_rag in an eval job: recall_at_k against the sections that answer each question", async () => {
    const service = await PipelineService.start({ servers: h.fleet.natsUrl, creds: h.fleet.creds.pipeline, resume: false });
    const jobs = await PipelineClient.connect({ servers: h.fleet.natsUrl, creds: h.fleet.creds.client });
    try {
      // gold ids: the first hop's best passage for a question about it, taken from the store itself
      const questions = ["How does the direct lane differ from the durable lane?", "How is a dead letter replayed?", "What does dspex index do?"];
      const examples = [];
      for (const question of questions) examples.push({ question, gold_ids: [(await retriever.retrieve(question, 1))[0]!.id] });
      const job = await jobs.submit({ program: { package: "DocsRAG" }, metrics: [{ name: "recall_at_k", args: { k: 3 } }] }, examples);
      const record = await jobs.wait(job);
      assert.equal(record.status, "succeeded", JSON.stringify(record.error));
      const summary = (await jobs.summary(job))!;
      assert.equal(summary.ok, questions.length);
      assert.equal(summary.metrics.recall_at_k, 100, "each question's best passage is among the first hop's three");
    } finally {
      await jobs.close();
      await service.close();
    }
  });

  test("ticket_triage: a pydantic output advertised as an object type, filled by the LM, typed and checked in TypeScript", async () => {
    const advert = await h.client.program("TicketTriage").describe();
    const triageType = advert.outputs.find((f) => f.name === "triage")!.type;
    assert.equal(triageType.kind, "object");
    assert.deepEqual(triageType.kind === "object" && triageType.fields.map((f) => f.name), ["category", "priority", "summary", "tags"]);
    type Triage = { category: "billing" | "bug" | "account" | "other"; priority: number; summary: string; tags?: string[] | null };
    const triage = h.client.program<{ ticket: string }, { triage: Triage; escalate: boolean }>("TicketTriage");
    h.lmDouble.control.setRules([
      { field: "ticket", match: { contains: "charged twice" }, outputs: { reasoning: "A duplicate charge.", triage: { category: "billing", priority: 3, summary: "Charged twice this month.", tags: ["refund"] } } },
      { field: "ticket", match: { contains: "typo" }, outputs: { reasoning: "Cosmetic.", triage: { category: "bug", priority: 9, summary: "A typo." } } },
    ]);
    try {
      const { outputs } = await triage.call({ ticket: "I was charged twice this month." });
      assert.deepEqual(outputs.triage, { category: "billing", priority: 3, summary: "Charged twice this month.", tags: ["refund"] });
      assert.equal(outputs.escalate, true, "the program's own rule on the parsed model");
      // priority 9 breaks the model's le=4: DSPy's adapter refuses the LM's answer
      await assert.rejects(triage.call({ ticket: "There is a typo on the pricing page." }, { retry: { maxAttempts: 1 } }), (err: unknown) => (err as { type?: string }).type === "LMOutputError" && /priority/.test(String((err as Error).message)));
    } finally {
      h.lmDouble.control.setRules([]);
    }
  });

  test("order_agent: ReAct calls the TypeScript tool served here and answers from its result", async () => {
    const lookups: string[] = [];
    const tool = await h.client.tools.serve<{ order_id: string }>({
      name: "lookup_order",
      parameters: { type: "object", properties: { order_id: { type: "string" } }, required: ["order_id"] },
      handler: ({ order_id }) => {
        lookups.push(order_id);
        return { order_id, status: "shipped", shipped_at: "2026-12-01" };
      },
    });
    h.lmDouble.control.setRules([
      {
        field: "trajectory",
        match: { contains: "shipped_at" },
        outputs: { next_thought: "It has shipped.", next_tool_name: "finish", next_tool_args: {}, reasoning: "the lookup says shipped", answer: "Order A-1001 shipped on 2026-12-01." },
      },
      {
        field: "trajectory",
        match: { regex: "^(?![\\s\\S]*observation_0)" },
        outputs: { next_thought: "Look the order up.", next_tool_name: "lookup_order", next_tool_args: { order_id: "A-1001" } },
      },
    ]);
    try {
      const { outputs } = await h.client.program<{ question: string }, { answer: string; tools_used: string[] }>("OrderAgent").call({ question: "Where is my order A-1001?" });
      assert.deepEqual(lookups, ["A-1001"]);
      assert.deepEqual(outputs.tools_used, ["lookup_order"]);
      assert.equal(outputs.answer, "Order A-1001 shipped on 2026-12-01.");
    } finally {
      h.lmDouble.control.setRules([]);
      await tool.stop();
    }
  });
});
