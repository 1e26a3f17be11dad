// Users' packaged programs on the real fleet: the test package (test/programs, installed into .venv by
// scripts/setup.sh) declares `qa` and `summarize` by entry points; DSPEX_PROGRAMS adds one that cannot be served.
// The worker advertises both with wire types in its status and ready event, reports the broken one, and still
// serves requests.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { busSettings, busSpec, collectStatus, formatStatus, type WorkerStatus } from "@dspex/bus";
import { startHarness, type Harness } from "../integration/harness.js";

describe("program packages: advertisement", { timeout: 120_000 }, () => {
  let h: Harness;

  before(async () => {
    h = await startHarness({
      fleet: { workerEnv: { DSPEX_PROGRAMS: "dspex_test_programs.broken:BadPool,dspex_test_programs.nowhere:Gone" } },
    });
  });
  after(async () => {
    await h?.close();
  });

  const status = async (): Promise<WorkerStatus> => {
    const w = h.fleet.workers[0]!;
    const reply = await h.client.nc.request(`dspex.worker.${w.id}.status`, undefined, { timeout: 5_000 });
    return reply.json<WorkerStatus>();
  };

  test("both entry-point programs are advertised with their package version, pool, wire types and predictors", async () => {
    const advert = (await status()).programs;
    assert.ok(advert, "the worker status carries `programs`");
    const byName = new Map(advert.programs.map((p) => [p.name, p]));
    assert.deepEqual([...byName.keys()].sort(), ["qa", "summarize"]);
    const qa = byName.get("qa")!;
    assert.equal(qa.version, "0.1.0");
    assert.equal(qa.pool, "general");
    assert.equal(qa.path, "dspex_test_programs.qa:QA");
    assert.deepEqual(qa.inputs, [{ name: "question", type: { kind: "str" } }]);
    assert.deepEqual(qa.outputs, [
      { name: "answer", type: { kind: "str" } },
      { name: "confidence", type: { kind: "float" } },
    ]);
    assert.deepEqual(qa.predictors, ["draft", "refine"]);
    const summarize = byName.get("summarize")!;
    assert.deepEqual(summarize.inputs, [
      { name: "text", type: { kind: "str" } },
      { name: "max_words", type: { kind: "int" } },
    ]);
    assert.ok(summarize.outputs.some((f) => f.name === "keywords" && f.type.kind === "list"));
  });

  test("programs that cannot be served are reported (status and ready event) and the worker serves the rest", async () => {
    const advert = (await status()).programs!;
    const failures = new Map(advert.failures.map((f) => [f.name, f.error]));
    assert.match(failures.get("BadPool") ?? "", /pool 'tpu'/);
    assert.match(failures.get("Gone") ?? "", /^ModuleNotFoundError/);
    const ready = h.fleet.workers[0]!.lastEvents.get("ready") as unknown as { programs?: typeof advert } | undefined;
    assert.deepEqual(ready?.programs, advert);
    const out = await h.client.predict("question -> answer", { question: "still serving?" });
    assert.equal(typeof out.outputs.answer, "string");
  });
});

describe("program packages: dspex status", { timeout: 120_000 }, () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ fleet: { workerEnv: { DSPEX_PROGRAMS: "dspex_test_programs.broken:BadPool" } } });
  });
  after(async () => {
    await h?.close();
  });

  test("lists each worker's programs with their fields, and the ones not served with the reason", async () => {
    const text = formatStatus(await collectStatus(h.admin, busSpec(busSettings())));
    assert.match(text, /program qa 0\.1\.0 \(general\): question -> answer, confidence/);
    assert.match(text, /program BadPool NOT SERVED \(dspex_test_programs\.broken:BadPool\): ValueError: pool 'tpu'/);
  });
});
