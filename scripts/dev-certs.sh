#!/usr/bin/env bash
# A self-signed CA and a server certificate for development and tests (never for production: use your PKI or
# cert-manager). Writes, in cert-manager's Secret layout, <dir>/ca.crt, <dir>/tls.crt, <dir>/tls.key (and the
# CA key, <dir>/ca.key, mode 0600). The certificate names every host given (DNS names or IP addresses) as a
# subject alternative name; default: localhost and 127.0.0.1.
#
#   bash scripts/dev-certs.sh <dir> [host...]
set -euo pipefail
dir="${1:?usage: dev-certs.sh <dir> [host...]}"
shift
hosts=("$@")
[ ${#hosts[@]} -gt 0 ] || hosts=(localhost 127.0.0.1)
mkdir -p "$dir"
chmod 700 "$dir"
umask 077
san=""
for h in "${hosts[@]}"; do
  if [[ "$h" =~ ^[0-9.]+$ ]]; then san+="IP:$h,"; else san+="DNS:$h,"; fi
done
san="${san%,}"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
  -subj "/CN=dspex development CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=${hosts[0]}" \
  -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 825 \
  -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$san") -out "$dir/tls.crt" 2>/dev/null
rm -f "$dir/tls.csr" "$dir/ca.srl"
chmod 644 "$dir/ca.crt" "$dir/tls.crt"
echo "$dir: ca.crt tls.crt tls.key (SAN $san)" >&2
