/**
 * A real Kubernetes control plane on loopback for tests: etcd (Debian's etcd-server), kube-apiserver,
 * kube-controller-manager and kube-scheduler (built from k8s.io/kubernetes by scripts/install-cluster-tools.sh),
 * and kwok, which simulates nodes and the kubelet's pod lifecycle (pods become Running/Ready, get pod IPs,
 * EndpointSlices fill in; no container runs). Certificates are made here with openssl. Every process
 * listens on 127.0.0.1 only and is stopped by `stop()`.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const CACHE = join(ROOT, ".dspex", "cluster");
export const INSTALL_HINT = "run `bash scripts/install-cluster-tools.sh` first";

export interface Versions {
  K8S_VERSION: string;
  KWOK_VERSION: string;
  KEDA_VERSION: string;
  K8S_BIN: string;
  KWOK_BIN: string;
  KEDA_BIN: string;
}

export function versions(): Versions {
  const file = join(CACHE, "versions.env");
  if (!existsSync(file)) throw new Error(`${file} is missing: ${INSTALL_HINT}`);
  const out: Record<string, string> = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) out[m[1] as string] = m[2] as string;
  }
  return out as unknown as Versions;
}

export async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => done(port));
    });
  });
}

/** Polls `check` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined> | T | undefined, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? `: ${last instanceof Error ? last.message : String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync("openssl", args, { cwd, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
}

/** A CA and certificates signed by it (RSA 2048, 1 day). */
export class CertificateAuthority {
  constructor(
    readonly dir: string,
    readonly name: string,
  ) {
    openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.crt`], dir);
  }
  get cert(): string {
    return join(this.dir, `${this.name}.crt`);
  }
  issue(file: string, subject: string, options: { sans?: string[]; usage: "server" | "client" | "both" }): { cert: string; key: string } {
    const ext = join(this.dir, `${file}.ext`);
    const usage = { server: "serverAuth", client: "clientAuth", both: "serverAuth,clientAuth" }[options.usage];
    writeFileSync(
      ext,
      [
        "basicConstraints=CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        `extendedKeyUsage=${usage}`,
        ...(options.sans?.length ? [`subjectAltName=${options.sans.join(",")}`] : []),
      ].join("\n"),
    );
    openssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", `${file}.key`, "-out", `${file}.csr`], this.dir);
    openssl(
      ["x509", "-req", "-in", `${file}.csr`, "-CA", `${this.name}.crt`, "-CAkey", `${this.name}.key`, "-CAcreateserial", "-days", "1", "-extfile", `${file}.ext`, "-out", `${file}.crt`],
      this.dir,
    );
    return { cert: join(this.dir, `${file}.crt`), key: join(this.dir, `${file}.key`) };
  }
}

export interface Proc {
  name: string;
  child: ChildProcess;
  log: string;
}

export interface ControlPlane {
  dir: string;
  kubeconfig: string;
  apiserverUrl: string;
  ca: CertificateAuthority;
  processes: Proc[];
  /** kubectl (the one built with the control plane) with this kubeconfig. */
  kubectl(args: string[], input?: string, timeoutMs?: number): { status: number; stdout: string; stderr: string };
  /** kubectl ... -o json, parsed; throws on failure. */
  get<T = any>(args: string[]): T;
  /** Starts a further process whose output goes to <dir>/<name>.log; stopped with the control plane. */
  start(name: string, command: string, args: string[], env?: NodeJS.ProcessEnv): Proc;
  tail(name: string, lines?: number): string;
  stop(): Promise<void>;
}

export interface Timings {
  [step: string]: number;
}

/** Brings the control plane up; `timings` receives seconds per step. */
export async function startControlPlane(timings: Timings = {}): Promise<ControlPlane> {
  const v = versions();
  const bin = (dir: string, name: string): string => {
    const path = join(dir, name);
    if (!existsSync(path)) throw new Error(`${path} is missing: ${INSTALL_HINT}`);
    return path;
  };
  const etcdBin = spawnSync("sh", ["-c", "command -v etcd"], { encoding: "utf8" }).stdout.trim();
  if (!etcdBin) throw new Error(`etcd is missing (Debian etcd-server): ${INSTALL_HINT}`);

  const dir = mkdtempSync(join(tmpdir(), "dspex-k8s-"));
  const processes: Proc[] = [];
  const start = (name: string, command: string, args: string[], env?: NodeJS.ProcessEnv): Proc => {
    const out = createWriteStream(join(dir, `${name}.log`));
    const child = spawn(command, args, { cwd: dir, env: env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    const proc: Proc = { name, child, log: join(dir, `${name}.log`) };
    child.stdout!.pipe(out, { end: false });
    child.stderr!.pipe(out, { end: false });
    processes.push(proc);
    return proc;
  };
  const tail = (name: string, lines = 40): string => {
    const file = join(dir, `${name}.log`);
    return existsSync(file) ? readFileSync(file, "utf8").split("\n").slice(-lines).join("\n") : "";
  };
  const stop = async (): Promise<void> => {
    for (const p of [...processes].reverse()) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) continue;
      await new Promise<void>((done) => {
        const timer = setTimeout(() => p.child.kill("SIGKILL"), 10_000);
        p.child.once("exit", () => {
          clearTimeout(timer);
          done();
        });
        p.child.kill("SIGTERM");
      });
    }
    if (process.env.DSPEX_KEEP_CLUSTER_DIR !== "1") rmSync(dir, { recursive: true, force: true });
  };
  const alive = (p: Proc): void => {
    if (p.child.exitCode !== null) throw new Error(`${p.name} exited with ${p.child.exitCode}:\n${tail(p.name)}`);
  };

  try {
    let t = Date.now();
    // --- certificates
    const pki = join(dir, "pki");
    mkdirSync(pki);
    const ca = new CertificateAuthority(pki, "ca");
    const apiserverCert = ca.issue("apiserver", "/CN=kube-apiserver", {
      usage: "server",
      sans: ["IP:127.0.0.1", "DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc", "IP:10.96.0.1"],
    });
    const admin = ca.issue("admin", "/O=system:masters/CN=dspex-admin", { usage: "client" });
    const frontProxyCa = new CertificateAuthority(pki, "front-proxy-ca");
    const frontProxy = frontProxyCa.issue("front-proxy-client", "/CN=front-proxy-client", { usage: "client" });
    openssl(["genrsa", "-out", "sa.key", "2048"], pki);
    openssl(["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"], pki);
    timings.certificates = (Date.now() - t) / 1000;

    // --- etcd
    t = Date.now();
    const [etcdClient, etcdPeer] = [await freePort(), await freePort()];
    const etcd = start("etcd", etcdBin, [
      "--name", "dspex", "--data-dir", join(dir, "etcd"),
      "--listen-client-urls", `http://127.0.0.1:${etcdClient}`, "--advertise-client-urls", `http://127.0.0.1:${etcdClient}`,
      "--listen-peer-urls", `http://127.0.0.1:${etcdPeer}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${etcdPeer}`,
      "--initial-cluster", `dspex=http://127.0.0.1:${etcdPeer}`, "--listen-metrics-urls", `http://127.0.0.1:${await freePort()}`,
      "--log-level", "warn", "--quota-backend-bytes", String(2 * 1024 ** 3),
    ]);
    await waitFor("etcd /health", 30_000, async () => {
      alive(etcd);
      const res = await fetch(`http://127.0.0.1:${etcdClient}/health`);
      return res.ok ? true : undefined;
    });
    timings.etcd = (Date.now() - t) / 1000;

    // --- kube-apiserver
    t = Date.now();
    const apiPort = await freePort();
    const apiserverUrl = `https://127.0.0.1:${apiPort}`;
    const apiserver = start("kube-apiserver", bin(v.K8S_BIN, "kube-apiserver"), [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      "--bind-address=127.0.0.1", `--secure-port=${apiPort}`, "--advertise-address=127.0.0.1",
      // no Endpoints object for the built-in "kubernetes" Service: its address would be loopback, which the
      // Endpoints API rejects; nothing here connects through that Service
      "--endpoint-reconciler-type=none",
      `--tls-cert-file=${apiserverCert.cert}`, `--tls-private-key-file=${apiserverCert.key}`,
      `--client-ca-file=${ca.cert}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${join(pki, "sa.pub")}`, `--service-account-signing-key-file=${join(pki, "sa.key")}`,
      "--service-cluster-ip-range=10.96.0.0/16",
      "--authorization-mode=Node,RBAC",
      // the aggregation layer, for KEDA's external metrics API (served by keda-adapter out of cluster)
      `--requestheader-client-ca-file=${frontProxyCa.cert}`, "--requestheader-allowed-names=front-proxy-client",
      "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
      "--requestheader-extra-headers-prefix=X-Remote-Extra-",
      `--proxy-client-cert-file=${frontProxy.cert}`, `--proxy-client-key-file=${frontProxy.key}`,
      "--profiling=false", "--v=1",
    ]);
    const kubeconfig = join(dir, "admin.kubeconfig");
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "dspex", cluster: { server: apiserverUrl, "certificate-authority": ca.cert } }],
        users: [{ name: "admin", user: { "client-certificate": admin.cert, "client-key": admin.key } }],
        contexts: [{ name: "dspex", context: { cluster: "dspex", user: "admin" } }],
        "current-context": "dspex",
      }),
    );
    const kubectlBin = bin(v.K8S_BIN, "kubectl");
    const kubectl = (args: string[], input?: string, timeoutMs = 120_000) => {
      const r = spawnSync(kubectlBin, ["--kubeconfig", kubeconfig, ...args], { input, encoding: "utf8", timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 });
      if (r.error) throw r.error;
      return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    };
    const get = <T = any>(args: string[]): T => {
      const r = kubectl([...args, "-o", "json"]);
      if (r.status !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
      return JSON.parse(r.stdout) as T;
    };
    await waitFor("kube-apiserver /readyz", 90_000, () => {
      alive(apiserver);
      return kubectl(["get", "--raw", "/readyz"]).stdout.trim() === "ok" ? true : undefined;
    });
    timings.apiserver = (Date.now() - t) / 1000;

    // --- controller-manager, scheduler, kwok
    t = Date.now();
    const common = [`--kubeconfig=${kubeconfig}`, `--authentication-kubeconfig=${kubeconfig}`, `--authorization-kubeconfig=${kubeconfig}`, "--leader-elect=false", "--bind-address=127.0.0.1"];
    const cm = start("kube-controller-manager", bin(v.K8S_BIN, "kube-controller-manager"), [
      ...common, `--secure-port=${await freePort()}`,
      `--service-account-private-key-file=${join(pki, "sa.key")}`, `--root-ca-file=${ca.cert}`,
      `--cluster-signing-cert-file=${ca.cert}`, `--cluster-signing-key-file=${join(pki, "ca.key")}`,
      "--use-service-account-credentials=false",
      // HPA: the default 15 s sync period (what a cluster does); KEDA's ScaledObjects drive it
      "--horizontal-pod-autoscaler-sync-period=15s",
      "--v=1",
    ]);
    const scheduler = start("kube-scheduler", bin(v.K8S_BIN, "kube-scheduler"), [...common, `--secure-port=${await freePort()}`, "--v=1"]);
    const kwok = start("kwok", bin(v.KWOK_BIN, "kwok"), [
      `--kubeconfig=${kubeconfig}`, `--config=${join(v.KWOK_BIN, "stages.yaml")}`,
      "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
      `--server-address=127.0.0.1:${await freePort()}`, "--cidr=10.0.0.1/16", "--node-ip=10.0.0.1",
      // node leases: the "heartbeat-with-lease" stage patches node status only once a minute and relies on
      // them; without leases the node lifecycle controller marks the nodes Unknown after its 50 s grace period
      // and every pod on them NotReady
      "--node-lease-duration-seconds=40",
    ]);
    // the service-account token of the default namespace shows the controller-manager is working
    await waitFor("controller-manager: default service account", 90_000, () => {
      for (const p of [cm, scheduler, kwok]) alive(p);
      return kubectl(["get", "serviceaccount", "default", "-n", "default"]).status === 0 ? true : undefined;
    });
    timings.controllers = (Date.now() - t) / 1000;

    return { dir, kubeconfig, apiserverUrl, ca, processes, kubectl, get, start, tail, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** kwok nodes: `count` general nodes, plus GPU nodes labelled and tainted as GPU Feature Discovery and the
 * NVIDIA device plugin would (nvidia.com/gpu capacity). */
export function kwokNodes(general: number, gpu: number): string {
  const node = (name: string, extra: { labels?: Record<string, string>; taints?: unknown[]; capacity?: Record<string, string> }) => ({
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      annotations: { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" },
      labels: { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", type: "kwok", ...extra.labels },
    },
    // no kwok taint: the DSPex pod templates are applied unchanged (nothing of them tolerates it)
    spec: { taints: extra.taints ?? [] },
    status: {
      allocatable: { cpu: "32", memory: "128Gi", pods: "110", ...extra.capacity },
      capacity: { cpu: "32", memory: "128Gi", pods: "110", ...extra.capacity },
    },
  });
  const items = [
    ...Array.from({ length: general }, (_, i) => node(`kwok-node-${i}`, {})),
    ...Array.from({ length: gpu }, (_, i) =>
      node(`kwok-gpu-${i}`, {
        labels: { "nvidia.com/gpu.present": "true" },
        taints: [{ key: "nvidia.com/gpu", value: "present", effect: "NoSchedule" }],
        capacity: { "nvidia.com/gpu": "4" },
      }),
    ),
  ];
  return JSON.stringify({ apiVersion: "v1", kind: "List", items });
}
