/**
 * LM-judged metrics (DSPy's SemanticF1 and CompleteAndGrounded) in an eval job on the real fleet: the judge is a
 * ChainOfThought on the program's LM (the LM double), one judge call per example beside the program's own, its
 * tokens counted in the job's usage; field names are mapped by args, and a missing one is an error naming the arg.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { PipelineClient, PipelineService } from "@dspex/pipeline";
import { startHarness, type Harness } from "../integration/harness.js";

let h: Harness;
let client: PipelineClient;
let service: PipelineService;

before(async () => {
  h = await startHarness();
  service = await PipelineService.start({ servers: h.fleet.natsUrl, creds: h.fleet.creds.pipeline, resume: false });
  client = await PipelineClient.connect({ servers: h.fleet.natsUrl, creds: h.fleet.creds.client });
});
after(async () => {
  await client?.close();
  await service?.close();
  await h?.close();
});

const examples = [
  { question: "What is the capital of France?", answer: "Paris" },
  { question: "What is 2 + 2?", answer: "4" },
  { question: "Who wrote Hamlet?", answer: "Shakespeare" },
];

test("semantic_f1 judges each answer with the program's LM; the judge's calls and tokens are counted", async () => {
  const plain = await client.submit({ program: { signature: "question -> answer", lm: h.lm }, metrics: ["exact_match"] }, examples);
  await client.wait(plain);
  const plainUsage = (await client.summary(plain))!.usage.total_tokens;
  const before = h.lmDouble.requests().length;
  const job = await client.submit(
    { program: { signature: "question -> answer", lm: h.lm }, metrics: [{ name: "py:semantic_f1", args: { gold: "answer", answer: "answer" } }] },
    examples,
  );
  const record = await client.wait(job);
  assert.equal(record.status, "succeeded");
  const summary = (await client.summary(job))!;
  assert.equal(summary.ok, 3);
  const results = [...(await client.results(job)).values()];
  for (const r of results) {
    const score = Number(Object.values(r.scores)[0]);
    assert.ok(score >= 0 && score <= 1, `a semantic F1 in [0, 1]: ${score}`);
  }
  const calls = h.lmDouble.requests().slice(before);
  assert.equal(calls.length, 6, "one program call and one judge call per example");
  assert.ok(calls.some((c) => JSON.stringify(c.body).includes("ground_truth")), "the judge's prompt carries DSPy's SemanticRecallPrecision fields");
  assert.ok(summary.usage.total_tokens > plainUsage, `judge tokens counted: ${summary.usage.total_tokens} > ${plainUsage}`);
});

test("a judged metric whose field is missing fails the example with an error naming the arg", async () => {
  const job = await client.submit({ program: { signature: "question -> answer", lm: h.lm }, metrics: ["py:semantic_f1"] }, examples.slice(0, 1));
  await client.wait(job);
  const [result] = [...(await client.results(job)).values()];
  assert.equal(result?.ok, false);
  assert.equal(result?.error?.type, "ValidationError");
  assert.match(result?.error?.message ?? "", /no field 'response'.*args\.gold/);
});
