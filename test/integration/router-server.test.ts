/** The router service (what the Kubernetes Deployment runs): HTTP API, health and readiness. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { HEALTH_PATHS } from "@dspex/observability";
import { startRouter } from "@dspex/router";
import { startHarness, type Harness } from "./harness.js";

describe("router service HTTP API", { timeout: 120_000 }, () => {
  let h: Harness;
  let service: Awaited<ReturnType<typeof startRouter>>;
  let base: string;

  before(async () => {
    h = await startHarness();
    service = await startRouter({ port: 0, client: { servers: h.fleet.natsUrl, lm: h.lm } });
    base = `http://127.0.0.1:${service.port}`;
  });
  after(async () => {
    await service?.stop();
    await h?.close();
  });

  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${base}${path}`, { method: "POST", body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  test("health and readiness check NATS and JetStream", async () => {
    assert.equal((await fetch(`${base}${HEALTH_PATHS.live}`)).status, 200);
    const ready = await fetch(`${base}${HEALTH_PATHS.ready}`);
    assert.equal(ready.status, 200);
    assert.equal(((await ready.json()) as { ready: boolean }).ready, true);
  });

  test("POST /v1/predict runs a real DSPy call", async () => {
    const r = await post("/v1/predict", { signature: "question -> answer: int", inputs: { question: "What is 7*6?" } });
    assert.equal(r.status, 200);
    assert.equal(r.body.outputs.answer, 42);
  });

  test("programs can be created and executed over HTTP", async () => {
    const created = await post("/v1/programs", { signature: "question -> answer", module: "chain_of_thought" });
    assert.equal(created.status, 201);
    const r = await post(`/v1/programs/${created.body.id}/execute`, { inputs: { question: "What is 1+2?" } });
    assert.equal(r.status, 200);
    assert.equal(r.body.outputs.answer, "3");
    assert.equal(typeof r.body.outputs.reasoning, "string");
  });

  test("bad input is a 400 with a typed error naming the field", async () => {
    const r = await post("/v1/predict", { signature: "question -> answer", inputs: {} });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.type, "ValidationError");
    assert.equal(r.body.error.field, "question");
    const bad = await fetch(`${base}/v1/predict`, { method: "POST", body: "{not json" });
    assert.equal(bad.status, 400);
  });
});
