/**
 * The LM a fleet's workers use when a request names none: their default LM profile (docs/security.md, LM
 * profiles and provider keys). DSPEX_LM (with DSPEX_LM_API_BASE, DSPEX_LM_API_KEY_ENV, DSPEX_LM_ADAPTER,
 * DSPEX_LM_NUM_RETRIES) names a provider the operator configured; without it, embedded mode hosts the real local
 * model (docs/local-lm.md) on a `gpu` worker and makes it every worker's default profile. The same choice serves
 * `dspex demo`, `run`, `up` and `eval`. Test doubles are never a default: tests start them and configure the
 * workers themselves. Requests then name no endpoint: the profile holds it.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import type { LMProfile } from "@dspex/protocol";
import { PROJECT_ROOT, pythonBin } from "./paths.js";
import type { WorkerProcess } from "./workers.js";

/** What the DSPEX_LM* variables can say of a workers' default profile (the rest belongs in DSPEX_LM_PROFILES). */
export type DefaultLm = Pick<LMProfile, "model" | "api_base" | "api_key_env" | "adapter" | "num_retries">;

/** The operator's default LM profile from the environment, if any. */
export function configuredLm(env: NodeJS.ProcessEnv = process.env): DefaultLm | undefined {
  if (!env.DSPEX_LM) return undefined;
  const lm: DefaultLm = { model: env.DSPEX_LM };
  if (env.DSPEX_LM_API_BASE) lm.api_base = env.DSPEX_LM_API_BASE;
  if (env.DSPEX_LM_API_KEY_ENV) lm.api_key_env = env.DSPEX_LM_API_KEY_ENV;
  if (env.DSPEX_LM_ADAPTER === "json" || env.DSPEX_LM_ADAPTER === "chat") lm.adapter = env.DSPEX_LM_ADAPTER;
  if (env.DSPEX_LM_NUM_RETRIES && /^\d+$/.test(env.DSPEX_LM_NUM_RETRIES)) lm.num_retries = Number(env.DSPEX_LM_NUM_RETRIES);
  return lm;
}

/** Whether the local model (scripts/install-local-lm.sh, docs/local-lm.md) is installed in the venv. */
export function localLmInstalled(): boolean {
  const check = spawnSync(pythonBin(), ["-c", "from dspex_worker.local_lm.models import find_model; find_model()"], {
    cwd: join(PROJECT_ROOT, "workers"),
    stdio: "ignore",
    timeout: 30_000,
  });
  return check.status === 0;
}

export interface HostedLm {
  /** The workers' default profile. */
  lm: DefaultLm;
  /** Human-readable: what answers, for the CLI to print. */
  label: string;
}

/** The local model a `gpu` worker hosts (started with DSPEX_HOST_LOCAL_LM=1), from its ready event. */
export function hostedLm(workers: readonly WorkerProcess[]): HostedLm | undefined {
  for (const worker of workers) {
    const ready = worker.lastEvents.get("ready");
    if (worker.pool === "gpu" && typeof ready?.lm_url === "string" && typeof ready.lm_model === "string") {
      return {
        // JSONAdapter: a 135M-parameter model answers more sensibly in JSON (docs/local-lm.md)
        lm: { model: ready.lm_model, api_base: ready.lm_url, adapter: "json", num_retries: 0 },
        label: `${ready.lm_model.replace(/^openai\//, "")}, a real local model hosted by the gpu pool (${ready.lm_url}; no key, no network) — set DSPEX_LM for a provider`,
      };
    }
  }
  return undefined;
}

/** The environment that makes `lm` a worker's default profile (what `configuredLm` reads back). */
export function lmEnv(lm: DefaultLm): Record<string, string> {
  return {
    DSPEX_LM: lm.model,
    ...(lm.api_base ? { DSPEX_LM_API_BASE: lm.api_base } : {}),
    ...(lm.api_key_env ? { DSPEX_LM_API_KEY_ENV: lm.api_key_env } : {}),
    ...(lm.adapter ? { DSPEX_LM_ADAPTER: lm.adapter } : {}),
    ...(lm.num_retries !== undefined ? { DSPEX_LM_NUM_RETRIES: String(lm.num_retries) } : {}),
  };
}
