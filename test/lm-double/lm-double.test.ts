// Tests of the LM test double: HTTP-level behaviour, and real DSPy (dspy_probe.py) running against it.
// Run from the repo root: node --conditions=development --import tsx --test test/lm-double/lm-double.test.ts
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { after, before, beforeEach, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { MALFORMED_REPLY, solveArithmetic } from "./answer.js";
import { parseFieldList, parsePrompt } from "./prompt.js";
import { startLmDouble, type LmDouble } from "./server.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const python = `${repoRoot}.venv/bin/python`;

// ---------------------------------------------------------------------------------------------
// Real DSPy probe: started first so Python's slow imports overlap the HTTP-level tests below.

interface ProbeRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runProbe(url: string): Promise<ProbeRun> {
  return new Promise((resolve) => {
    const child = spawn(python, [`${here}dspy_probe.py`, url], {
      cwd: repoRoot,
      env: { ...process.env, LITELLM_LOCAL_MODEL_COST_MAP: "true", PYTHONUNBUFFERED: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const killer = setTimeout(() => child.kill("SIGKILL"), 150_000);
    child.on("error", (error) => {
      clearTimeout(killer);
      resolve({ code: null, stdout, stderr: `${stderr}\nspawn failed: ${error.message}` });
    });
    child.on("close", (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
  });
}

const probeDouble = await startLmDouble();
const probeRun = runProbe(probeDouble.url);
after(() => probeDouble.close());

// ---------------------------------------------------------------------------------------------
// Helpers

async function postJson(url: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    ...init,
  });
}

interface Completion {
  id: string;
  object: string;
  model: string;
  choices: Array<{ index: number; message: { role: string; content: string }; finish_reason: string }>;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

async function complete(double: LmDouble, body: Record<string, unknown>): Promise<Completion> {
  const response = await postJson(`${double.url}/chat/completions`, { model: "test-model", ...body });
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()) as Completion;
}

function contentOf(completion: Completion): string {
  const content = completion.choices[0]?.message.content;
  assert.equal(typeof content, "string");
  return content as string;
}

/** Sections of a ChatAdapter-formatted answer, in order. */
function chatSections(content: string): Array<[string, string]> {
  const sections: Array<[string, string[]]> = [];
  for (const line of content.split("\n")) {
    const match = /^\[\[ ## (\w+) ## \]\]$/.exec(line.trim());
    if (match?.[1]) sections.push([match[1], []]);
    else sections[sections.length - 1]?.[1].push(line);
  }
  return sections.map(([name, lines]) => [name, lines.join("\n").trim()]);
}

// The exact text DSPy 3.4.1's ChatAdapter / JSONAdapter produce for
// dspy.ChainOfThought(question: str, context: list[str] -> answer, sentiment: Literal[...], tags: list[str],
// count: int, score: float, ok: bool), captured from adapter.format(...).
const FIELD_DESCRIPTION = `Your input fields are:
1. \`question\` (str): the question
2. \`context\` (list[str]):
Your output fields are:
1. \`reasoning\` (str): 
2. \`answer\` (str): short answer
3. \`sentiment\` (Literal['positive', 'negative', 'neutral']): 
4. \`tags\` (list[str]): 
5. \`count\` (int): 
6. \`score\` (float): 
7. \`ok\` (bool):`;

const CHAT_SYSTEM = `${FIELD_DESCRIPTION}
All interactions will be structured in the following way, with the appropriate values filled in.

[[ ## question ## ]]
{question}

[[ ## context ## ]]
{context}

[[ ## reasoning ## ]]
{reasoning}

[[ ## answer ## ]]
{answer}

[[ ## sentiment ## ]]
{sentiment}        # note: the value you produce must exactly match (no extra characters) one of: positive; negative; neutral

[[ ## tags ## ]]
{tags}        # note: the value you produce must adhere to the JSON schema: {"type": "array", "items": {"type": "string"}}

[[ ## count ## ]]
{count}        # note: the value you produce must be a single int value

[[ ## score ## ]]
{score}        # note: the value you produce must be a single float value

[[ ## ok ## ]]
{ok}        # note: the value you produce must be True or False

[[ ## completed ## ]]
In adhering to this structure, your objective is: 
        Answer questions with context.`;

const JSON_SYSTEM = `${FIELD_DESCRIPTION}
All interactions will be structured in the following way, with the appropriate values filled in.

Inputs will have the following structure:

[[ ## question ## ]]
{question}

[[ ## context ## ]]
{context}

Outputs will be a JSON object with the following fields.

{
  "reasoning": "{reasoning}",
  "answer": "{answer}",
  "sentiment": "{sentiment}        # note: the value you produce must exactly match (no extra characters) one of: positive; negative; neutral",
  "tags": "{tags}        # note: the value you produce must adhere to the JSON schema: {\\"type\\": \\"array\\", \\"items\\": {\\"type\\": \\"string\\"}}",
  "count": "{count}        # note: the value you produce must be a single int value",
  "score": "{score}        # note: the value you produce must be a single float value",
  "ok": "{ok}        # note: the value you produce must be True or False"
}
In adhering to this structure, your objective is: 
        Answer questions with context.`;

const CHAT_REMINDER =
  "Respond with the corresponding output fields, starting with the field `[[ ## reasoning ## ]]`, then `[[ ## answer ## ]]`, then `[[ ## sentiment ## ]]` (must be formatted as a valid Python Literal['positive', 'negative', 'neutral']), then `[[ ## tags ## ]]` (must be formatted as a valid Python list[str]), then `[[ ## count ## ]]` (must be formatted as a valid Python int), then `[[ ## score ## ]]` (must be formatted as a valid Python float), then `[[ ## ok ## ]]` (must be formatted as a valid Python bool), and then ending with the marker for `[[ ## completed ## ]]`.";
const JSON_REMINDER =
  "Respond with a JSON object in the following order of fields: `reasoning`, then `answer`, then `sentiment` (must be formatted as a valid Python Literal['positive', 'negative', 'neutral']), then `tags` (must be formatted as a valid Python list[str]), then `count` (must be formatted as a valid Python int), then `score` (must be formatted as a valid Python float), then `ok` (must be formatted as a valid Python bool).";

function userMessage(question: string, reminder: string | null): string {
  const parts = [`[[ ## question ## ]]\n${question}`, `[[ ## context ## ]]\n["c1", "c2"]`];
  if (reminder !== null) parts.push(reminder);
  return parts.join("\n\n");
}

function chatPrompt(question: string): Array<{ role: string; content: string }> {
  return [
    { role: "system", content: CHAT_SYSTEM },
    { role: "user", content: userMessage(question, CHAT_REMINDER) },
  ];
}

const OUTPUT_NAMES = ["reasoning", "answer", "sentiment", "tags", "count", "score", "ok"];

// ---------------------------------------------------------------------------------------------
// Pure helpers

describe("prompt reading and arithmetic", () => {
  test("parses DSPy's field list, including Literal values with parentheses, commas and multi-line descriptions", () => {
    const fields = parseFieldList(
      "1. `label` (Literal['a (x)', 'b, c', \"it's\"]): pick one\nsecond line\n2. `n` (int): \nConstraints: greater than: 0",
    );
    assert.deepEqual(
      fields.map((f) => [f.name, f.typeName, f.description]),
      [
        ["label", "Literal['a (x)', 'b, c', \"it's\"]", "pick one\nsecond line"],
        ["n", "int", "Constraints: greater than: 0"],
      ],
    );
    const prompt = parsePrompt({
      messages: [
        { role: "system", content: CHAT_SYSTEM.replace("(Literal['positive', 'negative', 'neutral'])", "(Literal['a (x)', 'b, c'])") },
        { role: "user", content: userMessage("q", CHAT_REMINDER) },
      ],
    });
    const sentiment = prompt.outputFields.find((f) => f.name === "sentiment");
    assert.deepEqual(sentiment?.type, { kind: "choice", values: ["a (x)", "b, c"] });
  });

  test("reads both adapters' prompts: fields, types and the last user message's inputs without the reminder", () => {
    for (const [system, reminder, adapter] of [
      [CHAT_SYSTEM, CHAT_REMINDER, "chat"],
      [JSON_SYSTEM, JSON_REMINDER, "json"],
    ] as const) {
      const prompt = parsePrompt({
        messages: [
          { role: "system", content: system },
          { role: "user", content: userMessage("What is 2+3?", reminder) },
        ],
      });
      assert.equal(prompt.adapter, adapter);
      assert.deepEqual(prompt.inputs, { question: "What is 2+3?", context: '["c1", "c2"]' });
      assert.deepEqual(
        prompt.outputFields.map((f) => [f.name, f.type.kind]),
        [["reasoning", "str"], ["answer", "str"], ["sentiment", "choice"], ["tags", "schema"], ["count", "int"], ["score", "float"], ["ok", "bool"]],
      );
      assert.match(prompt.instructions, /^Answer questions with context\.$/);
    }
  });

  test("solves simple arithmetic and ignores text without any", () => {
    assert.equal(solveArithmetic("What is 2+3?")?.value, 5);
    assert.equal(solveArithmetic("What is (2 + 3) * 4?")?.value, 20);
    assert.equal(solveArithmetic("What is 6 times 7?")?.value, 42);
    assert.equal(solveArithmetic("Compute 2^10 - 24 / 4")?.value, 1018);
    assert.equal(solveArithmetic("What is 10 divided by 4?")?.value, 2.5);
    assert.equal(solveArithmetic("What is the capital of France?"), null);
    assert.equal(solveArithmetic("Chapter 7 of 12"), null);
    assert.equal(solveArithmetic("What is 1/0?"), null);
  });
});

// ---------------------------------------------------------------------------------------------
// HTTP level

describe("LM test double over HTTP", () => {
  let double: LmDouble;
  let root: string;
  before(async () => {
    double = await startLmDouble({ models: ["test-model", "other-model"] });
    root = double.url.replace(/\/v1$/, "");
  });
  after(() => double.close());
  beforeEach(() => double.control.reset());

  test("listens on 127.0.0.1 with a /v1 base URL and lists its models", async () => {
    assert.match(double.url, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    assert.equal(double.url, `http://127.0.0.1:${double.port}/v1`);
    const response = await fetch(`${double.url}/models`);
    assert.equal(response.status, 200);
    const body = (await response.json()) as { object: string; data: Array<{ id: string; object: string }> };
    assert.equal(body.object, "list");
    assert.deepEqual(body.data.map((m) => m.id), ["test-model", "other-model"]);
  });

  test("answers a ChatAdapter prompt with markers, typed values, usage and the request's model", async () => {
    const completion = await complete(double, { model: "my-model", messages: chatPrompt("What is 2+3?") });
    assert.equal(completion.object, "chat.completion");
    assert.equal(completion.model, "my-model");
    assert.equal(completion.choices[0]?.finish_reason, "stop");
    const content = contentOf(completion);
    assert.ok(content.endsWith("\n\n[[ ## completed ## ]]"), content);
    const sections = new Map(chatSections(content));
    assert.deepEqual([...sections.keys()], [...OUTPUT_NAMES, "completed"]);
    assert.equal(sections.get("answer"), "5");
    assert.equal(sections.get("reasoning"), "Evaluating 2+3 gives 5.");
    assert.ok(["positive", "negative", "neutral"].includes(sections.get("sentiment") ?? ""), content);
    const tags: unknown = JSON.parse(sections.get("tags") ?? "null");
    assert.ok(Array.isArray(tags) && tags.length > 0 && tags.every((t) => typeof t === "string"), content);
    assert.match(sections.get("count") ?? "", /^\d+$/);
    const score = Number(sections.get("score"));
    assert.ok(score >= 0 && score <= 1, content);
    assert.match(sections.get("ok") ?? "", /^(True|False)$/);

    const promptChars = CHAT_SYSTEM.length + userMessage("What is 2+3?", CHAT_REMINDER).length;
    assert.ok(Math.abs(completion.usage.prompt_tokens - promptChars / 4) < 10, JSON.stringify(completion.usage));
    assert.equal(completion.usage.completion_tokens, Math.ceil(content.length / 4));
    assert.equal(completion.usage.total_tokens, completion.usage.prompt_tokens + completion.usage.completion_tokens);

    const again = await complete(double, { model: "my-model", messages: chatPrompt("What is 2+3?") });
    assert.equal(contentOf(again), content, "same prompt, same answer");
    const other = contentOf(await complete(double, { messages: chatPrompt("Why is the sky blue?") }));
    assert.equal(new Map(chatSections(other)).get("answer"), "answer to: Why is the sky blue?");

    const [recorded] = double.requests();
    assert.equal(recorded?.outcome, "answered");
    assert.equal(recorded?.prompt?.adapter, "chat");
    assert.deepEqual(recorded?.prompt?.inputs, { question: "What is 2+3?", context: '["c1", "c2"]' });
  });

  test("answers a JSONAdapter prompt with one JSON object of typed values", async () => {
    const completion = await complete(double, {
      messages: [
        { role: "system", content: JSON_SYSTEM },
        { role: "user", content: userMessage("What is 7 * 6?", JSON_REMINDER) },
      ],
    });
    const value = JSON.parse(contentOf(completion)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(value), OUTPUT_NAMES);
    assert.equal(value["answer"], "42");
    assert.ok(["positive", "negative", "neutral"].includes(value["sentiment"] as string));
    assert.ok(Array.isArray(value["tags"]));
    assert.ok(Number.isInteger(value["count"]));
    assert.equal(typeof value["score"], "number");
    assert.equal(typeof value["ok"], "boolean");
  });

  test("follows response_format json_schema when the prompt is not DSPy's", async () => {
    const schema = {
      type: "object",
      properties: {
        answer: { type: "string" },
        items: { type: "array", items: { type: "integer" }, minItems: 3 },
        level: { enum: ["low", "high"] },
        nested: { $ref: "#/$defs/Nested" },
      },
      required: ["answer", "items", "level", "nested"],
      $defs: { Nested: { type: "object", properties: { flag: { type: "boolean" }, when: { type: "string", format: "date" } } } },
    };
    const completion = await complete(double, {
      messages: [{ role: "user", content: "What is 3 + 4?" }],
      response_format: { type: "json_schema", json_schema: { name: "Out", schema, strict: true } },
    });
    const value = JSON.parse(contentOf(completion)) as Record<string, unknown>;
    assert.equal(value["answer"], "7");
    assert.ok(Array.isArray(value["items"]) && value["items"].length >= 3 && value["items"].every(Number.isInteger));
    assert.ok(["low", "high"].includes(value["level"] as string));
    const nested = value["nested"] as Record<string, unknown>;
    assert.equal(typeof nested["flag"], "boolean");
    assert.equal(nested["when"], "2024-01-01");
  });

  test("answers the last user message of a few-shot prompt, not a demo", async () => {
    const completion = await complete(double, {
      messages: [
        { role: "system", content: CHAT_SYSTEM },
        { role: "user", content: userMessage("What is 1+1?", null) },
        { role: "assistant", content: "[[ ## reasoning ## ]]\n1+1=2\n\n[[ ## answer ## ]]\n2\n\n[[ ## completed ## ]]\n" },
        { role: "user", content: userMessage("What is 10-4?", CHAT_REMINDER) },
      ],
    });
    assert.equal(new Map(chatSections(contentOf(completion))).get("answer"), "6");
    assert.equal(double.requests()[0]?.prompt?.messageCount, 4);
  });

  test("answers a plain (non-DSPy) prompt deterministically", async () => {
    const completion = await complete(double, { messages: [{ role: "user", content: "Say hello" }] });
    assert.equal(contentOf(completion), "answer to: Say hello");
  });

  test("streams SSE chunks as OpenAI does; the deltas add up to the non-streamed content", async () => {
    const messages = chatPrompt("What is 2+3?");
    const expected = contentOf(await complete(double, { messages }));
    const response = await postJson(`${double.url}/chat/completions`, {
      model: "stream-model",
      messages,
      stream: true,
      stream_options: { include_usage: true },
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
    const text = await response.text();
    const events = text.split("\n\n").filter((e) => e.length > 0);
    assert.ok(events.every((e) => e.startsWith("data: ")), text);
    assert.equal(events.at(-1), "data: [DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice("data: ".length)) as Record<string, any>);
    assert.ok(chunks.length > 4, "content comes in several chunks");
    assert.ok(chunks.every((c) => c["object"] === "chat.completion.chunk" && c["model"] === "stream-model"));
    assert.equal(chunks[0]?.["choices"][0].delta.role, "assistant");
    const deltas = chunks.flatMap((c) => (c["choices"] as any[]).map((ch) => ch.delta.content ?? "")).join("");
    assert.equal(deltas, expected);
    const finish = chunks.flatMap((c) => (c["choices"] as any[]).map((ch) => ch.finish_reason)).filter((f) => f !== null);
    assert.deepEqual(finish, ["stop"]);
    const usageChunk = chunks.at(-1);
    assert.deepEqual(usageChunk?.["choices"], []);
    assert.equal(usageChunk?.["usage"].completion_tokens, Math.ceil(expected.length / 4));
  });

  test("http500 fails exactly the next N requests (set over POST /__control), then answers again", async () => {
    const set = await postJson(`${root}/__control`, { failure: { mode: "http500", count: 2 } });
    assert.equal(set.status, 200);
    assert.deepEqual(((await set.json()) as { failure: unknown }).failure, {
      mode: "http500",
      remaining: 2,
      retryAfterSeconds: 1,
    });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await postJson(`${double.url}/chat/completions`, { model: "m", messages: chatPrompt("q") });
      statuses.push(response.status);
      const body = (await response.json()) as { error?: { type: string } };
      if (response.status === 500) assert.equal(body.error?.type, "server_error");
    }
    assert.deepEqual(statuses, [500, 500, 200]);
    assert.equal(double.control.state().failure, null);
    assert.deepEqual(double.requests().map((r) => r.outcome), ["http500", "http500", "answered"]);
  });

  test("http429 answers with a Retry-After header and an OpenAI rate-limit error", async () => {
    double.control.failNext("http429", 1, { retryAfterSeconds: 3 });
    const response = await postJson(`${double.url}/chat/completions`, { model: "m", messages: chatPrompt("q") });
    assert.equal(response.status, 429);
    assert.equal(response.headers.get("retry-after"), "3");
    const body = (await response.json()) as { error: { code: string } };
    assert.equal(body.error.code, "rate_limit_exceeded");
  });

  test("failAll keeps failing until cleared", async () => {
    double.control.failAll("http500");
    for (let i = 0; i < 4; i++) {
      const response = await postJson(`${double.url}/chat/completions`, { model: "m", messages: chatPrompt("q") });
      assert.equal(response.status, 500);
      await response.arrayBuffer();
    }
    assert.equal(double.control.state().failure?.remaining, null);
    double.control.clearFailure();
    await complete(double, { messages: chatPrompt("q") });
  });

  test("malformed replies carry neither field markers nor a JSON object", async () => {
    double.control.failNext("malformed", 2);
    const chat = contentOf(await complete(double, { messages: chatPrompt("What is 2+3?") }));
    const json = contentOf(
      await complete(double, { messages: chatPrompt("What is 2+3?"), response_format: { type: "json_object" } }),
    );
    for (const content of [chat, json]) {
      assert.equal(content, MALFORMED_REPLY);
      assert.doesNotMatch(content, /\[\[|\{/);
    }
    assert.match(contentOf(await complete(double, { messages: chatPrompt("What is 2+3?") })), /\[\[ ## answer ## \]\]\n5/);
  });

  test("latency delays answers without serialising concurrent requests", async () => {
    double.control.setLatency(400);
    const started = Date.now();
    const elapsed = await Promise.all(
      [1, 2, 3, 4].map(async (i) => {
        await complete(double, { messages: chatPrompt(`What is ${i}+${i}?`) });
        return Date.now() - started;
      }),
    );
    const total = Date.now() - started;
    assert.ok(elapsed.every((ms) => ms >= 390), `each answer waited the latency: ${elapsed.join(", ")}`);
    // Served one after another they would take at least 1600 ms.
    assert.ok(total < 1200, `four concurrent 400 ms requests took ${total} ms`);
  });

  test("scripted rules: exact string, regex over JSON, field scoping, times, raw reply and precedence", async () => {
    const state = await postJson(`${root}/__control`, {
      rules: [
        { field: "question", match: "What is 2+2?", outputs: { answer: "5", count: 99, ok: true } },
        { field: "question", match: { regex: "capital of france", flags: "i" }, outputs: { answer: "Paris" } },
        { match: { contains: "ONCE" }, outputs: { answer: "first time only" }, times: 1 },
        { field: "question", match: { regex: "^raw" }, reply: "raw reply text" },
        { field: "context", match: { regex: "never-present" }, outputs: { answer: "unused" } },
      ],
    });
    assert.equal(state.status, 200);
    const answerFor = async (question: string): Promise<Map<string, string>> =>
      new Map(chatSections(contentOf(await complete(double, { messages: chatPrompt(question) }))));

    const wrong = await answerFor("What is 2+2?");
    assert.equal(wrong.get("answer"), "5", "scripted wrong answer wins over arithmetic");
    assert.equal(wrong.get("count"), "99");
    assert.equal(wrong.get("ok"), "True");
    assert.ok(["positive", "negative", "neutral"].includes(wrong.get("sentiment") ?? ""), "unscripted fields generated");
    assert.equal((await answerFor("  What is 2+2?  ")).get("answer"), "5", "string match ignores surrounding whitespace");
    assert.equal((await answerFor("What is the Capital of FRANCE?")).get("answer"), "Paris");
    assert.equal((await answerFor("Say it ONCE")).get("answer"), "first time only");
    assert.equal((await answerFor("Say it ONCE")).get("answer"), "answer to: Say it ONCE", "times: 1 is used up");
    assert.equal(contentOf(await complete(double, { messages: chatPrompt("raw please") })), "raw reply text");
    assert.equal((await answerFor("What is 3+3?")).get("answer"), "6", "unmatched prompts are generated");

    const rules = double.control.state().rules;
    assert.deepEqual(rules.map((r) => r.hits), [2, 1, 1, 1, 0]);
    assert.equal(rules[2]?.remaining, 0);
    assert.deepEqual(
      double.requests().map((r) => [r.outcome, r.rule]),
      [["scripted", 0], ["scripted", 0], ["scripted", 1], ["scripted", 2], ["answered", null], ["scripted", 3], ["answered", null]],
    );
  });

  test("scripted rules with `when`: message count (few-shot demos) and instructions", async () => {
    double.control.setRules([
      { field: "question", match: "Capital of Atlantis?", when: { minMessages: 3 }, outputs: { answer: "Poseidonia" } },
      {
        field: "question",
        match: "Capital of Atlantis?",
        when: { instructions: { regex: "^(?!Answer questions)" } },
        outputs: { answer: "Poseidonia (instructed)" },
      },
    ]);
    const answer = async (messages: Array<{ role: string; content: string }>) =>
      new Map(chatSections(contentOf(await complete(double, { messages })))).get("answer");
    const plain = chatPrompt("Capital of Atlantis?");
    assert.equal(await answer(plain), "answer to: Capital of Atlantis?", "no demo, default instructions: no rule");
    const demo = [
      { role: "user", content: userMessage("Capital of Lemuria?", null) },
      { role: "assistant", content: "[[ ## answer ## ]]\nMu City\n\n[[ ## completed ## ]]" },
    ];
    assert.equal(await answer([plain[0]!, ...demo, plain[1]!]), "Poseidonia", "a demo pair makes 4 messages");
    const instructed = [{ role: "system", content: CHAT_SYSTEM.replace("Answer questions with context.", "Name capitals.") }, plain[1]!];
    assert.equal(await answer(instructed), "Poseidonia (instructed)");
    assert.deepEqual(double.control.state().rules[0]!.when, { minMessages: 3, maxMessages: null, instructions: null });
    assert.throws(() => double.control.apply({ rules: [{ match: "x", outputs: {}, when: { minMessages: 0 } }] }), /minMessages/);
  });

  test("scripted rules through the programmatic API accept RegExp and answer JSONAdapter prompts as JSON", async () => {
    double.control.addRule({ field: "question", match: /weather/i, outputs: { answer: "sunny", tags: ["sun"] } });
    const completion = await complete(double, {
      messages: [
        { role: "system", content: JSON_SYSTEM },
        { role: "user", content: userMessage("How is the WEATHER?", JSON_REMINDER) },
      ],
    });
    const value = JSON.parse(contentOf(completion)) as Record<string, unknown>;
    assert.equal(value["answer"], "sunny");
    assert.deepEqual(value["tags"], ["sun"]);
    assert.equal(typeof value["count"], "number");
  });

  test("the control API rejects bad updates with 400 and changes nothing", async () => {
    double.control.setLatency(5);
    const bad: unknown[] = [
      { failure: { mode: "explode" } },
      { failure: { mode: "http500", count: 0 } },
      { latencyMs: -1 },
      { rules: [{ match: { regex: "(" }, outputs: {} }] },
      { rules: [{ match: "x" }] },
      { latencyMs: 10, surprise: true },
      { reset: "yes" },
    ];
    for (const update of bad) {
      const response = await postJson(`${root}/__control`, update);
      assert.equal(response.status, 400, JSON.stringify(update));
      assert.equal(typeof ((await response.json()) as { error: unknown }).error, "string");
    }
    const invalidJson = await fetch(`${root}/__control`, { method: "POST", body: "{not json" });
    assert.equal(invalidJson.status, 400);
    await invalidJson.arrayBuffer();
    assert.throws(() => double.control.apply({ failure: { mode: "hang", count: 1.5 } }), /positive integer/);
    const state = (await (await fetch(`${root}/__control`)).json()) as { latencyMs: number; failure: unknown; rules: unknown[] };
    assert.deepEqual([state.latencyMs, state.failure, state.rules], [5, null, []]);
  });

  test("reset clears latency, failure, rules and the request log; the sequence keeps counting", async () => {
    await complete(double, { messages: chatPrompt("q") });
    const seqBefore = double.requests()[0]?.seq ?? 0;
    double.control.apply({ latencyMs: 50, failure: { mode: "http500" }, rules: [{ match: "q", outputs: { answer: "a" } }] });
    const response = await postJson(`${root}/__control`, { reset: true });
    const state = (await response.json()) as Record<string, unknown>;
    assert.equal(state["latencyMs"], 0);
    assert.equal(state["failure"], null);
    assert.deepEqual(state["rules"], []);
    assert.equal(state["recordedRequests"], 0);
    assert.deepEqual(double.requests(), []);
    await complete(double, { messages: chatPrompt("q") });
    assert.equal(double.requests()[0]?.seq, seqBefore + 1);
    const log = (await (await fetch(`${root}/__control/requests`)).json()) as Array<{ seq: number }>;
    assert.deepEqual(log.map((r) => r.seq), [seqBefore + 1]);
  });

  test("rejects bodies without messages and unknown routes in OpenAI's error shape", async () => {
    const bad = await postJson(`${double.url}/chat/completions`, { model: "m" });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { type: string } }).error.type, "invalid_request_error");
    const missing = await fetch(`${double.url}/audio/speech`, { method: "POST", body: "{}" });
    assert.equal(missing.status, 404);
    await missing.arrayBuffer();
  });
});

describe("hang mode and shutdown", () => {
  test("a hanging request blocks nothing else, can be abandoned, and close() drops it", async () => {
    const double = await startLmDouble();
    try {
      double.control.failNext("hang", 2);
      const abandoned = new AbortController();
      const first = postJson(`${double.url}/chat/completions`, { model: "m", messages: chatPrompt("q1") }, {
        signal: abandoned.signal,
      });
      const firstOutcome = first.then(
        (response) => `answered ${response.status}`,
        (error: unknown) => (error as Error).name,
      );
      const second = postJson(`${double.url}/chat/completions`, { model: "m", messages: chatPrompt("q2") });
      const secondOutcome = second.then(
        (response) => `answered ${response.status}`,
        (error: unknown) => `failed: ${(error as Error).message}`,
      );
      const log = await double.waitForRequests(2);
      assert.deepEqual(log.map((r) => r.outcome), ["hang", "hang"]);

      // The hang budget is used up: a third request is answered while both others still hang.
      const third = await complete(double, { messages: chatPrompt("What is 2+3?") });
      assert.match(contentOf(third), /\[\[ ## answer ## \]\]\n5/);

      abandoned.abort();
      assert.equal(await firstOutcome, "AbortError");

      await double.close();
      assert.match(await secondOutcome, /^failed: /, "close() drops the hanging connection");
    } finally {
      await double.close();
    }
  });
});

describe("CLI", () => {
  test("main.ts prints one JSON line with the URL and exits 0 on SIGTERM", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", `${here}main.ts`, "--port", "0", "--latency-ms", "1"], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const exited = once(child, "exit");
    try {
      const lines = createInterface({ input: child.stdout });
      const [line] = (await once(lines, "line")) as [string];
      const info = JSON.parse(line) as { url: string; port: number; control: string };
      assert.match(info.url, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      const models = await fetch(`${info.url}/models`);
      assert.equal(models.status, 200);
      await models.arrayBuffer();
      const state = (await (await fetch(info.control)).json()) as { latencyMs: number };
      assert.equal(state.latencyMs, 1);
      child.kill("SIGTERM");
      const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
      assert.deepEqual([code, signal], [0, null], stderr);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Real DSPy against the double

interface ErrorInfo {
  type: string;
  module: string;
  mro: string[];
  message: string;
  status: number | null;
  retry_after: number | null;
  causes: string[];
}

interface Described {
  values: Record<string, unknown>;
  types: Record<string, string>;
}

type CaseResult = { ok: boolean; requests: number; seconds: number; error?: ErrorInfo; traceback?: string } & Record<
  string,
  any
>;

interface ProbeOutput {
  dspy_version: string;
  engines: Record<string, Record<string, CaseResult>>;
}

let probeOutput: ProbeOutput | undefined;

async function probe(): Promise<ProbeOutput> {
  if (probeOutput) return probeOutput;
  const run = await probeRun;
  const last = run.stdout.trim().split("\n").at(-1) ?? "";
  assert.equal(run.code, 0, `dspy_probe.py failed (exit ${run.code}):\n${run.stderr.slice(-4000)}`);
  probeOutput = JSON.parse(last) as ProbeOutput;
  return probeOutput;
}

async function okCase(engine: string, name: string): Promise<CaseResult> {
  const result = (await probe()).engines[engine]?.[name];
  assert.ok(result, `probe case ${engine}/${name} missing`);
  assert.equal(result.ok, true, `${engine}/${name}: ${JSON.stringify(result.error)}\n${result.traceback ?? ""}`);
  return result;
}

async function failedCase(engine: string, name: string): Promise<ErrorInfo> {
  const result = (await probe()).engines[engine]?.[name];
  assert.ok(result, `probe case ${engine}/${name} missing`);
  assert.equal(result.ok, false, `${engine}/${name} should have failed: ${JSON.stringify(result)}`);
  assert.ok(result.error);
  return result.error;
}

const SENTIMENTS = ["positive", "negative", "neutral"];

describe("real DSPy 3.4.1 against the double (dspy_probe.py)", { timeout: 180_000 }, () => {
  test("the probe ran DSPy 3.4.1 on both engines", async () => {
    const output = await probe();
    assert.equal(output.dspy_version, "3.4.1");
    assert.deepEqual(Object.keys(output.engines), ["auto", "litellm"]);
  });

  for (const engine of ["auto", "litellm"]) {
    describe(`engine=${engine}`, () => {
      test("Predict: multi-input, multi-output signature parses into the declared types", async () => {
        const { values, types } = (await okCase(engine, "predict_multi_io")) as unknown as Described;
        assert.deepEqual(types, { answer: "str", keywords: "list", confidence: "float" });
        assert.equal(values["answer"], "5");
        assert.ok((values["keywords"] as unknown[]).every((k) => typeof k === "string"));
        const confidence = values["confidence"] as number;
        assert.ok(confidence >= 0 && confidence <= 1);
      });

      test("ChainOfThought adds reasoning and keeps the declared types", async () => {
        const { values, types } = (await okCase(engine, "cot_multi_io")) as unknown as Described;
        assert.deepEqual(types, { reasoning: "str", answer: "str", keywords: "list", confidence: "float" });
        assert.equal(values["answer"], "answer to: Which planet is largest?");
        assert.deepEqual(values["keywords"], ["planet", "largest"]);
        assert.ok((values["reasoning"] as string).length > 0);
        const arithmetic = (await okCase(engine, "cot_arithmetic")) as unknown as Described;
        assert.deepEqual(arithmetic.values, { reasoning: "Evaluating 12 * 7 gives 84.", answer: "84" });
        const int = (await okCase(engine, "int_answer")) as unknown as Described;
        assert.deepEqual([int.values["answer"], int.types["answer"]], [42, "int"]);
      });

      test("Literal output: always an allowed value, deterministic per input, varied across inputs", async () => {
        const result = await okCase(engine, "literal");
        const first = result["first"] as string[];
        assert.ok(first.every((v) => SENTIMENTS.includes(v)), first.join(","));
        assert.deepEqual(result["again"], first);
        assert.ok(result["types"].every((t: string) => t === "str"));
        assert.ok(new Set(first).size >= 2, `hash-chosen values vary: ${first.join(",")}`);
        assert.ok(SENTIMENTS.includes(result["cot"].values.sentiment));
        assert.equal(result["cot"].types.reasoning, "str");
      });

      test("list[str], int, float and bool outputs parse into Python list/int/float/bool", async () => {
        const list = (await okCase(engine, "list_str")) as unknown as Described;
        assert.equal(list.types["tags"], "list");
        assert.deepEqual(list.values["tags"], ["quantum", "computing", "meets"]);
        for (const name of ["numbers", "numbers_cot"]) {
          const { values, types } = (await okCase(engine, name)) as unknown as Described;
          assert.equal(types["word_count"], "int");
          assert.equal(types["score"], "float");
          assert.equal(types["is_question"], "bool");
          const score = values["score"] as number;
          assert.ok(score >= 0 && score <= 1);
        }
      });

      test("pydantic model, dict and Optional outputs parse into their types", async () => {
        const { values, types } = (await okCase(engine, "structured")) as unknown as Described;
        assert.deepEqual(types, { person: "Person", counts: "dict", note: "str", rating: "int" });
        assert.equal(typeof (values["person"] as { age: unknown }).age, "number");
      });

      test("JSONAdapter (explicit, and with structured outputs) gets a JSON answer it parses", async () => {
        const result = await okCase(engine, "json_adapter");
        assert.equal(result["predict"].values.answer, "6");
        assert.deepEqual(result["predict"].types, { answer: "str", keywords: "list", confidence: "float" });
        assert.ok(SENTIMENTS.includes(result["cot"].values.sentiment));
        assert.deepEqual(result["structured"].types, { person: "Person", counts: "dict", note: "str", rating: "int" });
        assert.equal(result.requests, 3, "no fallback requests were needed");
        const schema = await okCase(engine, "json_adapter_schema");
        assert.equal(schema["values"].answer, "3");
        assert.equal(schema["response_format"]?.type, "json_schema", JSON.stringify(schema["response_format"]));
      });

      test("few-shot demos: the last user message is answered", async () => {
        const result = await okCase(engine, "few_shot");
        assert.equal(result["predict"].values.answer, "6");
        assert.equal(result["cot"].values.answer, "4");
        // system + 2 demo pairs + question, and system + 1 demo pair + question: the demos were sent.
        assert.deepEqual(result["message_counts"], [6, 4]);
      });

      test("scripted answers reach DSPy (right for one question, deliberately wrong for another)", async () => {
        const result = await okCase(engine, "scripted");
        assert.deepEqual([result["france"], result["wrong"], result["unscripted"]], ["Paris", "5", "5"]);
      });

      test("streaming: DSPy's stream listener receives the answer in chunks over SSE", async () => {
        const result = await okCase(engine, "streaming");
        assert.equal(result["sent_stream"], true);
        const expected = "answer to: What is the meaning of streaming in tests?";
        assert.equal(result["final"].values.answer, expected);
        assert.ok(result["chunks"].length > 1);
        assert.equal((result["chunks"] as string[]).join(""), expected);
      });

      test("HTTP 500 surfaces as dspy LMServerError after one attempt with num_retries=0", async () => {
        const error = await failedCase(engine, "http500");
        assert.equal(error.type, "LMServerError");
        assert.equal(error.module, "dspy.utils.exceptions");
        assert.ok(error.mro.includes("LMProviderError"));
        assert.equal(error.status, 500);
        assert.match(error.message, /told to fail this request with HTTP 500/);
        assert.equal((await probe()).engines[engine]?.["http500"]?.requests, 1);
      });

      test("HTTP 429 surfaces as dspy LMRateLimitError", async () => {
        const error = await failedCase(engine, "http429");
        assert.equal(error.type, "LMRateLimitError");
        assert.equal(error.status, 429);
        // Only the native lm15 engine carries the Retry-After header into the error.
        assert.equal(error.retry_after, engine === "auto" ? 7 : null);
      });

      test("malformed output: AdapterParseError once the JSONAdapter fallback also fails", async () => {
        const error = await failedCase(engine, "malformed");
        assert.equal(error.type, "AdapterParseError");
        assert.equal((await probe()).engines[engine]?.["malformed"]?.requests, 2, "ChatAdapter, then JSONAdapter");
        const once = await okCase(engine, "malformed_once");
        assert.equal(once.requests, 2, "a single malformed reply is absorbed by the JSONAdapter fallback");
        assert.equal(once["values"].answer, "5");
      });

      test("DSPy retries 429s (num_retries=2) and succeeds once the failures are used up", async () => {
        const result = await okCase(engine, "retry_429");
        assert.equal(result.requests, 3);
        assert.equal(result["values"].answer, "5");
      });

      test("a hanging provider hits the client timeout", async () => {
        const error = await failedCase(engine, "hang_timeout");
        assert.equal(error.type, engine === "auto" ? "LMTransportError" : "LMTimeoutError");
        const after = await okCase(engine, "after_failures");
        assert.equal(after["values"].answer, "5");
      });
    });
  }
});
