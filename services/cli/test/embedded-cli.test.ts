/**
 * The embedded fleet from the command line, with no LM configured anywhere: `dspex up` hosts the real local
 * model and makes it every worker's default, so `dspex status` (no router running) and `NATS_URL=… dspex run`
 * work against it; `dspex eval` without NATS_URL runs on the same default — the local model, never a test
 * double.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { localLmInstalled } from "@dspex/embedded";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "../../..");
const CLI = ["--conditions=development", "--import", "tsx", "services/cli/src/cli.ts"];
// no LM configured and no deployment named: the embedded defaults decide
const ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("DSPEX_LM") && k !== "NATS_URL"));

describe("dspex up / status / run / eval with no LM configured", { timeout: 300_000, skip: !localLmInstalled() && "local model not installed" }, () => {
  let up: ChildProcess;
  // what `dspex up` prints for other shells: the URL, the client's credentials, the monitor's for status
  let natsUrl: string;
  let clientCreds: string;
  let monitorCreds: string;
  const dir = mkdtempSync(join(tmpdir(), "dspex-embedded-cli-"));

  before(async () => {
    up = spawn(process.execPath, [...CLI, "up", "--workers", "1"], { cwd: ROOT, env: ENV, stdio: ["ignore", "pipe", "ignore"] });
    const printed = await new Promise<Record<string, string>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("dspex up printed no NATS_URL within 120 s")), 120_000);
      const seen: Record<string, string> = {};
      createInterface({ input: up.stdout! }).on("line", (line) => {
        const m = /^(?:# dspex (status|bus, dspex dlq): )?(NATS_URL|NATS_CREDS)=(\S+)$/.exec(line);
        if (m) seen[m[1] ? `${m[1]} ${m[2]}` : m[2]!] = m[3]!;
        if (seen.NATS_URL && seen.NATS_CREDS && seen["status NATS_CREDS"] && seen["bus, dspex dlq NATS_CREDS"]) {
          clearTimeout(timer);
          resolve(seen);
        }
      });
      up.once("exit", (code) => reject(new Error(`dspex up exited with ${code}`)));
    });
    natsUrl = printed.NATS_URL!;
    clientCreds = printed.NATS_CREDS!;
    monitorCreds = printed["status NATS_CREDS"]!;
  });
  after(async () => {
    if (up && up.exitCode === null) {
      const exited = new Promise((r) => up.once("exit", r));
      up.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test("dspex up's bus refuses a connection without credentials, with a hint", async () => {
    await assert.rejects(
      run(process.execPath, [...CLI, "status"], { cwd: ROOT, env: { ...ENV, NATS_URL: natsUrl, NATS_CREDS: "" } }),
      (err: { stderr?: string }) => /Authorization Violation/.test(err.stderr ?? "") && /set NATS_CREDS/.test(err.stderr ?? ""),
    );
  });

  test("dspex status works against dspex up with no router running", async () => {
    const { stdout } = await run(process.execPath, [...CLI, "status", "--json"], { cwd: ROOT, env: { ...ENV, NATS_URL: natsUrl, NATS_CREDS: monitorCreds } });
    const status = JSON.parse(stdout) as {
      routers: unknown[];
      bus: { missing: string[] };
      pools: Array<{ pool: string; workers: Array<{ worker: string }> }>;
    };
    assert.deepEqual(status.routers, []);
    assert.deepEqual(status.bus.missing, []);
    assert.equal(status.pools.find((p) => p.pool === "general")!.workers.length, 1);
    assert.equal(status.pools.find((p) => p.pool === "gpu")!.workers.length, 1, "the gpu worker hosting the local model");
  });

  test("NATS_URL=… dspex run against dspex up answers with the local model (no LM named anywhere)", async () => {
    const { stdout } = await run(process.execPath, [...CLI, "run", "question -> answer", "-i", "question=What color is the sky?", "--json", "--timeout", "180000"], {
      cwd: ROOT,
      env: { ...ENV, NATS_URL: natsUrl, NATS_CREDS: clientCreds },
    });
    const result = JSON.parse(stdout) as { outputs: { answer: unknown }; lm: string; worker: string };
    assert.equal(typeof result.outputs.answer, "string");
    assert.match(result.lm, /^openai\/.*smollm2/i, "the local model answered");
    assert.match(result.worker, /^general-/);
  });

  test("dspex eval with no LM configured runs on the local model", async () => {
    const data = join(dir, "data.jsonl");
    writeFileSync(data, `${JSON.stringify({ question: "What is 2+2?", answer: "4" })}\n${JSON.stringify({ question: "Name a color.", answer: "blue" })}\n`);
    const { stdout, stderr } = await run(process.execPath, [...CLI, "eval", "question -> answer", data, "-m", "exact_match", "--workers", "1", "--json"], {
      cwd: ROOT,
      env: { ...ENV, DSPEX_EVAL_STORE: join(dir, "store") },
      timeout: 240_000,
    });
    assert.doesNotMatch(stderr, /double/i);
    const out = JSON.parse(stdout) as { summary: { total: number; failed: number }; results: Array<{ ok: boolean; lm?: string }> };
    assert.equal(out.summary.total, 2);
    assert.equal(out.summary.failed, 0, "both examples answered (a tiny model: right or wrong, but typed)");
    for (const r of out.results) assert.match(r.lm ?? "", /^openai\/.*smollm2/i, "the local model answered");
  });
});
