/**
 * The web console in a real browser: Debian's Chromium, headless, driven by playwright-core. Signs in with a
 * token, lists programs, starts a training and watches its job's progress live, is refused a deploy below its
 * threshold (the guard shown), deploys, searches executions and compares two versions — with no script error
 * and no Content-Security-Policy violation on the way. Screenshots go to a temporary directory, or to docs/
 * with DSPEX_SCREENSHOTS=docs.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type Page } from "playwright-core";
import type { Harness } from "../integration/harness.js";
import { http } from "./helpers.js";
import { QA } from "../support/fixtures.js";

const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"];

export async function consoleScenario(h: Harness, base: string, token: string, log: (s: string) => void): Promise<void> {
  const shots = process.env.DSPEX_SCREENSHOTS === "docs" ? resolve(import.meta.dirname, "../../docs") : mkdtempSync(join(tmpdir(), "dspex-console-"));
  const api = http(base);
  const program = "capitals";
  const examples = QA.map(([question, answer]) => ({ question, answer }));
  for (const [path, body] of [
    ["/v1/registry/programs", { name: program, signature: "question -> answer", description: "Capitals of lost cities" }],
    ["/v1/registry/programs", { name: "ticket-triage", signature: "ticket: str -> category: Literal['billing', 'bug', 'other']", module: "chain_of_thought" }],
    ["/v1/registry/datasets", { name: "capitals-train", examples: examples.slice(0, 4) }],
    ["/v1/registry/datasets", { name: "capitals-val", examples: examples.slice(4) }],
  ] as const) {
    const r = await api.post(path, body, token);
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }

  const started = performance.now();
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS });
  log(`chromium started in ${Math.round(performance.now() - started)} ms`);
  const problems: string[] = [];
  try {
    const page: Page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
    // "Failed to load resource" lines are the browser's notes on answers: those are checked one by one below
    page.on("console", (msg) => msg.type() === "error" && !msg.text().startsWith("Failed to load resource") && problems.push(`console: ${msg.text()}`));
    const refused: string[] = [];
    page.on("response", (r) => !r.ok() && r.status() !== 304 && r.status() !== 302 && refused.push(`${r.status()} ${new URL(r.url()).pathname}`));
    const loaded = performance.now();
    await page.goto(`${base}/console/`);
    await page.fill("#login input[name=token]", token);
    await page.click("#login button");
    await page.waitForSelector(`tr[data-program="${program}"]`);
    log(`console loaded and listed programs in ${Math.round(performance.now() - loaded)} ms`);
    assert.equal(await page.locator("tr[data-program]").count(), 2);
    assert.equal(await page.textContent(`tr[data-program="${program}"] [data-state]`), "draft");
    await page.screenshot({ path: join(shots, "console-programs.png"), fullPage: true });

    // train: the job page follows its progress live (the LM answers slowly, so the job runs for a few seconds)
    await page.click(`a[href="#/programs/${program}"]`);
    await page.waitForSelector("#train-form");
    await h.lmDouble.control.apply({ latencyMs: 800 });
    try {
      await page.fill("#train-form input[name=trainset]", "capitals-train");
      await page.fill("#train-form input[name=valset]", "capitals-val");
      await page.click("#train-form button");
      await page.waitForSelector("#job-events");
      await page.waitForSelector('#job-events tr[data-event="done"]', { timeout: 60_000 });
    } finally {
      await h.lmDouble.control.apply({ latencyMs: 0 });
    }
    assert.ok((await page.locator("#job-events tr").count()) >= 2, "progress events arrived live");
    assert.equal(await page.getAttribute("#job-progress", "value"), "1");
    await page.locator("#job-status", { hasText: "succeeded" }).waitFor();
    await page.screenshot({ path: join(shots, "console-job.png"), fullPage: true });

    // optimize, then a deploy below the threshold: the guard is shown; then a deploy that passes
    await page.click(`a[href="#/programs/${program}"]`);
    await page.waitForSelector("#optimize-form");
    await page.click("#optimize-form button");
    await page.waitForSelector('h1 [data-state="optimized"]');
    await page.fill("#deploy-form input[name=dataset]", "capitals-val");
    await page.fill("#deploy-form input[name=threshold]", "101");
    await page.click("#deploy-form button");
    const refusal = await page.waitForSelector("#deploy-form + .result .error");
    const text = (await refusal.textContent()) ?? "";
    assert.match(text, /Conflict/);
    assert.match(text, /guard: "score ≥ threshold"/);
    assert.match(text, /score: 100/);
    await page.screenshot({ path: join(shots, "console-guard.png"), fullPage: true });
    await page.fill("#deploy-form input[name=threshold]", "90");
    await page.click("#deploy-form button");
    await page.waitForSelector('h1 [data-state="deployed"]');
    assert.equal(await page.locator('tr[data-action="deploy"]').count(), 1);

    // executions: run the alias through the API, then search them in the console
    for (const [question] of QA.slice(4)) {
      const r = await api.post("/v1/registry/executions", { program: `program:${program}@deployed`, inputs: { question } }, token);
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    await page.goto(`${base}/console/#/executions?program=${program}`);
    await page.locator("tr[data-execution]").nth(1).waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(shots, "console-executions.png"), fullPage: true });
    await page.selectOption("#search select[name=status]", "error");
    await page.click("#search button");
    await page.waitForURL(/status=error/);
    await page.locator("#search select[name=status] option[value=error][selected]").waitFor({ state: "attached" });
    assert.equal(await page.locator("tr[data-execution]").count(), 0);

    // two versions side by side
    await page.goto(`${base}/console/#/programs/${program}`);
    await page.click("#compare-link");
    await page.waitForSelector("#comparison");
    assert.match((await page.textContent('#comparison tr[data-dataset="capitals-val"]')) ?? "", /0.*100/);
    await page.screenshot({ path: join(shots, "console-compare.png"), fullPage: true });
    // the packaged programs the fleet serves, and one's module tree (the test package's qa: two predictors)
    await page.goto(`${base}/console/#/served`);
    await page.waitForSelector('tr[data-served="qa"]');
    await page.click('a[href="#/served/qa"]');
    await page.waitForSelector("#module-graph");
    assert.deepEqual(await page.locator("#module-graph li li").evaluateAll((items) => items.map((i) => i.getAttribute("data-module"))), ["draft", "refine"]);
    assert.match((await page.textContent('#module-graph li[data-module="refine"] code')) ?? "", /question, draft -> answer, confidence/);
    assert.match((await page.textContent("#mermaid")) ?? "", /^flowchart TD/);
    await page.screenshot({ path: join(shots, "console-module-graph.png"), fullPage: true });
    assert.deepEqual(problems, [], "no script error, no CSP violation");
    assert.deepEqual(refused, [`409 /v1/registry/programs/${program}/deploy`], "the one refusal is the guarded deploy");
    log(`screenshots in ${shots}`);
  } finally {
    await browser.close();
  }
}
