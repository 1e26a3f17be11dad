#!/usr/bin/env bash
# `npm run bench`: installs the benchmark-only Python packages (bench/requirements.lock: FastAPI, uvicorn,
# py-spy) into the project venv when they changed, then runs bench/run.ts. Arguments pass through
# (e.g. `npm run bench -- --quick`, `--only=dspex,inprocess`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
stamp_dir="$root/.dspex/stamps"
mkdir -p "$stamp_dir"
fp=$(cat bench/requirements.lock | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/uvicorn ] || [ "$(cat "$stamp_dir/bench-venv" 2>/dev/null)" != "$fp" ]; then
  printf '[bench] installing bench/requirements.lock into .venv\n' >&2
  .venv/bin/uv pip install --quiet --python .venv/bin/python --require-hashes -r bench/requirements.lock
  echo "$fp" > "$stamp_dir/bench-venv"
fi
exec node --conditions=development --import tsx bench/run.ts "$@"
