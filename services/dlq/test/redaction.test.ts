/**
 * The DLQ service's redacted summary of a request body is the worker's, byte for byte in meaning: the golden
 * vector schemas/vectors/dlq-redacted-cot-full is the summary of request-cot-full (published on the general
 * pool), computed independently by the vector generator.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { decode, encode, requestSubject } from "@dspex/protocol";
import { msgpackType, redactedBody } from "@dspex/dlq";

const VECTORS = join(import.meta.dirname, "../../../schemas/vectors");

test("the summary of the golden request is the golden summary", () => {
  const request = readFileSync(join(VECTORS, "request-cot-full.msgpack"));
  const expected = JSON.parse(readFileSync(join(VECTORS, "dlq-redacted-cot-full.json"), "utf8")) as unknown;
  const summary = redactedBody(new Uint8Array(request), requestSubject("general", "any"));
  assert.deepEqual(summary, expected);
  assert.deepEqual(decode(readFileSync(join(VECTORS, "dlq-redacted-cot-full.msgpack"))), expected, "the msgpack vector says the same");
  assert.ok(!JSON.stringify(summary).includes((decode(request) as { inputs: { review: string } }).inputs.review), "no input text");
});

test("bytes that do not decode keep only their size; a subject that is no pool's names none", () => {
  assert.deepEqual(redactedBody(new Uint8Array([0xc1, 1, 2]), "dspex.req.nosuchpool.any"), { redacted: true, bytes: 3 });
  assert.deepEqual(redactedBody(encode({ id: 7, inputs: "x" }), undefined), { redacted: true, bytes: encode({ id: 7, inputs: "x" }).byteLength });
});

test("sizes are those of the original encoding, for every msgpack family", () => {
  const inputs = { n: null, b: true, i: 300, f: 1.5, s: "é".repeat(40), bin: new Uint8Array(300), a: [1, [2, 3]], m: { k: { z: 1 } } };
  const body = encode({ v: 1, id: "x", op: "predict", inputs });
  const { fields } = redactedBody(body, requestSubject("gpu", "p3"));
  const expected = Object.fromEntries(
    Object.entries(inputs).map(([k, v]) => {
      const bytes = encode(v);
      return [k, { type: msgpackType(bytes[0]!), bytes: bytes.byteLength }];
    }),
  );
  assert.deepEqual(fields, expected);
  assert.deepEqual(Object.values(fields!).map((f) => f.type), ["nil", "bool", "int", "float", "str", "bin", "array", "map"]);
});
