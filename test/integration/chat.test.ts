/**
 * History and chat (services/client/src/chat.ts) on a real fleet: the conversation kept in the session's KV
 * bucket reaches DSPy as a `dspy.History` input — the earlier turns in the prompt DSPy sends to the LM double —
 * on the worker started after the first one was killed (SIGKILL); bounded by turns; two turns of one session at once both kept.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { ValidationError } from "@dspex/protocol";
import { startHarness, type Harness } from "./harness.js";

describe("client.chat", { timeout: 120_000 }, () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ fleet: { workers: { general: 1 } } });
  });
  after(async () => {
    await h?.close();
  });

  test("the earlier turns reach DSPy's prompt, also on the worker started after the first was killed", async () => {
    const first = await h.client.chat("chat-1", "My name is Ada and I like compilers.");
    assert.equal(first.turns, 1);
    assert.equal(typeof first.outputs.answer, "string");
    // the worker that answered is killed; the supervisor starts another
    const old = h.fleet.workers.find((w) => w.pool === "general")!;
    const started = new Promise<{ id: string }>((resolve) => h.fleet.supervisor.once("ready", resolve));
    old.process.kill("SIGKILL");
    const replacement = await started;

    const before = h.lmDouble.requests().length;
    const second = await h.client.chat("chat-1", "What do I like?");
    assert.equal(second.worker, replacement.id);
    assert.equal(second.turns, 2);
    const body = h.lmDouble.requests().slice(before)[0]!.body as { messages: Array<{ role: string; content: string }> };
    const earlier = body.messages.filter((m) => m.role === "user" && m.content.includes("My name is Ada and I like compilers."));
    assert.equal(earlier.length, 1, "the first question is in the prompt once, as an earlier user turn");
    assert.ok(body.messages.indexOf(earlier[0]!) < body.messages.length - 1, "before the new question");
    assert.ok(body.messages.some((m) => m.role === "assistant" && m.content.includes(first.outputs.answer)), "with the first answer as the assistant's turn");

    const history = await h.client.chats.history("chat-1");
    assert.deepEqual(history.map((t) => t.question), ["My name is Ada and I like compilers.", "What do I like?"]);
    assert.deepEqual(history.map((t) => t.answer), [first.outputs.answer, second.outputs.answer]);
  });

  test("bounded by turns; concurrent turns of one session are both kept; a signature without history is refused", async () => {
    for (const q of ["one", "two", "three"]) await h.client.chat("chat-2", q, { maxTurns: 2 });
    assert.deepEqual((await h.client.chats.history("chat-2")).map((t) => t.question), ["two", "three"]);

    await Promise.all([h.client.chat("chat-3", "left"), h.client.chat("chat-3", "right")]);
    assert.deepEqual((await h.client.chats.history("chat-3")).map((t) => t.question).sort(), ["left", "right"]);

    await assert.rejects(h.client.chat("chat-4", "hi", { signature: "question -> answer" }), (e: unknown) => e instanceof ValidationError && e.field === "signature");
    await assert.rejects(
      h.client.predict("question, history: dspy.History -> answer", { question: "q", history: { messages: "not a list" } }),
      (e: unknown) => e instanceof ValidationError && /History/.test(e.message),
    );
    await h.client.chats.forget("chat-2");
    assert.deepEqual(await h.client.chats.history("chat-2"), []);
  });
});
