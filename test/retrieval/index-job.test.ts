/**
 * `dspex index` killed mid-way and run again: exactly the corpus's passages in the store, none twice, and the
 * second run embeds only what the first did not store. A real fleet (gpu worker, real WordLlama), the real CLI
 * process, a real PostgreSQL + pgvector server.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { startHarness, type Harness } from "../integration/harness.js";
import { startPostgres, type PostgresServer } from "../registry/postgres.js";

const ROOT = join(import.meta.dirname, "../..");
const TOTAL = 3000;

function cli(h: Harness, args: string[]) {
  const child = spawn(process.execPath, ["--conditions=development", "--import", "tsx", join(ROOT, "services/cli/src/cli.ts"), ...args], {
    cwd: ROOT,
    env: { ...process.env, NATS_URL: h.fleet.natsUrl, NATS_CREDS: h.fleet.creds.client },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, exited, out: () => stdout, err: () => stderr };
}

describe("dspex index: kill and resume", { timeout: 240_000 }, () => {
  let h: Harness;
  let server: PostgresServer;
  let dir: string;
  before(async () => {
    [h, server] = await Promise.all([startHarness({ fleet: { workers: { general: 0, gpu: 1 }, bus: { pools: { gpu: { concurrency: 8 } } } } }), startPostgres()]);
    dir = mkdtempSync(join(tmpdir(), "dspex-index-"));
  });
  after(async () => {
    await h?.close();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("a run killed mid-way, resumed, stores the corpus exactly once", async () => {
    const corpus = join(dir, "corpus.jsonl");
    const topics = ["nats", "workers", "pgvector", "embeddings", "retries", "sessions", "breakers", "jobs"];
    writeFileSync(
      corpus,
      Array.from({ length: TOTAL }, (_, i) => JSON.stringify({ id: `p-${i}`, text: `passage ${i} about ${topics[i % topics.length]} and item ${i * 7}`, metadata: { topic: topics[i % topics.length]! } })).join("\n"),
    );
    const args = ["index", server.url, corpus, "--collection", "killed", "--batch", "10", "--fields", "topic"];

    const first = cli(h, args);
    // kill once a fifth of the corpus is in (progress lines are printed after each stored batch)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no progress: ${first.err()}`)), 120_000);
      first.child.stderr.on("data", () => {
        const done = [...first.err().matchAll(/index (\d+)\/\d+/g)].map((m) => Number(m[1]));
        if ((done.at(-1) ?? 0) >= TOTAL / 5) {
          clearTimeout(timer);
          first.child.kill("SIGKILL");
          resolve();
        }
      });
      first.child.once("exit", () => {
        clearTimeout(timer);
        reject(new Error(`the first run ended before it was killed: ${first.err()}`));
      });
    });
    await first.exited;

    const db = new pg.Client({ connectionString: server.url });
    await db.connect();
    try {
      const stored = Number((await db.query("SELECT count(*) AS n FROM dspex_passages_killed")).rows[0].n);
      assert.ok(stored >= TOTAL / 5 && stored < TOTAL, `after the kill: ${stored} stored`);

      const second = cli(h, args);
      assert.equal(await second.exited, 0, second.err());
      const summary = JSON.parse(second.out().trim().split("\n").at(-1)!) as { count: number; written: number; skipped: number };
      assert.equal(summary.count, TOTAL);
      assert.equal(summary.skipped, stored, "the resumed run skips exactly what the killed one stored");
      assert.equal(summary.written, TOTAL - stored);
      const rows = (await db.query("SELECT count(*) AS n, count(DISTINCT id) AS ids, count(DISTINCT text) AS texts FROM dspex_passages_killed")).rows[0];
      assert.deepEqual([Number(rows.n), Number(rows.ids), Number(rows.texts)], [TOTAL, TOTAL, TOTAL]);

      const status = cli(h, ["index", "status", server.url, "killed"]);
      assert.equal(await status.exited, 0, status.err());
      assert.equal((JSON.parse(status.out()) as { count: number }).count, TOTAL);
    } finally {
      await db.end();
    }
  });
});
