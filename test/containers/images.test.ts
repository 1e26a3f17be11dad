/**
 * The images as built by `bash scripts/build-images.sh`, started with podman on the host network against a
 * real nats-server with authentication (the embedded server: JWT users per role, the bus applied by the admin
 * identity as `dspex bus apply` does) and the LM double. Each container gets only its role's credentials
 * (mounted read-only, NATS_CREDS); the router gets an API token's hash (DSPEX_API_TOKENS):
 *   - every container passes its own image HEALTHCHECK (`podman healthcheck run`) and its readiness endpoint;
 *   - runs as its non-root user with a read-only root filesystem (writes fail outside the tmpfs mounts that
 *     stand in for the pods' emptyDirs), all capabilities dropped, no new privileges;
 *   - a predict sent to the router container's HTTP API is run by the worker container (router -> NATS ->
 *     worker -> LM double) and comes back typed;
 *   - the gpu worker container hosts the real local model (llama.cpp, SmolLM2-135M) and a DSPy call on the gpu
 *     pool (no LM named by the caller) gets a parsed answer from it, not from the LM double.
 * Traffic stays on loopback. Run: bash scripts/test-deploy.sh (or build the images first, then
 * node --conditions=development --import tsx --test test/containers/images.test.ts).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { busSettings, busSpec, connectNats, inspectBus, type Role } from "@dspex/bus";
import { startNatsServer, type EmbeddedNats } from "@dspex/embedded";
import { newToken } from "@dspex/router";
import { startLmDouble, type LmDouble } from "../lm-double/server.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const CONTAINERS_CONF = join(ROOT, ".dspex", "containers", "containers.conf");
const HINT = "run `bash scripts/build-images.sh` first";
const RUN_ID = `dspex-test-${process.pid}`;
/** The local model the gpu image ships (workers/dspex_worker/local_lm/models.py). */
const LOCAL_MODEL = "smollm2-135m-instruct-q4_1";

interface Spec {
  name: "router" | "pipeline" | "worker" | "worker-gpu";
  uid: number;
  port: number;
  env: Record<string, string>;
  /** The NATS identity the container runs as (its creds file is mounted read-only). */
  role: Role;
  args?: string[];
  /** a directory of the image the service never writes, to prove the root filesystem is read-only */
  probePath: string;
}

function podman(args: string[], timeoutMs = 60_000): { status: number; stdout: string; stderr: string } {
  const r = spawnSync("podman", args, {
    env: { ...process.env, CONTAINERS_CONF },
    encoding: "utf8",
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** One HTTP request on a fresh connection (no keep-alive: a pooled socket the server already closed would
 * fail a non-idempotent POST). */
function http(url: string, body?: unknown, timeoutMs = 150_000, token?: string): Promise<{ status: number; json: () => any }> {
  return new Promise((done, fail) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(url, {
      method: payload === undefined ? "GET" : "POST",
      agent: false,
      headers: {
        ...(payload === undefined ? {} : { "content-type": "application/json", "content-length": String(Buffer.byteLength(payload)) }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      timeout: timeoutMs,
    });
    req.once("timeout", () => req.destroy(new Error(`${url}: no answer within ${timeoutMs} ms`)));
    req.once("error", fail);
    req.once("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.once("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        done({ status: res.statusCode ?? 0, json: () => JSON.parse(text) });
      });
      res.once("error", fail);
    });
    req.end(payload);
  });
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (${String(last)})` : ""}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe("images built here, run with podman on the host network", { timeout: 600_000 }, () => {
  let nats: EmbeddedNats | undefined;
  let apiToken = "";
  let credsDir = "";
  let lmDouble: LmDouble | undefined;
  const specs: Spec[] = [];
  const started: string[] = [];
  const container = (name: string): string => `${RUN_ID}-${name}`;

  before(async () => {
    const images = podman(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert.equal(images.status, 0, `podman images: ${images.stderr}`);
    for (const name of ["router", "pipeline", "worker", "worker-gpu"]) {
      assert.ok(images.stdout.split("\n").includes(`localhost/dspex-${name}:latest`), `no localhost/dspex-${name}:latest: ${HINT}`);
    }
    nats = await startNatsServer();
    // each role's creds, readable by the container's non-root user (the issued files are 0600, root's)
    credsDir = mkdtempSync(join(tmpdir(), "dspex-images-creds-"));
    chmodSync(credsDir, 0o755);
    const mountable = (role: Role): string => {
      const creds = join(credsDir, `${role}.creds`);
      copyFileSync(nats!.creds[role]!, creds);
      chmodSync(creds, 0o644);
      return creds;
    };
    // the bus, applied once by the admin identity as the Kubernetes Job dspex-bus-apply does: the router image's
    // services/bus/dist/apply-job.js; services only verify it
    const applied = podman([
      "run", "--rm", "--network", "host", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
      "--volume", `${mountable("admin")}:/run/dspex/nats.creds:ro`, "--env", `NATS_URL=${nats.url}`, "--env", "NATS_CREDS=/run/dspex/nats.creds",
      "--entrypoint", "node", "localhost/dspex-router:latest", "services/bus/dist/apply-job.js",
    ], 120_000);
    assert.equal(applied.status, 0, `the bus-apply entry point: ${applied.stdout}${applied.stderr}`);
    const inspect = await connectNats({ servers: nats.url, creds: nats.creds.admin, name: "dspex-images-test" });
    try {
      assert.deepEqual((await inspectBus(inspect, busSpec(busSettings()))).missing, [], "the Job's entry point provisioned the whole bus");
    } finally {
      await inspect.close();
    }
    lmDouble = await startLmDouble();
    const lm = { DSPEX_LM: "openai/test-model", DSPEX_LM_API_BASE: lmDouble.url, LOG_LEVEL: "info" };
    const api = newToken("images-test", ["predict"]);
    const localLmPort = await freePort();
    apiToken = api.token;
    specs.push(
      {
        name: "router",
        role: "gateway",
        uid: 1000,
        port: await freePort(),
        // the registry's embedded database on the pod's emptyDir (the root filesystem is read-only)
        env: { NATS_URL: nats.url, DSPEX_API_TOKENS: JSON.stringify([api.entry]), DSPEX_REGISTRY_DIR: "/var/cache/dspex/registry", ...lm },
        probePath: "/app",
      },
      { name: "pipeline", role: "pipeline", uid: 1000, port: await freePort(), env: { NATS_URL: nats.url, ...lm }, probePath: "/app" },
      {
        name: "worker",
        role: "worker-general",
        uid: 10001,
        port: await freePort(),
        env: { NATS_URL: nats.url, DSPEX_WORKER_CONCURRENCY: "4", ...lm },
        args: ["--pool", "general"],
        probePath: "/app",
      },
      {
        // the gpu worker's LM profile is the local model it hosts, on a port the operator chose (as the gpu
        // Deployment configures it): the caller names no endpoint
        name: "worker-gpu",
        role: "worker-gpu",
        uid: 10001,
        port: await freePort(),
        env: {
          NATS_URL: nats.url,
          DSPEX_WORKER_CONCURRENCY: "2",
          LOG_LEVEL: "info",
          DSPEX_LOCAL_LM_PORT: String(localLmPort),
          DSPEX_LOCAL_LM_MODEL_ID: LOCAL_MODEL,
          DSPEX_LM: `openai/${LOCAL_MODEL}`,
          DSPEX_LM_API_BASE: `http://127.0.0.1:${localLmPort}/v1`,
          DSPEX_LM_ADAPTER: "json",
        },
        probePath: "/opt/local-lm",
      },
    );
    for (const spec of specs) {
      const portEnv = spec.name.startsWith("worker") ? "DSPEX_HEALTH_PORT" : "PORT";
      const creds = mountable(spec.role);
      const env = Object.entries({ ...spec.env, NATS_CREDS: "/run/dspex/nats.creds", [portEnv]: String(spec.port) }).flatMap(([k, v]) => ["--env", `${k}=${v}`]);
      const r = podman([
        "run", "--detach", "--name", container(spec.name), "--network", "host",
        // as the pods run: read-only root, emptyDirs for /tmp and the caches, no capabilities, no setuid
        "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=256m", "--tmpfs", "/var/cache/dspex:rw,size=512m",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        // the image HEALTHCHECK is run by the test (`podman healthcheck run`); no systemd timer here
        "--health-interval", "disable",
        "--volume", `${creds}:/run/dspex/nats.creds:ro`,
        ...env, `localhost/dspex-${spec.name}:latest`, ...(spec.args ?? []),
      ]);
      assert.equal(r.status, 0, `podman run dspex-${spec.name}: ${r.stderr}`);
      started.push(container(spec.name));
    }
  });

  after(async () => {
    for (const name of started) {
      if (process.env.DSPEX_KEEP_CONTAINERS !== "1") podman(["rm", "--force", "--time", "10", name], 60_000);
    }
    await lmDouble?.close();
    await nats?.stop();
    if (credsDir) rmSync(credsDir, { recursive: true, force: true });
  });

  const logs = (name: string): string => {
    const r = podman(["logs", container(name)]);
    return `${r.stdout}${r.stderr}`.slice(-4000);
  };

  test("every container passes its image's HEALTHCHECK and its readiness endpoint", async () => {
    await Promise.all(
      specs.map(async (spec) => {
        await waitFor(`dspex-${spec.name} healthy`, 240_000, () => {
          const state = podman(["inspect", "--format", "{{.State.Running}}", container(spec.name)]);
          if (state.stdout.trim() !== "true") throw new Error(`not running:\n${logs(spec.name)}`);
          return podman(["healthcheck", "run", container(spec.name)]).status === 0 ? true : undefined;
        }).catch((err: Error) => {
          throw new Error(`${err.message}\n--- logs of dspex-${spec.name}:\n${logs(spec.name)}`);
        });
        const ready = await waitFor(`dspex-${spec.name} /readyz`, 60_000, async () => {
          const res = await http(`http://127.0.0.1:${spec.port}/readyz`, undefined, 5_000);
          return res.status === 200 ? res.status : undefined;
        });
        assert.equal(ready, 200);
      }),
    );
  });

  test("containers run as their non-root user with a read-only root filesystem and no capabilities", () => {
    for (const spec of specs) {
      const c = container(spec.name);
      const user = podman(["image", "inspect", "--format", "{{.Config.User}}", `localhost/dspex-${spec.name}:latest`]);
      assert.equal(user.stdout.trim(), `${spec.uid}:${spec.uid}`, `${spec.name}: image USER`);
      const id = podman(["exec", c, "id", "-u"]);
      assert.equal(id.stdout.trim(), String(spec.uid), `${spec.name}: process uid`);
      const rootfs = podman(["inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", c]);
      assert.equal(rootfs.stdout.trim(), "true");
      // a write to the image's own files fails (read-only, and not the user's either); /tmp is writable
      const denied = podman(["exec", c, "/bin/sh", "-c", `echo x > ${spec.probePath}/.probe`]);
      assert.notEqual(denied.status, 0, `${spec.name}: wrote into ${spec.probePath}`);
      assert.match(denied.stderr, /Read-only file system/, `${spec.name}: ${denied.stderr}`);
      const etc = podman(["exec", c, "/bin/sh", "-c", "echo x > /etc/.probe"]);
      assert.match(etc.stderr, /Read-only file system/, `${spec.name}: /etc`);
      assert.equal(podman(["exec", c, "/bin/sh", "-c", "echo x > /tmp/.probe"]).status, 0, `${spec.name}: /tmp`);
      const caps = podman(["exec", c, "/bin/sh", "-c", "grep -E '^Cap(Eff|Prm):' /proc/1/status"]);
      for (const line of caps.stdout.trim().split("\n")) assert.match(line, /:\s+0+$/, `${spec.name}: ${line}`);
    }
  });

  test("no credentials or build-time CA paths in the images' configuration", () => {
    for (const spec of specs) {
      const env = podman(["image", "inspect", "--format", "{{json .Config.Env}}", `localhost/dspex-${spec.name}:latest`]);
      const vars = JSON.parse(env.stdout) as string[];
      assert.ok(vars.length > 0);
      for (const v of vars) {
        assert.doesNotMatch(v, /^[A-Z_]*(KEY|TOKEN|SECRET|PASSWORD)[A-Z_]*=/, `${spec.name}: ${v}`);
        assert.doesNotMatch(v, /dspex-build-ca|PIP_CERT|SSL_CERT_FILE|NODE_EXTRA_CA_CERTS/, `${spec.name}: ${v}`);
      }
    }
  });

  test("a predict through the router container is run by the worker container against the LM double; none without a token", async () => {
    const router = specs.find((s) => s.name === "router")!;
    const request = { signature: "question -> answer: int", inputs: { question: "What is 7*6?" } };
    assert.equal((await http(`http://127.0.0.1:${router.port}/v1/predict`, request)).status, 401);
    const before = lmDouble!.requests().length;
    const res = await http(`http://127.0.0.1:${router.port}/v1/predict`, request, 150_000, apiToken);
    const body = res.json() as { outputs?: { answer?: unknown }; error?: unknown };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.outputs?.answer, 42);
    assert.ok(lmDouble!.requests().length > before, "the LM double was called (by the worker container)");
  });

  test("the gpu image hosts the local model: a DSPy call on the gpu pool gets a parsed answer from it", async () => {
    const ready = await waitFor("the gpu worker's ready event", 60_000, () => {
      for (const line of podman(["logs", container("worker-gpu")]).stdout.split("\n")) {
        if (!line.startsWith("{")) continue;
        const event = JSON.parse(line) as { event?: string; lm_url?: string; lm_model?: string };
        if (event.event === "ready" && event.lm_url && event.lm_model) return { url: event.lm_url, model: event.lm_model };
      }
      return undefined;
    });
    assert.match(ready.url, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    const models = (await http(`${ready.url}/models`)).json() as { data: Array<{ id: string }> };
    assert.equal(`openai/${models.data[0]?.id}`, ready.model);
    const router = specs.find((s) => s.name === "router")!;
    // no lm in the request (a caller may not name an endpoint): the gpu worker's default LM is the model it hosts
    const before = lmDouble!.requests().length;
    const res = await http(
      `http://127.0.0.1:${router.port}/v1/predict`,
      {
        signature: "review: str -> sentiment: Literal['positive', 'negative', 'neutral']",
        inputs: { review: "Battery lasts two days, great phone." },
        pool: "gpu",
        timeoutMs: 120_000,
      },
      150_000,
      apiToken,
    );
    const body = res.json() as { outputs?: { sentiment?: unknown } };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.ok(["positive", "negative", "neutral"].includes(String(body.outputs?.sentiment)), JSON.stringify(body));
    assert.equal(lmDouble!.requests().length, before, "answered by the local model, not the LM double");
    assert.match(logs("worker-gpu"), /hosting the local LM|lm_url/);
  });
});
