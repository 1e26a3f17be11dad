#!/usr/bin/env bash
# Builds the DSPex images here, with no container registry:
#   1. installs the container tools from Debian when missing (podman, buildah, runc, mmdebstrap, ...);
#   2. makes the base image localhost/dspex-base:bookworm with mmdebstrap from the Debian mirror apt already
#      uses (minbase + ca-certificates), imported with podman; rebuilt only when its recipe changes;
#   3. builds each image with buildah from the repository root (layer cache kept in podman's storage):
#        dspex-router       services/Dockerfile  --build-arg SERVICE=router
#        dspex-pipeline     services/Dockerfile  --build-arg SERVICE=pipeline
#        dspex-worker       workers/Dockerfile   --target worker
#        dspex-worker-gpu   workers/Dockerfile   --target worker-gpu
#      tagged localhost/<name>:latest (the manifests' names; a registry prefix is added by skaffold/--default-repo);
#   4. writes .dspex/images/report.json: per image its id, size and build seconds, plus the base image's.
# Usage: bash scripts/build-images.sh [--tools-only] [--base-only] [image ...]   (default: all four)
# Environment: CONTAINERS_CONF is set to .dspex/containers/containers.conf (the machine lacks
# CAP_SYS_RESOURCE, and crun cannot run in its hybrid cgroup setup: see that file). Source it for podman
# commands of your own:  export CONTAINERS_CONF=$PWD/.dspex/containers/containers.conf
set -euo pipefail

DEBIAN_SUITE=bookworm
BASE_IMAGE=localhost/dspex-base:$DEBIAN_SUITE
# Packages of the base beyond Debian's minbase. Everything else an image needs is installed in its own
# Dockerfile, from the same mirror.
BASE_INCLUDE=ca-certificates
# Container tools, from Debian.
CONTAINER_TOOLS="podman buildah runc crun fuse-overlayfs slirp4netns uidmap containernetworking-plugins iptables mmdebstrap"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
state="$root/.dspex/images"
log() { printf '[images] %s\n' "$*" >&2; }

tools_only=false base_only=false images=()
for arg in "$@"; do
  case "$arg" in
    --tools-only) tools_only=true ;;
    --base-only) base_only=true ;;
    router|pipeline|worker|worker-gpu) images+=("$arg") ;;
    *) log "unknown argument: $arg (images: router pipeline worker worker-gpu)"; exit 2 ;;
  esac
done
[ ${#images[@]} -gt 0 ] || images=(router pipeline worker worker-gpu)

# --- 1. tools ---------------------------------------------------------------------------------------------------
missing=()
for tool in podman buildah runc mmdebstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  t=$SECONDS
  log "installing container tools from Debian (missing: ${missing[*]})"
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $CONTAINER_TOOLS >/dev/null
  log "container tools installed in $((SECONDS - t))s"
fi

mkdir -p "$root/.dspex/containers" "$state"
conf="$root/.dspex/containers/containers.conf"
cat > "$conf.tmp" <<'EOF'
# Written by scripts/build-images.sh. On this kind of machine a plain `podman run` fails twice:
# crun cannot set RLIMIT_NOFILE above the hard limit without CAP_SYS_RESOURCE, and crun refuses the hybrid
# cgroup layout. Explicit ulimits and runc fix both.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
EOF
mv "$conf.tmp" "$conf"
export CONTAINERS_CONF="$conf"
$tools_only && exit 0

# --- 2. base image -----------------------------------------------------------------------------------------------
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\/\?\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
[ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(http[^ ]*\) bookworm main.*/\1/p' /etc/apt/sources.list 2>/dev/null | head -1)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
base_recipe=$(printf '%s\n' "$DEBIAN_SUITE" "$BASE_INCLUDE" "$mirror" "$(sed -n '/^# --- 2. base/,/^# --- 3./p' "${BASH_SOURCE[0]}")" | sha256sum | cut -c1-16)
have_recipe=$(podman image inspect --format '{{ index .Labels "io.dspex.base.recipe" }}' "$BASE_IMAGE" 2>/dev/null || true)
base_seconds=0
if [ "$have_recipe" != "$base_recipe" ]; then
  t=$SECONDS
  log "making $BASE_IMAGE with mmdebstrap ($DEBIAN_SUITE minbase + $BASE_INCLUDE from $mirror)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # Documentation, man pages and locales are left out; apt lists are removed. SOURCE_DATE_EPOCH makes the
  # tarball's timestamps fixed (the content still follows the mirror's current bookworm point release:
  # the package versions are recorded in the image label io.dspex.base.packages-sha256 and in
  # .dspex/images/base-packages.txt).
  SOURCE_DATE_EPOCH=1700000000 mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
    --include="$BASE_INCLUDE" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='chroot "$1" dpkg-query -W -f "\${Package}=\${Version}\n" > "$1/tmp/packages.txt"' \
    --customize-hook='copy-out /tmp/packages.txt '"$work" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/* "$1"/tmp/*' \
    "$DEBIAN_SUITE" "$work/rootfs.tar" "$mirror"
  packages_sha=$(sha256sum < "$work/packages.txt" | cut -c1-16)
  podman import --quiet \
    --change 'CMD ["/bin/bash"]' \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "LABEL io.dspex.base.recipe=$base_recipe" \
    --change "LABEL io.dspex.base.suite=$DEBIAN_SUITE" \
    --change "LABEL io.dspex.base.packages-sha256=$packages_sha" \
    "$work/rootfs.tar" "$BASE_IMAGE" >/dev/null
  cp "$work/packages.txt" "$state/base-packages.txt"
  rm -rf "$work"
  trap - EXIT
  base_seconds=$((SECONDS - t))
  log "$BASE_IMAGE made in ${base_seconds}s ($(wc -l < "$state/base-packages.txt") packages)"
fi
$base_only && exit 0

# --- 3. images -------------------------------------------------------------------------------------------------
# Behind a TLS-intercepting proxy (as on these machines) the build steps must trust the host's CA bundle:
# mounted read-only for RUN steps and named by build args the build stages declare; nothing is copied
# into an image.
ca_args=()
host_ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
if [ -f "$host_ca" ]; then
  ca_args=(-v "$(readlink -f "$host_ca"):/run/dspex-build-ca.crt:ro"
           --build-arg PIP_CERT=/run/dspex-build-ca.crt
           --build-arg SSL_CERT_FILE=/run/dspex-build-ca.crt
           --build-arg NODE_EXTRA_CA_CERTS=/run/dspex-build-ca.crt)
fi

build() {  # name dockerfile [buildah args...]
  local name=$1 dockerfile=$2
  shift 2
  local t=$SECONDS
  log "building localhost/dspex-$name from $dockerfile"
  # --format docker keeps HEALTHCHECK (OCI image configs have no field for it); --layers caches each step;
  # --isolation chroot: RUN steps share the host's network (the Debian mirror and the registries).
  buildah bud --quiet --format docker --layers --isolation chroot \
    --ignorefile "$dockerfile.dockerignore" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" "${ca_args[@]}" \
    -f "$dockerfile" -t "localhost/dspex-$name:latest" "$@" . >/dev/null
  local seconds=$((SECONDS - t))
  local size id
  size=$(podman image inspect --format '{{.Size}}' "localhost/dspex-$name:latest")
  id=$(podman image inspect --format '{{.Id}}' "localhost/dspex-$name:latest")
  printf '{"image":"dspex-%s","id":"%s","sizeBytes":%s,"buildSeconds":%s}\n' "$name" "$id" "$size" "$seconds" >> "$state/report.jsonl.tmp"
  log "dspex-$name: $((size / 1000000)) MB in ${seconds}s"
}

rm -f "$state/report.jsonl.tmp"
started=$SECONDS
for image in "${images[@]}"; do
  case "$image" in
    router|pipeline) build "$image" services/Dockerfile --build-arg "SERVICE=$image" ;;
    worker) build worker workers/Dockerfile --target worker ;;
    worker-gpu) build worker-gpu workers/Dockerfile --target worker-gpu ;;
  esac
done
base_size=$(podman image inspect --format '{{.Size}}' "$BASE_IMAGE")
{
  printf '{"base":{"image":"%s","sizeBytes":%s,"buildSeconds":%s},"totalSeconds":%s,"images":[' \
    "$BASE_IMAGE" "$base_size" "$base_seconds" "$((SECONDS - started))"
  paste -sd, "$state/report.jsonl.tmp"
  printf ']}\n'
} > "$state/report.json"
rm -f "$state/report.jsonl.tmp"
log "built ${images[*]} in $((SECONDS - started))s (report: .dspex/images/report.json)"
