/**
 * A JetStream cluster on loopback (tests and benchmarks of node loss, docs/reliability.md): N nats-server
 * processes of the project's binary with routes between them, each with its own store, all with the same
 * identities (one issued auth directory: operator, accounts, a user per role, as a single server has). Routes
 * authenticate with a user and password made for this cluster. A node can be killed (SIGKILL) and started again
 * on its port and store, where it rejoins and catches up.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { issueAuth, partitionCounts, type IssuedAuth } from "@dspex/bus";
import type { Pool } from "@dspex/protocol";
import { freePort, launch, stopChild } from "./nats-server.js";

export interface ClusterNode {
  name: string;
  url: string;
  port: number;
  process: ChildProcess;
  /** SIGKILL: the node is gone at once, as a lost machine is. */
  kill(): Promise<void>;
  /** Starts the node again on its port and store. */
  start(): Promise<void>;
  readonly running: boolean;
}

export interface EmbeddedCluster {
  nodes: ClusterNode[];
  /** Every node's URL, comma-separated: what NATS_URL takes. */
  url: string;
  creds: IssuedAuth["creds"];
  stop(): Promise<void>;
}

export interface ClusterOptions {
  nodes?: number;
  partitions?: Record<Pool, number>;
  startTimeoutMs?: number;
}

function withTimeout(promise: Promise<void>, ms: number, message: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)));
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

export async function startNatsCluster(options: ClusterOptions = {}): Promise<EmbeddedCluster> {
  const count = options.nodes ?? 3;
  const dir = mkdtempSync(join(tmpdir(), "dspex-cluster-"));
  const timeout = options.startTimeoutMs ?? 30_000;
  const auth = await issueAuth({ dir: join(dir, "auth"), partitions: options.partitions ?? partitionCounts() });
  const routeAuth = `route:${randomBytes(18).toString("base64url")}`;
  const ports = await Promise.all(Array.from({ length: count }, () => freePort()));
  const routePorts = await Promise.all(Array.from({ length: count }, () => freePort()));
  const routes = routePorts.map((p) => `nats-route://${routeAuth}@127.0.0.1:${p}`).join(",");
  const nodes: ClusterNode[] = [];
  for (let i = 0; i < count; i++) {
    const name = `n${i + 1}`;
    const storeDir = join(dir, name);
    const args = ["-n", name, "--cluster_name", "dspex", "--cluster", `nats://${routeAuth}@127.0.0.1:${routePorts[i]}`, "--routes", routes];
    let child: ChildProcess | undefined;
    const node: ClusterNode = {
      name,
      port: ports[i]!,
      url: `nats://127.0.0.1:${ports[i]}`,
      get process() {
        return child!;
      },
      get running() {
        return child !== undefined && child.exitCode === null && child.signalCode === null;
      },
      async kill() {
        if (!node.running) return;
        const exited = new Promise((resolve) => child!.once("exit", resolve));
        child!.kill("SIGKILL");
        await exited;
      },
      async start() {
        // ready for JetStream once this node knows the meta leader (its log says so), not merely listening
        let knowsLeader!: () => void;
        const leaderKnown = new Promise<void>((resolve) => (knowsLeader = resolve));
        const launched = launch(storeDir, auth.serverConfigPath, ports[i], args, timeout, (line) => {
          if (/JetStream cluster new metadata leader|Self is new JetStream cluster metadata leader/.test(line)) knowsLeader();
        });
        child = launched.child;
        await launched.ready;
        await withTimeout(leaderKnown, timeout, `${name}: no JetStream meta leader within ${timeout} ms`);
      },
    };
    nodes.push(node);
  }
  try {
    // started together: each waits for routes to the others before JetStream's meta group has a leader
    await Promise.all(nodes.map((n) => n.start()));
  } catch (err) {
    await Promise.allSettled(nodes.map((n) => (n.running ? stopChild(n.process) : undefined)));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    nodes,
    url: nodes.map((n) => n.url).join(","),
    creds: auth.creds,
    async stop() {
      await Promise.allSettled(nodes.map((n) => (n.running ? stopChild(n.process) : undefined)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
