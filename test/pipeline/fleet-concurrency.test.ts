/** A job submitted without `concurrency` is sized to what the general pool's live workers advertise they hold. */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { PipelineClient, PipelineService } from "@dspex/pipeline";
import { startHarness, type Harness } from "../integration/harness.js";

let h: Harness;
let client: PipelineClient;
let service: PipelineService;

before(async () => {
  h = await startHarness({ fleet: { workers: { general: 2 } } });
  service = await PipelineService.start({ servers: h.fleet.natsUrl, creds: h.fleet.creds.pipeline, resume: false });
  client = await PipelineClient.connect({ servers: h.fleet.natsUrl, creds: h.fleet.creds.client });
});
after(async () => {
  await client?.close();
  await service?.close();
  await h?.close();
});

test("default concurrency = sum of the general workers' advertised concurrency", async () => {
  // what the workers advertise, read independently of the service (NATS services API ping)
  const replies = await client.nc.requestMany("$SRV.PING.dspex-worker", undefined, { strategy: "timer", maxWait: 500 });
  let advertised = 0;
  for await (const m of replies) {
    const info = m.json<{ metadata?: Record<string, string> }>();
    if (info.metadata?.pool === "general") advertised += Number(info.metadata.concurrency);
  }
  assert.ok(advertised > 8, `the workers advertise ${advertised}`);
  const job = await client.submit({ program: { signature: "question -> answer", lm: h.lm }, metrics: ["exact_match"] }, [{ question: "q", answer: "a" }]);
  const record = await client.wait(job);
  assert.equal(record.spec.concurrency, Math.min(1024, advertised));
});
