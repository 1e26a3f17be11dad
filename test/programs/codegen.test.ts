// `dspex codegen --offline` against the installed test package (test/programs): the generated module types each
// program's inputs and outputs, and a caller compiled against it with the TypeScript compiler type-checks when
// it is right and fails, naming the field, when it passes an undeclared input, a mistyped one, or reads an output
// the program does not have.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import ts from "typescript";

const ROOT = join(import.meta.dirname, "..", "..");
const run = promisify(execFile);

/** Type-checks `files` (name → text) in `dir` against the client's sources; the diagnostics' messages. */
function typeCheck(dir: string, files: Record<string, string>): string[] {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  writeFileSync(join(dir, "package.json"), '{ "type": "module" }\n');
  const program = ts.createProgram(
    Object.keys(files).map((f) => join(dir, f)),
    {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      customConditions: ["development"],
      paths: { "@dspex/client": [join(ROOT, "services/client/src/index.ts")] },
    },
  );
  return ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file && d.file.fileName.startsWith(dir))
    .map((d) => `${d.file!.fileName.slice(dir.length + 1)}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);
}

test("dspex codegen writes types a caller is checked against: right fields compile, wrong ones do not", { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "dspex-codegen-"));
  try {
    await run(process.execPath, ["--conditions=development", "--import", "tsx", join(ROOT, "services/cli/src/cli.ts"), "codegen", "--offline", "--out", join(dir, "programs.ts")], {
      cwd: ROOT,
      timeout: 60_000,
    });
    const generated = readFileSync(join(dir, "programs.ts"), "utf8");
    assert.match(generated, /export type QaInputs = \{\n {2}"question": string;\n\};/);
    assert.match(generated, /"keywords": Array<string>;/);
    const caller = (body: string) => `import type { Client } from "@dspex/client";\nimport { qa, summarize } from "./programs.js";\nexport async function use(client: Client): Promise<void> {\n${body}\n}\n`;
    const good = caller(
      [
        `  const a = await qa(client).call({ question: "q" });`,
        `  const confidence: number = a.outputs.confidence;`,
        `  const s = await summarize(client).call({ text: "t", max_words: 3 });`,
        `  const first: string | undefined = s.outputs.keywords[0];`,
        `  void confidence; void first;`,
      ].join("\n"),
    );
    assert.deepEqual(typeCheck(dir, { "good.ts": good }), []);
    const errors = typeCheck(dir, {
      "undeclared.ts": caller(`  await qa(client).call({ question: "q", context: "c" });`),
      "mistyped.ts": caller(`  await summarize(client).call({ text: "t", max_words: "three" });`),
      "missing.ts": caller(`  await qa(client).call({});`),
      "output.ts": caller(`  const r = await qa(client).call({ question: "q" });\n  void r.outputs.score;`),
    });
    const byFile = (f: string) => errors.filter((e) => e.startsWith(`${f}:`)).join("\n");
    assert.match(byFile("undeclared.ts"), /'context'/);
    assert.match(byFile("mistyped.ts"), /max_words|string.*number/);
    assert.match(byFile("missing.ts"), /question/);
    assert.match(byFile("output.ts"), /'score'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
