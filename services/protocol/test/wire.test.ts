import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { decode, encode, requestSubject, partitionSubject, partitionOf, isPool } from "@dspex/protocol";

const dir = join(import.meta.dirname, "../../../schemas/vectors");
const names = readdirSync(dir)
  .filter((f) => f.endsWith(".msgpack"))
  .map((f) => f.replace(/\.msgpack$/, ""));

test("golden vectors exist", () => {
  assert.ok(names.length >= 4, `expected golden vectors in ${dir}`);
});

for (const name of names) {
  test(`golden vector ${name}: decodes to its JSON and re-encodes byte for byte`, () => {
    const bytes = new Uint8Array(readFileSync(join(dir, `${name}.msgpack`)));
    const json: unknown = JSON.parse(readFileSync(join(dir, `${name}.json`), "utf8"));
    assert.deepEqual(decode(bytes), json);
    assert.equal(Buffer.from(encode(json)).toString("hex"), Buffer.from(bytes).toString("hex"));
  });
}

test("subjects follow dspex.req.<pool>.<key>", () => {
  assert.equal(requestSubject("general", "any"), "dspex.req.general.any");
  assert.equal(requestSubject("gpu", "p7"), "dspex.req.gpu.p7");
  assert.equal(partitionSubject("general", 3), "dspex.req.general.p3");
  // FNV-1a 32-bit of "user-42" is 0x026073ab (a Python reference implementation of schemas/README.md's rule)
  assert.equal(partitionOf("user-42", 2 ** 32 - 1), 0x026073ab);
  assert.equal(partitionOf("user-42", 16), 0x026073ab % 16);
  assert.equal(partitionOf("sessión-✓", 7), partitionOf("sessión-✓", 7), "stable");
  assert.equal(isPool("general"), true);
  assert.equal(isPool("cpu"), false);
});
