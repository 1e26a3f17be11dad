#!/usr/bin/env bash
# Caches what DSPy's ProgramOfThought/RLM sandbox loads (Deno runs dspy/primitives/runner.js, which imports
# Pyodide from the npm registry) at install time, in a project-local DENO_DIR keyed by the Deno and runner
# versions: .dspex/deno/<key>, with .dspex/deno/current pointing at it. Workers run Deno with --cached-only
# against it (workers/dspex_worker/ops/sandbox.py), so the sandbox never fetches anything at run time.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { printf '[setup] %s\n' "$*" >&2; }

deno_bin=".venv/bin/deno"
[ -x "$deno_bin" ] || { log "no $deno_bin (the venv's dspy[deno]); the sandbox stays unavailable"; exit 0; }
runner="$(.venv/bin/python -c 'import dspy.primitives, os; print(os.path.join(os.path.dirname(dspy.primitives.__file__), "runner.js"))')"
import_map="workers/dspex_worker/ops/sandbox_files/import_map.json"
# what Deno fetches is pinned by hash in this lockfile (npm integrity of pyodide and its dependencies)
lock="workers/dspex_worker/ops/sandbox_files/deno.lock"
key="deno-$("$deno_bin" --version | head -1 | cut -d' ' -f2)-$(cat "$runner" "$import_map" "$lock" | sha256sum | cut -c1-16)"
dir=".dspex/deno/$key"
if [ ! -f "$dir/.complete" ]; then
  log "caching the sandbox's Deno modules and Pyodide in $dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  DENO_DIR="$root/$dir" DENO_NO_UPDATE_CHECK=1 "$deno_bin" cache --quiet --no-config --lock="$lock" --frozen \
    --node-modules-dir=false --import-map="$import_map" "$runner"
  touch "$dir/.complete"
fi
ln -sfn "$key" .dspex/deno/current
