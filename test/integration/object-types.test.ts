/**
 * Object (pydantic) types through a real worker and real DSPy, with the LM double as the provider: an object
 * output — nested, with an optional field and a list of objects — comes back from DSPy's ChatAdapter and its
 * JSONAdapter, validated and typed in TypeScript; an object input reaches the prompt as JSON; a reply missing a
 * required field is a typed error naming it.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { LMOutputError, ValidationError } from "@dspex/protocol";
import { signature, t, type CompiledSignature } from "@dspex/native";
import { startHarness, type Harness } from "./harness.js";

const Address = t.object("Address", { city: t.str(), zip: t.field(t.str(), { optional: true }) });
const Person = t.object("Person", { name: t.str(), age: t.int({ ge: 0 }), addresses: t.list(Address) });
type Outputs<S> = S extends CompiledSignature<infer _I, infer O> ? O : never;
const ADA = { name: "Ada Lovelace", age: 36, addresses: [{ city: "London" }, { city: "Marylebone", zip: "NW1" }] };

describe("object types on the fleet", { timeout: 120_000 }, () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h?.close();
  });

  const extract = signature().input("text").output("person", Person).output("others", t.list(Person)).build();

  for (const adapter of ["chat", "json"] as const) {
    test(`an object output round-trips through DSPy's ${adapter} adapter`, async () => {
      h.lmDouble.control.setRules([{ field: "text", match: { contains: "Ada" }, outputs: { person: ADA, others: [] } }]);
      try {
        const before = h.lmDouble.requests().length;
        const r = await h.client.predict<Outputs<typeof extract>>(extract, { text: "Ada Lovelace, 36, lived in London." }, { lm: { ...h.lm, adapter } });
        const person = r.outputs.person; // typed: { name: string; age: number; addresses: { city: string; zip?: string | null }[] }
        assert.equal(person.name, "Ada Lovelace");
        assert.equal(person.age, 36);
        assert.deepEqual(person.addresses, [{ city: "London", zip: null }, { city: "Marylebone", zip: "NW1" }]);
        assert.deepEqual(r.outputs.others, []);
        const prompt = JSON.stringify(h.lmDouble.requests().slice(before)[0]!.body);
        assert.ok(prompt.includes("Address") && prompt.includes("addresses"), "DSPy described the model's JSON schema to the LM");
      } finally {
        h.lmDouble.control.setRules([]);
      }
    });
  }

  test("a recursive object type (a comment thread) round-trips through the worker", async () => {
    const Comment = t.object("Comment", { text: t.str(), replies: t.list(t.ref("Comment")) });
    const threads = signature().input("post").output("thread", Comment).build();
    const thread = { text: "first", replies: [{ text: "second", replies: [{ text: "third", replies: [] }] }] };
    h.lmDouble.control.setRules([{ field: "post", match: { contains: "thread" }, outputs: { thread } }]);
    try {
      const r = await h.client.predict<Record<string, unknown>>(threads, { post: "a thread" }, { lm: { ...h.lm, adapter: "json" } });
      assert.deepEqual(r.outputs.thread, thread);
    } finally {
      h.lmDouble.control.setRules([]);
    }
  });

  test("an object input reaches the prompt as JSON; a bad one is refused before publish, naming the field", async () => {
    const describe = signature().input("person", Person).output("summary").build();
    const before = h.lmDouble.requests().length;
    const r = await h.client.predict(describe, { person: ADA });
    assert.equal(typeof r.outputs.summary, "string");
    const prompt = JSON.stringify(h.lmDouble.requests().slice(before)[0]!.body);
    assert.ok(prompt.includes("Marylebone"));
    await assert.rejects(h.client.predict(describe, { person: { name: "Ada", addresses: [] } } as never), (err: unknown) => {
      assert.ok(err instanceof ValidationError);
      assert.ok((err.details as { problems: Array<{ path: string }> }).problems.some((p) => p.path === "person.age"));
      return true;
    });
    assert.equal(h.lmDouble.requests().length, before + 1, "nothing was sent for the bad input");
  });

  test("an LM answer missing a required field is an LMOutputError from the worker, naming the field", async () => {
    h.lmDouble.control.setRules([{ field: "text", match: { contains: "Grace" }, outputs: { person: { name: "Grace Hopper", addresses: [] }, others: [] } }]);
    try {
      await assert.rejects(h.client.predict(extract, { text: "Grace Hopper" }, { retry: { maxAttempts: 1 } }), (err: unknown) => {
        assert.ok(err instanceof LMOutputError, String(err));
        assert.match(err.message, /age/);
        return true;
      });
    } finally {
      h.lmDouble.control.setRules([]);
    }
  });
});
