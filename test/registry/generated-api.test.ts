/**
 * The gateway's generated API descriptions are what its routes and resource definitions say today: the OpenAPI
 * document, the GraphQL schema and the client's types (scripts/generate-api.ts) regenerate into a temporary
 * directory equal to the checked-in files (run `npm run generate` after changing a route or a resource).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "../..");
const FILES = ["services/router/openapi.json", "services/router/schema.graphql", "services/api-client/src/generated/openapi.ts"];

test("the OpenAPI document, the GraphQL schema and the API client's types are fresh (npm run generate)", () => {
  const out = mkdtempSync(join(tmpdir(), "dspex-gen-api-"));
  try {
    execFileSync(process.execPath, ["--conditions=development", "--import", "tsx", "scripts/generate-api.ts", "--out", out], { cwd: ROOT, stdio: "pipe" });
    for (const file of FILES) {
      const fresh = readFileSync(join(out, file.replaceAll("/", "_")), "utf8");
      assert.ok(readFileSync(join(ROOT, file), "utf8") === fresh, `${file} is stale: run \`npm run generate\``);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
