/**
 * The bus is described in one place and applied by one actor, against a real nats-server with JetStream:
 * apply creates everything and is idempotent; components verify and never change it — a client whose
 * settings say 3 replicas connects to a 1-replica bus, changes nothing and reports the drift; a missing
 * stream is a BusError naming it; drift made by hand is reported and repaired by the next apply.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { BusError, STREAMS } from "@dspex/protocol";
import { applyBus, busSettings, busSpec, connectNats, inspectBus, requireBus } from "@dspex/bus";
import { Client } from "@dspex/client";
import { startNatsServer, type EmbeddedNats } from "@dspex/embedded";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "../../..");

describe("the bus: described, applied by one actor, verified by everyone else", { timeout: 120_000 }, () => {
  let nats: EmbeddedNats;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const spec = busSpec(busSettings({}, {}));
  const total = spec.streams.length + spec.consumers.length + spec.buckets.length;

  before(async () => {
    nats = await startNatsServer();
    nc = await connectNats({ servers: nats.url, name: "bus-test", creds: nats.creds.admin });
    jsm = await jetstreamManager(nc);
  });
  after(async () => {
    await nc?.close();
    await nats?.stop();
  });

  test("nothing provisioned: verifying fails with a BusError naming what is missing; a client cannot connect", async () => {
    await assert.rejects(requireBus(nc, { streams: ["requests"], buckets: ["jobs"] }), (err: unknown) => {
      assert.ok(err instanceof BusError, String(err));
      assert.match(err.message, /missing bucket dspex_jobs, stream DSPEX_REQ; run `dspex bus apply`/);
      return true;
    });
    await assert.rejects(Client.connect({ servers: nats.url, creds: nats.creds.client }), (err: unknown) => err instanceof BusError && /stream DSPEX_REQ/.test(err.message));
    assert.deepEqual((await inspectBus(nc, spec)).missing.length, total, "the client created nothing");
  });

  test("apply creates every stream, consumer and bucket, and a second apply changes nothing", async () => {
    const first = await applyBus(nc, spec);
    assert.equal(first.created.length, total);
    assert.deepEqual([first.updated, first.refused], [[], []]);
    const second = await applyBus(nc, spec);
    assert.deepEqual([second.created, second.updated, second.refused], [[], [], []]);
    assert.equal(second.unchanged.length, total);
    const inspection = await inspectBus(nc, spec);
    assert.deepEqual([inspection.missing, inspection.drift], [[], []]);
    const req = await jsm.streams.info(STREAMS.requests.name);
    assert.equal(req.config.max_bytes, 1024 ** 3, "limits on every stream");
    assert.ok(req.config.max_age > 0);
  });

  test("a client configured for 3 replicas changes nothing on a 1-replica bus and reports the drift", async () => {
    const before = (await jsm.streams.info(STREAMS.requests.name)).config;
    const client = await Client.connect({ servers: nats.url, creds: nats.creds.client, bus: { replicas: 3 }, checkWorkers: false });
    try {
      const replicas = client.busDrift.find((d) => d.what === "stream DSPEX_REQ" && d.field === "num_replicas");
      assert.deepEqual(replicas && { want: replicas.want, have: replicas.have }, { want: 3, have: 1 });
    } finally {
      await client.close();
    }
    const afterConfig = (await jsm.streams.info(STREAMS.requests.name)).config;
    assert.deepEqual(afterConfig, before, "the stream's configuration is untouched");
    // `dspex status` of a deployment whose settings say 3 replicas shows the same drift
    const { stdout } = await run(process.execPath, ["--conditions=development", "--import", "tsx", "services/cli/src/cli.ts", "status"], {
      cwd: ROOT,
      env: { ...process.env, NATS_URL: nats.url, NATS_CREDS: nats.creds.monitor, DSPEX_BUS_REPLICAS: "3" },
    });
    assert.match(stdout, /DRIFT stream DSPEX_REQ: num_replicas is 1, the deployment says 3/);
    assert.match(stdout, /routers: none answered/);
  });

  test("drift made by hand is reported, and the next apply repairs what can change and refuses what cannot", async () => {
    await jsm.consumers.update(STREAMS.requests.name, "general", { max_ack_pending: 7 });
    const drift = (await inspectBus(nc, spec)).drift;
    assert.deepEqual(
      drift.map((d) => [d.what, d.field, d.have, d.want]),
      [["consumer DSPEX_REQ/general", "max_ack_pending", 7, 1000]],
    );
    const memorySpec = busSpec(busSettings({ storage: "memory" }, {}));
    const report = await applyBus(nc, memorySpec);
    assert.ok(report.updated.some((u) => u.what === "consumer DSPEX_REQ/general"), "repaired");
    assert.ok(report.refused.some((r) => r.what === "stream DSPEX_REQ" && r.field === "storage"), "storage cannot change in place");
    assert.equal((await jsm.streams.info(STREAMS.requests.name)).config.storage, "file", "nothing was deleted or recreated");
    assert.equal((await jsm.consumers.info(STREAMS.requests.name, "general")).config.max_ack_pending, 1000);
  });
});
