/**
 * The wire contract's generated code is what schemas/ says today: both generators run into a temporary
 * directory and every generated file must equal the checked-in one (run `npm run generate` after changing a
 * schema). Also: the two languages agree on the error catalogue and the operations.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ERROR_TYPES, OPERATIONS, SCHEMAS } from "@dspex/protocol";

const ROOT = join(import.meta.dirname, "../..");
const TARGETS = [
  { name: "TypeScript", dir: join(ROOT, "services/protocol/src/generated"), cmd: [process.execPath, "--import", "tsx", "scripts/generate-protocol.ts"] },
  { name: "Python", dir: join(ROOT, "workers/dspex_worker/protocol/generated"), cmd: [join(ROOT, ".venv/bin/python"), "scripts/generate_protocol.py"] },
];

for (const target of TARGETS) {
  test(`generated ${target.name} protocol code is fresh (npm run generate)`, () => {
    const out = mkdtempSync(join(tmpdir(), "dspex-gen-"));
    try {
      execFileSync(target.cmd[0]!, [...target.cmd.slice(1), "--out", out], { cwd: ROOT, stdio: "pipe" });
      const fresh = readdirSync(out).sort();
      const checkedIn = readdirSync(target.dir).filter((f) => !f.startsWith("__pycache__")).sort();
      assert.deepEqual(checkedIn, fresh, "the same files");
      for (const file of fresh) {
        const a = readFileSync(join(target.dir, file), "utf8");
        const b = readFileSync(join(out, file), "utf8");
        assert.ok(a === b, `${target.name} ${file} is stale: run \`npm run generate\``);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
}

test("both languages know every error type of the catalogue and every operation", () => {
  const catalogue = Object.keys((SCHEMAS["error.schema.json"] as { "x-dspex-errors": Record<string, unknown> })["x-dspex-errors"]);
  assert.deepEqual([...ERROR_TYPES], catalogue);
  const python = execFileSync(
    join(ROOT, ".venv/bin/python"),
    ["-c", "import json; from dspex_worker.protocol.generated import errors, ops; print(json.dumps([list(errors.ERROR_CLASSES), list(ops.OPERATIONS)]))"],
    { cwd: join(ROOT, "workers"), encoding: "utf8" },
  );
  const [pyErrors, pyOps] = JSON.parse(python) as [string[], string[]];
  assert.deepEqual(pyErrors, catalogue);
  assert.deepEqual(pyOps, [...OPERATIONS]);
});
