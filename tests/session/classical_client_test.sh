#!/usr/bin/env bash
# A classical-only TLS client must not get a peer link: `openssl s_client -groups X25519` (OpenSSL
# 3.5, with a valid ML-DSA-65 client certificate from the deployment CA) fails to connect to a
# listening peer endpoint, and the endpoint says why. Positive control: the same client offering
# X25519MLKEM768 connects, so the test can tell the difference.
#   classical_client_test.sh <qsapi_peer_listen> <openssl>
set -u
listen_bin=$1
openssl_bin=$2
dir=$(mktemp -d)
trap 'kill "$server" 2>/dev/null; rm -rf "$dir"' EXIT
"$listen_bin" "$dir" 2 >"$dir/server.log" 2>&1 &
server=$!
for _ in $(seq 1 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
[ -s "$dir/port" ] || { echo "the listener did not start"; cat "$dir/server.log"; exit 1; }
port=$(cat "$dir/port")
client() {
  OPENSSL_CONF=/dev/null timeout 20 "$openssl_bin" s_client -connect "127.0.0.1:$port" -tls1_3 -groups "$1" \
    -cert "$dir/node-a.pem" -key "$dir/node-a-key.pem" -CAfile "$dir/ca.pem" -verify_return_error -brief \
    </dev/null >"$dir/client-$1.log" 2>&1
}
if client X25519; then
  echo "FAIL: openssl s_client -groups X25519 connected"; cat "$dir/client-X25519.log"; exit 1
fi
client X25519MLKEM768 || { echo "FAIL: the hybrid control could not connect"; cat "$dir/client-X25519MLKEM768.log"; exit 1; }
wait "$server"
cat "$dir/server.log"
grep -q "refused: PERMISSION_DENIED: .*no hybrid post-quantum key-exchange group" "$dir/server.log" || { echo "FAIL: no clear refusal"; exit 1; }
grep -q "accepted: X25519MLKEM768 node-a" "$dir/server.log" || { echo "FAIL: the control was not accepted"; exit 1; }
grep -qi "handshake failure\|alert" "$dir/client-X25519.log" || { echo "FAIL: s_client did not report a handshake failure"; cat "$dir/client-X25519.log"; exit 1; }
echo "classical-only client refused: ok"
