/**
 * Streaming a running program to the TypeScript caller: real dspy.streamify in the worker, the LM double
 * answering with server-sent events, token and status events over NATS, then the typed result.
 */
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type StreamEvent } from "@dspex/client";
import { LMError, ValidationError } from "@dspex/protocol";
import { startHarness, type Harness } from "../integration/harness.js";

type Token = Extract<StreamEvent, { type: "token" }>;

describe("streaming", { timeout: 180_000 }, () => {
  let h: Harness;

  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h?.close();
  });
  beforeEach(() => h.lmDouble.control.reset());

  test("a streamed answer arrives in pieces, with status events, before the typed result", async () => {
    const question = "Tell me about the long quiet river that runs past the old mill";
    const stream = h.client.stream("predict", "question -> answer", { question });
    let resolvedAt = 0;
    void stream.result.then(() => (resolvedAt = performance.now()));
    const arrivals: number[] = [];
    const events: StreamEvent[] = [];
    for await (const event of stream) {
      events.push(event);
      if (event.type === "token") arrivals.push(performance.now());
    }
    const result = await stream.result;
    const tokens = events.filter((e): e is Token => e.type === "token" && e.field === "answer");
    assert.ok(tokens.length >= 3, `the answer came in ${tokens.length} pieces`);
    assert.equal(tokens.map((t) => t.chunk).join(""), result.outputs.answer);
    assert.equal(result.outputs.answer, `answer to: ${question}`);
    assert.ok(tokens.at(-1)!.last, "the last piece is marked");
    assert.ok(arrivals[0]! <= (resolvedAt || Infinity), "tokens arrive before the result");
    const kinds = events.filter((e) => e.type === "status").map((e) => (e as { kind: string }).kind);
    for (const kind of ["module_start", "lm_start", "lm_end", "module_end"]) assert.ok(kinds.includes(kind), `${kind} in ${kinds}`);
    assert.deepEqual(
      events.map((e) => e.seq),
      [...events.map((e) => e.seq)].sort((a, b) => a - b),
      "events in order",
    );
    assert.equal(h.lmDouble.requests().at(-1)!.stream, true, "the worker asked the LM to stream (SSE)");
  });

  test("chain of thought streams its reasoning and its answer", async () => {
    const stream = h.client.stream("chain_of_thought", "question -> answer: int", { question: "What is 6*7?" });
    for await (const _ of stream) {
      /* drain */
    }
    const result = await stream.result;
    assert.equal(result.outputs.answer, 42);
    assert.equal(stream.text("reasoning"), result.outputs.reasoning);
    assert.equal(stream.text("answer"), "42");
  });

  test("a ReAct agent's tool calls show up as status events", async () => {
    const tool = await h.client.tools.serve<{ city: string }>({
      name: "weather",
      description: "Weather in a city.",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
      handler: ({ city }) => `sunny in ${city}`,
    });
    h.lmDouble.control.setRules([
      {
        field: "trajectory",
        match: { contains: "observation_0" },
        outputs: { next_thought: "Done.", next_tool_name: "finish", next_tool_args: {}, answer: "It is sunny in Oslo." },
      },
      {
        field: "trajectory",
        match: { regex: "^(?![\\s\\S]*observation_0)" },
        outputs: { next_thought: "Check.", next_tool_name: "weather", next_tool_args: { city: "Oslo" } },
      },
    ]);
    const stream = h.client.stream("react", "question -> answer", { question: "Weather in Oslo?" }, { tools: [tool], max_iters: 3 });
    for await (const _ of stream) {
      /* drain */
    }
    const result = await stream.result;
    assert.equal(result.outputs.answer, "It is sunny in Oslo.");
    const toolStart = stream.events.find((e) => e.type === "status" && e.kind === "tool_start");
    assert.ok(toolStart && toolStart.type === "status" && toolStart.name === "weather");
    assert.equal(stream.text("answer"), "It is sunny in Oslo.");
    assert.deepEqual((result.extra.trajectory as Array<{ tool_name: string }>).map((s) => s.tool_name), ["weather", "finish"]);
    await tool.stop();
  });

  test("a stored program streams; modules whose predictors are copies stream the raw LM text", async () => {
    const { definition } = await h.client.createProgram({
      signature: "question -> answer",
      module: "chain_of_thought",
      state: { demos: [{ question: "What is 1+1?", reasoning: "One plus one.", answer: "2" }] },
    });
    const stored = await h.client.streamProgram(definition.id, { question: "What is 2+5?" });
    for await (const _ of stored) {
      /* drain */
    }
    assert.equal((await stored.result).outputs.answer, "7");
    assert.equal(stored.text("answer"), "7");
    assert.ok(h.lmDouble.requests().at(-1)!.prompt!.messageCount >= 4, "with its demo");

    const best = h.client.stream("best_of_n", "question -> answer", { question: "What is 3+3?" }, { n: 2, reward: "one_word" });
    for await (const _ of best) {
      /* drain */
    }
    assert.equal((await best.result).outputs.answer, "6");
    assert.match(best.text(null), /\[\[ ## answer ## \]\]\s*6/, "raw ChatAdapter text, field markers included");
  });

  test("an error ends the stream with the typed error", async () => {
    h.lmDouble.control.failAll("http500");
    try {
      const stream = h.client.stream("predict", "question -> answer", { question: "boom" });
      await assert.rejects(
        (async () => {
          for await (const _ of stream) {
            /* drain */
          }
        })(),
        (err: unknown) => err instanceof LMError,
      );
    } finally {
      h.lmDouble.control.clearFailure();
    }
    await assert.rejects(
      h.client.send({ op: "majority", signature: "question -> answer", inputs: { question: "q" }, stream: { subject: "dspex.stream.x" } }),
      (err: unknown) => err instanceof ValidationError && err.field === "stream",
    );
  });
});
