#!/usr/bin/env bash
# The deployment checks that need real infrastructure (the second test command, `npm run test:deploy`; CI runs
# it after `npm test`, see .ci/run and docs/deploy.md "Checks with real infrastructure"):
#   1. images: scripts/build-images.sh builds the four images with buildah from a base made with mmdebstrap;
#      test/containers/ runs them with podman on the host network against a real nats-server;
#   2. cluster: scripts/install-cluster-tools.sh builds kube-apiserver, controller-manager, scheduler, kubectl,
#      kwok and KEDA (cached in .dspex/cluster by version); test/cluster/ applies the dev and prod overlays to
#      that control plane on loopback and lets the real KEDA operator scale the general pool.
# Everything heavy is cached: a warm run builds nothing (buildah's layer cache, stamps in .dspex/).
# Timings of each phase are printed at the end and written to .dspex/test-deploy-times.txt.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
section() { printf '\n== %s\n' "$*"; }
times=()
phase() {  # name command...
  local name=$1 t=$SECONDS
  shift
  "$@"
  times+=("$name: $((SECONDS - t)) s")
}
started=$SECONDS

bash scripts/setup.sh
phase "deploy tools" bash scripts/install-deploy-tools.sh

section "Container tools, base image and the four images (scripts/build-images.sh)"
phase "images (build)" bash scripts/build-images.sh

section "Kubernetes control plane, kwok and KEDA (scripts/install-cluster-tools.sh)"
phase "cluster tools (build)" bash scripts/install-cluster-tools.sh

section "node --test: images under podman, the deployment on a real API server, KEDA scaling"
export CONTAINERS_CONF="$root/.dspex/containers/containers.conf"
# one file at a time: both start many processes, and on 2 cores running them together only slows both
phase "tests" node --conditions=development --import tsx --test --test-concurrency=1 --test-reporter=spec \
  test/containers/images.test.ts test/cluster/cluster.test.ts

times+=("total: $((SECONDS - started)) s")
printf '%s\n' "${times[@]}" | tee "$root/.dspex/test-deploy-times.txt"
