/**
 * One way to connect to NATS for every TypeScript component: a list of servers (comma-separated, any node
 * of a cluster), reconnecting forever across them, with the component's name. Authentication and TLS are
 * configured here too (docs/security.md), so no component opens a connection any other way.
 */
import { readFileSync } from "node:fs";
import { connect, createInbox, credsAuthenticator, nuid, type ConnectionOptions, type NatsConnection, type TlsOptions } from "@nats-io/transport-node";
import { TransportError } from "@dspex/protocol";
import { readCreds } from "./auth/creds.js";

/** Where the bus is and how to authenticate to it (the part of every component's options that is about NATS). */
export interface BusAccess {
  /** Server URL(s): an array, or a comma-separated string. Default $NATS_URL, then nats://127.0.0.1:4222. */
  servers?: string | string[];
  /**
   * Path of this process's `.creds` file (its role's user JWT and nkey seed). Default $NATS_CREDS. The inbox
   * prefix comes from the JWT's `dspex-inbox:` tag: a role may subscribe only to its own inboxes.
   */
  creds?: string;
  /** TLS: CA bundle (and client certificate/key for mutual TLS). Default $NATS_CA, $NATS_CERT, $NATS_KEY. */
  tls?: TlsFiles;
}

export interface ConnectOptions extends BusAccess {
  /** Connection name shown by the server (e.g. `dspex-client`). */
  name: string;
  /** Extra nats.js options (tests). */
  nats?: Partial<ConnectionOptions>;
}

export interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

export function serverList(servers: string | string[] | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const raw = servers ?? env.NATS_URL ?? "nats://127.0.0.1:4222";
  const list = (Array.isArray(raw) ? raw : raw.split(",")).map((s) => s.trim()).filter((s) => s !== "");
  if (list.length === 0) throw new TransportError("no NATS server given (NATS_URL is empty)");
  return list;
}

/** The credentials and TLS files to use: the options', else the environment's. */
export function connectionSecurity(
  options: Pick<ConnectOptions, "creds" | "tls">,
  env: NodeJS.ProcessEnv = process.env,
): Partial<ConnectionOptions> {
  const out: Partial<ConnectionOptions> = {};
  const credsPath = options.creds ?? (env.NATS_CREDS || undefined);
  if (credsPath) {
    const creds = readCreds(credsPath);
    out.authenticator = credsAuthenticator(new TextEncoder().encode(creds.text));
    if (creds.inboxPrefix) out.inboxPrefix = creds.inboxPrefix;
  }
  const files = options.tls ?? { ca: env.NATS_CA || undefined, cert: env.NATS_CERT || undefined, key: env.NATS_KEY || undefined };
  if (files.ca || files.cert) {
    const read = (what: string, path: string) => {
      try {
        return readFileSync(path, "utf8");
      } catch (err) {
        throw new TransportError(`cannot read the TLS ${what} ${path}: ${(err as Error).message}`, { cause: err });
      }
    };
    const tls: TlsOptions = {};
    if (files.ca) tls.ca = read("CA bundle", files.ca);
    if (files.cert) tls.cert = read("certificate", files.cert);
    if (files.key) tls.key = read("key", files.key);
    out.tls = tls;
  }
  return out;
}

export async function connectNats(options: ConnectOptions): Promise<NatsConnection> {
  const servers = serverList(options.servers);
  const security = connectionSecurity(options);
  try {
    return await connect({
      servers,
      name: options.name,
      ...security,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      // no Error (stack capture) built up front for every request/JetStream publish: ~15% of a busy
      // client's CPU; our errors carry their own context
      noAsyncTraces: true,
      ...options.nats,
    });
  } catch (err) {
    const hint = /Authorization|Authentication/i.test(String(err))
      ? security.authenticator
        ? " (the credentials were refused: are they for this deployment, and not expired?)"
        : " (the server requires credentials: set NATS_CREDS to a role's .creds file, docs/security.md)"
      : "";
    throw new TransportError(`cannot connect to NATS at ${servers.join(",")}: ${String(err)}${hint}`, { cause: err });
  }
}

/**
 * A new inbox subject under the connection's inbox prefix (its role's `_INBOX_<role>`, from its credentials):
 * the only inboxes the role may subscribe to and workers may reply to. nats.js keeps the prefix in the
 * connection's options, which its public interface does not name.
 */
export function newInbox(nc: NatsConnection, token?: string): string {
  const prefix = (nc as NatsConnection & { options?: ConnectionOptions }).options?.inboxPrefix ?? "_INBOX";
  return token ? `${prefix}.${token}.${nuid.next()}` : createInbox(prefix);
}
