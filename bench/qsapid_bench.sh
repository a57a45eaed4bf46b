#!/usr/bin/env bash
# bench/qsapid_bench.sh: qsapid over real HTTPS on loopback, everything in one run so that the
# ratios hold on a shared, noisy machine (docs/BENCHMARKS.md, "qsapid"):
#   1. GET /v1/livez, keep-alive          the server's floor (TLS records + HTTP + router)
#   2. POST /v1/encrypt 1 KiB, keep-alive the real work: JSON + base64 + keystore AEAD + audit line
#   3. full TLS handshakes/s              a new connection (X25519MLKEM768, ML-DSA-65 chain) per request
#   4. openssl s_server + s_time -new     the same group and certificate type, OpenSSL alone
# Usage: bench/qsapid_bench.sh [--seconds N] [--threads N] [--no-build]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/qsapid_url.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/release_build.sh"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds=10 threads=2 build=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "qsapid_bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $build == 0 ]] || release_build qsapid qsapi_cli qsapid_load
bin=$root/build/release
openssl=$(sed -n 's/^OPENSSL_ROOT_DIR:PATH=//p' "$bin/CMakeCache.txt")/bin/openssl
work=$(mktemp -d)
qpid="" spid=""
cleanup() {
  [[ -n $qpid ]] && kill -TERM "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null || true
  [[ -n $spid ]] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/programs/qsapid" --data-dir "$work/data" --listen 127.0.0.1:0 >"$work/out" 2>&1 &
qpid=$!
url=$(qsapid_url "$work/out" "$qpid") || { cat "$work/out"; exit 1; }
ca=$work/data/ca/ca.pem
tok=$work/data/admin-token
"$bin/programs/qsapi" call POST /v1/keys --data '{"name":"bench","type":"AES-256-GCM"}' --server "$url" \
  --data-dir "$work/data" >/dev/null

load() { "$bin/bench/qsapid_load" --url "$url" --ca "$ca" --token-file "$tok" --seconds "$seconds" "$@"; }
livez=$(load --mode livez --threads "$threads")
encrypt=$(load --mode encrypt --threads "$threads" --payload-bytes 1024)
handshake=$(load --mode handshake --threads 1)

# OpenSSL alone: s_server with an ML-DSA-65 certificate from the same CA, X25519MLKEM768 only.
"$bin/programs/qsapi" ca issue localhost --server --ip 127.0.0.1 --out "$work/ossl" --data-dir "$work/data" >/dev/null
port=$(( 20000 + RANDOM % 20000 ))
"$openssl" s_server -quiet -accept "127.0.0.1:$port" -cert "$work/ossl.pem" -key "$work/ossl.key" \
  -groups X25519MLKEM768 -tls1_3 -naccept 1000000 >/dev/null 2>&1 &
spid=$!
sleep 0.5
t0=$(date +%s.%N)
stime=$("$openssl" s_time -connect "127.0.0.1:$port" -new -time "$seconds" -CAfile "$ca" 2>/dev/null)
t1=$(date +%s.%N)
ossl_conns=$(sed -n 's/^\([0-9]*\) connections in [0-9.]*s;.*/\1/p' <<<"$stime" | head -1)
ossl_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')  # wall time (s_time rounds it)
field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"; }
hs_rate=$(field "$handshake" requests_per_second)
ossl_rate=$(awk -v c="$ossl_conns" -v s="$ossl_secs" 'BEGIN { printf "%.1f", c / s }')
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); $(date -u +%Y-%m-%dT%H:%MZ)"
echo "$livez"
echo "$encrypt"
echo "$handshake"
echo "{\"mode\":\"openssl_s_time_new\",\"connections\":$ossl_conns,\"seconds\":$ossl_secs,\"connections_per_second\":$ossl_rate}"
awk -v e="$(field "$encrypt" requests_per_second)" -v l="$(field "$livez" requests_per_second)" \
    -v h="$hs_rate" -v o="$ossl_rate" 'BEGIN {
  printf "ratio encrypt_1KiB / livez requests/s: %.2f\n", e / l
  printf "ratio qsapid handshakes / openssl s_server handshakes: %.2f\n", h / o }'
