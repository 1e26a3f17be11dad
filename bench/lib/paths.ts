import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root: this file is bench/lib/paths.ts. */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const RESULTS_DIR = resolve(PROJECT_ROOT, "bench/results");
