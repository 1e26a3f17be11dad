/**
 * One way to connect to NATS for every TypeScript component: a list of servers (comma-separated, any node
 * of a cluster), reconnecting forever across them, with the component's name. Authentication and TLS are
 * configured here too (docs/security.md), so no component opens a connection any other way.
 */
import { connect, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import { TransportError } from "@dspex/protocol";

export interface ConnectOptions {
  /** Server URL(s): an array, or a comma-separated string. Default $NATS_URL, then nats://127.0.0.1:4222. */
  servers?: string | string[];
  /** Connection name shown by the server (e.g. `dspex-client`). */
  name: string;
  /** Extra nats.js options (tests). */
  nats?: Partial<ConnectionOptions>;
}

export function serverList(servers: string | string[] | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const raw = servers ?? env.NATS_URL ?? "nats://127.0.0.1:4222";
  const list = (Array.isArray(raw) ? raw : raw.split(",")).map((s) => s.trim()).filter((s) => s !== "");
  if (list.length === 0) throw new TransportError("no NATS server given (NATS_URL is empty)");
  return list;
}

export async function connectNats(options: ConnectOptions): Promise<NatsConnection> {
  const servers = serverList(options.servers);
  try {
    return await connect({
      servers,
      name: options.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      // no Error (stack capture) built up front for every request/JetStream publish: ~15% of a busy
      // client's CPU; our errors carry their own context
      noAsyncTraces: true,
      ...options.nats,
    });
  } catch (err) {
    throw new TransportError(`cannot connect to NATS at ${servers.join(",")}: ${String(err)}`, { cause: err });
  }
}
