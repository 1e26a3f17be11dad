/**
 * The deployment applied to a real Kubernetes API server (test/cluster/control-plane.ts: etcd, kube-apiserver,
 * controller-manager, scheduler, kwok nodes, all on loopback), then scaled by the real KEDA operator:
 *   - the KEDA CRDs of the KEDA module the manifests target are installed and established first;
 *   - prod, then dev, rendered with kustomize, applied server-side: the namespace's `restricted` Pod Security
 *     admission accepts every pod template (and rejects a bad pod: negative control), Deployments and the NATS
 *     StatefulSet reconcile to Ready replicas on kwok nodes (prod: NATS servers on three distinct nodes, the
 *     gpu pool on GPU nodes), ScaledObjects pass the real CRD schema, NetworkPolicies select the pods they
 *     are meant for, PDBs cover their pods and allow one disruption, Services have ready endpoints, probes
 *     name ports the containers have;
 *   - KEDA (operator + metrics adapter, built from github.com/kedacore/keda/v2, out of cluster) with the
 *     nats-jetstream scaler reading a real nats-server's monitoring endpoint on loopback: a backlog on the
 *     general pool's sessionless AND partition consumers scales dspex-worker-general up; draining it scales
 *     it back down. Scale-up and scale-down times are measured and written to .dspex/cluster/report.json.
 * Run: bash scripts/test-deploy.sh (installs the tools; or scripts/install-cluster-tools.sh, then
 * node --conditions=development --import tsx --test test/cluster/cluster.test.ts).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { PARTITION_GROUP, partitionConsumer, poolConsumer, requestSubject } from "@dspex/protocol";
import { applyBus, busSettings, busSpec } from "@dspex/bus";
import { CertificateAuthority, ROOT, freePort, kwokNodes, startControlPlane, versions, waitFor, type ControlPlane, type Timings } from "./control-plane.js";

const OVERLAYS = ["prod", "dev"] as const; // dev last: it stays applied for the KEDA checks
const NAMESPACE = "dspex";
const report: Record<string, unknown> = {};
const timings: Timings = {};

function kustomize(overlay: string): { file: string; objects: any[] } {
  const r = spawnSync(join(ROOT, ".dspex", "bin", "kustomize"), ["build", join(ROOT, "deploy", "k8s", "overlays", overlay)], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 0, `kustomize build ${overlay}: ${r.stderr}`);
  const file = join(scratch, `${overlay}.yaml`);
  writeFileSync(file, r.stdout);
  const json = spawnSync(join(ROOT, ".dspex", "bin", "gojq"), ["--yaml-input", "-c", "-s", "map(select(. != null))"], { input: r.stdout, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  assert.equal(json.status, 0, json.stderr);
  return { file, objects: JSON.parse(json.stdout) as any[] };
}

const scratch = mkdtempSync(join(tmpdir(), "dspex-cluster-test-"));
let cp: ControlPlane;

function workloads(objects: any[]): any[] {
  return objects.filter((o) => ["Deployment", "StatefulSet"].includes(o.kind));
}

describe("the deployment on a real API server, scaled by KEDA", { timeout: 1_800_000 }, () => {
  before(async () => {
    const t = Date.now();
    cp = await startControlPlane(timings);
    const nodes = cp.kubectl(["apply", "-f", "-"], kwokNodes(3, 2));
    assert.equal(nodes.status, 0, nodes.stderr);
    await waitFor("kwok nodes Ready", 60_000, () => {
      const list = cp.get(["get", "nodes"]);
      const ready = list.items.filter((n: any) => n.status.conditions?.some((c: any) => c.type === "Ready" && c.status === "True"));
      return ready.length === 5 ? true : undefined;
    });
    timings.clusterUp = (Date.now() - t) / 1000;
  });

  after(async () => {
    report.timingsSeconds = timings;
    mkdirSync(join(ROOT, ".dspex", "cluster"), { recursive: true });
    writeFileSync(join(ROOT, ".dspex", "cluster", "report.json"), `${JSON.stringify(report, null, 2)}\n`);
    await cp?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  test("the KEDA CRDs of the targeted KEDA version are installed and established before anything uses them", async () => {
    const v = versions();
    const dir = join(v.KEDA_BIN, "crds");
    const files = readdirSync(dir).filter((f) => f.endsWith(".yaml"));
    assert.ok(files.length >= 4, `CRDs in ${dir}`);
    const r = cp.kubectl(["apply", "--server-side", "--field-manager=dspex-test", ...files.flatMap((f) => ["-f", join(dir, f)])]);
    assert.equal(r.status, 0, r.stderr);
    // (`kubectl wait --for=condition=established` fails while a new CRD has no status yet: poll instead)
    const names = ["scaledobjects.keda.sh", "triggerauthentications.keda.sh", "clustertriggerauthentications.keda.sh", "scaledjobs.keda.sh"];
    await waitFor("KEDA CRDs Established", 60_000, () => {
      for (const name of names) {
        const crd = cp.get(["get", "crd", name]);
        if (!crd.status?.conditions?.some((c: any) => c.type === "Established" && c.status === "True")) return undefined;
      }
      return true;
    });
    const crd = cp.get(["get", "crd", "scaledobjects.keda.sh"]);
    assert.equal(crd.metadata.annotations?.["controller-gen.kubebuilder.io/version"] !== undefined, true);
    report.keda = v.KEDA_VERSION;
    report.kubernetes = cp.kubectl(["version", "-o", "json"]).stdout ? JSON.parse(cp.kubectl(["version", "-o", "json"]).stdout).serverVersion.gitVersion : undefined;
  });

  for (const overlay of OVERLAYS) {
    describe(`${overlay} overlay`, () => {
      let objects: any[] = [];
      let file = "";

      test(`${overlay}: the namespace's restricted Pod Security admission accepts every pod template and rejects a bad pod`, () => {
        ({ file, objects } = kustomize(overlay));
        const ns = objects.find((o) => o.kind === "Namespace");
        const r = cp.kubectl(["apply", "--server-side", "--field-manager=dspex-test", "-f", "-"], JSON.stringify(ns));
        assert.equal(r.status, 0, r.stderr);
        const live = cp.get(["get", "namespace", NAMESPACE]);
        assert.equal(live.metadata.labels["pod-security.kubernetes.io/enforce"], "restricted");
        for (const w of workloads(objects)) {
          // the pod as the controller would create it (a StatefulSet's claim templates become volumes)
          const claims = (w.spec.volumeClaimTemplates ?? []).map((c: any) => ({ name: c.metadata.name, persistentVolumeClaim: { claimName: `${c.metadata.name}-psa` } }));
          const pod = {
            apiVersion: "v1",
            kind: "Pod",
            metadata: { name: `psa-${w.metadata.name}`.slice(0, 60), namespace: NAMESPACE, labels: w.spec.template.metadata.labels },
            spec: { ...w.spec.template.spec, volumes: [...(w.spec.template.spec.volumes ?? []), ...claims] },
          };
          const dry = cp.kubectl(["create", "--dry-run=server", "-f", "-"], JSON.stringify(pod));
          assert.equal(dry.status, 0, `${w.kind} ${w.metadata.name}: ${dry.stderr}`);
          assert.doesNotMatch(dry.stderr, /PodSecurity|violate/i, `${w.metadata.name}: ${dry.stderr}`);
        }
        // negative control: the same admission rejects a pod that runs as root with privilege escalation
        const bad = {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "psa-negative-control", namespace: NAMESPACE },
          spec: { containers: [{ name: "c", image: "dspex-worker", securityContext: { allowPrivilegeEscalation: true, runAsUser: 0 } }] },
        };
        const rejected = cp.kubectl(["create", "--dry-run=server", "-f", "-"], JSON.stringify(bad));
        assert.notEqual(rejected.status, 0);
        assert.match(rejected.stderr, /violates PodSecurity "restricted:latest"/);
      });

      test(`${overlay}: applied server-side without warnings; ScaledObjects accepted by KEDA's CRD schema (and a bad one rejected)`, () => {
        // the NATS volumes: no provisioner here, so three PersistentVolumes for the claims to bind
        const pvs = Array.from({ length: 3 }, (_, i) => ({
          apiVersion: "v1",
          kind: "PersistentVolume",
          metadata: { name: `nats-${overlay}-${i}` },
          spec: { capacity: { storage: "100Gi" }, accessModes: ["ReadWriteOnce"], persistentVolumeReclaimPolicy: "Retain", hostPath: { path: `/tmp/dspex-pv-${overlay}-${i}` } },
        }));
        assert.equal(cp.kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: pvs })).status, 0);
        // the NATS identities, TLS certificate and API tokens, as deploy/k8s/secrets/create-secrets.sh makes them
        // (rendered, then applied with this control plane's kubectl)
        const secretsDir = mkdtempSync(join(tmpdir(), `dspex-secrets-${overlay}-`));
        try {
          const made = spawnSync("bash", [join(ROOT, "deploy", "k8s", "secrets", "create-secrets.sh"), "--state", join(secretsDir, "state"), "--render", join(secretsDir, "out")], { encoding: "utf8", timeout: 120_000 });
          assert.equal(made.status, 0, made.stderr);
          const applied = cp.kubectl(["apply", "-f", join(secretsDir, "out")]);
          assert.equal(applied.status, 0, applied.stderr);
        } finally {
          rmSync(secretsDir, { recursive: true, force: true });
        }
        if (overlay === "prod") {
          // prod requires the LM key Secret (docs/deploy.md section 2); a placeholder, nothing reads it here
          const secret = cp.kubectl(["-n", NAMESPACE, "create", "secret", "generic", "dspex-lm-credentials", "--from-literal=OPENAI_API_KEY=placeholder-not-a-key"]);
          assert.equal(secret.status, 0, secret.stderr);
        }
        const t = Date.now();
        const r = cp.kubectl(["apply", "--server-side", "--field-manager=dspex", "-f", file]);
        assert.equal(r.status, 0, r.stderr);
        assert.doesNotMatch(r.stderr, /Warning/i, r.stderr);
        timings[`${overlay}Apply`] = (Date.now() - t) / 1000;
        const scaled = cp.get(["-n", NAMESPACE, "get", "scaledobjects"]);
        assert.deepEqual(
          scaled.items.map((s: any) => s.metadata.name).sort(),
          objects.filter((o) => o.kind === "ScaledObject").map((o) => o.metadata.name).sort(),
        );
        const general = scaled.items.find((s: any) => s.metadata.name === "dspex-worker-general");
        assert.equal(general.spec.triggers.length, 17, "the sessionless consumer and 16 partition consumers");
        const bad = { apiVersion: "keda.sh/v1alpha1", kind: "ScaledObject", metadata: { name: "bad", namespace: NAMESPACE }, spec: { scaleTargetRef: { name: "x" }, minReplicaCount: "one", triggers: [] } };
        const rejected = cp.kubectl(["create", "--dry-run=server", "-f", "-"], JSON.stringify(bad));
        assert.notEqual(rejected.status, 0);
        assert.match(rejected.stderr, /minReplicaCount/);
      });

      test(`${overlay}: Deployments and the NATS StatefulSet reconcile to Ready replicas on the kwok nodes`, async () => {
        const t = Date.now();
        const wanted = workloads(objects).map((w) => `${w.kind}/${w.metadata.name}`);
        await waitFor(`${overlay}: every workload Ready`, 240_000, () => {
          const notReady: string[] = [];
          for (const w of workloads(objects)) {
            const live = cp.get(["-n", NAMESPACE, "get", w.kind.toLowerCase(), w.metadata.name]);
            const want = live.spec.replicas ?? 1;
            if ((live.status?.readyReplicas ?? 0) < want || want < 1) notReady.push(`${w.kind}/${w.metadata.name} ${live.status?.readyReplicas ?? 0}/${want}`);
          }
          if (notReady.length) throw new Error(notReady.join(", "));
          return true;
        }, 1000);
        timings[`${overlay}Ready`] = (Date.now() - t) / 1000;
        const pods = cp.get(["-n", NAMESPACE, "get", "pods"]).items as any[];
        // the bus-apply Job's pod runs to completion (kwok completes Job pods); every other pod keeps running
        const jobPod = (p: any) => (p.metadata.ownerReferences ?? []).some((o: any) => o.kind === "Job");
        assert.ok(pods.filter((p) => !jobPod(p)).every((p) => p.status.phase === "Running" && p.spec.nodeName), "all pods Running on a node");
        assert.ok(pods.some(jobPod), "the bus-apply Job made its pod");
        const nats = pods.filter((p) => p.metadata.labels["app.kubernetes.io/name"] === "nats");
        assert.equal(nats.length, 3);
        const pvcs = cp.get(["-n", NAMESPACE, "get", "pvc"]).items as any[];
        assert.equal(pvcs.filter((c) => c.status.phase === "Bound").length, 3, "the NATS volumes are bound");
        const gpuPods = pods.filter((p) => p.metadata.labels["dspex.io/pool"] === "gpu");
        assert.ok(gpuPods.length >= 1);
        if (overlay === "prod") {
          assert.equal(new Set(nats.map((p) => p.spec.nodeName)).size, 3, "prod: one NATS server per node");
          for (const p of gpuPods) assert.match(p.spec.nodeName, /^kwok-gpu-/, "prod: the gpu pool runs on GPU nodes");
        } else {
          for (const p of gpuPods) assert.doesNotMatch(p.spec.nodeName, /^kwok-gpu-/, "dev: no GPU node for the gpu pool (no toleration)");
        }
        report[`${overlay}Workloads`] = wanted.length;
      });

      test(`${overlay}: Services have ready endpoints; probes name ports the containers have`, async () => {
        const services = objects.filter((o) => o.kind === "Service");
        const pods = cp.get(["-n", NAMESPACE, "get", "pods"]).items as any[];
        await waitFor(`${overlay}: endpoints`, 60_000, () => {
          for (const svc of services) {
            const selected = pods.filter((p) => Object.entries(svc.spec.selector).every(([k, v]) => p.metadata.labels[k] === v));
            assert.ok(selected.length > 0, `${svc.metadata.name} selects no pod`);
            const slices = cp.get(["-n", NAMESPACE, "get", "endpointslices", "-l", `kubernetes.io/service-name=${svc.metadata.name}`]).items as any[];
            const ready = slices.flatMap((s) => s.endpoints ?? []).filter((e: any) => e.conditions?.ready);
            if (ready.length !== selected.length) throw new Error(`${svc.metadata.name}: ${ready.length}/${selected.length} ready endpoints`);
            for (const port of svc.spec.ports) {
              const named = slices.flatMap((s) => s.ports ?? []).find((p: any) => p.name === port.name);
              assert.ok(named, `${svc.metadata.name}: port ${port.name} resolved to a container port`);
            }
          }
          return true;
        });
        for (const pod of pods) {
          for (const c of pod.spec.containers) {
            for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"]) {
              const port = c[kind]?.httpGet?.port;
              if (port === undefined) continue;
              const ok = typeof port === "number" ? c.ports.some((p: any) => p.containerPort === port) : c.ports.some((p: any) => p.name === port);
              assert.ok(ok, `${pod.metadata.name}/${c.name}: ${kind} port ${port}`);
              if (c.image.startsWith("dspex-")) assert.match(c[kind].httpGet.path, /^\/(healthz|readyz)/, `${pod.metadata.name}: ${kind} path`);
            }
            // a Job's pod (the bus's apply) runs to completion and serves nothing: it needs no readiness
            if (!(pod.metadata.ownerReferences ?? []).some((o: any) => o.kind === "Job")) assert.ok(c.readinessProbe, `${pod.metadata.name}/${c.name}: a readiness probe`);
          }
        }
      });

      test(`${overlay}: PodDisruptionBudgets cover their pods and allow one voluntary disruption`, async () => {
        const wanted = objects.filter((o) => o.kind === "PodDisruptionBudget").map((o) => o.metadata.name);
        assert.ok(wanted.length >= 6);
        await waitFor(`${overlay}: PDB status`, 60_000, () => {
          for (const name of wanted) {
            const pdb = cp.get(["-n", NAMESPACE, "get", "pdb", name]);
            const s = pdb.status ?? {};
            if (!(s.expectedPods >= 1 && s.currentHealthy === s.expectedPods && s.disruptionsAllowed === 1)) {
              throw new Error(`${name}: ${JSON.stringify(s)}`);
            }
          }
          return true;
        });
        assert.equal(cp.get(["-n", NAMESPACE, "get", "pdb", "nats"]).status.expectedPods, 3);
      });

      if (overlay === "prod") {
        test("prod: NetworkPolicies select the pods they are meant for", () => {
          const pods = cp.get(["-n", NAMESPACE, "get", "pods"]).items as any[];
          const policies = cp.get(["-n", NAMESPACE, "get", "networkpolicies"]).items as any[];
          assert.deepEqual(policies.map((p) => p.metadata.name).sort(), ["allow-http-api", "allow-nats", "allow-otel-collector", "default-deny-ingress"]);
          // the API server selects: label queries with each policy's own selectors
          const select = (selector: any): string[] => {
            const args = ["-n", NAMESPACE, "get", "pods"];
            const parts = [
              ...Object.entries(selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`),
              ...(selector.matchExpressions ?? []).map((e: any) => `${e.key} ${e.operator.toLowerCase()} (${e.values.join(",")})`),
            ];
            if (parts.length) args.push("-l", parts.join(","));
            return (cp.get(args).items as any[]).map((p) => p.metadata.name).sort();
          };
          const named = (prefix: string) => pods.filter((p) => p.metadata.name.startsWith(prefix)).map((p) => p.metadata.name).sort();
          const byName = Object.fromEntries(policies.map((p) => [p.metadata.name, p.spec]));
          assert.deepEqual(select(byName["default-deny-ingress"].podSelector), pods.map((p) => p.metadata.name).sort(), "default deny covers every pod");
          assert.deepEqual(select(byName["allow-nats"].podSelector), named("nats-"));
          assert.deepEqual(select(byName["allow-http-api"].podSelector), [...named("dspex-pipeline-"), ...named("dspex-router-")].sort());
          // every pod that talks to NATS (router, pipeline, workers, the bus's apply Job) is let in on 4222; the collector is not
          const clients = select(byName["allow-nats"].ingress[0].from[0].podSelector);
          assert.deepEqual(clients, [...named("dspex-bus-apply-"), ...named("dspex-pipeline-"), ...named("dspex-router-"), ...named("dspex-worker-")].sort());
          assert.deepEqual(byName["allow-nats"].ingress[0].ports, [{ port: 4222, protocol: "TCP" }]);
          const keda = byName["allow-nats"].ingress.find((r: any) => r.from?.[0]?.namespaceSelector);
          assert.deepEqual(keda.from[0].namespaceSelector.matchLabels, { "kubernetes.io/metadata.name": "keda" });
          assert.deepEqual(keda.ports, [{ port: 8222, protocol: "TCP" }], "KEDA reaches only the monitoring port");
          assert.deepEqual(select(byName["allow-otel-collector"].podSelector), named("otel-collector-"));
        });

        test("prod: removed again (namespace deleted) before dev is applied", async () => {
          const t = Date.now();
          // kwok pods honour terminationGracePeriodSeconds (up to 300 s here): end them at once
          assert.equal(cp.kubectl(["-n", NAMESPACE, "delete", "deployments,statefulsets", "--all", "--wait=false"]).status, 0);
          assert.equal(cp.kubectl(["-n", NAMESPACE, "delete", "pods", "--all", "--grace-period=0", "--force", "--wait=false"]).status, 0);
          assert.equal(cp.kubectl(["delete", "namespace", NAMESPACE, "--wait=false"]).status, 0);
          await waitFor("namespace dspex gone", 180_000, () => (cp.kubectl(["get", "namespace", NAMESPACE]).status !== 0 ? true : undefined), 1000);
          timings.prodDelete = (Date.now() - t) / 1000;
        });
      }
    });
  }

  describe("KEDA scales the general pool on its consumers' backlog", () => {
    let nats: ChildProcess | undefined;
    let nc: NatsConnection | undefined;
    let natsStore = "";
    let monitorPort = 0;

    after(async () => {
      await nc?.close();
      nats?.kill("SIGTERM");
      if (natsStore) rmSync(natsStore, { recursive: true, force: true });
    });

    const replicas = (): number => cp.get(["-n", NAMESPACE, "get", "deployment", "dspex-worker-general"]).spec.replicas ?? 1;

    test("the KEDA operator and metrics adapter run out of cluster against this API server", async () => {
      const v = versions();
      const t = Date.now();
      // a real nats-server on loopback, provisioned as the router does (the stream and all consumers)
      natsStore = mkdtempSync(join(tmpdir(), "dspex-keda-nats-"));
      const [port, monitor] = [await freePort(), await freePort()];
      monitorPort = monitor;
      nats = spawn(join(ROOT, ".venv", "bin", "nats-server"), ["-a", "127.0.0.1", "-p", String(port), "-m", String(monitor), "-js", "-sd", natsStore], { stdio: "ignore" });
      nc = await waitFor("nats-server", 15_000, async () => connect({ servers: `nats://127.0.0.1:${port}` }));
      await applyBus(nc, busSpec(busSettings()));

      // certificates: the operator's gRPC metrics service and the adapter share one (mTLS between them), and
      // the adapter serves the external metrics API to the API server's aggregator with it
      const certs = join(cp.dir, "keda-certs");
      mkdirSync(certs);
      const ca = new CertificateAuthority(certs, "ca");
      const cert = ca.issue("tls", "/CN=keda", { usage: "both", sans: ["DNS:localhost", "IP:127.0.0.1", "DNS:keda-operator", "DNS:keda-metrics-apiserver.keda.svc"] });
      assert.ok(existsSync(cert.cert));
      const grpcPort = await freePort();
      const adapterPort = await freePort();
      const env = { ...process.env, KUBECONFIG: cp.kubeconfig, POD_NAMESPACE: "keda", KEDA_CLUSTER_OBJECT_NAMESPACE: "keda", WATCH_NAMESPACE: "" };
      assert.equal(cp.kubectl(["create", "namespace", "keda"]).status, 0);
      const operator = cp.start("keda-operator", join(v.KEDA_BIN, "keda-operator"), [
        "--leader-elect=false", `--metrics-bind-address=127.0.0.1:${await freePort()}`, `--health-probe-bind-address=127.0.0.1:${await freePort()}`,
        `--metrics-service-bind-address=127.0.0.1:${grpcPort}`, `--cert-dir=${certs}`, "--enable-cert-rotation=false",
        "--enable-webhook-patching=false", "--enable-apiservice-patching=false", "--zap-log-level=info",
      ], env);
      const adapter = cp.start("keda-adapter", join(v.KEDA_BIN, "keda-adapter"), [
        `--metrics-service-address=127.0.0.1:${grpcPort}`, `--cert-dir=${certs}`, `--tls-cert-file=${cert.cert}`, `--tls-private-key-file=${cert.key}`,
        `--secure-port=${adapterPort}`, "--bind-address=127.0.0.1", `--port=${await freePort()}`,
        `--authentication-kubeconfig=${cp.kubeconfig}`, `--authorization-kubeconfig=${cp.kubeconfig}`, `--lister-kubeconfig=${cp.kubeconfig}`,
      ], env);
      // the aggregation layer reaches the adapter on loopback: an ExternalName Service names "localhost"
      const wiring = [
        { apiVersion: "v1", kind: "Service", metadata: { name: "keda-metrics-apiserver", namespace: "keda" }, spec: { type: "ExternalName", externalName: "localhost" } },
        {
          apiVersion: "apiregistration.k8s.io/v1",
          kind: "APIService",
          metadata: { name: "v1beta1.external.metrics.k8s.io" },
          spec: {
            group: "external.metrics.k8s.io", version: "v1beta1", groupPriorityMinimum: 100, versionPriority: 100,
            service: { namespace: "keda", name: "keda-metrics-apiserver", port: adapterPort },
            caBundle: Buffer.from(await import("node:fs").then((fs) => fs.readFileSync(ca.cert))).toString("base64"),
          },
        },
      ];
      const applied = cp.kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: wiring }));
      assert.equal(applied.status, 0, applied.stderr);
      await waitFor("the external metrics API is available", 120_000, () => {
        for (const p of [operator, adapter]) if (p.child.exitCode !== null) throw new Error(`${p.name} exited:\n${cp.tail(p.name)}`);
        const api = cp.get(["get", "apiservice", "v1beta1.external.metrics.k8s.io"]);
        return api.status?.conditions?.some((c: any) => c.type === "Available" && c.status === "True") ? true : undefined;
      }, 1000).catch((err: Error) => {
        throw new Error(`${err.message}\n--- adapter:\n${cp.tail("keda-adapter")}\n--- apiserver:\n${cp.tail("kube-apiserver", 20)}`);
      });
      timings.kedaUp = (Date.now() - t) / 1000;
    });

    test("a backlog split over the sessionless and partition consumers scales the worker Deployment up; draining scales it down", async () => {
      // Point the general pool's triggers at the loopback monitoring endpoint, and shorten KEDA's polling and
      // the HPA's scale-down window so the test measures the machinery in seconds, not the production damping
      // (production: pollingInterval 10 s, 300 s stabilization, then one pod a minute; see docs/deploy.md).
      const so = cp.get(["-n", NAMESPACE, "get", "scaledobject", "dspex-worker-general"]);
      const target = Number(so.spec.advanced.scalingModifiers.target);
      const max = so.spec.maxReplicaCount as number;
      const triggers = so.spec.triggers.map((t: any) => ({ ...t, metadata: { ...t.metadata, natsServerMonitoringEndpoint: `127.0.0.1:${monitorPort}` } }));
      const patch = {
        spec: {
          pollingInterval: 2,
          triggers,
          advanced: {
            ...so.spec.advanced,
            horizontalPodAutoscalerConfig: { behavior: { scaleDown: { stabilizationWindowSeconds: 10, policies: [{ type: "Percent", value: 100, periodSeconds: 5 }] } } },
          },
        },
      };
      const r = cp.kubectl(["-n", NAMESPACE, "patch", "scaledobject", "dspex-worker-general", "--type=merge", "-p", JSON.stringify(patch)]);
      assert.equal(r.status, 0, r.stderr);
      await waitFor("ScaledObject Ready (KEDA reads every consumer)", 120_000, () => {
        const live = cp.get(["-n", NAMESPACE, "get", "scaledobject", "dspex-worker-general"]);
        const ready = live.status?.conditions?.find((c: any) => c.type === "Ready");
        if (ready?.status !== "True") throw new Error(JSON.stringify(live.status?.conditions));
        return cp.kubectl(["-n", NAMESPACE, "get", "hpa", "keda-hpa-dspex-worker-general"]).status === 0 ? true : undefined;
      }, 1000).catch((err: Error) => {
        throw new Error(`${err.message}\n--- operator:\n${cp.tail("keda-operator", 30)}`);
      });
      assert.equal(replicas(), 1, "no backlog: minReplicaCount");

      // The backlog: `per` requests on the sessionless consumer and `per` spread over partitions. Either half
      // alone asks for fewer replicas than the sum does, so reaching `expected` shows the partitions count.
      const per = target * Math.floor(max / 2) + 1; // e.g. target 8, max 3 -> 9 each: 2 replicas alone, 3 together
      const expected = Math.min(max, Math.ceil((2 * per) / target));
      assert.ok(Math.ceil(per / target) < expected, "the test's backlog distinguishes a sum from a max");
      const js = jetstream(nc!);
      const t0 = Date.now();
      for (let i = 0; i < per; i++) await js.publish(requestSubject("general", "any"), new Uint8Array([i % 256]));
      const partitions = [0, 3, 7, 12];
      for (let i = 0; i < per; i++) await js.publish(requestSubject("general", `p${partitions[i % partitions.length]!}`), new Uint8Array([i % 256]));
      const up = await waitFor(`dspex-worker-general scaled to ${expected}`, 180_000, () => {
        const n = replicas();
        return n >= expected ? { seconds: (Date.now() - t0) / 1000, replicas: n } : undefined;
      }, 500).catch((err: Error) => {
        throw new Error(`${err.message}\n${cp.kubectl(["-n", NAMESPACE, "describe", "hpa"]).stdout.slice(-3000)}\n--- operator:\n${cp.tail("keda-operator", 20)}`);
      });
      assert.equal(up.replicas, expected, "the HPA scaled to the pool's summed backlog, no further");
      await waitFor("the new worker pods Ready on kwok nodes", 180_000, () => {
        const d = cp.get(["-n", NAMESPACE, "get", "deployment", "dspex-worker-general"]);
        if ((d.status.readyReplicas ?? 0) >= expected) return true;
        throw new Error(`status ${JSON.stringify(d.status)}; pods: ${cp.kubectl(["-n", NAMESPACE, "get", "pods", "-l", "dspex.io/pool=general", "-o", "wide"]).stdout}`);
      }, 1000);
      const upReady = (Date.now() - t0) / 1000;

      // Drain: consume and acknowledge everything, as the workers would (partition consumers through their
      // priority group, as pinned workers pull).
      const t1 = Date.now();
      const drain = async (consumer: string, group?: string): Promise<number> => {
        const c = await js.consumers.get("DSPEX_REQ", consumer);
        let n = 0;
        for (;;) {
          const batch = await c.fetch({ max_messages: 100, expires: 1000, ...(group ? { group } : {}) });
          let got = 0;
          for await (const m of batch) {
            m.ack();
            got++;
          }
          n += got;
          if (got === 0) return n;
        }
      };
      let drained = await drain(poolConsumer("general"));
      for (const p of partitions) drained += await drain(partitionConsumer("general", p), PARTITION_GROUP);
      assert.equal(drained, 2 * per, "every request was consumed");
      const down = await waitFor("dspex-worker-general back to 1", 240_000, () => (replicas() === 1 ? { seconds: (Date.now() - t1) / 1000 } : undefined), 500);
      report.keda = {
        version: versions().KEDA_VERSION,
        backlog: { sessionless: per, partitions: per, partitionConsumers: partitions.map((p) => partitionConsumer("general", p)) },
        lagPerReplica: target,
        settings: { pollingIntervalSeconds: 2, hpaSyncPeriodSeconds: 15, scaleDownStabilizationSeconds: 10 },
        scaleUpSeconds: up.seconds,
        scaleUpReplicas: up.replicas,
        scaleUpPodsReadySeconds: upReady,
        scaleDownSeconds: down.seconds,
      };
      process.stderr.write(`# KEDA: 1 -> ${up.replicas} replicas in ${up.seconds.toFixed(1)} s (pods Ready at ${upReady.toFixed(1)} s); back to 1 in ${down.seconds.toFixed(1)} s after draining\n`);
    });
  });
});
