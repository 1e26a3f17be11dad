/**
 * Parity: the native TypeScript signatures (services/shared/src/signature) against REAL DSPy 3.4.1.
 *
 * One Python process (test/parity/dspy_signatures.py) receives the whole corpus as JSON on stdin and answers:
 *  - what `dspy.Signature(text[, instructions])` makes of every signature string (field names, input/output
 *    split, order, types normalised to the wire type-expression format), or that DSPy rejects it;
 *  - what `build_signature(wire)` (the worker) makes of the wire signature the TypeScript parser produced:
 *    it must equal `dspy.Signature(text)` field for field, including desc, prefix and instructions;
 *  - DSPy's `parse_value` for (type, value) pairs, against the TypeScript output coercion;
 *  - the error path of the worker's `check_signature` for malformed wire signatures, against `checkSignature`;
 *  - whether jsonschema (draft 2020-12) accepts the TypeScript JSON Schemas and agrees with validation.
 *
 *   node --conditions=development --import tsx --test test/parity/signature-parity.test.ts
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { SignatureError, type SignatureWire, type TypeExpr } from "@dspex/protocol";
import { checkSignature, compileSignature, parseSignature, signature, t } from "@dspex/native";

const root = join(import.meta.dirname, "../..");
const python = join(root, ".venv/bin/python");
const script = join(import.meta.dirname, "dspy_signatures.py");

// ---------------------------------------------------------------------------------------------------------
// Corpus

/** Strings DSPy accepts and the TypeScript parser must read identically. [text, instructions?] */
const VALID: [string, string?][] = [
  ["question -> answer"],
  ["context: list[str], question: str -> answer: str, confidence: float"],
  ["a, b, c -> d, e"],
  ["q: int -> a: bool"],
  ["q: float -> a: int"],
  ["x: Any -> y: Any"],
  ["x: list -> y: dict"],
  ["x: List[str] -> y: Dict[str, int]"],
  ["x: typing.List[typing.Optional[int]] -> y"],
  ["x: Optional[str] -> y: Optional[float]"],
  ["x: str | None -> y: None | int"],
  ["x: Union[int, None] -> y: Union[None, str]"],
  ["x: Optional[Optional[int]] -> y: Optional[str] | None"],
  ["x: Literal['a', 'b'] -> y: Literal[1, 2, 3]"],
  ["x -> y: Literal[True, False]"],
  ["x -> y: Literal['a', 1, True, 2.5]"],
  [`x -> y: Literal["double", 'single', "it's"]`],
  ["x -> y: Literal['a' 'b', 'c']"],
  ["x -> y: Literal['x', 'x', 'y']"],
  ["x -> y: Literal[Literal['a'], 'b']"],
  ["x -> y: list[Literal['pos', 'neg']]"],
  ["x -> y: dict[str, list[dict[str, int]]]"],
  ["x -> y: dict[Literal['a', 'b'], float]"],
  ["x -> y: dict[int, str]"],
  ["x -> y: list[list[list[int]]]"],
  ["x -> y: Optional[list[Optional[str]]]"],
  ["x: Text -> y: Text"],
  ["  spaced  ,  names   ->   out  "],
  ["a:int,b:float->c:bool"],
  ["a,\n b -> c"],
  ["a, b, -> c,"],
  ["a: (int) -> b: list[(str)]"],
  ["a: dict[(str, int)] -> b"],
  ["a: List[int,] -> b: Literal['a',]"],
  ["x -> y: Literal[0x10, 1_000, 0o7, 0b11, 00]"],
  ["x -> y: Literal[1e3, 2.5e-3, .5, 5.]"],
  [String.raw`x -> y: Literal[r'\d+', '\n', '\t\'q\'']`],
  [String.raw`x -> y: Literal['caf\u00e9', '\x41', 'a\
b']`],
  ["x -> y: Literal['é', '日本', '']"],
  ["camelCase, snake_case, with2digits -> HTMLOut, x2y"],
  ["match, case, type -> print"],
  ["json, schema, copy, model_x -> model_fields, model_dump_extra"],
  ["x: typing.Literal['a'] -> y: typing.Any"],
  ["x: builtins.str -> y: builtins.int"],
  ["x: Optional[Any] -> y: dict[str, Any]"],
  ["x: Union[int] -> y: Union[str, str]"],
  ["x: Optional[None | int] -> y"],
  ["x: Union[int, None, None] -> y: Union[Optional[int], None]"],
  ["question -> answer", "Answer concisely."],
  ["a, b -> c", ""],
  ["document -> summary: str, keywords: list[str]", "Summarize the document.\nThen list keywords."],
  ["q: Literal['yes', 'no'] -> a", "  Indented\n    instructions  "],
  // unions (issue 19)
  ["q: int | float -> a: str"],
  ["q: Union[int, str] -> a: Union[list[str], dict[str, int]]"],
  ["q: Union[int, str, None] -> a: int | str | None"],
  ["q: None | int | str -> a: Optional[Union[int, str]]"],
  ["q: Union[int, Union[str, float]] -> a: int | (str | bool)"],
  ["q: Union[int, str, int] -> a: int | str | str"],
  ["q: Optional[int] | str -> a: list[int | str]"],
  ["q -> a: dict[str, int | list[str]]"],
  ["q -> a: Union[Literal['x', 'y'], int]"],
  ["q -> a: Literal['a'] | Literal['b']"],
  ["q -> a: int | bool"],
  ["q -> a: typing.Union[int, typing.Any]"],
  ["q -> a: list[int] | list[str]"],
  // defaults: DSPy ignores them (the field stays required)
  ["q: str = 3 -> a"],
  ["q: int = 3 -> a: int = 5"],
  ["q = 'x', r: list[int] = [] -> a"],
  ["q, r = None -> a"],
  ["q: float = -1.5, r = foo(1) -> a"],
  ["q = {'k': 1}, r = (1, 2) -> a"],
  ["q: int | str = 'x' -> a"],
  // DSPy's own input types (issue 19)
  ["question, history: dspy.History -> answer"],
  ["photo: dspy.Image, clip: dspy.Audio, question -> answer"],
  // no inputs
  ["-> answer"],
  ["   -> answer: int, why"],
  ["-> a: list[str]", "List things."],
];

/** Strings DSPy rejects: the TypeScript parser must reject them too. */
const INVALID: string[] = [
  "question answer",
  "question => answer",
  "a -> b -> c",
  "a: Literal['->'] -> b",
  "a -> a",
  "a, b -> b, c",
  "class -> b",
  "a -> def",
  "a: -> b",
  "a b -> c",
  "1a -> b",
  ", -> b",
  "a: list[str -> b",
  "a: list[] -> b",
  "a: list[str]] -> b",
  "a: dict[str, int -> b",
  "a: list[str) -> b",
  "a: string -> b",
  "a: integer -> b",
  "a: boolean -> b",
  "a: object -> b",
  "a: List -> b",
  "a: Dict -> b",
  "a: Optional -> b",
  "a: Literal -> b",
  "a: Optional[int, str] -> b",
  "a: dict[str] -> b",
  "a: List[str, int] -> b",
  "a: Literal[-1] -> b",
  "a: Literal[f'x'] -> b",
  "a: Literal[()] -> b",
  "a: 'int' -> b",
  "a: str() -> b",
  "a: typing -> b",
  "a: typing.Foo -> b",
  "a: str[int] -> b",
  "a: int int -> b",
  "_a -> b",
  "__x__ -> b",
  "instructions -> b",
  "a -> signature",
  "fields -> b",
  "input_fields -> b",
  "model_config -> b",
  "model_dump -> b",
  "model_validate -> b",
  "a # comment -> b",
  "a: Literal[01] -> b",
  "a: Literal['x' -> b",
  // unions, defaults, input-less (issue 19)
  "a: Union -> b",
  "a: Union[] -> b",
  "a: int | -> b",
  "a: | int -> b",
  "a: int || str -> b",
  "a: int | 3 -> b",
  "a = 1, b -> c",
  "a -> b = 1, c",
  "a: int = -> b",
  "a = * -> b",
  "a = '->' -> b",
  "a: = 3 -> b",
  "a = 1 = 2 -> b",
];

/** Strings DSPy accepts but mangles or the wire cannot carry: rejected on purpose by TypeScript. */
const STRICTER: string[] = [
  "a ->",
  " -> ",
  "a, a -> b",
  "a = 1 + 2 -> b",
  "a: int = lambda: 1 -> b",
  "a = [x for x in y] -> b",
  "a = f(x=1) -> b",
  "a, /, b -> c",
  "*a -> b",
  "a, *, b -> c",
  "a: None -> b",
  "a: NoneType -> b",
  "a: dict[int | str, float] -> b",
  "a: Union[int, 'str'] -> b",
  "a: tuple[int, str] -> b",
  "a: Set[int] -> b",
  "a: bytes -> b",
  "a: list[str, int] -> b",
  "a: Literal[None, 'x'] -> b",
  "a: Literal[1j] -> b",
  "a: Literal[b'x'] -> b",
  "a: dict[list[int], str] -> b",
  "café -> b",
  "a: Annotated[int, Field(ge=0)] -> b",
];

const COERCE_TYPES: Record<string, TypeExpr> = {
  str: { kind: "str" },
  int: { kind: "int" },
  float: { kind: "float" },
  bool: { kind: "bool" },
  "list[int]": { kind: "list", items: { kind: "int" } },
  "list[str]": { kind: "list", items: { kind: "str" } },
  "dict[str, int]": { kind: "dict", keys: { kind: "str" }, values: { kind: "int" } },
  "dict[int, str]": { kind: "dict", keys: { kind: "int" }, values: { kind: "str" } },
  "Optional[int]": { kind: "optional", inner: { kind: "int" } },
  "Optional[str]": { kind: "optional", inner: { kind: "str" } },
  "Literal['a', 'b']": { kind: "literal", values: ["a", "b"] },
  "Literal[1, 2]": { kind: "literal", values: [1, 2] },
  "Literal[True]": { kind: "literal", values: [true] },
  "Optional[Literal['x']]": { kind: "optional", inner: { kind: "literal", values: ["x"] } },
  "list[Optional[float]]": { kind: "list", items: { kind: "optional", inner: { kind: "float" } } },
  Any: { kind: "any" },
  "Union[int, float]": { kind: "union", members: [{ kind: "int" }, { kind: "float" }] },
  "Union[float, int]": { kind: "union", members: [{ kind: "float" }, { kind: "int" }] },
  "Union[int, str]": { kind: "union", members: [{ kind: "int" }, { kind: "str" }] },
  "Union[bool, int]": { kind: "union", members: [{ kind: "bool" }, { kind: "int" }] },
  "Optional[Union[int, str]]": { kind: "optional", inner: { kind: "union", members: [{ kind: "int" }, { kind: "str" }] } },
  "Optional[Union[int, bool]]": { kind: "optional", inner: { kind: "union", members: [{ kind: "int" }, { kind: "bool" }] } },
  "Union[list[int], dict[str, int]]": {
    kind: "union",
    members: [{ kind: "list", items: { kind: "int" } }, { kind: "dict", keys: { kind: "str" }, values: { kind: "int" } }],
  },
  "Union[Literal['a', 'b'], int]": { kind: "union", members: [{ kind: "literal", values: ["a", "b"] }, { kind: "int" }] },
  "list[Union[int, bool]]": { kind: "list", items: { kind: "union", members: [{ kind: "int" }, { kind: "bool" }] } },
  "Union[str, list[str]]": { kind: "union", members: [{ kind: "str" }, { kind: "list", items: { kind: "str" } }] },
};

const COERCE_VALUES: unknown[] = [
  3, 3.5, true, false, 0, 1, 2, "3", " 3 ", "3.0", "1e3", "0.9", "true", "True", "TRUE", "yes", "no", "on", "off",
  "t", "f", "1", "0", "2", "'a'", '"a"', "a", " a ", "x", "Literal['a']", "str[b]", "Literal[2]", "[1, 2]",
  "['a', 'b']", "[1, 2", '{"a": 1}', "{'a': 1}", "1, 2", "hello world", "", "None", "null", "inf", "-inf",
  "Infinity", "NaN", "1_000", "0x10", "+3", "-3", ".5", "5.", "[]", "{}", [1, 2], ["a"], ["1", "2"], [1.5, null],
  { a: 1 }, { a: "2" }, { "1": "x" }, { " 2 ": "y" }, 1.5, "1.5", "(1, 2)", "[True, None]", "[1.5, None]",
  "```json\n[1, 2]\n```", "3 apples", "01", "[1, 'a']", "{'a': True}", "2.0", "1 000", "Yes", "-0",
  "The answer is [1, 2]", "{a: 1}", "[1, 2,]", "['a', \"b\",]", "Answer: yes", "  true  ", "[[1, 2], [3]]", "1.5e3", "-1.5",
  "[1, 2] and [3]", "`3`", "**3**", "{\"a\": [1, 2}", "[\"x\"]", "[1, 2] [3, 4]", "[ 'a' , 'b' ]", "{'a': None}", "[null]",
  "\"3\"", "'3'", "[\"1\", \"2\"]", "{\"a\": \"1\"}", "NaN", "nan", " 0.9 ", "0.9\n", "Literal['b']", "'b'",
];

/** Malformed (and a few fine) wire signatures: the error path must match the worker's. */
const q = { name: "q", type: { kind: "str" } };
const a = { name: "a", type: { kind: "str" } };
const WIRES: unknown[] = [
  { inputs: [q], outputs: [a] },
  { instructions: "Do it.", inputs: [q], outputs: [{ name: "a", type: { kind: "float" }, constraints: { ge: 0, le: 1 } }] },
  "q -> a",
  [],
  { inputs: [q] },
  { inputs: [], outputs: [a] },
  { inputs: [q], outputs: [a], extra: 1 },
  { instructions: 3, inputs: [q], outputs: [a] },
  { inputs: [q, "x"], outputs: [a] },
  { inputs: [{ type: { kind: "str" } }], outputs: [a] },
  { inputs: [{ name: "1a", type: { kind: "str" } }], outputs: [a] },
  { inputs: [{ name: "class", type: { kind: "str" } }], outputs: [a] },
  { inputs: [{ name: "_x", type: { kind: "str" } }], outputs: [a] },
  { inputs: [q], outputs: [{ name: "instructions", type: { kind: "str" } }] },
  { inputs: [{ name: "q" }], outputs: [a] },
  { inputs: [q], outputs: [a, { name: "b", type: { kind: "lst" } }] },
  { inputs: [q], outputs: [a, { name: "b", type: { kind: "list" } }] },
  { inputs: [q], outputs: [a, { name: "b", type: { kind: "list", items: { kind: "str" }, extra: 1 } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "dict", keys: { kind: "list", items: { kind: "int" } }, values: { kind: "str" } } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "literal", values: [] } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "literal", values: ["a", null] } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "optional", inner: { kind: "dict", keys: { kind: "str" } } } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "str" }, constraints: { ge: 0 } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "int" }, constraints: { min_length: 1 } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "str" }, constraints: { min_length: -1 } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "str" }, constraints: { max_length: 1.5 } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "float" }, constraints: { ge: 2, le: 1 } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "float" }, constraints: { gt: 1, le: 1 } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "float" }, constraints: { minimum: 1 } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "float" }, constraints: { ge: "1" } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "list", items: { kind: "str" } }, constraints: { min_length: 3, max_length: 2 } }] },
  { inputs: [q, q], outputs: [a] },
  { inputs: [q], outputs: [q] },
  { inputs: [{ ...q, desc: 3 }], outputs: [a] },
  { inputs: [{ ...q, description: "x" }], outputs: [a] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "optional", inner: { kind: "int" } }, constraints: { ge: 0 } }] },
  // unions and input-less signatures (issue 19)
  { inputs: [], outputs: [a] },
  { inputs: [q], outputs: [] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "union", members: [{ kind: "int" }, { kind: "str" }] } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "union", members: [{ kind: "int" }] } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "union" } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "union", members: [{ kind: "int" }, { kind: "optional", inner: { kind: "str" } }] } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "union", members: [{ kind: "int" }, { kind: "union", members: [{ kind: "str" }, { kind: "float" }] }] } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "union", members: [{ kind: "int" }, { kind: "str" }, { kind: "int" }] } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "union", members: [{ kind: "literal", values: ["a", "b"] }, { kind: "literal", values: ["b", "a"] }] } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "union", members: [{ kind: "int" }, { kind: "lst" }] } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "union", members: [{ kind: "int" }, { kind: "str" }] }, constraints: { ge: 0 } }] },
  { inputs: [q], outputs: [{ name: "b", type: { kind: "dict", keys: { kind: "union", members: [{ kind: "int" }, { kind: "str" }] }, values: { kind: "int" } } }] },
];

/** Input validation: the client's pre-publish check must agree with the worker's validate_inputs. */
const INPUT_SIG = parseSignature(
  "context: list[str], question, k: int, weight: float, strict: bool, mode: Literal['fast', 'slow'], " +
    "filters: dict[str, int], ids: dict[int, str], hint: Optional[str], limit: Optional[int], extra: Any, " +
    "num: int | list[int], flags: Optional[list[int | bool]] -> answer",
);
const base = { context: [], question: "q", k: 1, weight: 1, strict: true, mode: "fast", filters: {}, ids: {}, extra: null, num: 1 };
const INPUTS: Record<string, unknown>[] = [
  base,
  { ...base, context: '["a", "b"]', k: "3", weight: "0.9", strict: "yes", mode: "'slow'", filters: "{'a': 1}" },
  { ...base, question: ["p1", "p2"], hint: 3, limit: null },
  { ...base, question: { nested: true }, hint: ["x"] },
  { ...base, k: "1e3", weight: "inf", strict: 0, mode: "Literal['fast']", limit: "None" },
  { ...base, k: 2.0, weight: true, ids: { "1": "a", " 2 ": "b" }, extra: "[1, 2]" },
  { ...base, context: ["a", 3, null], k: 2.5 },
  { ...base, weight: "heavy", strict: "maybe", mode: "medium" },
  { ...base, filters: { a: "x", b: 2 }, ids: { x: "a" } },
  { ...base, question: null, hint: null },
  { ...base, zzz: 1 },
  { context: [] },
  { ...base, context: "just text", k: [1], filters: [] },
  { ...base, k: "01", limit: "2", strict: "1" },
  { ...base, num: [1, 2], flags: [1, true, "0", "yes"] },
  { ...base, num: "[1, 2]", flags: "[2, false]" },
  { ...base, num: "7", flags: null },
  { ...base, num: "x" },
  { ...base, num: [1, "x"], flags: [1, "x", 2.5] },
  { ...base, num: { a: 1 }, flags: "nope" },
];

// ---------------------------------------------------------------------------------------------------------
// Running DSPy

interface PyField {
  name: string;
  type: unknown;
  desc: string | null;
  prefix: string | null;
  constraints: string | null;
}
type PySig = { ok: true; instructions: string; inputs: PyField[]; outputs: PyField[] } | { ok: false; error: string };
interface PyOut {
  signatures: PySig[];
  builds: PySig[];
  coerce: ({ ok: true; value: unknown } | { ok: false; error: string })[];
  wires: ({ ok: true } | { ok: false; field: string; error: string })[];
  schemas: { schema_ok: boolean; valid: boolean[]; invalid: boolean[] }[];
  inputs: ({ ok: true; value: unknown } | { ok: false; problems: [string, string][] })[];
}

function tryParse(text: string, instructions?: string): SignatureWire | SignatureError {
  try {
    return parseSignature(text, instructions);
  } catch (err) {
    if (err instanceof SignatureError) return err;
    throw err;
  }
}

const parsedValid = VALID.map(([text, instr]) => tryParse(text, instr));
const coerceCases = Object.entries(COERCE_TYPES).flatMap(([name, type]) =>
  COERCE_VALUES.map((value) => ({ name, type, value })),
);

const schemaSigs = [
  signature()
    .input("question", t.str({ minLength: 1 }))
    .input("k", t.int({ ge: 1, le: 10 }))
    .input("tags", t.list(t.literal("a", "b"), { maxItems: 2 }), { optional: true })
    .input("weights", t.dict(t.int(), t.float()))
    .output("score", t.float({ gt: 0, lt: 1 }))
    .build(),
];
const schemaValues = [
  {
    valid: [
      { question: "q", k: 1, weights: {} },
      { question: "q", k: 10, tags: ["a", "b"], weights: { "1": 0.5, "-2": 1 } },
      { question: "q", k: 3, tags: null, weights: {} },
    ],
    invalid: [
      { question: "", k: 1, weights: {} },
      { question: "q", k: 0, weights: {} },
      { question: "q", k: 1.5, weights: {} },
      { question: "q", k: 1, tags: ["c"], weights: {} },
      { question: "q", k: 1, tags: ["a", "a", "b"], weights: {} },
      { question: "q", k: 1, weights: { x: 1 } },
      { question: "q", weights: {} },
      { question: "q", k: 1, weights: {}, extra: true },
    ],
  },
];

function runDspy(): PyOut {
  const request = {
    signatures: [
      ...VALID.map(([text, instructions]) => ({ text, instructions: instructions ?? null })),
      ...INVALID.map((text) => ({ text, instructions: null })),
      ...STRICTER.map((text) => ({ text, instructions: null })),
    ],
    builds: parsedValid.map((w) => (w instanceof SignatureError ? { inputs: [], outputs: [] } : w)),
    coerce: coerceCases.map((c) => ({ type: c.type, value: c.value })),
    wires: WIRES,
    schemas: schemaSigs.map((s, i) => ({ schema: s.inputsSchema, ...schemaValues[i] })),
    inputs: INPUTS.map((inputs) => ({ signature: INPUT_SIG, inputs })),
  };
  const r = spawnSync(python, [script], { input: JSON.stringify(request), encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`dspy_signatures.py failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as PyOut;
}

const py = runDspy();
const pySignature = (i: number): PySig => py.signatures[i]!;

/** The comparable part of DSPy's answer: names, sides, order and types. */
function shape(sig: { inputs: readonly { name: string; type: unknown }[]; outputs: readonly { name: string; type: unknown }[] }) {
  return {
    inputs: sig.inputs.map((f) => ({ name: f.name, type: f.type })),
    outputs: sig.outputs.map((f) => ({ name: f.name, type: f.type })),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Tests

test("the corpus is large enough to mean something", () => {
  assert.ok(VALID.length >= 40, `VALID has ${VALID.length}`);
  assert.ok(INVALID.length >= 40, `INVALID has ${INVALID.length}`);
  assert.equal(py.signatures.length, VALID.length + INVALID.length + STRICTER.length);
});

VALID.forEach(([text, instructions], i) => {
  test(`parse parity: ${JSON.stringify(text)}${instructions === undefined ? "" : " + instructions"}`, () => {
    const dspy = pySignature(i);
    assert.ok(dspy.ok, `DSPy rejected a VALID corpus entry: ${dspy.ok ? "" : dspy.error}`);
    const ours = parsedValid[i]!;
    assert.ok(!(ours instanceof SignatureError), `TypeScript rejected it: ${ours instanceof SignatureError ? ours.message : ""}`);
    // JSON round trip: the wire as it travels (numbers such as 1e3 compare as JSON numbers, as in Python's json).
    assert.deepEqual(shape(JSON.parse(JSON.stringify(ours)) as SignatureWire), shape(dspy));
    assert.equal(ours.instructions, instructions);
    for (const f of [...ours.inputs, ...ours.outputs]) {
      assert.equal(f.desc, undefined, "desc is only sent when set");
      assert.equal(f.prefix, undefined, "prefix is only sent when set");
    }
  });

  test(`build parity: build_signature(parse(${JSON.stringify(text)})) equals dspy.Signature(text)`, () => {
    const dspy = pySignature(i);
    const built = py.builds[i]!;
    assert.ok(built.ok, `build_signature failed: ${built.ok ? "" : built.error}`);
    assert.ok(dspy.ok);
    // Everything DSPy derives from the string: types, default desc/prefix, default or given instructions.
    assert.deepEqual(built, dspy);
  });
});

INVALID.forEach((text, k) => {
  test(`DSPy and TypeScript both reject ${JSON.stringify(text)}`, () => {
    const dspy = pySignature(VALID.length + k);
    assert.equal(dspy.ok, false, `DSPy accepted it: ${JSON.stringify(dspy)}`);
    const ours = tryParse(text);
    assert.ok(ours instanceof SignatureError, `TypeScript accepted it: ${JSON.stringify(ours)}`);
    const position = ours.details?.position as number;
    assert.equal(typeof position, "number");
    assert.ok(position >= 0 && position <= text.length, `position ${position} out of range`);
  });
});

STRICTER.forEach((text, k) => {
  test(`deliberately stricter than DSPy: ${JSON.stringify(text)}`, () => {
    const dspy = pySignature(VALID.length + INVALID.length + k);
    assert.equal(dspy.ok, true, `DSPy now rejects it too, move it to INVALID: ${JSON.stringify(dspy)}`);
    assert.ok(tryParse(text) instanceof SignatureError);
  });
});

function decodeValue(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(decodeValue);
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (Object.keys(o).length === 1 && typeof o.$float === "string") {
      return o.$float === "nan" ? NaN : o.$float === "inf" ? Infinity : -Infinity;
    }
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, decodeValue(x)]));
  }
  return v;
}

test("output coercion matches DSPy's parse_value on every (type, value) pair", () => {
  const mismatches: string[] = [];
  coerceCases.forEach((c, i) => {
    const dspy = py.coerce[i]!;
    const sig = compileSignature({ inputs: [{ name: "q", type: { kind: "str" } }], outputs: [{ name: "v", type: c.type }] });
    const ours = sig.checkOutputs({ v: c.value });
    const oursOk = ours.ok;
    const shown = `${c.name} ← ${JSON.stringify(c.value)}`;
    if (oursOk !== dspy.ok) {
      mismatches.push(`${shown}: DSPy ${dspy.ok ? `→ ${JSON.stringify(dspy.value)}` : "rejects"}, TypeScript ${oursOk ? `→ ${JSON.stringify(ours.value.v)}` : "rejects"}`);
      return;
    }
    if (oursOk && dspy.ok) {
      try {
        assert.deepEqual(ours.value.v, decodeValue(dspy.value));
      } catch {
        mismatches.push(`${shown}: DSPy → ${JSON.stringify(dspy.value)}, TypeScript → ${JSON.stringify(ours.value.v)}`);
      }
    }
  });
  assert.ok(coerceCases.length > 1000, `${coerceCases.length} cases`);
  assert.deepEqual(mismatches, []);
});

test("malformed wire signatures: the same error path as the worker's check_signature", () => {
  WIRES.forEach((wire, i) => {
    const pyResult = py.wires[i]!;
    let ours: { ok: true } | { ok: false; field: string | undefined } = { ok: true };
    try {
      checkSignature(wire);
    } catch (err) {
      assert.ok(err instanceof SignatureError, String(err));
      ours = { ok: false, field: err.field };
    }
    const theirs = pyResult.ok ? { ok: true } : { ok: false, field: pyResult.field };
    assert.deepEqual(ours, theirs, `wire #${i}: ${JSON.stringify(wire)} (worker: ${pyResult.ok ? "ok" : pyResult.error})`);
  });
});

test("input validation: the TypeScript pre-publish check agrees with the worker's validate_inputs", () => {
  const sig = compileSignature(INPUT_SIG);
  INPUTS.forEach((inputs, i) => {
    const theirs = py.inputs[i]!;
    const ours = sig.checkInputs(inputs);
    const shown = JSON.stringify(inputs);
    if (theirs.ok) {
      assert.ok(ours.ok, `${shown}: worker accepts, TypeScript says ${ours.ok ? "" : ours.problems.map((p) => p.message).join("; ")}`);
      assert.deepEqual(ours.value, decodeValue(theirs.value), shown);
    } else {
      assert.ok(!ours.ok, `${shown}: worker rejects (${JSON.stringify(theirs.problems)}), TypeScript accepts`);
      assert.deepEqual(ours.problems.map((p) => [p.code, p.path]), theirs.problems, shown);
    }
  });
  assert.ok(py.inputs.some((r) => r.ok) && py.inputs.some((r) => !r.ok));
});

test("JSON Schemas are valid draft 2020-12 and agree with the validators (checked by Python jsonschema)", () => {
  schemaSigs.forEach((sig, i) => {
    const r = py.schemas[i]!;
    assert.equal(r.schema_ok, true);
    assert.deepEqual(r.valid, schemaValues[i]!.valid.map(() => true));
    assert.deepEqual(r.invalid, schemaValues[i]!.invalid.map(() => false));
    for (const v of schemaValues[i]!.valid) assert.ok(sig.checkInputs(v).ok, JSON.stringify(v));
    for (const v of schemaValues[i]!.invalid) assert.ok(!sig.checkInputs(v).ok, JSON.stringify(v));
  });
});
