/**
 * The DSPy modules from TypeScript, end to end: client → NATS JetStream → Python worker running real dspy 3.4.1
 * → the LM double over HTTP; ReAct calling tools served from TypeScript back over NATS.
 */
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { type ServedTool } from "@dspex/client";
import { STREAMS, ValidationError } from "@dspex/protocol";
import { startHarness, type Harness } from "../integration/harness.js";

describe("DSPy modules over the bus", { timeout: 240_000 }, () => {
  let h: Harness;

  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h?.close();
  });
  beforeEach(() => h.lmDouble.control.reset());

  test("Predict and ChainOfThought stay on the client (typed outputs)", async () => {
    const p = await h.client.predict("question -> answer", { question: "What is 3+4?" });
    assert.equal(p.outputs.answer, "7");
    const c = await h.client.chainOfThought("question -> answer: int", { question: "What is 6*7?" });
    assert.equal(c.outputs.answer, 42);
    assert.equal(typeof c.outputs.reasoning, "string");
  });

  describe("ReAct with tools served from TypeScript", () => {
    let add: ServedTool;
    let capital: ServedTool;
    const calls: string[] = [];

    before(async () => {
      add = await h.client.tools.serve<{ a: number; b: number }>({
        name: "add",
        description: "Adds two numbers.",
        parameters: {
          type: "object",
          properties: { a: { type: "number" }, b: { type: "number" } },
          required: ["a", "b"],
        },
        handler: ({ a, b }, ctx) => {
          calls.push(`add(${a}, ${b}) for ${ctx.request}`);
          return a + b;
        },
      });
      capital = await h.client.tools.serve<{ country: string }>({
        name: "lookup_capital",
        description: "The capital city of a country.",
        parameters: { type: "object", properties: { country: { type: "string" } }, required: ["country"] },
        handler: ({ country }) => {
          calls.push(`lookup_capital(${country})`);
          return { country, capital: country === "France" ? "Paris" : "unknown" };
        },
      });
    });

    test("the agent calls two TypeScript tools and returns its trajectory", async () => {
      const question = "Add two and three, then find the capital of France.";
      h.lmDouble.control.setRules([
        {
          field: "trajectory",
          match: { contains: "observation_1" },
          outputs: {
            next_thought: "I have both results.",
            next_tool_name: "finish",
            next_tool_args: {},
            reasoning: "add gave 5 and lookup_capital gave Paris.",
            answer: "5, Paris",
          },
        },
        {
          field: "trajectory",
          match: { contains: "observation_0" },
          outputs: {
            next_thought: "Now the capital.",
            next_tool_name: "lookup_capital",
            next_tool_args: { country: "France" },
          },
        },
        {
          field: "trajectory",
          match: { regex: "^(?![\\s\\S]*observation_0)" },
          outputs: { next_thought: "First the sum.", next_tool_name: "add", next_tool_args: { a: 2, b: 3 } },
        },
      ]);
      const r = await h.client.modules.react("question -> answer", { question }, { tools: [add, capital], max_iters: 5 });
      assert.equal(r.outputs.answer, "5, Paris");
      assert.equal(typeof r.outputs.reasoning, "string");
      assert.deepEqual(
        r.trajectory.map((s) => s.tool_name),
        ["add", "lookup_capital", "finish"],
      );
      assert.deepEqual(r.trajectory[0]!.tool_args, { a: 2, b: 3 });
      assert.equal(r.trajectory[0]!.observation, 5);
      assert.deepEqual(r.trajectory[1]!.observation, { country: "France", capital: "Paris" });
      assert.ok(calls.includes(`add(2, 3) for ${r.id}`), `tool calls: ${calls.join("; ")}`);
      assert.ok(calls.includes("lookup_capital(France)"));
      assert.equal(add.calls, 1);
      assert.equal(capital.calls, 1);
      // What the agent saw: both observations in its trajectory on the final (extract) call.
      const last = h.lmDouble.requests().at(-1)!.prompt!;
      assert.match(last.inputs.trajectory ?? "", /Paris/);
    });

    test("a tool that throws, times out or is not served is an observation, not a failed request", async () => {
      const flaky = await h.client.tools.serve({
        name: "flaky",
        description: "Always fails.",
        handler: () => {
          throw new Error("the database is down");
        },
      });
      const slow = await h.client.tools.serve({
        name: "slow",
        description: "Answers too late.",
        timeoutMs: 300,
        handler: () => new Promise((resolve) => setTimeout(() => resolve("late"), 2_000)),
      });
      const ghost = { name: "ghost", description: "Nobody serves it.", parameters: {}, subject: "dspex.tool.ghost", timeout_ms: 1000 };
      h.lmDouble.control.setRules([
        {
          field: "trajectory",
          match: { contains: "observation_2" },
          outputs: { next_thought: "Give up.", next_tool_name: "finish", next_tool_args: {}, answer: "no data" },
        },
        {
          field: "trajectory",
          match: { contains: "observation_1" },
          outputs: { next_thought: "Try the ghost.", next_tool_name: "ghost", next_tool_args: {} },
        },
        {
          field: "trajectory",
          match: { contains: "observation_0" },
          outputs: { next_thought: "Try the slow one.", next_tool_name: "slow", next_tool_args: {} },
        },
        {
          field: "trajectory",
          match: { regex: "^(?![\\s\\S]*observation_0)" },
          outputs: { next_thought: "Try flaky.", next_tool_name: "flaky", next_tool_args: {} },
        },
      ]);
      const r = await h.client.modules.react("question -> answer", { question: "Fetch the data." }, { tools: [flaky, slow, ghost], max_iters: 6 });
      assert.equal(r.outputs.answer, "no data");
      const [s0, s1, s2] = r.trajectory;
      assert.match(String(s0!.observation), /Execution error in flaky.*the database is down/s);
      assert.match(String(s1!.observation), /Execution error in slow.*did not answer within 300 ms/s);
      assert.match(String(s2!.observation), /Execution error in ghost.*not being served/s);
      await flaky.stop();
      await slow.stop();
    });

    test("tool arguments that do not match the schema reach the agent as an error observation", async () => {
      h.lmDouble.control.setRules([
        {
          field: "trajectory",
          match: { contains: "observation_0" },
          outputs: { next_thought: "Done.", next_tool_name: "finish", next_tool_args: {}, answer: "?" },
        },
        {
          field: "trajectory",
          match: { regex: "^(?![\\s\\S]*observation_0)" },
          outputs: { next_thought: "Add.", next_tool_name: "add", next_tool_args: { a: "two" } },
        },
      ]);
      const r = await h.client.modules.react("question -> answer", { question: "Sum things." }, { tools: [add], max_iters: 3 });
      assert.match(String(r.trajectory[0]!.observation), /Execution error in add/);
    });
  });

  test("ProgramOfThought and RLM run the LM's code in DSPy's Deno + Pyodide sandbox", async (t) => {
    // Nothing but the sandbox can produce 391 here: the double does no arithmetic on words.
    const question = "Compute the product of seventeen and twenty-three.";
    h.lmDouble.control.setRules([
      { field: "question", match: question, outputs: { generated_code: "```python\nresult = 17 * 23\n```" } },
      {
        field: "variables_info",
        match: { contains: "seventeen" },
        outputs: { reasoning: "Multiply.", code: "```python\nSUBMIT(answer=str(17 * 23))\n```" },
      },
    ]);
    let started = performance.now();
    const pot = await h.client.modules.programOfThought("question -> answer", { question }, { max_iters: 2 });
    t.diagnostic(`ProgramOfThought: ${Math.round(performance.now() - started)} ms`);
    const final = h.lmDouble.requests().at(-1)!.prompt!;
    assert.equal(final.inputs.code_output, "391", "the sandbox ran the generated code");
    assert.equal(final.inputs.final_generated_code, "result = 17 * 23\nresult");
    assert.equal(typeof pot.outputs.answer, "string");

    started = performance.now();
    const rlm = await h.client.modules.rlm("question -> answer", { question }, { max_iters: 2 });
    t.diagnostic(`RLM: ${Math.round(performance.now() - started)} ms`);
    assert.equal(rlm.outputs.answer, "391", "SUBMIT() in the sandbox produced the answer");
  });

  test("MultiChainComparison compares M chain-of-thought attempts; outputs gain rationale", async () => {
    const r = await h.client.modules.multiChainComparison("question -> answer", { question: "What is 9-4?" }, { m: 3, temperature: 0.7 });
    assert.equal(r.outputs.answer, "5");
    assert.equal(typeof r.outputs.rationale, "string");
    assert.equal(r.completions.length, 3);
    assert.ok(r.completions.every((c) => typeof c.reasoning === "string" && c.answer === "5"));
    // Given completions skip the attempts: one LM call.
    const before = h.lmDouble.requests().length;
    const given = await h.client.modules.multiChainComparison(
      "question -> answer",
      { question: "What is 9-4?" },
      { m: 2, completions: [{ reasoning: "nine minus four", answer: "5" }, { reasoning: "guess", answer: "6" }] },
    );
    assert.equal(given.outputs.answer, "5");
    assert.equal(h.lmDouble.requests().length - before, 1);
    const prompt = h.lmDouble.requests().at(-1)!.prompt!;
    assert.ok("reasoning_attempt_2" in prompt.inputs, JSON.stringify(Object.keys(prompt.inputs)));
  });

  test("BestOfN stops at the first attempt meeting the threshold; Refine asks for advice between attempts", async () => {
    const best = await h.client.modules.bestOfN("question -> answer", { question: "What is 2+2?" }, { n: 3, reward: "one_word", threshold: 1 });
    assert.equal(best.outputs.answer, "4");
    assert.deepEqual(best.rewards, [1]);
    assert.equal(best.reward, "one_word");

    const seen = h.lmDouble.requests().length;
    const refined = await h.client.modules.refine(
      "question -> answer",
      { question: "What is 2+2?" },
      { n: 2, reward: "equals", reward_args: { value: "four" }, threshold: 1, module: "chain_of_thought" },
    );
    assert.deepEqual(refined.rewards, [0, 0], "no attempt reaches the threshold");
    assert.equal(refined.outputs.answer, "4");
    assert.equal(typeof refined.outputs.reasoning, "string");
    const calls = h.lmDouble.requests().slice(seen);
    const feedback = calls.filter((c) => c.prompt?.outputFields.some((f) => f.name === "advice"));
    assert.equal(feedback.length, 1, "Refine's OfferFeedback ran between the two attempts");
    assert.match(JSON.stringify(feedback[0]!.prompt!.inputs.reward_code), /def equals/, "the named reward's source reached the LM");
    assert.ok(calls.at(-1)!.prompt!.inputs.hint_ !== undefined, "the second attempt got the hint");
  });

  test("Parallel runs a batch; each item succeeds or fails on its own", async () => {
    h.lmDouble.control.setRules([{ field: "question", match: "broken", reply: "no markers at all", times: 10 }]);
    const r = await h.client.modules.parallel(
      "question -> answer",
      [{ question: "What is 1+1?" }, { question: "broken" }, { question: "What is 5*5?" }],
      { num_threads: 2 },
    );
    assert.equal(r.results.length, 3);
    assert.deepEqual(r.results[0], { ok: true, outputs: { answer: "2" } });
    assert.equal(r.results[1]!.ok, false);
    assert.equal(!r.results[1]!.ok && r.results[1]!.error.type, "LMOutputError");
    assert.deepEqual(r.results[2], { ok: true, outputs: { answer: "25" } });
    assert.ok(r.usage.total_tokens > 0);
  });

  test("majority votes over n completions", async () => {
    const seen = h.lmDouble.requests().length;
    const r = await h.client.modules.majority("question -> answer", { question: "What is 8/2?" }, { n: 5 });
    assert.equal(r.outputs.answer, "4");
    assert.deepEqual(r.votes, [{ value: "4", count: 5 }]);
    assert.equal(r.field, "answer");
    // DSPy asks for n completions (its LM client sends one request per completion when it must).
    const requests = h.lmDouble.requests().slice(seen);
    assert.ok(requests.length >= 1 && requests.length <= 5, `${requests.length} LM requests`);
  });

  test("bad module options are ValidationErrors naming the field, in TypeScript and in the worker", async () => {
    const jsm = await jetstreamManager(h.admin);
    const seq = (await jsm.streams.info(STREAMS.requests.name)).state.last_seq;
    const cases: Array<[Promise<unknown>, string]> = [
      [h.client.modules.bestOfN("question -> answer", { question: "q" }, { n: 0, reward: "one_word" }), "module.n"],
      [h.client.modules.bestOfN("question -> answer", { question: "q" }, { reward: "" }), "module.reward"],
      [h.client.modules.majority("question -> answer", { question: "q" }, { n: 2, bogus: 1 } as never), "module.bogus"],
      [h.client.modules.parallel("question -> answer", [{ question: "q" }, {}]), "batch[1].question"],
      [h.client.modules.react("question -> answer", { question: "q" }, { tools: [] }), "module.tools"],
      [h.client.modules.react("question -> answer", { question: "q" }, { tools: ["nope"] }), "module.tools[0]"],
    ];
    for (const [call, field] of cases) {
      await assert.rejects(call, (err: unknown) => {
        assert.ok(err instanceof ValidationError, `${field}: ${String(err)}`);
        assert.equal(err.field, field);
        return true;
      });
    }
    assert.equal((await jsm.streams.info(STREAMS.requests.name)).state.last_seq, seq, "nothing was published");
    // Through the generic call (a wrong type is caught by the client's schema check, an unknown reward by the
    // worker): the field is named the same way either side.
    const worker: Array<[Record<string, unknown>, string]> = [
      [{ n: "three", reward: "one_word" }, "module.n"],
      [{ reward: "no_such_reward" }, "module.reward"],
      [{ reward: "max_words", reward_args: { maximum: 3 } }, "module.reward_args"],
    ];
    for (const [module, field] of worker) {
      await assert.rejects(
        h.client.call("best_of_n", "question -> answer", { question: "q" }, { module }),
        (err: unknown) => {
          assert.ok(err instanceof ValidationError, String(err));
          assert.equal(err.field, field);
          return true;
        },
      );
    }
  });
});
