/**
 * The shape of the code base (docs/architecture.md): runtime code never imports test code; no TypeScript
 * import cycle (madge, type-only imports included); no source file over 500 lines without a reason written at
 * its top. The Python side's import layers are checked by import-linter in the test command.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import madge from "madge";

const ROOT = join(import.meta.dirname, "..");
const LIMIT = 500;

function files(dir: string, ext: RegExp, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (["node_modules", "dist", "generated", "__pycache__"].includes(name)) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) files(path, ext, out);
    else if (ext.test(name)) out.push(path);
  }
  return out;
}

const runtime = [
  ...readdirSync(join(ROOT, "services"), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .flatMap((d) => {
      const src = join(ROOT, "services", d.name, "src");
      return statSync(src, { throwIfNoEntry: false })?.isDirectory() ? files(src, /\.ts$/) : [];
    }),
  ...files(join(ROOT, "workers/dspex_worker"), /\.py$/),
];

test("runtime code never imports or spawns anything under test/", () => {
  const offenders = runtime.filter((f) => /test\/lm-double|["'/]test\//.test(readFileSync(f, "utf8")));
  assert.deepEqual(offenders.map((f) => relative(ROOT, f)), []);
});

test("no source file is over 500 lines without a reason at its top", () => {
  const long = runtime
    .map((f) => ({ f: relative(ROOT, f), text: readFileSync(f, "utf8") }))
    .filter(({ text }) => text.split("\n").length > LIMIT && !/longer than 500 lines/i.test(text.slice(0, 2_000)))
    .map(({ f, text }) => `${f} (${text.split("\n").length} lines)`);
  assert.deepEqual(long, []);
});

test("no import cycle in the TypeScript services", async () => {
  const graph = await madge(join(ROOT, "services"), {
    fileExtensions: ["ts"],
    excludeRegExp: [/node_modules/, /\/dist\//, /\/test\//],
    tsConfig: join(ROOT, "tsconfig.base.json"),
  });
  assert.deepEqual(graph.circular(), []);
  assert.ok(Object.keys(graph.obj()).length > 80, "madge saw the services' files");
});
