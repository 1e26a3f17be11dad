/**
 * Deploying a new version of a program package without dropping requests: a worker with version 1.0.0 of the
 * package (installed layout: the package beside its .dist-info with the version and its `dspex.programs` entry
 * point) has a call in flight when the supervisor replaces it with a worker running 2.0.0. The call finishes on the
 * old worker with the old code; the new worker advertises 2.0.0 and answers the next call with the new code.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { servedPrograms, workerStatuses } from "@dspex/bus";
import { startHarness, type Harness } from "../integration/harness.js";

/** A site directory holding `dspex_upgrade_demo` at `version`, as an installer lays it out. */
function release(root: string, version: string): string {
  const site = join(root, `v${version}`);
  const pkg = join(site, "dspex_upgrade_demo");
  const info = join(site, `dspex_upgrade_demo-${version}.dist-info`);
  mkdirSync(pkg, { recursive: true });
  mkdirSync(info, { recursive: true });
  writeFileSync(join(pkg, "__init__.py"), "");
  writeFileSync(
    join(pkg, "program.py"),
    [
      "import dspy",
      "",
      "",
      "class Sig(dspy.Signature):",
      "    text: str = dspy.InputField()",
      "    answer: str = dspy.OutputField()",
      "    release: str = dspy.OutputField()",
      "",
      "",
      "class Echo(dspy.Module):",
      "    signature = Sig",
      "",
      "    def __init__(self):",
      "        super().__init__()",
      '        self.reply = dspy.Predict("text -> answer")',
      "",
      "    def forward(self, text):",
      `        return dspy.Prediction(answer=self.reply(text=text).answer, release=${JSON.stringify(version)})`,
      "",
    ].join("\n"),
  );
  writeFileSync(join(info, "METADATA"), `Metadata-Version: 2.1\nName: dspex-upgrade-demo\nVersion: ${version}\n`);
  writeFileSync(join(info, "top_level.txt"), "dspex_upgrade_demo\n");
  writeFileSync(join(info, "entry_points.txt"), "[dspex.programs]\nupgrade_demo = dspex_upgrade_demo.program:Echo\n");
  return site;
}

describe("a rolling upgrade of a program package", { timeout: 180_000 }, () => {
  let h: Harness;
  let root: string;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), "dspex-upgrade-"));
    h = await startHarness({ fleet: { workers: { general: 1 }, workerEnv: { PYTHONPATH: release(root, "1.0.0") } } });
  });
  after(async () => {
    await h?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test("the call in flight finishes on 1.0.0; the replacement advertises and runs 2.0.0", async () => {
    const old = h.fleet.workers.find((w) => w.pool === "general")!;
    const program = h.client.program<{ text: string }, { answer: string; release: string }>("upgrade_demo");
    assert.equal((await program.describe()).version, "1.0.0");

    // the LM answers slower than a worker starts, so the call is still running when the old worker is told to stop
    h.lmDouble.control.setLatency(8_000);
    const order: string[] = [];
    h.fleet.supervisor.on("ready", (w: { id: string }) => order.push(`ready ${w.id}`));
    h.fleet.supervisor.on("exit", (w: { id: string }) => order.push(`exit ${w.id}`));
    const seen = h.lmDouble.requests().length;
    const inFlight = program.call({ text: "before the upgrade" }, { lane: "durable", timeoutMs: 60_000 }).then((r) => (order.push("answered"), r));
    await h.lmDouble.waitForRequests(seen + 1); // the old worker is inside the program, waiting on the LM

    const replacement = await h.fleet.supervisor.recycle(old, "upgrade", { PYTHONPATH: release(root, "2.0.0") });
    const first = await inFlight;
    // the old worker was stopped (right after its replacement was ready) while the call ran, and drained it
    assert.deepEqual(order, [`ready ${replacement.id}`, "answered", `exit ${old.id}`]);
    assert.equal(first.worker, old.id);
    assert.equal(first.outputs.release, "1.0.0", "the request that was running finished with the code it started on");
    h.lmDouble.control.setLatency(0);

    const served = servedPrograms(await workerStatuses(h.client.nc));
    assert.equal(served.get("upgrade_demo")?.version, "2.0.0");
    const next = await program.call({ text: "after the upgrade" });
    assert.equal(next.worker, replacement.id);
    assert.equal(next.outputs.release, "2.0.0");
    assert.equal((await program.describe()).version, "2.0.0", "the client's handle learned the new version");
  });
});
