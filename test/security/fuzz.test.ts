/**
 * Bounded work on untrusted input (docs/security.md): the signature parser, the input/output validators of
 * every type kind and the wire contract's request validator, fed random and adversarial inputs up to 1 MiB,
 * each accepted or rejected with a typed error — never a crash or a hang — in well under 100 ms. The inputs
 * are the shapes that make naive text handling quadratic (long runs of spaces or underscores before a
 * non-matching character, unclosed brackets and quotes, deep nesting).
 *
 * A deterministic generator (seeded): a failure names the input that caused it and reproduces.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { compileSignature, parseSignature } from "@dspex/native";
import { DspexError, checkRequest } from "@dspex/protocol";
import { mulberry32 as rng } from "../support/random.js";

const MiB = 1024 * 1024;
const LIMIT_MS = 100;


const SIZES = [1_000, 64 * 1024, MiB];
const PIECES = [" ", "\t", "\u3000", "\u00a0", "_", "[", "]", "'", '"', "\\", ",", ":", "-", ">", "0", "1.", "e", "a", "{", "}", "Literal[", "list[", "\n", "|", "=", "Union["];

/** Adversarial strings of about `size` characters, named for the failure message. */
function adversarial(size: number): Array<[string, string]> {
  const n = size - 2;
  return [
    ["spaces then x", `${" ".repeat(n)}x`],
    ["a, spaces, b", `a${" ".repeat(n)}b`],
    ["unicode spaces then z", `${"\u3000".repeat(n)}z`],
    ["underscores then -", `a${"_".repeat(n)}-`],
    ["digits with underscores", `1${"_1".repeat(n / 2)}x`],
    ["trailing .0s", `1${".0".repeat(n / 2)}x`],
    ["unclosed brackets", "[".repeat(n)],
    ["nested lists", `${"[".repeat(n / 2)}${"]".repeat(n / 2)}`],
    ["unclosed quote", `"${"a".repeat(n)}`],
    ["quotes", "'".repeat(n)],
    ["backslashes", `"${"\\".repeat(n)}`],
    ["Literal prefix", `Literal[${" ".repeat(n - 9)}`],
    ["commas", ",".repeat(n)],
    ["arrows", "->".repeat(n / 2)],
    ["colons", `a${":".repeat(n)}`],
    ["unions", `int${" | int".repeat(n / 6)}`],
    ["defaults", `a = ${"(".repeat(n / 4)}`],
  ];
}

function randomText(next: () => number, size: number): string {
  const parts: string[] = [];
  let length = 0;
  while (length < size) {
    const piece = PIECES[Math.floor(next() * PIECES.length)]!;
    const repeat = 1 + Math.floor(next() * (next() < 0.1 ? 4096 : 8));
    const chunk = piece.repeat(repeat);
    parts.push(chunk);
    length += chunk.length;
  }
  return parts.join("").slice(0, size);
}

/**
 * Runs `fn`: it returns or throws a DspexError, within the limit. The time is the better of two runs, so that a
 * garbage collection or the first compilation of a code path does not count: the bound is about how the work
 * grows with the input, which one run at 1 MiB shows.
 */
function bounded(what: string, fn: () => unknown): number {
  const once = () => {
    const t0 = performance.now();
    try {
      fn();
    } catch (err) {
      if (!(err instanceof DspexError)) throw new Error(`${what}: not a typed error: ${String(err)}`);
    }
    return performance.now() - t0;
  };
  const first = once();
  const ms = first < LIMIT_MS / 4 ? first : Math.min(first, once());
  assert.ok(ms < LIMIT_MS, `${what}: ${ms.toFixed(1)} ms`);
  return ms;
}

const TYPES = ["str", "int", "float", "bool", "list[int]", "list[str]", "dict[str, int]", "Literal['a', 'b']", "Optional[int]", "Optional[list[float]]",
  "int | list[int]", "Optional[Union[int, str]]", "list[int | bool]", "Union[list[int], list[str], dict[str, float]]"];

describe("fuzz: untrusted input is handled in bounded time", { timeout: 600_000 }, () => {
  test("the signature parser", (t) => {
    let worst = 0;
    const next = rng(1);
    for (const size of SIZES) {
      for (const [name, text] of adversarial(size)) {
        worst = Math.max(worst, bounded(`parseSignature(${name}, ${size})`, () => parseSignature(text)));
        worst = Math.max(worst, bounded(`parseSignature(q: ${name}, ${size})`, () => parseSignature(`q: ${text} -> a`)));
      }
      for (let i = 0; i < 5; i++) {
        const text = randomText(next, size);
        worst = Math.max(worst, bounded(`parseSignature(random #${i}, ${size})`, () => parseSignature(text)));
      }
    }
    t.diagnostic(`worst ${worst.toFixed(1)} ms`);
  });

  test("input and output validation of every type kind", (t) => {
    let worst = 0;
    const next = rng(2);
    for (const type of TYPES) {
      const sig = compileSignature(`q: ${type} -> a: ${type}`);
      for (const size of SIZES) {
        const values: Array<[string, unknown]> = [...adversarial(size), ["random", randomText(next, size)]];
        values.push(["long list", Array.from({ length: size / 8 }, (_, i) => (i % 2 ? "x" : i))]);
        values.push(["wide object", Object.fromEntries(Array.from({ length: size / 16 }, (_, i) => [`k${i}`, i]))]);
        for (const [name, value] of values) {
          worst = Math.max(worst, bounded(`${type} input (${name}, ${size})`, () => sig.validateInputs({ q: value } as never)));
          worst = Math.max(worst, bounded(`${type} output (${name}, ${size})`, () => sig.validateOutputs({ a: value } as never)));
        }
      }
    }
    t.diagnostic(`worst ${worst.toFixed(1)} ms`);
  });

  test("the wire contract's request validator", (t) => {
    let worst = 0;
    const next = rng(3);
    for (const size of SIZES) {
      for (const [name, text] of [...adversarial(size), ["random", randomText(next, size)] as [string, string]]) {
        const envelopes: unknown[] = [
          { v: 1, id: text, op: "predict", signature: { inputs: [], outputs: [] }, inputs: {} },
          { v: 1, id: "x", op: text, signature: { inputs: [], outputs: [] }, inputs: {} },
          { v: 1, id: "x", op: "predict", signature: { instructions: text, inputs: [{ name: text, type: { kind: "str" } }], outputs: [] }, inputs: { q: text } },
          { v: 1, id: "x", op: "predict", signature: { inputs: [], outputs: [] }, inputs: {}, lm: { model: text } },
        ];
        for (const [i, envelope] of envelopes.entries()) {
          worst = Math.max(worst, bounded(`checkRequest(${name} in field #${i}, ${size})`, () => checkRequest(envelope)));
        }
      }
    }
    t.diagnostic(`worst ${worst.toFixed(1)} ms`);
  });
});
