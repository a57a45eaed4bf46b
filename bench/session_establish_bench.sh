#!/usr/bin/env bash
# Peer-session establishments per second over loopback next to OpenSSL's own TLS handshakes, in the
# same run on the same machine: `openssl s_server` + `openssl s_time -new` with the same group
# (X25519MLKEM768), the same mutual ML-DSA-65 certificates and no resumption.
#   bench/session_establish_bench.sh [BUILD_DIR] [SECONDS]    (default build/release, 10 s)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}
seconds=${2:-10}
bench=$build/bench/qsapi_session_establish_bench
openssl_bin=$(sed -n 's/^OPENSSL_ROOT_DIR:PATH=//p' "$build/CMakeCache.txt")/bin/openssl
export OPENSSL_CONF=/dev/null
dir=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$bench" pki "$dir"
port=$((20000 + RANDOM % 20000))
"$openssl_bin" s_server -quiet -accept "$port" -tls1_3 -groups X25519MLKEM768 -ciphersuites TLS_AES_256_GCM_SHA384 -num_tickets 0 -no_cache \
  -cert "$dir/node-b.pem" -key "$dir/node-b-key.pem" -CAfile "$dir/ca.pem" -Verify 1 -naccept 1000000 \
  >/dev/null 2>&1 &
server=$!
sleep 1
stime=$("$openssl_bin" s_time -connect "127.0.0.1:$port" -new -tls1_3 -time "$seconds" \
  -cert "$dir/node-a.pem" -key "$dir/node-a-key.pem" -CAfile "$dir/ca.pem" 2>&1 | grep "real seconds" | head -1)
kill "$server" 2>/dev/null || true
openssl_rate=$(echo "$stime" | awk '{ printf "%.1f", $1 / $4 }')
link=$("$bench" link "$dir" "$seconds")
establish=$("$bench" establish "$dir" "$seconds")
link_rate=$(echo "$link" | awk '{ print $7 }')
establish_rate=$(echo "$establish" | awk '{ print $7 }')
echo "openssl s_server + s_time -new: $stime -> $openssl_rate handshakes/s"
echo "qsapi $link"
echo "qsapi $establish"
awk -v q="$establish_rate" -v l="$link_rate" -v o="$openssl_rate" \
  'BEGIN { printf "ratio establishment / openssl: %.2fx; link only / openssl: %.2fx\n", q / o, l / o }'
