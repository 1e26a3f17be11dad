/**
 * Parity: the native ChatAdapter and JSONAdapter (services/shared/src/adapters) against REAL DSPy 3.4.1.
 *
 * The corpus is generated here (signatures × instructions × demos × input values × adapter × module, and
 * completions of every shape, plus hand-picked edge cases); one Python process (test/parity/dspy_adapters.py)
 * answers it with the real DSPy at test time, so nothing expected is checked in that could drift from the pin:
 *  - format: the messages of `adapter.format(signature, demos, inputs)` must be equal, byte for byte;
 *  - parse: the outputs of `adapter.parse(signature, completion)` must be equal, or both must fail with the same
 *    error type and DSPy's message (the only part not compared is the pydantic ValidationError text DSPy embeds
 *    when a value does not parse — the TypeScript coercion reports its own problem there; which field and
 *    value failed is compared);
 *  - calls: a real `dspy.Predict`/`dspy.ChainOfThought` `acall` against a recording HTTP endpoint: the requests
 *    (messages and `response_format` as sent on the wire), their number (ChatAdapter's fallback to JSONAdapter
 *    makes a second one) and the prediction or error must equal what `callAdapter` produces.
 *
 *   node --conditions=development --import tsx --test test/parity/adapters-parity.test.ts
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import {
  AdapterFormatError,
  AdapterParseError,
  callAdapter,
  ChatAdapter,
  type ChatMessage,
  type Demo,
  JSONAdapter,
  type LMCapabilities,
  type LMRequest,
  moduleSignature,
  PyFloat,
  workerInputs,
  checkSignature,
} from "@dspex/native";
import type { FieldWire, SignatureWire, TypeExpr } from "@dspex/protocol";

const root = join(import.meta.dirname, "../..");
const python = join(root, ".venv/bin/python");
const script = join(import.meta.dirname, "dspy_adapters.py");

type Module = "predict" | "chain_of_thought";
type AdapterKind = "chat" | "json";
const ADAPTERS: AdapterKind[] = ["chat", "json"];
const MODULES: Module[] = ["predict", "chain_of_thought"];

// ---------------------------------------------------------------------------------------------------------
// Types and signatures

const str: TypeExpr = { kind: "str" };
const int: TypeExpr = { kind: "int" };
const float: TypeExpr = { kind: "float" };
const bool: TypeExpr = { kind: "bool" };
const any: TypeExpr = { kind: "any" };
const list = (items: TypeExpr): TypeExpr => ({ kind: "list", items });
const dict = (keys: TypeExpr, values: TypeExpr): TypeExpr => ({ kind: "dict", keys, values });
const opt = (inner: TypeExpr): TypeExpr => ({ kind: "optional", inner });
const lit = (...values: Array<string | number | boolean>): TypeExpr => ({ kind: "literal", values });
const f = (name: string, type: TypeExpr, extra: Partial<FieldWire> = {}): FieldWire => ({ name, type, ...extra });

/** Signatures without instructions; every one is combined with every instruction variant. */
const SIGNATURES: Record<string, { inputs: FieldWire[]; outputs: FieldWire[] }> = {
  qa: { inputs: [f("question", str)], outputs: [f("answer", str)] },
  scalars: {
    inputs: [f("text", str), f("n", int)],
    outputs: [f("count", int), f("ratio", float), f("flag", bool), f("note", str)],
  },
  containers: {
    inputs: [f("items", list(str)), f("weights", dict(str, float))],
    outputs: [f("tags", list(str)), f("counts", dict(str, int)), f("matrix", list(list(int))), f("records", list(dict(str, any)))],
  },
  optionals: {
    inputs: [f("query", str), f("hint", opt(str)), f("limit", opt(int))],
    outputs: [f("summary", opt(str)), f("score", opt(float)), f("labels", opt(list(str))), f("choice", opt(lit("x", "y")))],
  },
  literals: {
    inputs: [f("review", str)],
    outputs: [
      f("sentiment", lit("positive", "negative", "neutral")),
      f("stars", lit(1, 2, 3, 4, 5)),
      f("verdict", lit(true, false)),
      f("mixed", lit("a", 1, 2.5, true)),
      f("quoted", lit("it's", 'say "hi"', `both ' and "`)),
    ],
  },
  described: {
    inputs: [
      f("document", str, { desc: "The document to summarize.\nIt may span lines.", prefix: "Doc:" }),
      f("max_words", int, { desc: "${max_words}", constraints: { ge: 1, le: 500 } }),
    ],
    outputs: [
      f("summary", str, { desc: "A short summary  " }),
      f("keywords", list(str), { desc: "Keywords, «quoted»", constraints: { min_length: 1, max_length: 5 } }),
      f("confidence", float, { desc: "", constraints: { gt: 0, lt: 1.5 } }),
    ],
  },
  anys: {
    inputs: [f("payload", any), f("meta", dict(str, any))],
    outputs: [f("result", any), f("extra", dict(str, any)), f("items", list(any))],
  },
  unicode: {
    inputs: [f("question_text", str, { desc: "Frage 🤔 über Ünïcödé" })],
    outputs: [f("answer_text", str, { desc: "回答 — répondre" }), f("emoji_count", int)],
  },
  cot_clash_output: { inputs: [f("question", str)], outputs: [f("reasoning", list(str), { desc: "Steps." }), f("answer", str)] },
  cot_clash_input: { inputs: [f("reasoning", str), f("question", str)], outputs: [f("answer", str)] },
  many_inputs: {
    inputs: [f("a", str), f("b", int), f("c", float), f("d", bool), f("e", list(int)), f("g", opt(float))],
    outputs: [f("out", str)],
  },
  dict_keys: {
    inputs: [f("mapping", dict(int, str))],
    outputs: [f("inverse", dict(lit("a", "b"), float)), f("flags", dict(bool, str)), f("by_num", dict(float, list(str)))],
  },
  nested_optional: {
    inputs: [f("x", str)],
    outputs: [f("maybe", opt(opt(int))), f("floats", list(opt(float))), f("whatever", opt(any)), f("table", opt(dict(str, list(int))))],
  },
  single_literal: { inputs: [f("x", str)], outputs: [f("y", lit("only")), f("camelCaseName", lit(7))] },
  no_inputs: { inputs: [], outputs: [f("answer", str), f("count", int)] },
};

const INSTRUCTIONS: Array<string | undefined> = [
  undefined,
  "Answer the question.",
  "  Summarize the input.\n    Be concise.\n\n\tUse\ttabs here.\n  ",
  "Réponds en français 🇫🇷\r\nLine two\u2028Line three\x0cfour\n\n",
  "",
  "\n    Leading blank line.\n      Deeper.\n    Back.",
];

function wire(name: string, instructions: string | undefined): SignatureWire {
  const base = SIGNATURES[name]!;
  return checkSignature(instructions === undefined ? base : { instructions, ...base });
}

// ---------------------------------------------------------------------------------------------------------
// Values

const STRINGS = [
  "What is 2+2?",
  "multi\nline\ntext",
  "unicode: café 日本 🙂",
  "«guillemets» inside",
  "  padded  ",
  "",
  "tab\there and \\backslash",
  "trailing newline\n",
  'quotes "double" and \'single\'',
  "[[ ## answer ## ]] looks like a header",
];

/** An input value of a type; `variant` picks among values, deterministically. */
function sample(type: TypeExpr, variant: number, plain = false): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[variant % xs.length]!;
  switch (type.kind) {
    case "str":
      // A list given to a str field is formatted as a numbered list; plain values (validated inputs) are text.
      return pick<unknown>(plain ? STRINGS : [...STRINGS, ["one", "two\nlines"], [], ["solo «x»"], ["a", "b", "c"]]);
    case "int":
      return pick(plain ? [1, 7, 42, 250] : [0, 7, -42, 123456789]);
    case "float":
      return pick(plain ? [0.5, 3, -1.25, 1e-7, 1e16, 2.5e300] : [0.5, 3, -1.25, 1e-7, 1e16, NaN, Infinity, new PyFloat(3)]);
    case "bool":
      return pick([true, false]);
    case "any":
      return pick<unknown>(
        plain ? ["text", 3, 2.5, [1, "a"], { k: [1, 2] }, true] : ["text", 3, 2.5, [1, "a"], { k: [1, 2.5] }, null, true, new PyFloat(3), [new PyFloat(1), NaN]],
      );
    case "list":
      return pick([[], [sample(type.items, variant + 1, plain)], [sample(type.items, variant + 1, plain), sample(type.items, variant + 2, plain)]]);
    case "dict":
      return pick<unknown>([{}, { [dictKey(type.keys, variant)]: sample(type.values, variant + 1, plain) }]);
    case "optional":
      return variant % 3 === 0 ? null : sample(type.inner, variant, plain);
    case "literal":
      return pick(type.values);
  }
}

function dictKey(type: TypeExpr, variant: number): string {
  switch (type.kind) {
    case "int":
      return String([1, -2][variant % 2]);
    case "float":
      return ["1.5", "2"][variant % 2]!;
    case "bool":
      return ["true", "false"][variant % 2]!;
    case "literal":
      return String(type.values[variant % type.values.length]);
    default:
      return ["key", "ключ", "with space"][variant % 3]!;
  }
}

function inputsFor(sig: SignatureWire, variant: number, plain: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  sig.inputs.forEach((field, i) => {
    // An optional input is sometimes left out altogether (DSPy then formats no section for it).
    if (field.type.kind === "optional" && (variant + i) % 4 === 1) return;
    out[field.name] = sample(field.type, variant + i * 3, plain);
  });
  return out;
}

function outputsFor(fields: readonly FieldWire[], variant: number): Record<string, unknown> {
  return Object.fromEntries(fields.map((field, i) => [field.name, sample(field.type, variant + i * 5 + 1, true)]));
}

/** Demo sets: none, complete, incomplete, with None values, dropped ones, list values for str outputs. */
function demosFor(sig: SignatureWire, variant: number): Demo[] {
  const full = (v: number): Demo => ({ ...inputsFor(sig, v, false), ...outputsFor(sig.outputs, v) });
  const [firstOut] = sig.outputs;
  const [firstIn] = sig.inputs;
  switch (variant % 6) {
    case 0:
      return [];
    case 1:
      return [full(1)];
    case 2:
      return [full(2), full(3)];
    case 3: {
      const partial: Record<string, unknown> = { ...full(4) };
      delete partial[sig.outputs[sig.outputs.length - 1]!.name];
      return [full(5), partial];
    }
    case 4: {
      const withNone = { ...full(6), [firstOut!.name]: null };
      const inputsOnly = inputsFor(sig, 7, false);
      const extra = { ...full(8), unrelated: "ignored", another: 1 };
      return [withNone, inputsOnly, extra];
    }
    default: {
      const outputsOnly = outputsFor(sig.outputs, 9);
      const listForStr = { ...full(10), ...Object.fromEntries(sig.outputs.filter((o) => o.type.kind === "str").map((o) => [o.name, ["x", "y\nz"]])) };
      const noneInput = firstIn === undefined ? full(11) : { ...full(11), [firstIn.name]: null };
      return [outputsOnly, listForStr, noneInput];
    }
  }
}

/** Values travel to Python as JSON: a PyFloat or a non-finite number as {"$float": repr}. */
function toPy(value: unknown): unknown {
  if (value instanceof PyFloat) return { $float: floatText(value.value) };
  if (typeof value === "number" && !Number.isFinite(value)) return { $float: floatText(value) };
  if (Array.isArray(value)) return value.map(toPy);
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toPy(v)]));
  return value;
}

function floatText(n: number): string {
  return Number.isNaN(n) ? "nan" : n === Infinity ? "inf" : n === -Infinity ? "-inf" : Object.is(n, -0) ? "-0.0" : String(n);
}

function fromPy(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromPy);
  if (value !== null && typeof value === "object") {
    const o = value as Record<string, unknown>;
    if (Object.keys(o).length === 1 && typeof o.$float === "string") return Number(o.$float.replace("inf", "Infinity").replace("nan", "NaN"));
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, fromPy(v)]));
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------------
// Format corpus

interface FormatCase {
  label: string;
  adapter: AdapterKind;
  module: Module;
  signature: SignatureWire;
  demos: Demo[];
  inputs: Record<string, unknown>;
  /** Inputs go through input validation first (the router's on the TypeScript side, the worker's in Python). */
  validate: boolean;
}

const formatCases: FormatCase[] = [];
let n = 0;
for (const name of Object.keys(SIGNATURES)) {
  INSTRUCTIONS.forEach((instructions, ii) => {
    const signature = wire(name, instructions);
    for (const adapter of ADAPTERS) {
      for (const module of MODULES) {
        for (const demoVariant of [0, 1 + (ii % 2), 3 + (ii % 3)]) {
          const validate = n % 3 === 0;
          formatCases.push({
            label: `${name} / instructions #${ii} / ${adapter} / ${module} / demos #${demoVariant}${validate ? " / validated" : ""}`,
            adapter,
            module,
            signature,
            demos: demosFor(signature, demoVariant),
            inputs: inputsFor(signature, n, validate),
            validate,
          });
          n++;
        }
      }
    }
  });
}
const generatedFormatCount = formatCases.length;

// Hand-picked: values at the edges of DSPy's formatting.
const qa = wire("qa", undefined);
const anyIn = checkSignature({ inputs: [f("x", any)], outputs: [f("y", str)] });
const handFormat: Array<Omit<FormatCase, "validate"> & { validate?: boolean }> = [
  { label: "custom-type markers in an input split the user message into parts", adapter: "chat", module: "predict", signature: qa, demos: [],
    inputs: { question: 'see <<CUSTOM-TYPE-START-IDENTIFIER>>[{"type": "image_url", "image_url": {"url": "http://x/y.png"}}, "plain"]<<CUSTOM-TYPE-END-IDENTIFIER>> here' } },
  { label: "custom-type markers around non-JSON text", adapter: "json", module: "predict", signature: qa, demos: [],
    inputs: { question: "a <<CUSTOM-TYPE-START-IDENTIFIER>> just text <<CUSTOM-TYPE-END-IDENTIFIER>> b <<CUSTOM-TYPE-START-IDENTIFIER>><<CUSTOM-TYPE-END-IDENTIFIER>>" } },
  { label: "a list of numbers for a str input: DSPy's TypeError", adapter: "chat", module: "predict", signature: qa, demos: [], inputs: { question: [1, 2] } },
  { label: "a list holding a newline item inside a list for a str input: DSPy's AttributeError", adapter: "chat", module: "predict", signature: qa, demos: [], inputs: { question: [["\n"], "b"] } },
  { label: "a nested list and a dict as items of a str input", adapter: "chat", module: "predict", signature: qa, demos: [], inputs: { question: [["a", "b"], { k: "v", "«": 1 }] } },
  { label: "dict with a guillemet key as the only item of a str input", adapter: "chat", module: "predict", signature: qa, demos: [], inputs: { question: [{ "«": 1 }] } },
  { label: "non-printable characters in Python repr", adapter: "chat", module: "predict", signature: qa, demos: [], inputs: { question: [["nb\u00a0sp", "zw\u200bj", "ls\u2028x", "del\x7f", "astral 𝄞", "bom\ufeff"]] } },
  { label: "floats: large, tiny, negative zero, nested non-finite", adapter: "chat", module: "predict", signature: anyIn, demos: [],
    inputs: { x: { a: new PyFloat(-0), b: 1e22, c: 1.5e-5, d: [NaN, new PyFloat(-Infinity), new PyFloat(2), [new PyFloat(NaN)]], e: 9007199254740993, f: 2 ** 60 } } },
  { label: "top-level NaN for an Any input", adapter: "json", module: "predict", signature: anyIn, demos: [], inputs: { x: NaN } },
  { label: "an astral character and escapes in JSON values", adapter: "json", module: "predict", signature: anyIn, demos: [{ x: ["𝄞", "\u0001", "\u2028"], y: "ok" }], inputs: { x: { "𝄞": "\u001f\"\\" } } },
  { label: "an empty input dict still gets the output requirements", adapter: "chat", module: "predict", signature: qa, demos: [], inputs: {} },
  { label: "whitespace-only and BOM instructions", adapter: "chat", module: "chain_of_thought",
    signature: checkSignature({ instructions: "\ufeff  BOM first\n \u3000 ideographic space line\n  ", ...SIGNATURES.qa! }), demos: [], inputs: { question: "q" } },
  { label: "instructions whose cleandoc is not idempotent (ChainOfThought cleans twice)", adapter: "json", module: "chain_of_thought",
    signature: checkSignature({ instructions: "\n  first\n    second\n  third", ...SIGNATURES.qa! }), demos: [], inputs: { question: "q" } },
  { label: "demo values of the wrong type are formatted as given", adapter: "chat", module: "predict", signature: wire("scalars", undefined),
    demos: [{ text: 5, n: "seven", count: "many", ratio: [1, 2], flag: "yes", note: { a: 1 } }], inputs: { text: "t", n: 1 } },
  { label: "demo values of the wrong type, JSON adapter", adapter: "json", module: "predict", signature: wire("scalars", undefined),
    demos: [{ text: 5, n: "seven", count: "many", ratio: [1, new PyFloat(2)], flag: "yes", note: { a: 1 } }], inputs: { text: "t", n: 1 } },
];
for (const c of handFormat) formatCases.push({ validate: false, ...c });

// ---------------------------------------------------------------------------------------------------------
// Parse corpus

/** A value as an LM might write it in a ChatAdapter section. */
function chatText(value: unknown, style: number): string {
  if (typeof value === "string") return value;
  if (style === 1) return pyLiteral(value);
  return JSON.stringify(value);
}

/** Python literal syntax: single quotes, True/False/None. */
function pyLiteral(value: unknown): string {
  if (value === null) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "string") return `'${value.replaceAll("\\", "\\\\").replaceAll("'", "\\'").replaceAll("\n", "\\n")}'`;
  if (Array.isArray(value)) return `[${value.map(pyLiteral).join(", ")}]`;
  if (typeof value === "object") return `{${Object.entries(value as object).map(([k, v]) => `${pyLiteral(k)}: ${pyLiteral(v)}`).join(", ")}}`;
  return String(value);
}

function chatCompletion(values: Record<string, unknown>, style = 0, lineEnd = "\n"): string {
  return Object.entries(values)
    .map(([k, v]) => `[[ ## ${k} ## ]]${lineEnd}${chatText(v, style)}`)
    .join(lineEnd + lineEnd)
    .concat(`${lineEnd}${lineEnd}[[ ## completed ## ]]`);
}

function wrongValue(type: TypeExpr): unknown {
  switch (type.kind) {
    case "str":
      return 42;
    case "int":
      return "not a number";
    case "float":
      return "3.x";
    case "bool":
      return "maybe";
    case "list":
      return "{not: a list";
    case "dict":
      return "[1, 2]";
    case "optional":
      return wrongValue(type.inner);
    case "literal":
      return "none of them";
    case "any":
      return "fine anyway";
  }
}

/** Completions of every shape for the outputs of a (module) signature. */
function completionsFor(outputs: readonly FieldWire[], seed: number): Array<[string, string]> {
  const good = outputsFor(outputs, seed);
  const names = outputs.map((o) => o.name);
  const first = names[0]!;
  const last = names[names.length - 1]!;
  const withoutLast = Object.fromEntries(Object.entries(good).filter(([k]) => k !== last));
  const typed = outputs.find((o) => o.type.kind !== "str" && o.type.kind !== "any" && o.type.kind !== "optional") ?? outputs[0]!;
  const wrong = { ...good, [typed.name]: wrongValue(typed.type) };
  const strField = outputs.find((o) => o.type.kind === "str");
  const asPython = Object.fromEntries(Object.entries(good).map(([k, v]) => [k, typeof v === "number" && Number.isInteger(v) ? `${v}.0` : v]));
  const jsonFloats = JSON.stringify(good).replace(/(:\s*-?\d+)(?=[,}])/g, "$1.0");
  const chat = chatCompletion(good);
  const json = JSON.stringify(good);
  return [
    ["chat: well-formed", chat],
    ["chat: no completed marker", chat.replace("\n\n[[ ## completed ## ]]", "")],
    ["chat: preamble and trailing text", `Sure, here you go.\n\n${chat}\n\nAnything else?`],
    ["chat: value on the header line", Object.entries(good).map(([k, v]) => `[[ ## ${k} ## ]] ${chatText(v, 0)}`).join("\n")],
    ["chat: indented headers", chat.replaceAll("[[ ## ", "   [[ ## ")],
    ["chat: last field missing", chatCompletion(withoutLast)],
    ["chat: no fields at all", "I cannot answer that."],
    ["chat: first field twice (first wins)", `[[ ## ${first} ## ]]\n${chatText(good[first], 0)}\n\n[[ ## ${first} ## ]]\nsecond\n\n${chat}`],
    ["chat: unknown header between fields", chat.replace(`[[ ## ${last} ## ]]`, `[[ ## bogus ## ]]\nignored\n\n[[ ## ${last} ## ]]`)],
    ["chat: wrong type", chatCompletion(wrong)],
    ["chat: CRLF line endings", chatCompletion(good, 0, "\r\n")],
    ["chat: Python literal values", chatCompletion(good, 1)],
    ["chat: numbers written as floats", chatCompletion(asPython)],
    ["chat: unicode header and U+2028 line breaks", `[[ ## réponse ## ]]\nx\n${chat.replaceAll("\n\n", "\u2028\u2028")}`],
    ["chat: markdown fences around values", chatCompletion(Object.fromEntries(Object.entries(good).map(([k, v]) => [k, typeof v === "string" ? v : "```json\n" + JSON.stringify(v) + "\n```"])))],
    ["json: compact", json],
    ["json: indented", JSON.stringify(good, null, 2)],
    ["json: fenced with prose", `Here is the JSON:\n\`\`\`json\n${JSON.stringify(good, null, 2)}\n\`\`\`\nDone.`],
    ["json: single quotes and trailing comma", pyLiteral(good).replace(/\}$/, ", }")],
    ["json: unclosed", json.slice(0, -1)],
    ["json: last field missing", JSON.stringify(withoutLast)],
    ["json: extra keys", JSON.stringify({ extra_before: 1, ...good, zzz: [1, 2] })],
    ["json: wrong type", JSON.stringify(wrong)],
    ["json: integral numbers written as floats", jsonFloats],
    ["json: a str output given a number, a list and an object", strField ? JSON.stringify({ ...good, [strField.name]: [1.5, { a: 2 }, "x"] }).replace('"a":2', '"a":2.0') : json],
    ["json: an array", JSON.stringify([good])],
    ["json: two objects", `${json}\n${JSON.stringify({ [first]: good[first] })}`],
    ["json: braces in strings and text around", `Result {"note": "a } b"} then ${json.replace("{", '{"x": "{{", ')}`],
    ["empty", ""],
    ["whitespace only", "  \n\t "],
  ];
}

interface ParseCase {
  label: string;
  adapter: AdapterKind;
  module: Module;
  signature: SignatureWire;
  completion: string;
}

const parseCases: ParseCase[] = [];
for (const name of Object.keys(SIGNATURES)) {
  const signature = wire(name, undefined);
  for (const module of MODULES) {
    const moduleSig = moduleSignature(signature, module);
    for (const [label, completion] of completionsFor(moduleSig.outputs, parseCases.length)) {
      for (const adapter of ADAPTERS) parseCases.push({ label: `${name} / ${module} / ${adapter} / ${label}`, adapter, module, signature, completion });
    }
  }
}
const generatedParseCount = parseCases.length;

const scalarsSig = wire("scalars", undefined);
const handParse: Array<Omit<ParseCase, "module"> & { module?: Module }> = [
  { label: "integers beyond 2^53 keep their digits when the output is str", adapter: "json", signature: qa, completion: '{"answer": 12345678901234567890}' },
  { label: "float text for a str output", adapter: "json", signature: qa, completion: '{"answer": 1e3}' },
  { label: "nested float text for a str output", adapter: "json", signature: qa, completion: '{"answer": {"k": [1.0, 2, -0.0, 1E+2]}}' },
  { label: "null for a str output is 'None'", adapter: "json", signature: qa, completion: '{"answer": null}' },
  { label: "true for a str output is 'True'", adapter: "json", signature: qa, completion: '{"answer": true}' },
  { label: "NaN in JSON for a float", adapter: "json", signature: scalarsSig, completion: '{"count": 1, "ratio": NaN, "flag": false, "note": "n"}' },
  { label: "a section header after text on the same line is not a header", adapter: "chat", signature: qa, completion: "text [[ ## answer ## ]]\nx" },
  { label: "header with tabs and a BOM around it", adapter: "chat", signature: qa, completion: "\t[[ ## answer ## ]]\tvalue\n\ufeff[[ ## answer ## ]]\nsecond" },
  { label: "astral characters before an indented header's value", adapter: "chat", signature: qa, completion: "  [[ ## answer ## ]]𝄞𝄞 rest" },
  { label: "a field header inside a value", adapter: "chat", signature: qa, completion: "[[ ## answer ## ]]\nsee [[ ## answer ## ]] inline\n[[ ## completed ## ]]" },
  { label: "literal given as Literal['x'] and quoted", adapter: "chat", signature: wire("literals", undefined),
    completion: "[[ ## sentiment ## ]]\nLiteral['positive']\n\n[[ ## stars ## ]]\n'3'\n\n[[ ## verdict ## ]]\nTrue\n\n[[ ## mixed ## ]]\n2.5\n\n[[ ## quoted ## ]]\n\"it's\"" },
  { label: "literal members of other types", adapter: "json", signature: wire("literals", undefined),
    completion: '{"sentiment": "neutral", "stars": "5", "verdict": "False", "mixed": 1.0, "quoted": "say \\"hi\\""}' },
  { label: "dict keys coerced", adapter: "json", signature: wire("dict_keys", undefined),
    completion: '{"inverse": {"a": "1.5"}, "flags": {"true": "y", "false": "n"}, "by_num": {"1.5": ["x"], "2": []}}' },
  { label: "optional outputs missing default to None", adapter: "chat", signature: wire("optionals", undefined), completion: "[[ ## summary ## ]]\nonly this" },
  { label: "optional outputs as None text", adapter: "chat", signature: wire("optionals", undefined),
    completion: "[[ ## summary ## ]]\nNone\n\n[[ ## score ## ]]\nNone\n\n[[ ## labels ## ]]\nnull\n\n[[ ## choice ## ]]\nNone" },
  { label: "JSON in a chat section with trailing prose", adapter: "chat", signature: wire("containers", undefined),
    completion: '[[ ## tags ## ]]\n["a", "b"] are the tags\n\n[[ ## counts ## ]]\n{"a": 1}\n\n[[ ## matrix ## ]]\n[[1, 2], [3]]\n\n[[ ## records ## ]]\n[{"k": null}]' },
];
// Literals holding both 1 and True (or 0 and False): pydantic reads the float 1.0 as True, the int 1 as 1.
const collisions = checkSignature({
  inputs: [f("x", str)],
  outputs: [f("flags", list(lit(1, true))), f("by_key", dict(str, lit(0, false, 2))), f("maybe", opt(lit(true, 1))), f("top", lit("a", 1, true))],
});
const collisionAnswers: Array<[string, string, string, string]> = [
  ["[1.0, 1, true]", '{"a": 0.0, "b": 0, "c": 2.0}', "1.0", "1.0"],
  ["[1, 1.0]", '{"a": false}', "1", "1"],
  ["[0.5]", '{"a": 1.0}', "2.0", "True"],
  ["[1e0]", '{"a": 0e0}', "null", "'1'"],
];
for (const [flags, byKey, maybe, top] of collisionAnswers) {
  handParse.push({ label: `literal collisions (chat): ${flags} ${byKey} ${maybe} ${top}`, adapter: "chat", signature: collisions,
    completion: `[[ ## flags ## ]]\n${flags}\n\n[[ ## by_key ## ]]\n${byKey}\n\n[[ ## maybe ## ]]\n${maybe}\n\n[[ ## top ## ]]\n${top}` });
  handParse.push({ label: `literal collisions (json): ${flags} ${byKey} ${maybe} ${top}`, adapter: "json", signature: collisions,
    completion: `{"flags": ${flags}, "by_key": ${byKey}, "maybe": ${maybe}, "top": ${top.startsWith("'") ? '"1"' : top === "True" ? "true" : top}}` });
}
for (const c of handParse) parseCases.push({ module: "predict", ...c });

// ---------------------------------------------------------------------------------------------------------
// Call corpus (the adapter-level call, including ChatAdapter's fallback)

const MODELS = ["openai/gpt-4o-mini", "openai/gpt-3.5-turbo", "openai/local-model"];

interface CallCase {
  label: string;
  adapter: AdapterKind;
  module: Module;
  model: string;
  signature: SignatureWire;
  demos: Demo[];
  inputs: Record<string, unknown>;
  completions: Array<string | null>;
}

const callCases: CallCase[] = [];
for (const name of ["qa", "scalars", "containers", "literals", "optionals"]) {
  const signature = wire(name, name === "scalars" ? "Count things." : undefined);
  for (const module of MODULES) {
    const outs = moduleSignature(signature, module).outputs;
    const good = outputsFor(outs, 3);
    const goodJson = JSON.stringify(good);
    const scripts: Array<[string, AdapterKind, Array<string | null>]> = [
      ["chat answer", "chat", [chatCompletion(good)]],
      ["chat garbage, then the JSONAdapter answer", "chat", ["no markers here", goodJson]],
      ["chat garbage, then JSON garbage", "chat", ["no markers here", "still no JSON"]],
      ["empty answer, then the JSONAdapter answer", "chat", ["", goodJson]],
      ["null content, then JSON garbage", "chat", [null, "[]"]],
      ["a chat value that does not parse, then JSON", "chat", [chatCompletion({ ...good, [outs[outs.length - 1]!.name]: wrongValue(outs[outs.length - 1]!.type) }), goodJson]],
      ["JSON answer to the JSONAdapter", "json", [goodJson]],
      ["garbage to the JSONAdapter (no fallback)", "json", ["nothing"]],
      ["chat-format answer to the JSONAdapter", "json", [chatCompletion(good)]],
    ];
    for (const model of MODELS) {
      scripts.forEach(([label, adapter, completions], i) => {
        callCases.push({
          label: `${name} / ${module} / ${model} / ${label}`,
          adapter,
          module,
          model,
          signature,
          demos: i % 3 === 0 ? demosFor(signature, 1 + (i % 5)) : [],
          inputs: inputsFor(signature, i, true),
          completions,
        });
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Running DSPy

type PyError = {
  ok: false;
  error_type: string;
  message: string;
  adapter_name?: string;
  lm_response?: string;
  parsed_keys?: string[] | null;
  inner_type?: string | null;
  inner_message?: string | null;
};
type PyFormat = { ok: true; messages: ChatMessage[] } | PyError;
type PyParse = { ok: true; outputs: Record<string, unknown> } | PyError;
type PyCall = ({ ok: true; outputs: Record<string, unknown> } | PyError) & {
  requests: Array<{ messages: ChatMessage[]; response_format: unknown }>;
  unused_answers: number;
};
interface PyOut {
  format: PyFormat[];
  parse: PyParse[];
  calls: PyCall[];
  capabilities: Record<string, LMCapabilities>;
}

function runDspy(): PyOut {
  const request = {
    format: formatCases.map((c) => ({ ...c, demos: toPy(c.demos), inputs: toPy(c.inputs), label: undefined })),
    parse: parseCases.map((c) => ({ ...c, label: undefined })),
    calls: callCases.map((c) => ({ ...c, demos: toPy(c.demos), inputs: toPy(c.inputs), label: undefined })),
    capabilities: MODELS,
  };
  const r = spawnSync(python, [script], { input: JSON.stringify(request), encoding: "utf8", maxBuffer: 512 << 20 });
  if (r.status !== 0) throw new Error(`dspy_adapters.py failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as PyOut;
}

const started = Date.now();
const py = runDspy();
const pythonMs = Date.now() - started;

function adapterFor(kind: AdapterKind): ChatAdapter {
  return kind === "json" ? new JSONAdapter() : new ChatAdapter();
}

/** What went wrong, comparably: DSPy's error type, adapter, LM response, parsed keys, message. */
interface Failure {
  error_type: string;
  message: string;
  adapter_name?: string;
  lm_response?: string;
  parsed_keys?: string[] | null;
  field_failed?: boolean;
}

/**
 * The TypeScript error in the shape of DSPy's. When a field's value did not parse, DSPy's message embeds
 * `str(pydantic.ValidationError)`; both messages get that part replaced by a marker (the TypeScript side by
 * its own problem text), so everything else in the message is still compared exactly.
 */
function tsFailure(err: unknown): Failure {
  if (err instanceof AdapterParseError) {
    const inner = err.fieldProblem?.text;
    return {
      error_type: "AdapterParseError",
      adapter_name: err.adapterName,
      lm_response: err.lmResponse,
      parsed_keys: err.parsedResult === undefined ? null : Object.keys(err.parsedResult),
      message: inner === undefined ? err.message : err.message.replace(inner, "<parse_value error>"),
      field_failed: inner !== undefined,
    };
  }
  if (err instanceof AdapterFormatError) return { error_type: err.pythonType, message: err.message };
  throw err;
}

function pyFailure(e: PyError): Failure {
  if (e.error_type !== "AdapterParseError") return { error_type: e.error_type, message: e.message };
  // Only a pydantic ValidationError is parse_value's failure; another chained exception (the ChatAdapter error
  // a fallback JSONAdapter error was raised while handling) is just context.
  const inner = e.inner_type === "ValidationError" ? (e.inner_message ?? undefined) : undefined;
  return {
    error_type: e.error_type,
    adapter_name: e.adapter_name,
    lm_response: e.lm_response,
    parsed_keys: e.parsed_keys ?? null,
    message: inner === undefined ? e.message : e.message.replace(inner, "<parse_value error>"),
    field_failed: inner !== undefined,
  };
}

function show(x: unknown): string {
  const s = JSON.stringify(x);
  return s.length > 600 ? `${s.slice(0, 600)}…` : s;
}

/** Both sides around their first difference (the JSON texts), so a one-character mismatch is visible. */
function diff(expected: unknown, actual: unknown): string {
  const a = JSON.stringify(expected) ?? "undefined";
  const b = JSON.stringify(actual) ?? "undefined";
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const from = Math.max(0, i - 160);
  return `  at ${i}:\n  DSPy:       …${a.slice(from, i + 160)}…\n  TypeScript: …${b.slice(from, i + 160)}…`;
}

// ---------------------------------------------------------------------------------------------------------
// Tests

test("corpus size", () => {
  const formatErrors = py.format.filter((r) => !r.ok).length;
  const parseErrors = py.parse.filter((r) => !r.ok).length;
  const fallbacks = py.calls.filter((r) => r.requests.length === 2).length;
  console.log(
    `adapter parity corpus: ${formatCases.length} format cases (${generatedFormatCount} generated, ${formatCases.length - generatedFormatCount} hand-picked; ` +
      `${formatErrors} DSPy errors), ${parseCases.length} parse cases (${generatedParseCount} generated, ${parseCases.length - generatedParseCount} hand-picked; ` +
      `${parseErrors} DSPy errors), ${callCases.length} adapter calls (${fallbacks} with ChatAdapter's fallback to JSONAdapter); ` +
      `real DSPy answered in ${pythonMs} ms`,
  );
  assert.equal(py.format.length, formatCases.length);
  assert.equal(py.parse.length, parseCases.length);
  assert.equal(py.calls.length, callCases.length);
  assert.ok(formatCases.length >= 500 && parseCases.length >= 500 && callCases.length >= 100);
  // The corpus must exercise both outcomes everywhere, or it proves less than it claims.
  assert.ok(formatErrors > 0 && formatErrors < formatCases.length / 10);
  assert.ok(parseErrors > parseCases.length / 5 && parseErrors < parseCases.length * 0.8);
  assert.ok(fallbacks >= 30);
});

test("format: the native messages equal DSPy's adapter.format(...) byte for byte", () => {
  const mismatches: string[] = [];
  formatCases.forEach((c, i) => {
    const theirs = py.format[i]!;
    let ours: { ok: true; messages: ChatMessage[] } | ({ ok: false } & Failure);
    try {
      const inputs = c.validate ? workerInputs(c.signature, c.inputs) : c.inputs;
      ours = { ok: true, messages: adapterFor(c.adapter).format(moduleSignature(c.signature, c.module), c.demos, inputs) };
    } catch (err) {
      ours = { ok: false, ...tsFailure(err) };
    }
    const expected = theirs.ok ? theirs : { ok: false, ...pyFailure(theirs) };
    try {
      assert.deepEqual(ours, expected);
    } catch {
      mismatches.push(`#${i} ${c.label}\n${diff(expected, ours)}`);
    }
  });
  assert.equal(mismatches.length, 0, `${mismatches.length} of ${formatCases.length} differ:\n${mismatches.slice(0, 8).join("\n")}`);
});

test("parse: the native outputs and errors equal DSPy's adapter.parse(...)", () => {
  const mismatches: string[] = [];
  parseCases.forEach((c, i) => {
    const theirs = py.parse[i]!;
    let ours: { ok: true; outputs: unknown } | ({ ok: false } & Failure);
    try {
      ours = { ok: true, outputs: adapterFor(c.adapter).parse(moduleSignature(c.signature, c.module), c.completion) };
    } catch (err) {
      ours = { ok: false, ...tsFailure(err) };
    }
    const expected = theirs.ok ? { ok: true, outputs: fromPy(theirs.outputs) } : { ok: false, ...pyFailure(theirs) };
    try {
      assert.deepEqual(ours, expected);
    } catch {
      mismatches.push(`#${i} ${c.label}\n  completion: ${show(c.completion)}\n${diff(expected, ours)}`);
    }
  });
  assert.equal(mismatches.length, 0, `${mismatches.length} of ${parseCases.length} differ:\n${mismatches.slice(0, 8).join("\n")}`);
});

test("calls: requests on the wire, the fallback to JSONAdapter and the results equal DSPy's", async () => {
  const mismatches: string[] = [];
  for (const [i, c] of callCases.entries()) {
    const theirs = py.calls[i]!;
    const capabilities = py.capabilities[c.model]!;
    const requests: Array<{ messages: ChatMessage[]; response_format: unknown }> = [];
    const script = [...c.completions];
    const lm = async (request: LMRequest) => {
      requests.push({ messages: request.messages, response_format: request.params.response_format ?? null });
      if (script.length === 0) throw new Error("the test script has no more answers");
      return [script.shift()!];
    };
    let result: { ok: true; outputs: unknown } | ({ ok: false } & Failure);
    try {
      const inputs = workerInputs(c.signature, c.inputs);
      const r = await callAdapter(adapterFor(c.adapter), lm, {
        signature: moduleSignature(c.signature, c.module),
        demos: c.demos,
        inputs,
        capabilities,
      });
      assert.equal(r.outputs.length, 1);
      result = { ok: true, outputs: r.outputs[0] };
    } catch (err) {
      result = { ok: false, ...tsFailure(err) };
    }
    const ours = { result, requests, unused_answers: script.length };
    const { requests: theirRequests, unused_answers, ...theirResult } = theirs;
    const expected = {
      result: theirResult.ok ? { ok: true, outputs: fromPy(theirResult.outputs) } : { ok: false, ...pyFailure(theirResult) },
      requests: theirRequests,
      unused_answers,
    };
    try {
      assert.deepEqual(ours, expected);
    } catch {
      mismatches.push(`#${i} ${c.label}\n${diff(expected, ours)}`);
    }
  }
  assert.equal(mismatches.length, 0, `${mismatches.length} of ${callCases.length} differ:\n${mismatches.slice(0, 6).join("\n")}`);
});

test("JSONAdapter asks for what DSPy's model catalog allows: schema, json_object, or nothing", () => {
  assert.deepEqual(py.capabilities, {
    "openai/gpt-4o-mini": { responseFormat: true, responseSchema: true },
    "openai/gpt-3.5-turbo": { responseFormat: true, responseSchema: false },
    "openai/local-model": { responseFormat: false, responseSchema: false },
  });
  const kinds = new Set(py.calls.flatMap((c) => c.requests.map((r) => (r.response_format as { type?: string } | null)?.type ?? "none")));
  assert.deepEqual([...kinds].sort(), ["json_object", "json_schema", "none"]);
});
