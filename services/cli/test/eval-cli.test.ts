/** `dspex eval` and `dspex jobs` against a running deployment (NATS_URL): real workers, LM double. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startHarness, type Harness } from "../../../test/integration/harness.js";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "../../..");

describe("dspex eval / dspex jobs", { timeout: 180_000 }, () => {
  let h: Harness;
  const dir = mkdtempSync(join(tmpdir(), "dspex-eval-cli-"));
  const dspex = (args: string[]) =>
    run(process.execPath, ["--conditions=development", "--import", "tsx", "services/cli/src/cli.ts", ...args], {
      cwd: ROOT,
      env: { ...process.env, NATS_URL: h.fleet.natsUrl, NATS_CREDS: h.fleet.creds.admin },
      timeout: 120_000,
    });

  before(async () => {
    h = await startHarness({ fleet: { workers: { general: 1 } } });
    const lines = Array.from({ length: 30 }, (_, i) => {
      const gold = i % 3 === 0 ? String(i + 1) : String(i + 2); // the LM double computes i+2: two thirds right
      return JSON.stringify({ question: `What is ${i}+2?`, answer: gold });
    });
    writeFileSync(join(dir, "data.jsonl"), `${lines.join("\n")}\n`);
  });
  after(async () => {
    await h?.close();
  });

  test("eval prints progress lines and the summary, writes the report; jobs lists and compares", async () => {
    // the model of the workers' default profile (the harness points it at the LM double); no endpoint travels
    const lmFlags = ["--lm", "openai/test-model"];
    const report = join(dir, "report.html");
    const first = await dspex(["eval", "question -> answer", join(dir, "data.jsonl"), "-m", "exact_match", "f1", "-c", "4", "--name", "cli-predict", "--out", report, ...lmFlags]);
    assert.match(first.stderr, /no pipeline service answers on .*; running one in this process/);
    assert.match(first.stderr, /succeeded: \[#+\] 30\/30 100%/, "a plain progress line (not a TTY)");
    assert.match(first.stdout, /score {6}66\.67 {2}\(exact_match; 30 ok, 0 failed of 30\)/);
    const job1 = /job (ev-\S+) \(cli-predict\): succeeded/.exec(first.stdout)?.[1];
    assert.ok(job1, first.stdout);
    const html = readFileSync(report, "utf8");
    assert.ok(html.includes('<section id="distribution">') && html.includes("66.67"));

    const second = await dspex(["eval", "question -> answer", join(dir, "data.jsonl"), "--cot", "--json", ...lmFlags]);
    const out = JSON.parse(second.stdout) as { summary: { job: string; score: number }; results: Array<{ index: number; outputs: { reasoning?: string } }> };
    assert.equal(out.summary.score, 66.67);
    assert.equal(out.results.length, 30);
    assert.equal(typeof out.results[0]!.outputs.reasoning, "string");

    const list = JSON.parse((await dspex(["jobs", "--json"])).stdout) as Array<{ id: string; status: string }>;
    assert.ok(list.some((j) => j.id === job1 && j.status === "succeeded"));
    const cmp = await dspex(["jobs", "compare", job1, out.summary.job]);
    assert.match(cmp.stdout, new RegExp(`${out.summary.job} vs ${job1}: 0 wins, 0 losses, 30 ties`));
  });
});
