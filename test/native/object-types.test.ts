/**
 * Object types in TypeScript: declared with the typed builder (their values typed), from JSON Schema and back,
 * named in signature strings; values validated the way pydantic validates the model on the worker, problems
 * naming the nested field; the wire checks the worker applies too.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SignatureError, ValidationError } from "@dspex/protocol";
import { compileSignature, parseSignature, signature, t, typeFromJsonSchema, typeJsonSchema } from "@dspex/native";

const Address = t.object("Address", { city: t.str(), zip: t.field(t.str(), { optional: true }) });
const Person = t.object("Person", { name: t.field(t.str(), { desc: "full name" }), age: t.int({ ge: 0 }), addresses: t.list(Address) }, { description: "Someone the text mentions." });

test("the builder declares an object type whose values are typed", () => {
  const sig = signature().input("text").output("person", Person).build();
  const out = sig.validateOutputs({ person: { name: "Ada", age: "36", addresses: [{ city: "London" }], extra: "dropped" } });
  // typed: out.person.addresses[0].zip is string | null | undefined
  const zip: string | null | undefined = out.person.addresses[0]!.zip;
  assert.equal(zip, null);
  assert.deepEqual(out.person, { name: "Ada", age: 36, addresses: [{ city: "London", zip: null }] });
  assert.deepEqual(sig.wire.outputs[0]!.type, Person.expr);
});

test("a missing or mistyped nested field is a ValidationError naming its path", () => {
  const sig = signature().input("text").output("person", Person).build();
  assert.throws(
    () => sig.validateOutputs({ person: { name: "Ada", addresses: [{ zip: "1" }] } }),
    (err: unknown) => {
      assert.ok(err instanceof ValidationError, String(err));
      const paths = (err.details as { problems: Array<{ path: string }> }).problems.map((p) => p.path).sort();
      assert.deepEqual(paths, ["person.addresses[0].city", "person.age"]);
      return true;
    },
  );
  assert.throws(() => sig.validateOutputs({ person: "Ada" }), (err: unknown) => err instanceof ValidationError && /expected Person/.test(err.message));
});

test("signature strings name declared object types; an undeclared class name says how to declare it", () => {
  const wire = parseSignature("text -> people: list[Person], lead: Optional[Person]", undefined, { Person: Person.expr });
  assert.deepEqual(wire.outputs[0]!.type, { kind: "list", items: Person.expr });
  assert.deepEqual(wire.outputs[1]!.type, { kind: "optional", inner: Person.expr });
  assert.throws(() => parseSignature("text -> person: Person"), (err: unknown) => err instanceof SignatureError && /declare it as an object type/.test(err.message));
  assert.throws(() => parseSignature("text -> p: Person", undefined, { str: Person.expr }), (err: unknown) => err instanceof SignatureError && err.field === "types.str");
  const compiled = compileSignature(wire);
  assert.equal(compiled.wire.outputs.length, 2);
});

test("JSON Schema out and back in gives the same type", () => {
  const schema = typeJsonSchema(Person.expr);
  assert.equal(schema.title, "Person");
  assert.deepEqual(schema.required, ["name", "age", "addresses"]);
  assert.deepEqual((schema.properties as Record<string, unknown>).age, { type: "integer", minimum: 0 });
  const back = typeFromJsonSchema({ ...schema, properties: { ...(schema.properties as object), age: { type: "integer" } } }, "X");
  assert.equal(back.kind, "object");
  assert.deepEqual(back.kind === "object" && back.fields.map((f) => [f.name, f.required ?? true]), [["name", true], ["age", true], ["addresses", true]]);
  const fromJs = t.fromJsonSchema({ type: "object", title: "Pet", properties: { kind: { enum: ["cat", "dog"] }, name: { type: ["string", "null"] } }, required: ["kind"] });
  assert.deepEqual(fromJs.expr, { kind: "object", name: "Pet", fields: [{ name: "kind", type: { kind: "literal", values: ["cat", "dog"] } }, { name: "name", type: { kind: "optional", inner: { kind: "str" } }, required: false }] });
  assert.throws(() => typeFromJsonSchema({ type: "object", properties: { x: { type: "tuple" } } }, "Y"), (err: unknown) => err instanceof SignatureError && err.field === "schema.properties.x");
});

test("the wire checks: identifiers, unique fields, nesting at most 8 deep", () => {
  assert.throws(() => t.object("not a name", { x: t.str() }), SignatureError);
  let deep = t.str() as ReturnType<typeof t.str> | ReturnType<typeof t.object>;
  for (let i = 0; i < 8; i++) deep = t.object(`L${i}`, { x: deep });
  assert.throws(() => t.object("L8", { x: deep }), (err: unknown) => err instanceof SignatureError && /nest at most 8/.test(err.message));
});

test("a recursive object type: t.ref names the enclosing object; validation recurses; JSON Schema anchors it", () => {
  const Comment = t.object("Comment", { text: t.str(), replies: t.list(t.ref("Comment")) });
  const sig = signature().input("post").output("thread", Comment).build();
  const out = sig.validateOutputs({ thread: { text: "a", replies: [{ text: "b", replies: [{ text: "c", replies: [] }] }] } });
  assert.deepEqual(out.thread, { text: "a", replies: [{ text: "b", replies: [{ text: "c", replies: [] }] }] });
  assert.throws(
    () => sig.validateOutputs({ thread: { text: "a", replies: [{ replies: [] }] } }),
    (err: unknown) => err instanceof ValidationError && (err.details as { problems: Array<{ path: string }> }).problems[0]!.path === "thread.replies[0].text",
  );
  const schema = typeJsonSchema(Comment.expr);
  assert.equal(schema.$anchor, "Comment");
  assert.deepEqual(((schema.properties as Record<string, { items: unknown }>).replies!).items, { $ref: "#Comment" });
  assert.throws(() => t.object("Post", { parent: t.ref("Comment") }), (err: unknown) => err instanceof SignatureError && /enclosing object type/.test(err.message));
});
