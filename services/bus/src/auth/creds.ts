/**
 * Reading a `.creds` file (a user JWT and its nkey seed): the role and inbox prefix its JWT's tags name, so a
 * process configured with nothing but its credentials uses the inbox its permissions allow.
 */
import { readFileSync } from "node:fs";
import { decode } from "@nats-io/jwt";
import { TransportError } from "@dspex/protocol";

export interface CredsInfo {
  /** The creds file's text. */
  text: string;
  /** `dspex-role:` tag of the user JWT, when issued by DSPex. */
  role?: string;
  /** `dspex-inbox:` tag: the inbox prefix the role may subscribe to. */
  inboxPrefix?: string;
}

const JWT_BLOCK = /-----BEGIN NATS USER JWT-----\s*([A-Za-z0-9_\-.]+)\s*------END NATS USER JWT------/;

export function readCreds(path: string): CredsInfo {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new TransportError(`cannot read NATS credentials ${path}: ${(err as Error).message}`, { cause: err });
  }
  const jwt = JWT_BLOCK.exec(text)?.[1];
  if (!jwt) throw new TransportError(`NATS credentials ${path}: no user JWT in the file`);
  let tags: string[] = [];
  try {
    tags = (decode<{ tags?: string[] }>(jwt).nats.tags ?? []).map(String);
  } catch (err) {
    throw new TransportError(`NATS credentials ${path}: the user JWT does not decode: ${(err as Error).message}`);
  }
  const tag = (name: string) => tags.find((t) => t.startsWith(`${name}:`))?.slice(name.length + 1);
  const role = tag("dspex-role");
  const inboxPrefix = tag("dspex-inbox");
  return { text, ...(role ? { role } : {}), ...(inboxPrefix ? { inboxPrefix } : {}) };
}
