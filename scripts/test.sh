#!/usr/bin/env bash
# The whole test suite (README's test command): installs what is missing, then type-checks and lints both
# languages and runs the Python unit tests and the TypeScript unit, parity and integration tests (which
# start real nats-server and Python worker processes running real dspy, a real PostgreSQL server and
# headless Chromium: scripts/install-test-services.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
bash scripts/install-deploy-tools.sh
bash scripts/install-test-services.sh
bash scripts/install-skaffold.sh

section() { printf '\n== %s\n' "$*"; }

section "TypeScript: type-check (tsc -b, strict; the tests and benchmarks too, so they do not rot between runs)"
npx --no-install tsc -b
npx --no-install tsc -p test
npx --no-install tsc -p bench

section "Python: ruff, mypy --strict, import contracts (layers, no cycles: workers/pyproject.toml)"
(cd workers && ../.venv/bin/ruff check . && ../.venv/bin/ruff format --check . && ../.venv/bin/mypy dspex_worker \
  && ../.venv/bin/lint-imports --no-cache)
.venv/bin/ruff check bench examples && .venv/bin/ruff format --check bench examples

section "Python: pytest"
(cd workers && ../.venv/bin/pytest -q)

section "TypeScript: node --test (unit, parity, integration, deploy checks)"
# test/containers and test/cluster need built images and a Kubernetes control plane: `npm run test:deploy`
mapfile -t files < <(find services test -name '*.test.ts' -not -path '*/node_modules/*' \
  -not -path 'test/containers/*' -not -path 'test/cluster/*' | sort)
node --conditions=development --import tsx --test --test-reporter=spec "${files[@]}"
