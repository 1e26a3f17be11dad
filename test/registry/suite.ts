/**
 * The registry suite, run once per database (registry.test.ts: the embedded PGlite and a real PostgreSQL): the
 * lifecycle with its guards, alias routing switching on deploy, executions recorded once (also under
 * redelivery), REST and GraphQL (with subscriptions) with their scopes and checks.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { jetstream } from "@nats-io/jetstream";
import { connectNats } from "@dspex/bus";
import { STREAMS, registryConsumer } from "@dspex/protocol";
import { parseExecutionEvent } from "@dspex/registry";
import type { RouterService, newToken } from "@dspex/router";
import type { Harness } from "../integration/harness.js";
import { http, RecordedLog, Subscription } from "./helpers.js";
import { QA } from "../support/fixtures.js";

type Token = ReturnType<typeof newToken>;

export interface SuiteContext {
  backend: "pglite" | "postgres";
  h: Harness;
  service: RouterService;
  base: string;
  log: RecordedLog;
  tokens: { writer: Token; deployer: Token; reader: Token; caller: Token; historian: Token };
}

const examples = QA.map(([question, answer]) => ({ question, answer }));

export function registrySuite(get: () => SuiteContext): void {
  const c = () => get();
  const api = () => http(c().base);
  const name = (s: string) => `${s}-${c().backend}`;
  const qa = () => name("capitals");

  test("programs: created as a draft with version 1; listed, filtered, paged; 409 for a taken name, 404 naming an unknown one", async () => {
    const { writer, reader } = c().tokens;
    const created = await api().post("/v1/registry/programs", { name: qa(), signature: "question -> answer", description: "capitals" }, writer.token);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.state, "draft");
    assert.equal(created.body.latestVersion, 1);
    assert.equal(created.body.deployedVersion, null);
    assert.deepEqual(created.body.signature.inputSchema.required, ["question"]);
    assert.equal(created.body.owner, "writer");
    for (const extra of ["a", "b"]) assert.equal((await api().post("/v1/registry/programs", { name: name(`extra-${extra}`), signature: "text -> label" }, writer.token)).status, 201);

    const dup = await api().post("/v1/registry/programs", { name: qa(), signature: "question -> answer" }, writer.token);
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.type, "Conflict");
    assert.equal(dup.body.error.field, "name");
    const missing = await api().get(`/v1/registry/programs/${name("nope")}`, reader.token);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.details.program, name("nope"));
    const noVersion = await api().get(`/v1/registry/programs/${qa()}/versions/7`, reader.token);
    assert.equal(noVersion.status, 404);
    assert.deepEqual(noVersion.body.error.details, { program: qa(), version: 7 });

    // pages of 2 by name, then the next page by cursor
    const first = await api().get(`/v1/registry/programs?state=draft&limit=2`, reader.token);
    assert.equal(first.status, 200);
    assert.equal(first.body.items.length, 2);
    assert.ok(first.body.next);
    const second = await api().get(`/v1/registry/programs?state=draft&limit=2&cursor=${first.body.next}`, reader.token);
    const names = [...first.body.items, ...second.body.items].map((p: { name: string }) => p.name);
    assert.deepEqual(names, [...names].sort());
    assert.ok(names.includes(qa()) && names.includes(name("extra-a")) && names.includes(name("extra-b")));
    const versions = await api().get(`/v1/registry/programs/${qa()}/versions`, reader.token);
    assert.deepEqual(versions.body.items.map((v: { version: number }) => v.version), [1]);
    assert.equal(versions.body.items[0].kvKey, `registry-${qa()}-v1`);
  });

  test("bad input: 400 naming the field (body, query string, path), 401 without a token, 403 naming a missing scope", async () => {
    const { writer, reader, caller, deployer } = c().tokens;
    const cases: Array<[string, unknown, string, Token?]> = [
      ["/v1/registry/programs", { name: "Bad Name", signature: "a -> b" }, "name"],
      ["/v1/registry/programs", { name: name("x"), signature: "a -> b", bogus: 1 }, "bogus"],
      ["/v1/registry/programs", { name: name("x"), signature: "a -> b", module: "react" }, "module"],
      ["/v1/registry/programs", { name: name("x"), signature: 3 }, "signature"],
      [`/v1/registry/programs/${qa()}/deploy`, { dataset: "val", threshold: "90" }, "threshold", deployer],
      [`/v1/registry/programs/${qa()}/deploy`, {}, "dataset", deployer],
      ["/v1/registry/datasets", { name: name("d"), examples: [] }, "examples"],
      ["/v1/registry/executions", { program: `${qa()}@deployed`, inputs: {} }, "program", caller],
    ];
    for (const [path, body, field, token] of cases) {
      const r = await api().post(path, body, (token ?? writer).token);
      assert.equal(r.status, 400, `${path} ${JSON.stringify(body)} → ${r.status} ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.field, field, `${path} ${JSON.stringify(body)} → ${JSON.stringify(r.body.error)}`);
    }
    for (const [path, field] of [
      ["/v1/registry/programs?limit=0", "limit"],
      ["/v1/registry/programs?state=sleeping", "state"],
      ["/v1/registry/programs?color=red", "color"],
      ["/v1/registry/programs?cursor=bm9wZQ", "cursor"],
      ["/v1/registry/programs/Not_A_Name", "name"],
    ] as const) {
      const r = await api().get(path, reader.token);
      assert.equal(r.status, 400, path);
      assert.equal(r.body.error.field, field, `${path} → ${JSON.stringify(r.body.error)}`);
    }
    assert.equal((await api().get("/v1/registry/programs", null)).status, 401);
    const forbidden = await api().post("/v1/registry/programs", { name: name("x"), signature: "a -> b" }, reader.token);
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body.error.details.scope, "programs:write");
    assert.equal((await api().get("/v1/registry/executions", caller.token)).body.error.details.scope, "executions:read");
    assert.equal((await api().post(`/v1/registry/programs/${qa()}/deprecate`, {}, writer.token)).body.error.details.scope, "programs:deploy");
    assert.equal((await api().post("/v1/registry/programs", "name=x", writer.token, "text/plain")).status, 415);
  });

  test("illegal transitions are 409s naming the state and the guard", async () => {
    const { writer, deployer } = c().tokens;
    for (const [action, token, guard] of [
      ["deploy", deployer, "state"],
      ["optimize", writer, "state"],
      ["rollback", deployer, "state"],
    ] as const) {
      const r = await api().post(`/v1/registry/programs/${qa()}/${action}`, action === "deploy" ? { dataset: name("val") } : {}, token.token);
      assert.equal(r.status, 409, `${action}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.type, "Conflict");
      assert.equal(r.body.error.details.state, "draft");
      assert.equal(r.body.error.details.guard, guard);
      assert.equal(r.body.error.details.action, action);
    }
    const noData = await api().post(`/v1/registry/programs/${qa()}/train`, { optimizer: "LabeledFewShot", trainset: name("none") }, writer.token);
    assert.equal(noData.status, 404);
    assert.equal(noData.body.error.field, "trainset");
  });

  test("train → optimize → deploy with guards; the alias switches on deploy (also under load) and on rollback; deprecate", async () => {
    const { writer, deployer, caller, reader } = c().tokens;
    const ds = async (n: string, rows: typeof examples) => {
      const r = await api().post("/v1/registry/datasets", { name: n, examples: rows }, writer.token);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.match(r.body.contentHash, /^sha256:[0-9a-f]{64}$/);
      return r.body;
    };
    await ds(name("train"), examples.slice(0, 4));
    const val = await ds(name("val"), examples.slice(4));
    const again = await api().post("/v1/registry/datasets", { name: name("val"), examples: examples.slice(4) }, writer.token);
    assert.equal(again.status, 409);
    const reordered = await api().post("/v1/registry/datasets", { name: name("val2"), examples: examples.slice(4).map(({ question, answer }) => ({ answer, question })) }, writer.token);
    assert.equal(reordered.body.contentHash, val.contentHash, "the content hash ignores key order");

    // the LM answers slowly while the job starts, so that it is certainly running when optimize is first asked for
    const lm = c().h.lmDouble;
    const asked = lm.requests().length;
    await lm.control.apply({ latencyMs: 1_500 });
    const train = await api().post(`/v1/registry/programs/${qa()}/train`, { optimizer: "LabeledFewShot", options: { k: 2 }, trainset: name("train"), valset: name("val"), metric: "answer_exact_match", reason: "first training" }, writer.token);
    assert.equal(train.status, 200, JSON.stringify(train.body));
    assert.equal(train.body.program.state, "training");
    const job = train.body.job.id as string;
    // the job's progress, live over a GraphQL subscription fed from dspex.jobs.progress.<job>
    const progress = await Subscription.open(`${c().base.replace("http", "ws")}/graphql`, reader.token, "subscription ($job: String!) { jobProgress(job: $job) }", { job });
    try {
      await lm.waitForRequests(asked + 1, { timeoutMs: 30_000 });
      const early = await api().post(`/v1/registry/programs/${qa()}/optimize`, {}, writer.token);
      await lm.control.apply({ latencyMs: 0 });
      assert.equal(early.status, 409, "optimize before the job succeeded");
      assert.equal(early.body.error.details.guard, "optimizer job succeeded");
      assert.equal(early.body.error.details.job, job);
      const done = await progress.waitFor((e) => ["done", "failed"].includes(e.data?.jobProgress?.type), 120_000);
      assert.equal(done.data.jobProgress.type, "done", JSON.stringify(done));
      assert.ok(progress.events.length >= 2, "progress events before the end");
    } finally {
      progress.close();
      await lm.control.apply({ latencyMs: 0 });
    }
    const jobView = await api().get(`/v1/registry/jobs/${job}`, reader.token);
    assert.equal(jobView.body.status, "succeeded");
    assert.equal(jobView.body.valset, name("val"));

    const optimized = await api().post(`/v1/registry/programs/${qa()}/optimize`, { reason: "take LabeledFewShot" }, writer.token);
    assert.equal(optimized.status, 200, JSON.stringify(optimized.body));
    assert.equal(optimized.body.program.state, "optimized");
    const v2 = optimized.body.version;
    assert.equal(v2.version, 2);
    assert.equal(v2.parentVersion, 1);
    assert.equal(v2.job, job);
    assert.equal(v2.score, 100);
    assert.equal(v2.baselineScore, 0);
    assert.deepEqual(v2.evaluations.map((e: { dataset: string; score: number }) => [e.dataset, e.score]), [[name("val"), 100]]);

    const below = await api().post(`/v1/registry/programs/${qa()}/deploy`, { version: 2, dataset: name("val"), threshold: 100.5 }, deployer.token);
    assert.equal(below.status, 409);
    assert.equal(below.body.error.details.guard, "score ≥ threshold");
    assert.equal(below.body.error.details.score, 100);
    assert.equal(below.body.error.details.threshold, 100.5);
    const unscored = await api().post(`/v1/registry/programs/${qa()}/deploy`, { version: 2, dataset: name("train") }, deployer.token);
    assert.equal(unscored.status, 409);
    assert.equal(unscored.body.error.details.guard, "score on dataset");

    // version 1 first (its baseline score 0 was measured on val), then version 2 while calls are running
    const d1 = await api().post(`/v1/registry/programs/${qa()}/deploy`, { version: 1, dataset: name("val"), reason: "baseline" }, deployer.token);
    assert.equal(d1.status, 200, JSON.stringify(d1.body));
    assert.equal(d1.body.program.alias, `program:${qa()}@deployed`);
    const [question, answer] = QA[4]!;
    const run = () => api().post("/v1/registry/executions", { program: `program:${qa()}@deployed`, inputs: { question } }, caller.token);
    const before = await run();
    assert.equal(before.status, 200, JSON.stringify(before.body));
    assert.equal(before.body.version, 1);
    assert.equal(before.body.outputs.answer, `answer to: ${question}`);

    const during: Array<Promise<{ started: number; version: number }>> = [];
    let deployedAt = Infinity;
    const load = (async () => {
      for (let i = 0; i < 12; i++) {
        const started = performance.now();
        during.push(run().then((r) => ({ started, version: r.body.version as number })));
        await new Promise((r) => setImmediate(r));
      }
    })();
    const d2 = await api().post(`/v1/registry/programs/${qa()}/deploy`, { version: 2, dataset: name("val"), threshold: 90, reason: "scores 100" }, deployer.token);
    deployedAt = performance.now();
    await load;
    assert.equal(d2.status, 200, JSON.stringify(d2.body));
    assert.equal(d2.body.program.deployedVersion, 2);
    const results = await Promise.all(during);
    assert.ok(results.every((r) => r.version === 1 || r.version === 2), "every call ran one whole version");
    assert.ok(results.filter((r) => r.started > deployedAt).every((r) => r.version === 2), "no call started after the deploy ran the old version");
    const after = await run();
    assert.equal(after.body.version, 2);
    assert.equal(after.body.outputs.answer, answer, "the optimized version answers");

    const back = await api().post(`/v1/registry/programs/${qa()}/rollback`, { reason: "compare" }, deployer.token);
    assert.equal(back.status, 200, JSON.stringify(back.body));
    assert.equal(back.body.program.deployedVersion, 1);
    assert.equal((await run()).body.version, 1);
    const noPrevious = await api().post(`/v1/registry/programs/${qa()}/rollback`, {}, deployer.token);
    assert.equal(noPrevious.status, 409);
    assert.equal(noPrevious.body.error.details.guard, "previous deployment");
    assert.equal((await api().post(`/v1/registry/programs/${qa()}/deploy`, { version: 2, dataset: name("val") }, deployer.token)).status, 200);

    const transitions = await api().get(`/v1/registry/programs/${qa()}/transitions`, reader.token);
    assert.deepEqual(
      transitions.body.items.map((t: { action: string; to: string; version: number; actor: string }) => [t.action, t.to, t.version, t.actor]).reverse(),
      [
        ["create", "draft", 1, "writer"],
        ["train", "training", 1, "writer"],
        ["optimize", "optimized", 2, "writer"],
        ["deploy", "deployed", 1, "deployer"],
        ["deploy", "deployed", 2, "deployer"],
        ["rollback", "deployed", 1, "deployer"],
        ["deploy", "deployed", 2, "deployer"],
      ],
    );
    assert.equal(transitions.body.items.find((t: { action: string }) => t.action === "rollback").reason, "compare");
  });

  test("executions: recorded once each, outputs kept, inputs redacted by default; searched by program, version, status, time", async () => {
    const { caller, historian } = c().tokens;
    const ok = await api().post("/v1/registry/executions", { program: `program:${qa()}@2`, inputs: { question: QA[5]![0] } }, caller.token);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const bad = await api().post("/v1/registry/executions", { program: `program:${qa()}@2`, inputs: {} }, caller.token);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, "question");
    const unknown = await api().post("/v1/registry/executions", { program: `program:${qa()}@9`, inputs: { question: "q" } }, caller.token);
    assert.equal(unknown.status, 404);
    assert.deepEqual(unknown.body.error.details, { program: qa(), version: 9 });
    assert.deepEqual(await c().log.wait(ok.body.id), [true]);

    const row = await api().get(`/v1/registry/executions/${ok.body.id}`, historian.token);
    assert.equal(row.status, 200);
    assert.equal(row.body.status, "ok");
    assert.equal(row.body.version, 2);
    assert.equal(row.body.outputs.answer, QA[5]![1]);
    assert.equal(row.body.inputs, null, "inputs are not kept by default");
    assert.deepEqual(row.body.inputsSummary.fields.question.type, "string");
    assert.equal(row.body.inputsSummary.redacted, true);
    assert.equal(row.body.caller, "caller");
    assert.ok(row.body.latencyMs > 0);
    assert.equal(typeof row.body.worker, "string");

    const list = await api().get(`/v1/registry/executions?program=${qa()}&version=2&status=ok&since=${encodeURIComponent(new Date(Date.now() - 600_000).toISOString())}&limit=100`, historian.token);
    assert.ok(list.body.items.some((e: { id: string }) => e.id === ok.body.id));
    assert.ok(list.body.items.every((e: { program: string; version: number }) => e.program === qa() && e.version === 2));
    const none = await api().get(`/v1/registry/executions?program=${qa()}&until=2000-01-01T00:00:00Z`, historian.token);
    assert.deepEqual(none.body.items, []);
    const ids = (await api().get(`/v1/registry/executions?limit=200`, historian.token)).body.items.map((e: { id: string }) => e.id);
    assert.equal(new Set(ids).size, ids.length);
  });

  test("a redelivered execution event is recorded once", async () => {
    const { caller, historian } = c().tokens;
    const recorder = c().service.registry!.recorder;
    await recorder.stop();
    const nc = await connectNats({ servers: c().h.fleet.natsUrl, creds: c().h.fleet.creds.gateway, name: "test-recorder" });
    try {
      const ran = await api().post("/v1/registry/executions", { program: `program:${qa()}@1`, inputs: { question: "Who?" } }, caller.token);
      assert.equal(ran.status, 200);
      // a recorder that wrote the row and failed before its ack: the message comes back
      const consumer = await jetstream(nc).consumers.get(STREAMS.executions.name, registryConsumer());
      const m = await consumer.next({ expires: 5_000 });
      assert.ok(m, "the execution event is in the stream");
      const event = parseExecutionEvent(m.data);
      assert.equal(event.id, ran.body.id);
      assert.equal(await c().service.registry!.executions.record(event), true);
      m.nak();
      await recorder.start();
      assert.deepEqual(await c().log.wait(ran.body.id), [false], "redelivered, found recorded");
      const list = await api().get(`/v1/registry/executions?program=${qa()}&version=1&limit=200`, historian.token);
      assert.equal(list.body.items.filter((e: { id: string }) => e.id === ran.body.id).length, 1);
    } finally {
      await recorder.start();
      await nc.close();
    }
  });

  test("GraphQL: queries, mutations and errors from the same definitions; executions as a subscription", async () => {
    const { reader, writer, caller, historian } = c().tokens;
    const q = await api().graphql("query ($n: String!) { program(name: $n) { name state deployedVersion signature { text } } versions(name: $n, limit: 1) { items { version score } next } }", { n: qa() }, reader.token);
    assert.equal(q.errors, undefined, JSON.stringify(q.errors));
    assert.deepEqual(q.data.program, { name: qa(), state: "deployed", deployedVersion: 2, signature: { text: "question -> answer" } });
    assert.deepEqual(q.data.versions.items, [{ version: 2, score: 100 }]);
    assert.ok(q.data.versions.next);

    const m = await api().graphql("mutation ($i: CreateDatasetInput!) { createDataset(input: $i) { name size contentHash } }", { i: { name: name("gql"), examples: [{ question: "q", answer: "a" }] } }, writer.token);
    assert.equal(m.errors, undefined, JSON.stringify(m.errors));
    assert.equal(m.data.createDataset.size, 1);
    const dup = await api().graphql("mutation ($i: CreateDatasetInput!) { createDataset(input: $i) { name } }", { i: { name: name("gql"), examples: [{ a: 1 }] } }, writer.token);
    assert.equal(dup.errors![0].extensions.type, "Conflict");
    const invalid = await api().graphql('mutation { createProgram(input: {name: "Bad Name", signature: "a -> b"}) { name } }', {}, writer.token);
    assert.equal(invalid.errors![0].extensions.type, "ValidationError");
    assert.equal(invalid.errors![0].extensions.field, "input.name");
    const forbidden = await api().graphql("{ executions { items { id } } }", {}, reader.token);
    assert.equal(forbidden.errors![0].extensions.type, "Forbidden");
    assert.equal((await api().post("/graphql", { query: "{ programs { items { name } } }" }, null)).status, 401);

    const sub = await Subscription.open(`${c().base.replace("http", "ws")}/graphql`, historian.token, "subscription ($p: String) { executionAdded(program: $p) { id program version status outputs } }", { p: qa() });
    try {
      const ran = await api().graphql('mutation ($p: String!) { execute(input: {program: $p, inputs: {question: "What is the capital of Avalon?"}}) { id version outputs } }', { p: `program:${qa()}@deployed` }, caller.token);
      assert.equal(ran.errors, undefined, JSON.stringify(ran.errors));
      const seen = await sub.waitFor((e) => e.data?.executionAdded?.id === ran.data.execute.id, 20_000);
      assert.deepEqual(seen.data.executionAdded, { id: ran.data.execute.id, program: qa(), version: 2, status: "ok", outputs: { answer: "Glastonbury" } });
    } finally {
      sub.close();
    }
    await assert.rejects(Subscription.open(`${c().base.replace("http", "ws")}/graphql`, "dspex_not-a-token", "subscription { executionAdded { id } }", {}), /refused|closed/);
  });

  test("deprecate: no alias any more (409 naming the state), pinned versions still run", async () => {
    const { deployer, caller, reader } = c().tokens;
    const r = await api().post(`/v1/registry/programs/${qa()}/deprecate`, { reason: "replaced" }, deployer.token);
    assert.equal(r.status, 200);
    assert.equal(r.body.program.state, "deprecated");
    assert.equal(r.body.program.alias, null);
    const alias = await api().post("/v1/registry/executions", { program: `program:${qa()}@deployed`, inputs: { question: "q" } }, caller.token);
    assert.equal(alias.status, 409);
    assert.equal(alias.body.error.details.state, "deprecated");
    assert.equal((await api().post("/v1/registry/executions", { program: `program:${qa()}@2`, inputs: { question: "q" } }, caller.token)).status, 200);
    assert.equal((await api().post(`/v1/registry/programs/${qa()}/deprecate`, {}, deployer.token)).status, 409);
    const deprecated = await api().get("/v1/registry/programs?state=deprecated", reader.token);
    assert.deepEqual(deprecated.body.items.map((p: { name: string }) => p.name), [qa()]);
  });
}
