#!/usr/bin/env bash
# Builds skaffold (the developer entry point of the Kubernetes deployment, docs/deploy.md) from its Go module
# into .dspex/tools/skaffold-<version>/skaffold, once per version; a warm run only checks the stamp.
# The deploy test runs `skaffold render --offline` with it (test/deploy/skaffold.test.ts).
# SKAFFOLD_VERSION: the newest version the Go module proxy serves here (v2.17.0 and v2.14.0 are refused
# with 403 "not available"); it reads skaffold.yaml's schema skaffold/v4beta13.
# Skaffold's go.mod has replace lines (docker, cli, mergo, shellescape), which apply only when it is the
# main module, so it is built in a copy of the module. Usage: bash scripts/install-skaffold.sh [--force]
set -euo pipefail
SKAFFOLD_VERSION=v2.16.1
SKAFFOLD_RECIPE=1
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.dspex/tools/skaffold-$SKAFFOLD_VERSION"
key="$SKAFFOLD_VERSION go=$(go env GOVERSION) recipe=$SKAFFOLD_RECIPE"
if [ "${1:-}" != "--force" ] && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$key" ] && [ -x "$dir/skaffold" ]; then
  exit 0
fi
log() { printf '[skaffold] %s\n' "$*" >&2; }
started=$SECONDS
export GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
log "building skaffold $SKAFFOLD_VERSION from the Go module (several minutes cold)"
src=$(go mod download -json "github.com/GoogleContainerTools/skaffold/v2@$SKAFFOLD_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] || { log "go mod download github.com/GoogleContainerTools/skaffold/v2@$SKAFFOLD_VERSION failed"; exit 1; }
cp -r "$src" "$work/skaffold" && chmod -R u+w "$work/skaffold"
(
  cd "$work/skaffold"
  go build -ldflags "-s -w -X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version=$SKAFFOLD_VERSION" \
    -o "$work/bin/skaffold" ./cmd/skaffold
)
"$work/bin/skaffold" version >/dev/null
rm -rf "$dir" && mkdir -p "$dir"
mv "$work/bin/skaffold" "$dir/skaffold"
echo "$key" > "$dir/.stamp"
log "skaffold $SKAFFOLD_VERSION built in $((SECONDS - started))s"
