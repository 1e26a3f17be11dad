/**
 * op `complete`: one raw LM call through the fleet. The provider (the LM double) receives exactly the caller's
 * messages and only the knobs the contract allows, on the profile's model; malformed messages and unknown knobs
 * are refused before anything is published, naming the field.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { ValidationError } from "@dspex/protocol";
import type { ChatMessage } from "@dspex/client";
import { startHarness, type Harness } from "./harness.js";

let h: Harness;
before(async () => {
  h = await startHarness();
});
after(async () => {
  await h?.close();
});

test("client.complete sends the messages as they are and returns the completion, with usage", async () => {
  const before = h.lmDouble.requests().length;
  const messages: ChatMessage[] = [
    { role: "system", content: "You answer in one word." },
    { role: "user", content: "Name a colour." },
  ];
  const out = await h.client.complete(messages, { module: { temperature: 0.3, max_tokens: 20 } });
  assert.equal(out.completions.length, 1);
  assert.equal(typeof out.completions[0], "string");
  assert.ok(out.completions[0]!.length > 0);
  assert.equal(out.worker, h.fleet.workers[0]!.id);
  assert.ok(out.usage.total_tokens > 0, "usage is counted");
  const calls = h.lmDouble.requests().slice(before);
  assert.equal(calls.length, 1);
  const body = calls[0]!.body as { messages: ChatMessage[]; temperature: number; max_tokens: number; model: string };
  assert.deepEqual(body.messages, messages);
  assert.equal(body.temperature, 0.3);
  const limit = (body as { max_completion_tokens?: number }).max_completion_tokens ?? body.max_tokens;
  assert.equal(limit, 20, `the token limit reaches the provider: ${JSON.stringify(Object.keys(body))}`);
});

test("malformed messages and knobs the contract does not allow are ValidationErrors naming the field, before publish", async () => {
  const before = h.lmDouble.requests().length;
  await assert.rejects(h.client.complete([]), (e: unknown) => e instanceof ValidationError && e.field === "inputs.messages");
  await assert.rejects(
    h.client.complete([{ role: "tool", content: "x" } as unknown as ChatMessage]),
    (e: unknown) => e instanceof ValidationError && e.field === "inputs.messages[0].role",
  );
  await assert.rejects(
    h.client.complete([{ role: "user", content: "hi" }], { module: { api_base: "http://evil.example" } as never }),
    (e: unknown) => e instanceof ValidationError && /api_base/.test(`${e.field} ${e.message}`),
  );
  await assert.rejects(
    h.client.complete([{ role: "user", content: "hi" }], { module: { temperature: 7 } }),
    (e: unknown) => e instanceof ValidationError && /temperature/.test(`${e.field} ${e.message}`),
  );
  assert.equal(h.lmDouble.requests().length, before);
});

test("the worker checks the messages too (a caller from another language)", async () => {
  await assert.rejects(
    h.client.send({ op: "complete", signature: "messages: list[dict[str, str]] -> completions", inputs: { messages: [{ role: "user", content: "a", extra: "b" }] }, rawOutputs: true }),
    (e: unknown) => e instanceof ValidationError && e.field === "inputs.messages[0]",
  );
});
