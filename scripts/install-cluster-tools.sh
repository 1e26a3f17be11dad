#!/usr/bin/env bash
# Builds what the API-server/KEDA checks (test/cluster/) run, from the Go module proxy and Debian, and caches
# each piece under .dspex/cluster/<name>-<version>/ so that a warm run only checks stamps (well under a second):
#   k8s-<K8S_VERSION>/      kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (k8s.io/kubernetes, built in
#                           a small module that `require`s it with `replace` lines for its staging modules)
#   kwok-<KWOK_VERSION>/    kwok (sigs.k8s.io/kwok/cmd/kwok) and stages.yaml (its kustomize/stage/fast stages)
#   keda-<KEDA_VERSION>/    keda-operator, keda-adapter (github.com/kedacore/keda/v2 cmd/operator, cmd/adapter)
#                           and crds/ (config/crd/bases); KEDA_VERSION is the one the manifests target, read
#                           from scripts/install-deploy-tools.sh
#   etcd                    Debian's etcd-server (apt-get, when /usr/bin/etcd is missing)
# Go's own caches (GOMODCACHE, GOCACHE) are kept where they are (~5 GB after a cold run); the binaries here do
# not depend on them once built. A directory is valid only when its .stamp holds the key written after a
# successful build (version, Go version, recipe revision); anything else is rebuilt. Usage: bash scripts/install-cluster-tools.sh [--force]
set -euo pipefail

K8S_VERSION=v1.34.4
KWOK_VERSION=v0.8.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KEDA_VERSION=$(sed -n 's/^KEDA_VERSION=\([^ ]*\).*/\1/p' "$root/scripts/install-deploy-tools.sh")
[ -n "$KEDA_VERSION" ] || { echo "KEDA_VERSION not found in scripts/install-deploy-tools.sh" >&2; exit 1; }
cache="$root/.dspex/cluster"
log() { printf '[cluster-tools] %s\n' "$*" >&2; }
force=${1:-}

go_version=$(go env GOVERSION)
# The key of each piece: its version, the Go toolchain, and its recipe revision below (bump one to rebuild
# that piece after changing how it is built).
K8S_RECIPE=2   # 2: kubectl built too
KWOK_RECIPE=1
KEDA_RECIPE=1
key() { printf '%s go=%s recipe=%s\n' "$1" "$go_version" "$2"; }
fresh() { [ "$force" != "--force" ] && [ "$(cat "$1/.stamp" 2>/dev/null)" = "$(key "$2" "$3")" ]; }

export GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false"
started=$SECONDS
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

# the offline deploy tools (kustomize, gojq) are used below
bash "$root/scripts/install-deploy-tools.sh"
gojq="$root/.dspex/bin/gojq"
kustomize="$root/.dspex/bin/kustomize"

# --- etcd (Debian) ------------------------------------------------------------------------------------------
if ! command -v etcd >/dev/null; then
  log "apt-get install etcd-server"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
fi
systemctl disable --now etcd >/dev/null 2>&1 || true  # the package's own service is not used

# --- Kubernetes control plane ------------------------------------------------------------------------------
dir="$cache/k8s-$K8S_VERSION"
if ! fresh "$dir" "$K8S_VERSION" "$K8S_RECIPE"; then
  t=$SECONDS
  log "building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl $K8S_VERSION (Go modules; ~6 min cold on 2 cores)"
  k8s_dir=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | "$gojq" -r 'if .Error then error(.Error) else .Dir end')
  staging=${K8S_VERSION/v1./v0.}  # k8s.io/api etc. are tagged v0.<minor>.<patch>
  mkdir -p "$work/k8s"
  {
    echo "module dspex.local/k8sbuild"
    echo
    echo "go $(go env GOVERSION | sed 's/^go//')"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    # every `k8s.io/x => ./staging/src/k8s.io/x` of kubernetes' go.mod, pointed at the published module
    sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/src/k8s.io/.*#replace \1 => \1 '"$staging"'#p' "$k8s_dir/go.mod"
  } > "$work/k8s/go.mod"
  [ "$(grep -c '^replace' "$work/k8s/go.mod")" -gt 20 ] || { log "no staging replaces found in $k8s_dir/go.mod"; exit 1; }
  cat > "$work/k8s/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (
    cd "$work/k8s"
    go mod tidy -e >/dev/null 2>&1 || true
    GOFLAGS="$GOFLAGS -mod=mod" go build -tags tools -ldflags "$ldflags" -o "$work/k8s/bin/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
      k8s.io/kubernetes/cmd/kubectl
  )
  "$work/k8s/bin/kube-apiserver" --version | grep -q "$K8S_VERSION"
  rm -rf "$dir" && mkdir -p "$dir"
  mv "$work/k8s/bin/"* "$dir/"
  key "$K8S_VERSION" "$K8S_RECIPE" > "$dir/.stamp"
  log "Kubernetes $K8S_VERSION built in $((SECONDS - t))s"
fi

# --- kwok ------------------------------------------------------------------------------------------------------
dir="$cache/kwok-$KWOK_VERSION"
if ! fresh "$dir" "$KWOK_VERSION" "$KWOK_RECIPE"; then
  t=$SECONDS
  log "building kwok $KWOK_VERSION (Go modules)"
  mkdir -p "$work/kwok"
  GOBIN="$work/kwok" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  kwok_dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | "$gojq" -r 'if .Error then error(.Error) else .Dir end')
  # the module cache is read-only and kustomize wants to read only: render the "fast" stages (nodes Ready,
  # pods Running/Ready at once, deleted pods finished) into one file for `kwok --config`
  cp -r "$kwok_dir/kustomize/stage" "$work/kwok-stage" && chmod -R u+w "$work/kwok-stage"
  "$kustomize" build "$work/kwok-stage/fast" > "$work/kwok/stages.yaml"
  grep -q "kind: Stage" "$work/kwok/stages.yaml"
  rm -rf "$dir" && mkdir -p "$dir"
  mv "$work/kwok/kwok" "$work/kwok/stages.yaml" "$dir/"
  key "$KWOK_VERSION" "$KWOK_RECIPE" > "$dir/.stamp"
  log "kwok $KWOK_VERSION built in $((SECONDS - t))s"
fi

# --- KEDA operator and metrics adapter ------------------------------------------------------------------------
dir="$cache/keda-$KEDA_VERSION"
if ! fresh "$dir" "$KEDA_VERSION" "$KEDA_RECIPE"; then
  t=$SECONDS
  log "building the KEDA operator and metrics adapter $KEDA_VERSION (Go modules; several minutes cold)"
  keda_dir=$(go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" | "$gojq" -r 'if .Error then error(.Error) else .Dir end')
  # KEDA's go.mod has replace/exclude lines, which only apply when it is the main module: build in a copy
  cp -r "$keda_dir" "$work/keda" && chmod -R u+w "$work/keda"
  (
    cd "$work/keda"
    go build -ldflags "-s -w -X github.com/kedacore/keda/v2/version.Version=$KEDA_VERSION" -o "$work/keda/bin/keda-operator" ./cmd/operator
    go build -ldflags "-s -w -X github.com/kedacore/keda/v2/version.Version=$KEDA_VERSION" -o "$work/keda/bin/keda-adapter" ./cmd/adapter
  )
  rm -rf "$dir" && mkdir -p "$dir/crds"
  mv "$work/keda/bin/keda-operator" "$work/keda/bin/keda-adapter" "$dir/"
  cp "$work/keda/config/crd/bases/"*.yaml "$dir/crds/"
  key "$KEDA_VERSION" "$KEDA_RECIPE" > "$dir/.stamp"
  log "KEDA $KEDA_VERSION built in $((SECONDS - t))s"
fi

cat > "$cache/versions.env" <<EOF
K8S_VERSION=$K8S_VERSION
KWOK_VERSION=$KWOK_VERSION
KEDA_VERSION=$KEDA_VERSION
K8S_BIN=$cache/k8s-$K8S_VERSION
KWOK_BIN=$cache/kwok-$KWOK_VERSION
KEDA_BIN=$cache/keda-$KEDA_VERSION
EOF
log "ready in $((SECONDS - started))s: Kubernetes $K8S_VERSION, kwok $KWOK_VERSION, KEDA $KEDA_VERSION, $(etcd --version 2>/dev/null | head -1)"
