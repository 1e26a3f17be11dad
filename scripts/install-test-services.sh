#!/usr/bin/env bash
# Installs the servers and the browser the registry's tests use, from Debian's packages, and does nothing when
# they are already there (the stamp is this file's hash plus the installed versions):
#   postgresql   the real PostgreSQL server the registry suite runs against (beside the embedded PGlite);
#                the tests start their own server on a free port in a temporary directory, as user postgres
#   chromium     headless, driven by playwright-core (executablePath) for the web console's tests
# Downloaded packages are kept in .dspex/apt-cache, so a re-install on this machine downloads nothing.
# Needs root (apt-get) unless both are installed. Usage: bash scripts/install-test-services.sh [--force]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stamp_dir="$root/.dspex/stamps"
stamp="$stamp_dir/test-services"
cache="$root/.dspex/apt-cache"
log() { printf '[test-services] %s\n' "$*" >&2; }

postgres_bin() { ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -1; }
versions() { printf '%s|%s|%s' "$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)" "$(postgres_bin)" "$(command -v chromium || true)"; }

if [ "${1:-}" != "--force" ] && [ -n "$(postgres_bin)" ] && command -v chromium >/dev/null && [ "$(cat "$stamp" 2>/dev/null)" = "$(versions)" ]; then
  exit 0
fi

missing=()
[ -n "$(postgres_bin)" ] || missing+=(postgresql)
command -v chromium >/dev/null || missing+=(chromium)
[ "${1:-}" != "--force" ] || missing=(postgresql chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { log "needs root to install ${missing[*]} (apt-get)"; exit 1; }
  started=$SECONDS
  mkdir -p "$cache/partial"
  export DEBIAN_FRONTEND=noninteractive
  apt_opts=(-o "Dir::Cache::archives=$cache" -o DPkg::Lock::Timeout=600 -y -q --no-install-recommends)
  log "installing ${missing[*]} (Debian packages)"
  # the package lists: refreshed when missing or older than a day
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
    apt-get -o DPkg::Lock::Timeout=600 -q update >/dev/null
  fi
  apt-get "${apt_opts[@]}" install "${missing[@]}" >/dev/null
  log "installed in $((SECONDS - started))s"
fi
[ -n "$(postgres_bin)" ] || { log "postgresql did not install"; exit 1; }
command -v chromium >/dev/null || { log "chromium did not install"; exit 1; }
mkdir -p "$stamp_dir"
versions > "$stamp"
