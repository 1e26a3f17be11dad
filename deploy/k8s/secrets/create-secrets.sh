#!/usr/bin/env bash
# Creates (or renews) the Secrets the DSPex deployment mounts (docs/deploy.md, "Secrets"; docs/security.md):
#   dspex-nats-creds-<role>  one per NATS role, key nats.creds (a process mounts only its own role's)
#   dspex-nats-auth          key auth.conf: operator, accounts and resolver, included by nats.conf
#   dspex-nats-tls           tls.crt, tls.key, ca.crt (cert-manager's names): the servers' certificate for the
#                            client port and the routes, and the CA every client trusts
#   dspex-api-tokens         key tokens.json: the router's HTTP API token hashes
#
# Usage: deploy/k8s/secrets/create-secrets.sh [--render DIR] [--namespace NS] [--state DIR]
#   --state DIR   where the operator keeps what must survive renewals, mode 0700 (default ~/.dspex/cluster-auth):
#                 seeds.json (the NATS operator's and accounts' private keys: issuing again keeps the accounts,
#                 under whose keys JetStream stores the streams), the dev CA's key, the first API token
#   --render DIR  write the Secret manifests there (mode 0600) instead of applying them with kubectl
#   --tls-dir DIR use tls.crt/tls.key/ca.crt from DIR (your PKI or cert-manager's) instead of the dev CA
#   --api-tokens FILE  the router's token file (a JSON array of `dspex api-token create` entries); default: one
#                 admin token is made on first run and its secret written to <state>/api-token (shown nowhere)
# Environment: KUBECTL (default kubectl), DSPEX_BUS_* (the partition counts workers' permissions list).
# Nothing secret is printed. Run it again to renew every user's credentials (restart the pods to pick them up).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
namespace=dspex
state="${HOME}/.dspex/cluster-auth"
render=""
tls_dir=""
api_tokens=""
while [ $# -gt 0 ]; do
  case "$1" in
    --render) render="$2"; shift 2 ;;
    --namespace) namespace="$2"; shift 2 ;;
    --state) state="$2"; shift 2 ;;
    --tls-dir) tls_dir="$2"; shift 2 ;;
    --api-tokens) api_tokens="$2"; shift 2 ;;
    *) echo "create-secrets: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
log() { printf '[create-secrets] %s\n' "$*" >&2; }
umask 077
mkdir -p "$state"
chmod 700 "$state"

# 1. NATS identities: the same issuer as the embedded fleet (dspex auth issue → issueAuth in @dspex/bus)
bash "$root/scripts/dspex" auth issue --out "$state/nats" >/dev/null
log "NATS credentials issued in $state/nats"

# 2. TLS: the given certificate, else a dev CA kept in the state directory and a server certificate for the
#    names clients and routes use (the Service, the headless Service's per-pod names, loopback for port-forward)
if [ -z "$tls_dir" ]; then
  tls_dir="$state/tls"
  mkdir -p "$tls_dir"
  if [ ! -s "$tls_dir/ca.crt" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -subj "/CN=dspex-nats-dev-ca" -keyout "$tls_dir/ca.key" -out "$tls_dir/ca.crt" 2>/dev/null
  fi
  sans="DNS:nats,DNS:nats.${namespace},DNS:nats.${namespace}.svc,DNS:nats.${namespace}.svc.cluster.local"
  sans="$sans,DNS:*.nats-headless,DNS:*.nats-headless.${namespace}.svc,DNS:*.nats-headless.${namespace}.svc.cluster.local"
  sans="$sans,DNS:localhost,IP:127.0.0.1"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=nats" \
    -keyout "$tls_dir/tls.key" -out "$tls_dir/tls.csr" 2>/dev/null
  # serverAuth for clients, clientAuth too: the routes between servers are mutual TLS with this certificate
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n' "$sans" > "$tls_dir/ext.cnf"
  openssl x509 -req -in "$tls_dir/tls.csr" -CA "$tls_dir/ca.crt" -CAkey "$tls_dir/ca.key" -CAcreateserial \
    -days 825 -extfile "$tls_dir/ext.cnf" -out "$tls_dir/tls.crt" 2>/dev/null
  rm -f "$tls_dir/tls.csr" "$tls_dir/ext.cnf"
  log "dev CA and server certificate in $tls_dir (replace with your own PKI or cert-manager for production)"
fi
for f in tls.crt tls.key ca.crt; do
  [ -s "$tls_dir/$f" ] || { echo "create-secrets: $tls_dir/$f is missing" >&2; exit 1; }
done

# 3. The router's API tokens: the given file, else one admin token made once (its secret stays in the state dir)
if [ -z "$api_tokens" ]; then
  api_tokens="$state/api-tokens.json"
  if [ ! -s "$api_tokens" ]; then
    made="$(bash "$root/scripts/dspex" api-token create --name admin \
      --scopes predict,programs:read,programs:write,programs:deploy,executions:read,admin --json)"
    printf '%s' "$made" | node -e 'const {token, entry} = JSON.parse(require("fs").readFileSync(0, "utf8"));
      require("fs").writeFileSync(process.argv[1], token + "\n", { mode: 0o600 });
      require("fs").writeFileSync(process.argv[2], JSON.stringify([entry]) + "\n", { mode: 0o600 });' \
      "$state/api-token" "$api_tokens"
    log "an admin API token was made: its secret is in $state/api-token (the cluster gets only its hash)"
  fi
fi

# 4. The Secret manifests (data base64-encoded here, so nothing needs a cluster to render them)
out="${render:-$(mktemp -d)}"
mkdir -p "$out"
chmod 700 "$out"
b64() { base64 -w0 < "$1"; }
secret() { # name type key=file...
  local name="$1" type="$2"; shift 2
  {
    printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n' "$name" "$namespace"
    printf '  labels:\n    app.kubernetes.io/part-of: dspex\n    app.kubernetes.io/managed-by: create-secrets\n'
    printf 'type: %s\ndata:\n' "$type"
    for kv in "$@"; do printf '  %s: %s\n' "${kv%%=*}" "$(b64 "${kv#*=}")"; done
  } > "$out/$name.yaml"
}
for creds in "$state"/nats/*.creds; do
  role="$(basename "$creds" .creds)"
  secret "dspex-nats-creds-$role" Opaque "nats.creds=$creds"
done
secret dspex-nats-auth Opaque "auth.conf=$state/nats/auth.conf"
secret dspex-nats-tls kubernetes.io/tls "tls.crt=$tls_dir/tls.crt" "tls.key=$tls_dir/tls.key" "ca.crt=$tls_dir/ca.crt"
secret dspex-api-tokens Opaque "tokens.json=$api_tokens"

if [ -n "$render" ]; then
  log "rendered $(ls "$out" | wc -l) Secret manifests into $out"
  exit 0
fi
"${KUBECTL:-kubectl}" get namespace "$namespace" >/dev/null 2>&1 || "${KUBECTL:-kubectl}" create namespace "$namespace" >/dev/null
for f in "$out"/*.yaml; do "${KUBECTL:-kubectl}" apply -f "$f" >/dev/null; done
log "applied $(ls "$out" | wc -l) Secrets in namespace $namespace"
rm -rf "$out"
