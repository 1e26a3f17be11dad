/**
 * Native signatures: the DSPy string parser, the typed builder, JSON Schemas, and validation/coercion.
 *
 *   node --conditions=development --import tsx --test services/native/test/signature.test.ts
 */

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { DspexError, SignatureError, ValidationError, type SignatureWire } from "@dspex/protocol";
import {
  checkSignature,
  compileSignature,
  formatType,
  parseSignature,
  parseType,
  resolveSignature,
  signature,
  signatureCacheStats,
  t,
  validateInputs,
  validateOutputs,
  type ValidationProblem,
} from "../src/signature/index.js";

function signatureError(fn: () => unknown): SignatureError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SignatureError, `expected SignatureError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected a SignatureError");
}

function validationError(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ValidationError, `expected ValidationError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected a ValidationError");
}

function problems(err: ValidationError): ValidationProblem[] {
  return (err.details?.problems ?? []) as ValidationProblem[];
}

describe("parser", () => {
  test("untyped fields are str, order is kept, nothing DSPy defaults is sent", () => {
    assert.deepEqual(parseSignature("question, context -> answer"), {
      inputs: [
        { name: "question", type: { kind: "str" } },
        { name: "context", type: { kind: "str" } },
      ],
      outputs: [{ name: "answer", type: { kind: "str" } }],
    });
  });

  test("typed fields of every kind, nested", () => {
    const sig = parseSignature(
      "context: list[str], question: str, k: int, t: float, flag: bool, x: Any -> " +
        "answer: str, scores: dict[str, list[float]], label: Literal['pos', 'neg', 1, True], maybe: Optional[int], " +
        "other: str | None, nested: List[Dict[Literal['a', 'b'], Optional[list[int]]]]",
    );
    assert.deepEqual(
      sig.inputs.map((f) => [f.name, formatType(f.type)]),
      [
        ["context", "list[str]"],
        ["question", "str"],
        ["k", "int"],
        ["t", "float"],
        ["flag", "bool"],
        ["x", "Any"],
      ],
    );
    assert.deepEqual(sig.outputs.map((f) => f.type), [
      { kind: "str" },
      { kind: "dict", keys: { kind: "str" }, values: { kind: "list", items: { kind: "float" } } },
      { kind: "literal", values: ["pos", "neg", 1, true] },
      { kind: "optional", inner: { kind: "int" } },
      { kind: "optional", inner: { kind: "str" } },
      {
        kind: "list",
        items: {
          kind: "dict",
          keys: { kind: "literal", values: ["a", "b"] },
          values: { kind: "optional", inner: { kind: "list", items: { kind: "int" } } },
        },
      },
    ]);
  });

  test("unions: members flattened and deduplicated as Python's Union does, None lifted into optional", () => {
    const intStr = { kind: "union", members: [{ kind: "int" }, { kind: "str" }] };
    for (const text of ["int | str", "Union[int, str]", "Union[int, Union[str, int]]", "int | (str | int)", "typing.Union[int, str]"]) {
      assert.deepEqual(parseType(text), intStr, text);
    }
    for (const text of ["int | str | None", "Union[int, None, str]", "Optional[int | str]", "Optional[int] | str", "None | int | str"]) {
      assert.deepEqual(parseType(text), { kind: "optional", inner: intStr }, text);
    }
    assert.equal(formatType(parseType("list[int | bool]")), "list[Union[int, bool]]");
    assert.deepEqual(parseType("Literal['a'] | Literal['a']"), { kind: "literal", values: ["a"] });
  });

  test("defaults are read and dropped, as DSPy drops them; input-less signatures parse", () => {
    assert.deepEqual(parseSignature("q: str = 3, r = foo(1) -> a: int = 5"), parseSignature("q: str, r -> a: int"));
    assert.deepEqual(parseSignature("-> answer"), { inputs: [], outputs: [{ name: "answer", type: { kind: "str" } }] });
    const sig = compileSignature("-> answer: int | list[int]");
    assert.deepEqual(sig.validateOutputs({ answer: "[1, 2]" }), { answer: [1, 2] });
    assert.deepEqual(sig.validateOutputs({ answer: "3" }), { answer: 3 });
    assert.deepEqual(sig.validateInputs({}), {});
  });

  test("Optional spellings normalise like Python's Union", () => {
    for (const text of ["Optional[int]", "int | None", "None | int", "Union[int, None]", "Optional[Optional[int]]", "Optional[int] | None", "typing.Optional[int]"]) {
      assert.deepEqual(parseSignature(`q -> a: ${text}`).outputs[0]!.type, { kind: "optional", inner: { kind: "int" } }, text);
    }
    assert.deepEqual(parseType("Union[str]"), { kind: "str" });
    assert.deepEqual(parseType("Literal['a', 'a', 'b']"), { kind: "literal", values: ["a", "b"] });
    assert.deepEqual(parseType("Literal[Literal['a'], 'b']"), { kind: "literal", values: ["a", "b"] });
    assert.deepEqual(parseType("Literal['a' 'b', \"c\\n\"]"), { kind: "literal", values: ["ab", "c\n"] });
    assert.deepEqual(parseType("list"), { kind: "list", items: { kind: "any" } });
    assert.deepEqual(parseType("Text"), { kind: "str" });
  });

  test("instructions are passed separately and only sent when given", () => {
    const sig = parseSignature("q -> a", "Answer briefly.");
    assert.equal(sig.instructions, "Answer briefly.");
    assert.equal("instructions" in parseSignature("q -> a"), false);
    assert.equal(parseSignature("q -> a", "").instructions, "");
  });

  test("parses once: results are cached, frozen and shared", () => {
    const text = "cache_probe_input: list[int] -> cache_probe_output";
    const before = signatureCacheStats();
    const first = parseSignature(text);
    const second = parseSignature(text);
    assert.equal(first, second);
    const after = signatureCacheStats();
    assert.equal(after.misses - before.misses, 1);
    assert.equal(after.hits - before.hits, 1);
    assert.ok(Object.isFrozen(first) && Object.isFrozen(first.inputs) && Object.isFrozen(first.inputs[0]!.type));
    assert.throws(() => {
      (first.inputs as unknown as unknown[]).push({});
    }, TypeError);
    // instructions do not leak into the cached entry
    assert.equal(parseSignature(text, "x").instructions, "x");
    assert.equal(parseSignature(text).instructions, undefined);
  });

  const ERRORS: [string, string, number, string?][] = [
    // [signature, message fragment, position, suggestion]
    ["question answer", "missing '->'", 15],
    ["question => answer", "missing '->'", 9, "->"],
    ["a -> b -> c", "exactly one '->'", 7],
    ["q -> ", "no output fields", 4],
    ["question ->", "no output fields", 11],
    ["question, question -> answer", "duplicate input field 'question'", 10],
    ["a -> b, b", "duplicate output field 'b'", 8],
    ["question -> question", "both an input and an output", 12],
    ["q -> score: string", "unknown type 'string'", 12, "str"],
    ["q: integer -> a", "unknown type 'integer'", 3, "int"],
    ["q -> ok: boolean", "unknown type 'boolean'", 9, "bool"],
    ["q -> a: flaot", "unknown type 'flaot'", 8, "float"],
    ["q: list[str -> a", "unclosed '['", 7],
    ["q: dict[str, list[int] -> a", "unclosed '['", 7],
    ["q: list[str]] -> a", "unmatched ']'", 12],
    ["q: list[str) -> a", "does not match '['", 11],
    ["1q -> a", "invalid number literal", 0],
    ["q-1 -> a", "expected ',' between fields", 1],
    ["class -> a", "Python keyword", 0, "'class_'"],
    ["q, my field -> a", "expected ',' between fields", 6],
    ["_q -> a", "underscore", 0, "'q'"],
    ["q -> instructions", "reserved by DSPy", 5, "'instructions_'"],
    ["café -> a", "not a valid field name", 0, "'cafe'"],
    ["q: -> a", "missing type after ':'", 2, "str"],
    ["q = 3, r -> a", "without a default follows one with a default", 7],
    ["q: int = 1 + 2 -> a", "expected ',' between fields", 11],
    ["q: int = -> a", "missing default value", 9],
    ["*q -> a", "'*' parameters", 0],
    ["q: List -> a", "bare 'List'", 3, "list or list[...]"],
    ["q: Optional -> a", "needs type arguments", 3, "Optional[...]"],
    ["q: Optional[int, str] -> a", "exactly one type argument", 11],
    ["q: dict[str] -> a", "two type arguments", 7],
    ["q: Union[int, None] | -> a", "expected a type", 22],
    ["q: dict[int | str, int] -> a", "dict keys", 8, "str"],
    ["q: tuple[int, int] -> a", "not supported by the DSPex wire format", 3, "list[...]"],
    ["q -> a: Literal[-1]", "signed numbers", 16],
    ["q -> a: Literal[None, 'x']", "None inside Literal", 16, "Optional[Literal[...]]"],
    ["q -> a: Literal[f'x']", "f-string", 16],
    ["q: 'int' -> a", "quoted", 3, "int"],
    ["q: None -> a", "None is not a field type", 3, "Optional[T] or T | None"],
    ["q: dict[list[int], str] -> a", "dict keys", 8, "str"],
    ["q: str[int] -> a", "does not take type arguments", 6],
    ["q: dspy.Tool -> a", "custom type 'dspy.Tool'", 3],
    ["q # note -> a", "comments", 2],
    ["q: Literal['->'] -> a", "exactly one '->'", 17],
    ["q: Literal['x', 'y'] -> a: Literal['->']", "exactly one '->'", 36],
    ["q: Literal['x] -> a", "unterminated string", 11],
  ];
  for (const [text, fragment, position, suggestion] of ERRORS) {
    test(`error: ${JSON.stringify(text)} → ${fragment} at ${position}`, () => {
      const err = signatureError(() => parseSignature(text));
      assert.ok(err.message.includes(fragment), `message: ${err.message}`);
      assert.equal(err.details?.position, position, err.message);
      assert.equal(err.details?.suggestion, suggestion, err.message);
      assert.equal(err.type, "SignatureError");
      assert.ok(err instanceof DspexError);
    });
  }

  test("errors name the field and point at it", () => {
    const err = signatureError(() => parseSignature("question: str, k: integer -> answer"));
    assert.equal(err.field, "k");
    assert.ok(err.message.startsWith("input field 'k': unknown type 'integer' (at position 18); did you mean int?"));
    assert.ok(err.message.endsWith("\n  question: str, k: integer -> answer\n                    ^"), err.message);
    assert.deepEqual(err.toWire(), {
      type: "SignatureError",
      message: err.message,
      field: "k",
      retryable: false,
      details: { position: 18, suggestion: "int" },
    });
  });

  test("what DSPy accepts that the string grammar allows: trailing commas, newlines, parens, typing.X", () => {
    assert.deepEqual(
      parseSignature("a,\n  b: typing.List[int], -> c: (float),").inputs.map((f) => f.name),
      ["a", "b"],
    );
    assert.deepEqual(parseType("Literal[0x10, 1_000, .5, True]"), { kind: "literal", values: [16, 1000, 0.5, true] });
  });
});

describe("builder", () => {
  test("produces the wire format with desc, prefix, snake_case constraints and instructions", () => {
    const sig = signature()
      .input("question", t.str({ minLength: 1 }), { desc: "The question" })
      .input("passages", t.list(t.str(), { minItems: 1, maxItems: 5 }))
      .output("score", t.float(), { ge: 0, le: 1, prefix: "Score:" })
      .output("label", t.literal("good", "bad"))
      .instructions("Score the answer.")
      .build();
    assert.deepEqual(sig.wire, {
      instructions: "Score the answer.",
      inputs: [
        { name: "question", type: { kind: "str" }, desc: "The question", constraints: { min_length: 1 } },
        { name: "passages", type: { kind: "list", items: { kind: "str" } }, constraints: { min_length: 1, max_length: 5 } },
      ],
      outputs: [
        { name: "score", type: { kind: "float" }, prefix: "Score:", constraints: { ge: 0, le: 1 } },
        { name: "label", type: { kind: "literal", values: ["good", "bad"] } },
      ],
    });
    assert.equal(JSON.stringify(sig), JSON.stringify(sig.wire));
    assert.equal(String(sig), "question, passages -> score, label");
  });

  test("optional fields, type strings, untyped fields, and every t.* constructor", () => {
    const sig = signature()
      .input("q")
      .input("k", "int")
      .input("hint", t.str(), { optional: true })
      .input("meta", t.dict(t.str(), t.any()))
      .input("when", t.optional(t.int({ gt: 0 })))
      .output("yes", t.bool())
      .output("n", t.int({ lt: 10 }))
      .output("tags", t.parse("list[Literal['a', 'b']]"))
      .build();
    assert.deepEqual(
      sig.wire.inputs.map((f) => [f.name, formatType(f.type), f.constraints]),
      [
        ["q", "str", undefined],
        ["k", "int", undefined],
        ["hint", "Optional[str]", undefined],
        ["meta", "dict[str, Any]", undefined],
        ["when", "Optional[int]", { gt: 0 }],
      ],
    );
    assert.deepEqual(sig.validateInputs({ q: "x", k: "2", meta: {}, when: null }), { q: "x", k: 2, meta: {}, when: null });
  });

  test("builders are immutable", () => {
    const base = signature().input("q");
    const one = base.output("a");
    const two = base.output("b", t.int());
    assert.deepEqual(one.toWire().outputs.map((f) => f.name), ["a"]);
    assert.deepEqual(two.toWire().outputs.map((f) => f.name), ["b"]);
  });

  const BAD: [string, () => unknown, string][] = [
    ["duplicate input", () => signature().input("q").input("q"), "duplicate input field 'q'"],
    ["input and output", () => signature().input("q").output("q"), "both an input and an output"],
    ["invalid name", () => signature().input("my field"), "not a valid field name"],
    ["keyword", () => signature().input("def"), "Python keyword"],
    ["range on str", () => signature().input("q", t.str(), { ge: 1 }), "range constraints apply to int and float"],
    ["length on int", () => signature().input("q", t.int(), { maxLength: 3 }), "length constraints apply to str, list and dict"],
    ["minItems on str", () => t.str({ minItems: 1 } as never), "use minLength"],
    ["minLength on list", () => signature().input("q", t.list(t.str()), { minLength: 1 }), "use minItems"],
    ["empty range", () => t.float({ ge: 1, lt: 1 }), "no value satisfies"],
    ["min > max", () => t.list(t.int(), { minItems: 3, maxItems: 2 }), "min_length is greater than max_length"],
    ["nested constraints", () => t.list(t.int({ ge: 0 })), "constraints can only apply to a field's own value"],
    ["bad dict key", () => t.dict(t.list(t.str()) as never, t.int()), "dict keys must be"],
    ["no outputs", () => signature().input("q").build(), "at least one output"],
    ["bad type string", () => signature().input("q", "lst[str]"), "unknown type 'lst'"],
  ];
  for (const [name, fn, fragment] of BAD) {
    test(`rejects: ${name}`, () => {
      const err = signatureError(fn);
      assert.ok(err.message.includes(fragment), err.message);
    });
  }
});

describe("JSON Schema", () => {
  test("inputs and outputs objects (draft 2020-12)", () => {
    const sig = signature()
      .input("question", t.str({ maxLength: 200 }), { desc: "Ask" })
      .input("k", t.int({ ge: 1 }), { optional: true })
      .input("weights", t.dict(t.int(), t.float()))
      .output("label", t.literal("a"))
      .output("labels", t.list(t.literal("a", "b"), { maxItems: 3 }))
      .output("score", t.float({ gt: 0, lt: 1 }))
      .output("extra", t.any())
      .build();
    assert.deepEqual(sig.inputsSchema, {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      properties: {
        question: { description: "Ask", type: "string", maxLength: 200 },
        k: { anyOf: [{ type: "integer", minimum: 1 }, { type: "null" }] },
        weights: {
          type: "object",
          additionalProperties: { type: "number" },
          propertyNames: { pattern: "^\\s*[+-]?[0-9](_?[0-9])*\\s*$" },
        },
      },
      required: ["question", "weights"],
      additionalProperties: false,
    });
    assert.deepEqual(sig.outputsSchema.properties, {
      label: { const: "a" },
      labels: { type: "array", items: { enum: ["a", "b"] }, maxItems: 3 },
      score: { type: "number", exclusiveMinimum: 0, exclusiveMaximum: 1 },
      extra: {},
    });
    assert.deepEqual(sig.outputsSchema.required, ["label", "labels", "score", "extra"]);
    assert.equal(sig.inputsSchema, sig.inputsSchema, "computed once");
  });
});

describe("validation and coercion", () => {
  const sig = compileSignature(
    "context: list[str], question, k: int, weight: float, strict: bool, mode: Literal['fast', 'slow'], " +
      "filters: dict[str, int], hint: Optional[str] -> answer, score: float, ok: bool, tags: list[str], " +
      "label: Literal['pos', 'neg'], count: Optional[int], data: Any",
  );

  test("inputs: DSPy-compatible coercion", () => {
    const out = sig.validateInputs({
      context: '["a", "b"]',
      question: "Why?",
      k: "3",
      weight: "0.9",
      strict: "true",
      mode: " 'fast' ",
      filters: "{'a': 1}",
    });
    assert.deepEqual(out, {
      context: ["a", "b"],
      question: "Why?",
      k: 3,
      weight: 0.9,
      strict: true,
      mode: "fast",
      filters: { a: 1 },
    });
  });

  test("inputs typed str take any non-null value unchanged (DSPy formats lists itself)", () => {
    const s = compileSignature("context, question -> answer");
    assert.deepEqual(s.validateInputs({ context: ["p1", "p2"], question: 42 }), { context: ["p1", "p2"], question: 42 });
  });

  test("outputs: parse_value coercion, str() for str fields, None for missing optionals", () => {
    const out = sig.validateOutputs({
      answer: 42,
      score: "0.75",
      ok: "yes",
      tags: "```json\n[\"x\", \"y\"]\n```",
      label: "Literal['neg']",
      data: "{\"k\": [1, 2]}",
    });
    assert.deepEqual(out, {
      answer: "42",
      score: 0.75,
      ok: true,
      tags: ["x", "y"],
      label: "neg",
      count: null,
      data: { k: [1, 2] },
    });
    assert.equal(sig.validateOutputs({ ...out, answer: true }).answer, "True");
    assert.equal(sig.validateOutputs({ ...out, answer: [1, "a", null] }).answer, "[1, 'a', None]");
  });

  test("every problem is reported, with field, path, code, expected and got", () => {
    const err = validationError(() =>
      sig.validateInputs({ context: ["a", 3, null], k: 2.5, weight: "heavy", strict: "maybe", mode: "medium", filters: { a: "x" }, qestion: "typo" }),
    );
    assert.equal(err.field, "context");
    assert.equal(err.type, "ValidationError");
    const got = problems(err).map((p) => [p.code, p.path, p.expected ?? null, p.got ?? null]);
    assert.deepEqual(got, [
      ["type", "context[1]", "str", "number 3"],
      ["type", "context[2]", "str", "null"],
      ["missing", "question", "str", null],
      ["type", "k", "int", "number 2.5"],
      ["type", "weight", "float", 'string "heavy"'],
      ["type", "strict", "bool", 'string "maybe"'],
      ["type", "mode", "Literal['fast', 'slow']", 'string "medium"'],
      ["type", "filters.a", "int", 'string "x"'],
      ["unexpected", "qestion", null, null],
    ]);
    assert.ok(err.message.startsWith("9 problems with the inputs: input 'context[1]': expected str, got number 3;"), err.message);
    assert.ok(err.message.includes("unexpected input 'qestion'; did you mean 'question'?"), err.message);
    assert.ok(err.message.includes("input 'k': expected int, got number 2.5 (it has a fractional part)"), err.message);
  });

  test("single problem: the message is the problem", () => {
    const s = compileSignature("question -> answer");
    const err = validationError(() => s.validateInputs({}));
    assert.equal(err.message, "missing input 'question' (str)");
    assert.equal(err.field, "question");
    assert.deepEqual(err.toWire().details, {
      side: "input",
      problems: [{ field: "question", path: "question", code: "missing", expected: "str", message: "missing input 'question' (str)" }],
    });
  });

  test("constraints are checked after coercion", () => {
    const s = signature()
      .input("text", t.str({ minLength: 2, maxLength: 4 }))
      .input("items", t.list(t.int(), { maxItems: 2 }))
      .input("n", t.int({ gt: 0, le: 10 }), { optional: true })
      .output("score", t.float({ ge: 0, le: 1 }))
      .build();
    assert.deepEqual(s.validateInputs({ text: "ab", items: "[1, 2]", n: "10" }), { text: "ab", items: [1, 2], n: 10 });
    assert.deepEqual(s.validateInputs({ text: "😀😀", items: [] }), { text: "😀😀", items: [] }, "lengths count code points");
    const err = validationError(() => s.validateInputs({ text: "abcde", items: [1, 2, 3], n: 0 }));
    assert.deepEqual(
      problems(err).map((p) => [p.code, p.path, p.expected, p.message]),
      [
        ["constraint", "text", "max_length 4", "input 'text': must have at most 4 characters, got 5"],
        ["constraint", "items", "max_length 2", "input 'items': must have at most 2 items, got 3"],
        ["constraint", "n", "> 0", "input 'n': must be greater than 0, got 0"],
      ],
    );
    const out = validationError(() => s.validateOutputs({ score: "1.5" }));
    assert.equal(out.message, "output 'score': must be less than or equal to 1, got 1.5");
    assert.equal(out.details?.side, "output");
  });

  test("extra keys: inputs error by default; outputs keep by default; drop; or a list of allowed names", () => {
    const s = compileSignature("q -> a");
    assert.deepEqual(s.validateOutputs({ a: "x", reasoning: "r" }), { a: "x", reasoning: "r" });
    assert.deepEqual(s.validateOutputs({ a: "x", reasoning: "r" }, { extra: "drop" }), { a: "x" });
    assert.deepEqual(s.validateOutputs({ a: "x", reasoning: "r" }, { extra: ["reasoning"] }), { a: "x", reasoning: "r" });
    const err = validationError(() => s.validateOutputs({ a: "x", other: 1 }, { extra: ["reasoning"] }));
    assert.equal(err.field, "other");
    assert.deepEqual(s.validateInputs({ q: "x", z: 1 }, { extra: "drop" }), { q: "x" });
    validationError(() => s.validateInputs({ q: "x", z: 1 }));
  });

  test("null and missing: optional fields may be omitted, others may not be null", () => {
    const s = compileSignature("q, maybe: Optional[int], anything: Any -> a: int");
    assert.deepEqual(s.validateInputs({ q: "x", anything: null }), { q: "x", anything: null });
    const err = validationError(() => s.validateInputs({ q: null }));
    assert.deepEqual(problems(err).map((p) => [p.code, p.path]), [["type", "q"], ["missing", "anything"]]);
    assert.equal(validationError(() => s.validateOutputs({ a: null })).message, "output 'a': expected int, got null");
    assert.equal(validationError(() => s.validateOutputs({})).message, "missing output 'a' (int)");
  });

  test("non-object inputs", () => {
    const err = validationError(() => validateInputs("q -> a", ["x"]));
    assert.ok(err.message.startsWith("inputs must be an object"), err.message);
    assert.equal(err.field, undefined);
  });

  test("validateInputs/validateOutputs/resolveSignature take a string, wire JSON, builder or compiled signature", () => {
    const wire: SignatureWire = { inputs: [{ name: "q", type: { kind: "int" } }], outputs: [{ name: "a", type: { kind: "float" } }] };
    assert.deepEqual(validateInputs(wire, { q: "7" }), { q: 7 });
    assert.deepEqual(validateOutputs("q -> a: float", { a: "1e3" }), { a: 1000 });
    assert.deepEqual(validateInputs(signature().input("q", t.int()).output("a"), { q: true }), { q: 1 });
    assert.deepEqual(resolveSignature("q -> a", "Be brief."), { instructions: "Be brief.", ...parseSignature("q -> a") });
    assert.throws(() => resolveSignature(wire, "x"), SignatureError);
    const compiled = compileSignature("q -> a");
    assert.equal(compileSignature(compiled), compiled);
    assert.equal(compileSignature("q -> a"), compiled, "cached by text");
    assert.equal(compileSignature(compiled.wire), compiled, "cached by frozen wire identity");
    assert.equal(compileSignature({ ...wire }), compileSignature(JSON.parse(JSON.stringify(wire))), "cached by JSON");
  });

  test("checkSignature: malformed wire names the path", () => {
    const cases: [unknown, string][] = [
      [{ inputs: [], outputs: [] }, "signature.outputs"],
      [{ inputs: [], outputs: [{ name: "a", type: { kind: "union", members: [{ kind: "int" }, { kind: "optional", inner: { kind: "str" } }] } }] }, "signature.outputs[0].type.members[1]"],
      [{ inputs: [], outputs: [{ name: "a", type: { kind: "union", members: [{ kind: "int" }] } }] }, "signature.outputs[0].type.members"],
      [{ inputs: [{ name: "q", type: { kind: "str" } }], outputs: [{ name: "a", type: { kind: "lst" } }] }, "signature.outputs[0].type.kind"],
      [{ inputs: [{ name: "q", type: { kind: "list" } }], outputs: [{ name: "a", type: { kind: "str" } }] }, "signature.inputs[0].type.items"],
      [{ inputs: [{ name: "q", type: { kind: "str" } }], outputs: [{ name: "a", type: { kind: "str" } }, { name: "b", type: "str" }] }, "signature.outputs[1].type"],
      [{ inputs: [{ name: "q", type: { kind: "str" }, constraints: { ge: 1 } }], outputs: [{ name: "a", type: { kind: "str" } }] }, "signature.inputs[0].constraints.ge"],
      [{ inputs: [{ name: "q", type: { kind: "str" }, description: "x" }], outputs: [{ name: "a", type: { kind: "str" } }] }, "signature.inputs[0].description"],
    ];
    for (const [wire, path] of cases) {
      const err = signatureError(() => checkSignature(wire));
      assert.equal(err.field, path, err.message);
      assert.ok(err.message.startsWith(`${path}: `), err.message);
    }
    assert.equal(signatureError(() => checkSignature({ inputs: [], outputs: [] })).details?.suggestion, undefined);
    assert.equal(signatureError(() => compileSignature({ inputs: [{ name: "q", type: { kind: "str" }, description: "x" }], outputs: [] })).details?.suggestion, "desc");
  });

  test("speed: parse + compile + validate of a complex signature stays far below the 5 ms design target", () => {
    const complex = (i: number) =>
      `context_${i}: list[str], question: str, k: int, mode: Literal['a', 'b', 'c'], filters: dict[str, list[int]], ` +
      `hint: Optional[str] -> answer: str, score: float, tags: list[Literal['x', 'y']], meta: dict[str, Any], n: Optional[int]`;
    const inputs = (i: number) => ({ [`context_${i}`]: ["a", "b"], question: "q", k: "3", mode: "a", filters: { x: [1, 2] } });
    const runs = 200;
    let start = performance.now();
    for (let i = 0; i < runs; i++) compileSignature(complex(i)).validateInputs(inputs(i));
    const cold = (performance.now() - start) / runs;
    start = performance.now();
    for (let i = 0; i < runs; i++) compileSignature(complex(0)).validateInputs(inputs(0));
    const cached = (performance.now() - start) / runs;
    assert.ok(cold < 5, `cold ${cold.toFixed(3)} ms`);
    assert.ok(cached < 1, `cached ${cached.toFixed(3)} ms`);
  });
});
