/**
 * NATS identities and permissions (docs/security.md), each shown by trying and being refused, on a real
 * nats-server started with the generated auth configuration, with real workers: no connection without
 * credentials; a worker cannot publish requests, read another role's inbox, delete a stream or write the
 * programs bucket; no identity but a worker's can answer a pending request; no identity but a caller's can
 * answer a TypeScript tool call; only a pool's own workers take its direct-lane requests and only callers send them;
 * dead letters are read and replayed only by the admin identity.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { connect, headers as natsHeaders, PermissionViolationError, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connectNats, inboxPrefix, issueAuth, type Role } from "@dspex/bus";
import { BUCKETS, ENVELOPE_VERSION, HEADERS, QUEUES, STREAMS, deadLetterNoticeSubject, deadLetterSubject, decode, directSubject, encode, requestSubject, toolSubject } from "@dspex/protocol";
import { Client } from "@dspex/client";
import { startFleet, startNatsServer, type Fleet } from "@dspex/embedded";
import { startHarness, type Harness } from "../integration/harness.js";

const ROOT = resolve(import.meta.dirname, "../..");
const run = promisify(execFile);
const CLI = [process.execPath, "--conditions=development", "--import", "tsx", join(ROOT, "services/cli/src/cli.ts")];

/** The server's verdicts on a connection's publishes and subscriptions, as they arrive. */
class Violations {
  readonly seen: PermissionViolationError[] = [];
  private waiters: Array<() => void> = [];

  constructor(nc: NatsConnection) {
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === "error" && s.error instanceof PermissionViolationError) {
          this.seen.push(s.error);
          for (const w of this.waiters) w();
        }
      }
    })();
  }

  /** Resolves with the violation for `subject` once the server reported it (rejects after 5 s). */
  async waitFor(operation: "publish" | "subscription", subject: string): Promise<PermissionViolationError> {
    const find = () => this.seen.find((e) => e.operation === operation && e.subject === subject);
    const deadline = Date.now() + 5_000;
    while (!find()) {
      if (Date.now() > deadline) throw new Error(`no ${operation} violation for ${subject}; saw ${this.seen.map((e) => `${e.operation} ${e.subject}`).join(", ")}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return find()!;
  }
}

function isPermissionError(err: unknown): boolean {
  const text = String((err as Error)?.message ?? err) + String((err as { cause?: unknown })?.cause ?? "");
  return err instanceof PermissionViolationError || /permission/i.test(text);
}

describe("NATS identities and permissions", { timeout: 240_000 }, () => {
  let h: Harness;
  const opened: NatsConnection[] = [];
  const as = async (role: Role): Promise<{ nc: NatsConnection; violations: Violations }> => {
    const nc = await connectNats({ servers: h.fleet.natsUrl, creds: h.fleet.creds[role], name: `test-${role}` });
    opened.push(nc);
    return { nc, violations: new Violations(nc) };
  };

  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await Promise.allSettled(opened.map((nc) => nc.close()));
    await h?.close();
  });

  test("a client without credentials, or with another deployment's, cannot connect", async () => {
    await assert.rejects(connect({ servers: h.fleet.natsUrl, maxReconnectAttempts: 0 }), /Authorization Violation/);
    const other = mkdtempSync(join(tmpdir(), "dspex-other-auth-"));
    try {
      const foreign = await issueAuth({ dir: other, partitions: { general: 1, optimizer: 0, gpu: 0 } });
      await assert.rejects(
        connectNats({ servers: h.fleet.natsUrl, creds: foreign.creds.admin, name: "foreign", nats: { maxReconnectAttempts: 0 } }),
        /Authorization Violation.*credentials were refused/s,
      );
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  test("a worker identity cannot publish requests, read another role's inbox, delete a stream or write the programs bucket", async () => {
    const { nc: worker, violations } = await as("worker-general");
    const { nc: admin } = await as("admin");
    const subject = requestSubject("general", "any");
    await assert.rejects(jetstream(worker).publish(subject, encode({ v: ENVELOPE_VERSION })), isPermissionError);
    await violations.waitFor("publish", subject);

    const inbox = `${inboxPrefix("client")}.>`;
    const sub = worker.subscribe(inbox);
    const closed = await sub.closed;
    assert.ok(closed instanceof PermissionViolationError && closed.operation === "subscription", `subscription closed with ${String(closed)}`);

    const jsm = await jetstreamManager(worker, { checkAPI: false });
    await assert.rejects(jsm.streams.delete(STREAMS.requests.name), isPermissionError);
    const adminJsm = await jetstreamManager(admin);
    assert.equal((await adminJsm.streams.info(STREAMS.requests.name)).config.name, STREAMS.requests.name, "the stream is still there");

    const programs = await new Kvm(worker).open(BUCKETS.programs.name);
    await assert.rejects(programs.put("forged-program", "x"), isPermissionError);
    const adminPrograms = await new Kvm(admin).open(BUCKETS.programs.name);
    assert.equal(await adminPrograms.get("forged-program"), null, "nothing was written");
  });

  for (const lane of ["durable", "direct"] as const) {
    test(`a pending request is answered only by a worker identity: forged replies are refused or ignored (${lane} lane)`, async () => {
      const { nc: admin } = await as("admin");
      // see the request as it is published (a core subscription to the lane's subjects), for its reply subject
      const seen = new Promise<Msg>((resolve) => {
        const subject = lane === "durable" ? requestSubject("general", "*") : directSubject("general", "*");
        const sub = admin.subscribe(subject, { max: 1, callback: (_err, msg) => resolve(msg) });
        void sub;
      });
      await admin.flush();
      h.lmDouble.control.failNext("hang"); // the worker's LM call hangs: the request stays pending
      const seenLm = h.lmDouble.requests().length;
      const call = h.client.predict("question -> answer", { question: "Who answers?" }, { timeoutMs: 8_000, lane });
      const request = await seen;
      const replyTo = lane === "durable" ? request.headers!.get(HEADERS.replyTo) : request.reply!;
      const id = (decode(request.data) as { id: string }).id;
      assert.ok(replyTo.startsWith(`${inboxPrefix("client")}.`), `the reply subject is in the client role's inbox: ${replyTo}`);
      await h.lmDouble.waitForRequests(seenLm + 1);
      const forged = encode({ v: ENVELOPE_VERSION, id, ok: true, outputs: { answer: "forged" }, worker: "attacker" });
      for (const role of ["client", "pipeline", "monitor", "dlq"] as const) {
        const { nc, violations } = await as(role);
        nc.publish(replyTo, forged);
        await violations.waitFor("publish", replyTo);
      }
      // the DLQ service may post a notice beside the reply subject; the caller takes only errors from there
      const { nc: dlq } = await as("dlq");
      dlq.publish(deadLetterNoticeSubject(replyTo), forged);
      await dlq.flush();
      // a forged answer accepted would resolve the call with it; the call ends at its deadline instead
      await assert.rejects(call, (err: Error & { type?: string }) => err.type === "DeadlineExceeded");
    });
  }

  test("the direct lane: only a pool's own workers take its requests, only callers send them, only workers answer", async () => {
    const subject = directSubject("general", "any");
    const partition = directSubject("general", "p0");
    // taking requests: a worker of another pool, a caller, the monitor and the DLQ service are refused
    for (const role of ["worker-optimizer", "worker-gpu", "client", "pipeline", "monitor", "dlq"] as const) {
      for (const s of [subject, partition]) {
        const { nc } = await as(role);
        const sub = nc.subscribe(s, { queue: QUEUES.direct });
        const closed = await sub.closed;
        assert.ok(closed instanceof PermissionViolationError && closed.operation === "subscription", `${role} ${s}: closed with ${String(closed)}`);
      }
    }
    // sending them: the monitor, the DLQ service and workers are refused
    for (const role of ["monitor", "dlq", "worker-general"] as const) {
      const { nc, violations } = await as(role);
      nc.publish(subject, encode({ v: ENVELOPE_VERSION }), { reply: `${inboxPrefix(role)}.x` });
      await violations.waitFor("publish", subject);
    }
    // a caller's direct request is answered by a worker, and only a worker may publish into the caller's inbox
    const { nc: client } = await as("client");
    const reply = await client.request(
      subject,
      encode({ v: ENVELOPE_VERSION, id: "direct-auth", op: "predict", signature: { inputs: [{ name: "question", type: { kind: "str" } }], outputs: [{ name: "answer", type: { kind: "str" } }] }, inputs: { question: "What is 2+5?" }, lm: h.lm }),
      { timeout: 30_000 },
    );
    const answer = decode(reply.data) as { ok: boolean; outputs: { answer: string }; worker: string };
    assert.equal(answer.ok, true, JSON.stringify(answer));
    assert.equal(answer.outputs.answer, "7");
    assert.ok(h.fleet.workers.some((w) => w.id === answer.worker));
    for (const role of ["pipeline", "monitor", "dlq"] as const) {
      const { nc, violations } = await as(role);
      const inbox = `${inboxPrefix("client")}.forged`;
      nc.publish(inbox, encode({ ok: true }));
      await violations.waitFor("publish", inbox);
    }
  });

  test("a TypeScript tool call cannot be answered by an identity that is not a caller's", async () => {
    for (const role of ["worker-general", "worker-optimizer", "monitor", "dlq"] as const) {
      const { nc } = await as(role);
      const sub = nc.subscribe(toolSubject(">"), { queue: "dspex-tools" });
      const closed = await sub.closed;
      assert.ok(closed instanceof PermissionViolationError, `${role}: tool subscription closed with ${String(closed)}`);
      // nor publish into a worker's inbox, where the worker waits for the tool's answer
      const { nc: nc2, violations } = await as(role);
      const workerInbox = `${inboxPrefix("worker-general")}.anything`;
      if (role !== "worker-general") {
        nc2.publish(workerInbox, encode({ ok: true }));
        await violations.waitFor("publish", workerInbox);
      }
    }
  });

  test("dead letters are listed and replayed only with the admin identity", async () => {
    // one dead letter: a request no worker can decode is terminated into the DLQ
    const { nc: admin } = await as("admin");
    const recorded = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no dead letter recorded within 30 s")), 30_000);
      admin.subscribe(deadLetterSubject("general"), { max: 1, callback: () => (clearTimeout(timer), resolve()) });
    });
    await admin.flush();
    const { nc: client } = await as("client");
    const h2 = natsHeaders();
    h2.set(HEADERS.replyTo, `${inboxPrefix("client")}.dlq-test`);
    h2.set(HEADERS.msgId, "dlq-auth-test");
    await jetstream(client).publish(requestSubject("general", "any"), new Uint8Array([0xc1]), { headers: h2 });
    await recorded;
    const env = (role: Role) => ({ ...process.env, NATS_URL: h.fleet.natsUrl, NATS_CREDS: h.fleet.creds[role] });
    for (const role of ["client", "monitor", "dlq", "worker-general"] as const) {
      await assert.rejects(run(CLI[0]!, [...CLI.slice(1), "dlq", "list", "--json"], { env: env(role), timeout: 60_000 }), (err: { stderr?: string }) => {
        assert.match(err.stderr ?? "", /admin identity|not permitted|Permissions Violation/i, `${role}: ${err.stderr}`);
        return true;
      });
      await assert.rejects(run(CLI[0]!, [...CLI.slice(1), "dlq", "replay", "--all"], { env: env(role), timeout: 60_000 }));
    }
    const { stdout } = await run(CLI[0]!, [...CLI.slice(1), "dlq", "list", "--json"], { env: env("admin"), timeout: 60_000 });
    assert.ok((JSON.parse(stdout) as unknown[]).length >= 1, "the admin lists the dead letter");
  });
});

describe("TLS on the client port", { timeout: 120_000 }, () => {
  test("workers and clients connect with the CA; a connection that does not trust it is refused", async () => {
    const certs = mkdtempSync(join(tmpdir(), "dspex-tls-test-"));
    await run("bash", [join(ROOT, "scripts/dev-certs.sh"), certs, "localhost", "127.0.0.1"]);
    const ca = join(certs, "ca.crt");
    const nats = await startNatsServer({ tls: { cert: join(certs, "tls.crt"), key: join(certs, "tls.key") } });
    let fleet: Fleet | undefined;
    let client: Client | undefined;
    try {
      // the fleet's connections and its workers take the CA from NATS_CA, as on a deployment
      process.env.NATS_CA = ca;
      try {
        fleet = await startFleet({ natsUrl: nats.url, creds: nats.creds, workers: { general: 1 }, workerEnv: { NATS_CA: ca, DSPEX_ALLOW_TEST_MODELS: "1" }, dlq: false });
      } finally {
        delete process.env.NATS_CA;
      }
      client = await Client.connect({ servers: nats.url, creds: nats.creds.client, tls: { ca }, lm: { model: "dspex/echo" } });
      const result = await client.predict("question -> answer", { question: "over TLS?" });
      assert.equal(typeof result.outputs.answer, "string");
      await assert.rejects(
        connectNats({ servers: nats.url, creds: nats.creds.client, name: "no-ca", nats: { maxReconnectAttempts: 0 } }),
        /certificate|self.signed|TLS/i,
      );
    } finally {
      await client?.close();
      await fleet?.stop();
      await nats.stop();
      rmSync(certs, { recursive: true, force: true });
    }
  });
});
