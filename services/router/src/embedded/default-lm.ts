/**
 * The LM used when none is configured. DSPEX_LM (with DSPEX_LM_API_BASE) names a real provider; without
 * it, embedded mode starts the deterministic LM double from test/lm-double (an OpenAI-compatible test
 * server that answers in DSPy's formats) so the whole path still runs offline.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { LMConfigWire } from "@dspex/shared";
import type { Fleet } from "./fleet.js";
import { eachLine } from "./lines.js";
import { EXEC_WITH_PARENT_DEATH_SIGNAL, PROJECT_ROOT, pythonBin } from "./paths.js";
import { stopChild } from "./nats-server.js";

export interface DefaultLm {
  lm: LMConfigWire | undefined;
  /** Human-readable name of what answers, for the CLI to print. */
  label: string;
  stop(): Promise<void>;
}

export function configuredLm(env: NodeJS.ProcessEnv = process.env): LMConfigWire | undefined {
  if (!env.DSPEX_LM) return undefined;
  const lm: LMConfigWire = { model: env.DSPEX_LM };
  if (env.DSPEX_LM_API_BASE) lm.api_base = env.DSPEX_LM_API_BASE;
  if (env.DSPEX_LM_API_KEY_ENV) lm.api_key_env = env.DSPEX_LM_API_KEY_ENV;
  return lm;
}

export async function startDefaultLm(): Promise<DefaultLm> {
  const configured = configuredLm();
  if (configured) {
    return { lm: configured, label: `${configured.model}${configured.api_base ? ` at ${configured.api_base}` : ""}`, stop: async () => {} };
  }
  const main = join(PROJECT_ROOT, "test/lm-double/main.ts");
  if (!existsSync(main)) {
    throw new Error("no LM configured: set DSPEX_LM (and DSPEX_LM_API_BASE for an OpenAI-compatible endpoint)");
  }
  // Through the parent-death wrapper, like the workers: the double never outlives the CLI.
  const child = spawn(pythonBin(), ["-c", EXEC_WITH_PARENT_DEATH_SIGNAL, process.execPath, "--import", "tsx", main, "--port", "0"], {
    cwd: PROJECT_ROOT,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("LM double did not start within 15 s")), 15_000);
    eachLine(child.stdout!, (line) => {
      try {
        const info = JSON.parse(line) as { url?: string };
        if (info.url) {
          clearTimeout(timer);
          resolve(info.url);
        }
      } catch {
        /* not the ready line */
      }
    });
    child.once("exit", (code) => reject(new Error(`LM double exited with code ${code}`)));
  });
  return {
    lm: { model: "openai/dspex-lm-double", api_base: url },
    label: `the deterministic LM double (test/lm-double) at ${url} — set DSPEX_LM for a real provider`,
    stop: () => stopChild(child),
  };
}

/** Whether the local model (scripts/install-local-lm.sh, docs/local-lm.md) is installed in the venv. */
export function localLmInstalled(): boolean {
  const check = spawnSync(
    pythonBin(),
    ["-c", "from dspex_worker.local_lm.models import find_model; find_model()"],
    { cwd: join(PROJECT_ROOT, "workers"), stdio: "ignore", timeout: 30_000 },
  );
  return check.status === 0;
}

/** The local model a `gpu` worker of the fleet hosts (started with DSPEX_HOST_LOCAL_LM=1). */
export function hostedLm(fleet: Fleet): { lm: LMConfigWire; label: string } | undefined {
  for (const worker of fleet.workers) {
    const ready = worker.lastEvents.get("ready");
    if (worker.pool === "gpu" && typeof ready?.lm_url === "string" && typeof ready.lm_model === "string") {
      return {
        // JSONAdapter: a 135M-parameter model answers more sensibly in JSON (docs/local-lm.md).
        lm: { model: ready.lm_model, api_base: ready.lm_url, adapter: "json", num_retries: 0 },
        label: `${ready.lm_model.replace(/^openai\//, "")}, a real local model hosted by the gpu pool (${ready.lm_url}; no key, no network) — set DSPEX_LM for a provider`,
      };
    }
  }
  return undefined;
}
