/**
 * The program registry end to end (docs/api.md): one fleet (nats-server, a general and an optimizer worker
 * running real dspy, the LM double), and the same suite (suite.ts) against the embedded PGlite and a real
 * PostgreSQL server from Debian's packages; then the PostgreSQL server is stopped — the registry answers 503,
 * programs still run, their executions wait in JetStream and are recorded once it is back. Also: the OpenAPI
 * document is valid OpenAPI 3.1, and only the gateway identity may write execution history.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { promisify } from "node:util";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import { PermissionViolationError } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { connectNats } from "@dspex/bus";
import { STREAMS, executionSubject, poolConsumer } from "@dspex/protocol";
import { newToken, startRouter, type RouterService } from "@dspex/router";
import type { ScriptRule } from "../lm-double/server.js";
import { startHarness, type Harness } from "../integration/harness.js";
import { http, RecordedLog } from "./helpers.js";
import { startPostgres, type PostgresServer } from "./postgres.js";
import { QA } from "../support/fixtures.js";
import { registrySuite, type SuiteContext } from "./suite.js";
import { consoleScenario } from "./console.js";

const RULES: ScriptRule[] = QA.map(([q, a]): ScriptRule => ({ field: "question", match: q, when: { minMessages: 3 }, outputs: { answer: a } }));

const run = promisify(execFile);
const CLI = ["--conditions=development", "--import", "tsx", join(import.meta.dirname, "../../services/cli/src/cli.ts")];

const tokens = {
  writer: newToken("writer", ["programs:read", "programs:write"]),
  deployer: newToken("deployer", ["programs:read", "programs:deploy"]),
  reader: newToken("reader", ["programs:read"]),
  caller: newToken("caller", ["predict"]),
  historian: newToken("historian", ["executions:read", "programs:read"]),
  admin: newToken("console", ["admin"]),
};

describe("the program registry", { timeout: 600_000 }, () => {
  let h: Harness;
  let pg: PostgresServer;
  const dirs: string[] = [];

  before(async () => {
    const pools = { optimizer: { partitions: 0 } };
    [h, pg] = await Promise.all([startHarness({ fleet: { workers: { general: 1, optimizer: 1 }, bus: { pools } }, client: { bus: { pools } } }), startPostgres()]);
    await h.lmDouble.control.apply({ reset: true, rules: RULES });
  });
  after(async () => {
    await h?.close();
    await pg?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function gateway(url: string): Promise<RouterService> {
    return startRouter({
      port: 0,
      host: "127.0.0.1",
      tokens: Object.values(tokens).map((t) => t.entry),
      client: { servers: h.fleet.natsUrl, creds: h.fleet.creds.gateway, lm: h.lm, bus: { pools: { optimizer: { partitions: 0 } } } },
      registry: { url },
    });
  }

  for (const backend of ["pglite", "postgres"] as const) {
    describe(`on ${backend === "pglite" ? "the embedded PGlite" : "PostgreSQL"}`, () => {
      let ctx: SuiteContext;
      before(async () => {
        let url: string;
        if (backend === "pglite") {
          const dir = mkdtempSync(join(tmpdir(), "dspex-registry-"));
          dirs.push(dir);
          url = `pglite:${dir}`;
        } else url = pg.url;
        const service = await gateway(url);
        ctx = { backend, h, service, base: `http://127.0.0.1:${service.port}`, log: new RecordedLog(service.registry!.recorder), tokens };
      });
      after(async () => {
        await ctx?.service.stop();
      });
      registrySuite(() => ctx);
    });
  }

  test("PostgreSQL down: the registry answers 503, pinned versions still run, their executions wait in JetStream and are recorded once it is back", async () => {
    const service = await gateway(pg.url);
    const api = http(`http://127.0.0.1:${service.port}`);
    const log = new RecordedLog(service.registry!.recorder);
    try {
      const program = "capitals-postgres";
      await pg.stop();
      const down = await api.get(`/v1/registry/programs/${program}`, tokens.reader.token);
      assert.equal(down.status, 503, JSON.stringify(down.body));
      assert.equal(down.body.error.type, "Unavailable");
      assert.equal(down.body.error.retryable, true);
      assert.doesNotMatch(JSON.stringify(down.body), /ECONNREFUSED|127\.0\.0\.1|password/, "no internal detail");
      const ids: string[] = [];
      for (const [question] of QA.slice(0, 3)) {
        const ran = await api.post("/v1/registry/executions", { program: `program:${program}@2`, inputs: { question } }, tokens.caller.token);
        assert.equal(ran.status, 200, JSON.stringify(ran.body));
        ids.push(ran.body.id);
      }
      const alias = await api.post("/v1/registry/executions", { program: `program:${program}@deployed`, inputs: { question: "q" } }, tokens.caller.token);
      assert.equal(alias.status, 503, "the alias needs the database");
      const ready = (await (await fetch(`http://127.0.0.1:${service.port}/readyz`)).json()) as { ready: boolean; registry: { database: string } };
      assert.equal(ready.ready, true, "calls are still served");
      assert.equal(ready.registry.database, "down");
      await pg.start();
      for (const id of ids) assert.ok((await log.wait(id, 1, 60_000)).includes(true));
      for (const id of ids) assert.equal((await api.get(`/v1/registry/executions/${id}`, tokens.historian.token)).status, 200);
      assert.equal((await api.get(`/v1/registry/programs/${program}`, tokens.reader.token)).status, 200);
    } finally {
      await pg.start().catch(() => undefined); // no-op when it runs
      await service.stop();
    }
  });

  test("the web console in Chromium (sign in, list, train and watch the job live, a guard refusing a deploy, deploy, executions, compare) and the CLI", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "dspex-registry-"));
    dirs.push(dir);
    const service = await gateway(`pglite:${dir}`);
    try {
      await consoleScenario(h, `http://127.0.0.1:${service.port}`, tokens.admin.token, (s) => t.diagnostic(s));
      // the CLI on the same registry, through the client generated from the OpenAPI document
      const env = { ...process.env, DSPEX_API_URL: `http://127.0.0.1:${service.port}`, DSPEX_API_TOKEN: tokens.admin.token };
      const listed = JSON.parse((await run(process.execPath, [...CLI, "programs", "list", "--json"], { env })).stdout) as Array<{ name: string; state: string; deployedVersion: number }>;
      assert.deepEqual(listed.map((p) => [p.name, p.state, p.deployedVersion]), [["capitals", "deployed", 2], ["ticket-triage", "draft", null]]);
      const refused = await run(process.execPath, [...CLI, "programs", "deploy", "capitals", "--dataset", "capitals-val", "--version", "1", "--threshold", "50"], { env }).catch((err: { code: number; stderr: string }) => err);
      assert.equal((refused as { code: number }).code, 1);
      assert.match((refused as { stderr: string }).stderr, /Conflict: cannot deploy: version 1 scores 0 on 'capitals-val', below the threshold 50.*"guard":"score ≥ threshold"/);
      const executions = JSON.parse((await run(process.execPath, [...CLI, "executions", "list", "--program", "capitals", "--status", "ok", "--json"], { env })).stdout) as Array<{ ref: string }>;
      assert.ok(executions.length >= 2 && executions.every((e) => e.ref === "program:capitals@2"));
      const rolled = await run(process.execPath, [...CLI, "programs", "rollback", "capitals", "--reason", "cli"], { env }).catch((err: { stderr: string }) => err);
      assert.match(String((rolled as { stderr?: string }).stderr ?? ""), /previous deployment/);
    } finally {
      await service.stop();
    }
  });

  test("the OpenAPI document is valid OpenAPI 3.1 and describes the registry, calls and scopes", async () => {
    const service = await gateway(pg.url);
    try {
      const res = await fetch(`http://127.0.0.1:${service.port}/v1/openapi.json`);
      assert.equal(res.status, 200);
      const doc = (await res.json()) as { openapi: string; paths: Record<string, unknown> };
      assert.equal(doc.openapi, "3.1.0");
      const result = await new Validator().validate(doc as Parameters<Validator["validate"]>[0]);
      assert.equal(result.valid, true, JSON.stringify(result).slice(0, 2_000));
      for (const path of ["/v1/predict", "/v1/programs/{id}/execute", "/v1/registry/programs/{name}/deploy", "/v1/registry/executions"]) assert.ok(doc.paths[path], path);
    } finally {
      await service.stop();
    }
  });

  test("only the gateway identity writes execution history; it cannot pull requests or answer callers", async () => {
    const client = await connectNats({ servers: h.fleet.natsUrl, creds: h.fleet.creds.client, name: "test-client" });
    const gw = await connectNats({ servers: h.fleet.natsUrl, creds: h.fleet.creds.gateway, name: "test-gateway" });
    try {
      await assert.rejects(jetstream(client).publish(executionSubject("capitals-pglite"), "{}", { timeout: 3_000 }), (err: unknown) => /permission|timeout|no responders/i.test(String(err)));
      const ack = await jetstream(gw).publish(executionSubject("forged-check"), "not json", { msgID: `check-${Date.now()}` });
      assert.equal(ack.stream, STREAMS.executions.name);
      // a forged reply into a caller's inbox, deleting a stream, pulling a worker's requests: refused by the server
      const forbidden = ["_INBOX_client.forged", `$JS.API.STREAM.DELETE.${STREAMS.requests.name}`, `$JS.API.CONSUMER.MSG.NEXT.${STREAMS.requests.name}.${poolConsumer("general")}`];
      const refused = new Set<string>();
      const seen = (async () => {
        for await (const st of gw.status()) {
          if (st.type === "error" && st.error instanceof PermissionViolationError && st.error.operation === "publish") refused.add(st.error.subject);
          if (forbidden.every((subject) => refused.has(subject))) return;
        }
      })();
      for (const subject of forbidden) gw.publish(subject, "{}");
      await gw.flush();
      await Promise.race([seen, new Promise((_, reject) => setTimeout(() => reject(new Error(`refused only ${[...refused].join(", ")}`)), 5_000).unref())]);
    } finally {
      await client.close();
      await gw.close();
    }
  });
});
