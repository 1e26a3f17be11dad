/**
 * The router service (what the Kubernetes Deployment runs): its HTTP API with bearer tokens and scopes, JSON
 * only, bodies checked field by field and against the pool's payload limit, program ids owned by their
 * creator, no internal error text, CORS off; health and readiness. Real fleet (nats-server, a dspy worker),
 * the LM double.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { DspexError } from "@dspex/protocol";
import { HEALTH_PATHS } from "@dspex/observability";
import { contractError, newToken, startRouter } from "@dspex/router";

import { startHarness, type Harness } from "./harness.js";

const GENERAL_LIMIT = 64 * 1024;
const OTHER_LIMIT = 128 * 1024;

describe("router service HTTP API", { timeout: 120_000 }, () => {
  let h: Harness;
  let service: Awaited<ReturnType<typeof startRouter>>;
  let base: string;
  const alice = newToken("alice", ["predict", "programs:write"]);
  const bob = newToken("bob", ["predict", "programs:write"]);
  const reader = newToken("reader", ["predict"]);

  before(async () => {
    h = await startHarness();
    service = await startRouter({
      port: 0,
      host: "127.0.0.1",
      tokens: [alice.entry, bob.entry, reader.entry],
      client: {
        servers: h.fleet.natsUrl,
        creds: h.fleet.creds.client,
        lm: h.lm,
        bus: { pools: { general: { maxPayloadBytes: GENERAL_LIMIT }, optimizer: { maxPayloadBytes: OTHER_LIMIT }, gpu: { maxPayloadBytes: OTHER_LIMIT } } },
      },
    });
    base = `http://127.0.0.1:${service.port}`;
  });
  after(async () => {
    await service?.stop();
    await h?.close();
  });

  /** POSTs as alice unless another token (or `null`: none) is given. */
  const post = async (path: string, body: unknown, token: string | null = alice.token, contentType = "application/json") => {
    const res = await fetch(`${base}${path}`, {
      method: "POST",
      body: typeof body === "string" ? body : JSON.stringify(body),
      headers: { "content-type": contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
  };

  test("health and readiness need no token and check NATS", async () => {
    assert.equal((await fetch(`${base}${HEALTH_PATHS.live}`)).status, 200);
    const ready = await fetch(`${base}${HEALTH_PATHS.ready}`);
    assert.equal(ready.status, 200);
    assert.equal(((await ready.json()) as { ready: boolean }).ready, true);
  });

  test("without a valid token: 401; without the scope: 403; a valid token works", async () => {
    const call = { signature: "question -> answer: int", inputs: { question: "What is 7*6?" } };
    const none = await post("/v1/predict", call, null);
    assert.equal(none.status, 401);
    assert.equal(none.body.error.type, "Unauthorized");
    assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer/);
    assert.equal((await post("/v1/predict", call, "dspex_not-a-token")).status, 401);
    const forbidden = await post("/v1/programs", { signature: "question -> answer" }, reader.token);
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body.error.details.scope, "programs:write");
    const ok = await post("/v1/predict", call, reader.token);
    assert.equal(ok.status, 200);
    assert.equal(ok.body.outputs.answer, 42);
  });

  test("anything but application/json is a 415 (a cross-site text/plain POST does nothing)", async () => {
    const call = JSON.stringify({ signature: "question -> answer", inputs: { question: "q" } });
    for (const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]) {
      const r = await post("/v1/predict", call, alice.token, type);
      assert.equal(r.status, 415, type);
      assert.equal(r.body.error.field, "content-type");
    }
    assert.equal(h.lmDouble.requests().filter((r) => JSON.stringify(r.body).includes('"q"')).length, 0, "nothing reached the LM");
  });

  test("a body over the pool's payload limit is a 413", async () => {
    const big = "x".repeat(GENERAL_LIMIT + 1_000);
    const general = await post("/v1/predict", { signature: "question -> answer", inputs: { question: big } });
    assert.equal(general.status, 413);
    assert.equal(general.body.error.type, "PayloadTooLarge");
    assert.equal(general.body.error.details.pool, "general");
    const huge = await post("/v1/predict", { signature: "question -> answer", inputs: { question: "x".repeat(OTHER_LIMIT + 1_000) }, pool: "optimizer" });
    assert.equal(huge.status, 413, "over every pool's limit: not even read");
  });

  test("every body field is checked: a 400 names the field", async () => {
    const call = { signature: "question -> answer", inputs: { question: "q" } };
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...call, timeoutMs: "10" }, "timeoutMs"],
      [{ ...call, timeoutMs: 0 }, "timeoutMs"],
      [{ ...call, timeoutMs: 1e12 }, "timeoutMs"],
      [{ ...call, pool: "bogus" }, "pool"],
      [{ ...call, affinity: "sometimes" }, "affinity"],
      [{ ...call, bogus: 1 }, "bogus"],
      [{ inputs: { question: "q" } }, "signature"],
      [{ ...call, lm: { model: 3 } }, "lm.model"],
      [{ signature: "question -> answer", inputs: {} }, "question"],
    ];
    for (const [body, field] of cases) {
      const r = await post("/v1/predict", body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.type, "ValidationError");
      assert.equal(r.body.error.field, field, `${JSON.stringify(body)} → ${JSON.stringify(r.body.error)}`);
    }
    assert.equal((await post("/v1/predict", "{not json")).status, 400);
    assert.equal((await post("/v1/programs/bad%20id/execute", { inputs: {} })).body.error.field, "id");
  });

  test("programs: ids made by the server, or owned by their creator", async () => {
    const created = await post("/v1/programs", { signature: "question -> answer", module: "chain_of_thought" });
    assert.equal(created.status, 201);
    assert.match(created.body.id, /^[-_a-zA-Z0-9]+$/);
    const r = await post(`/v1/programs/${created.body.id}/execute`, { inputs: { question: "What is 1+2?" } }, reader.token);
    assert.equal(r.status, 200);
    assert.equal(r.body.outputs.answer, "3");
    assert.equal(typeof r.body.outputs.reasoning, "string");

    const mine = await post("/v1/programs", { id: "alices-program", signature: "question -> answer" }, alice.token);
    assert.equal(mine.status, 201);
    const again = await post("/v1/programs", { id: "alices-program", signature: "question -> answer: int" }, alice.token);
    assert.equal(again.status, 201, "the owner adds a version");
    assert.ok(again.body.version > mine.body.version);
    const taken = await post("/v1/programs", { id: "alices-program", signature: "question -> answer" }, bob.token);
    assert.equal(taken.status, 403);
    assert.equal(taken.body.error.field, "id");
  });

  test("no internal error text reaches a caller; CORS is off", async () => {
    const { status, body } = contractError(new DspexError("Traceback: /srv/secret/config.py line 3", { type: "WorkerError" }), "req-1");
    assert.equal(status, 502);
    assert.doesNotMatch(JSON.stringify(body), /secret/);
    assert.equal(body.error.id, "req-1");
    const preflight = await fetch(`${base}/v1/predict`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    assert.equal(preflight.headers.get("access-control-allow-origin"), null);
  });
});
