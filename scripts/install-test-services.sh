#!/usr/bin/env bash
# Installs the servers and the browser the registry's tests use, from Debian's packages, and does nothing when
# they are already there (the stamp is this file's hash plus the installed versions):
#   postgresql   the real PostgreSQL server the registry suite runs against (beside the embedded PGlite);
#                the tests start their own server on a free port in a temporary directory, as user postgres
#   chromium     headless, driven by playwright-core (executablePath) for the web console's tests
#   pgvector     the vector extension the retrieval suite's PostgreSQL store needs (docs/retrieval.md): bookworm
#                has no binary package, so Debian's source tarball (pinned by sha256, as trixie's .dsc lists it)
#                is built against postgresql-server-dev-<major> and installed; stamped by version in .dspex
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

PGVECTOR_VERSION=0.8.0
PGVECTOR_SHA256=867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0
PGVECTOR_URL="http://deb.debian.org/debian/pool/main/p/pgvector/pgvector_${PGVECTOR_VERSION}.orig.tar.gz"
pg_major() { basename "$(dirname "$(dirname "$(postgres_bin)")")"; }
pgvector_installed() { [ -n "$(postgres_bin)" ] && [ -f "/usr/share/postgresql/$(pg_major)/extension/vector--${PGVECTOR_VERSION}.sql" ]; }

# pgvector: built from Debian's source pool against the installed server (its own stamp: version + server)
install_pgvector() {
  local pg_stamp="$stamp_dir/pgvector" want
  want="${PGVECTOR_VERSION}|$(postgres_bin)"
  if pgvector_installed && [ "$(cat "$pg_stamp" 2>/dev/null)" = "$want" ] && [ "${1:-}" != "--force" ]; then return 0; fi
  [ "$(id -u)" = 0 ] || { log "needs root to install pgvector (apt-get, make install)"; exit 1; }
  local started=$SECONDS major src tarball
  major="$(pg_major)"
  if ! dpkg -s "postgresql-server-dev-$major" >/dev/null 2>&1; then
    mkdir -p "$cache/partial"
    DEBIAN_FRONTEND=noninteractive apt-get -o "Dir::Cache::archives=$cache" -o DPkg::Lock::Timeout=600 -y -q \
      --no-install-recommends install "postgresql-server-dev-$major" make gcc >/dev/null
  fi
  src="$root/.dspex/pgvector"
  tarball="$src/pgvector_${PGVECTOR_VERSION}.orig.tar.gz"
  mkdir -p "$src"
  if [ ! -f "$tarball" ]; then
    curl -sSfL -o "$tarball.part" "$PGVECTOR_URL"
    mv "$tarball.part" "$tarball"
  fi
  echo "$PGVECTOR_SHA256  $tarball" | sha256sum -c --quiet - || { rm -f "$tarball"; log "pgvector tarball: sha256 mismatch"; exit 1; }
  rm -rf "$src/build" && mkdir -p "$src/build"
  tar -xzf "$tarball" -C "$src/build" --strip-components=1
  # OPTFLAGS="": no -march=native, so the build runs on any machine of the architecture
  make -s -C "$src/build" OPTFLAGS="" PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" >/dev/null
  make -s -C "$src/build" PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" install >/dev/null
  mkdir -p "$stamp_dir"
  echo "$want" > "$pg_stamp"
  log "pgvector $PGVECTOR_VERSION built and installed for PostgreSQL $major in $((SECONDS - started))s"
}

if [ "${1:-}" != "--force" ] && [ -n "$(postgres_bin)" ] && command -v chromium >/dev/null && [ "$(cat "$stamp" 2>/dev/null)" = "$(versions)" ]; then
  install_pgvector
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
install_pgvector "${1:-}"
