#!/usr/bin/env bash
# qsapid end to end through the programs: first start on an empty data directory, `qsapi call`
# over TLS 1.3 with a hybrid group, `qsapi ca issue` + a client certificate, OpenSSL 3.5's
# s_client (an independent TLS client) refused with a classical group and accepted with
# X25519MLKEM768 and an ML-DSA-65 chain, TLS resumption (s_client -sess_out / -sess_in),
# --check-config, SIGTERM draining to exit 0, and a restart
# that keeps the key and does not show a new admin token.
#   qsapid_end_to_end.sh QSAPID QSAPI OPENSSL
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/qsapid_url.sh"
qsapid=$1 qsapi=$2 openssl=$3
dir=$(mktemp -d)
data="$dir/data"
out="$dir/qsapid.out"
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "--- qsapid output:" >&2; cat "$out" >&2 || true; exit 1; }

start() {
  : >"$out"
  "$qsapid" --data-dir "$data" --listen 127.0.0.1:0 >"$out" 2>&1 &
  pid=$!
  url=$(qsapid_url "$out" "$pid") || fail "qsapid did not start"
  port=${url##*:}
}
stop() {
  kill -TERM "$pid"
  local rc=0
  wait "$pid" || rc=$?
  pid=""
  [[ $rc == 0 ]] || fail "qsapid exited $rc after SIGTERM"
  grep -q 'SIGTERM received; draining' "$out" || fail "no drain message"
  grep -q '^qsapid: stopped$' "$out" || fail "no stop message"
}

start
grep -q "admin API token was written once to $data/admin-token" "$out" || fail "no admin token line"
[[ $(stat -c %a "$data/admin-token") == 600 ]] || fail "admin-token is not mode 600"
grep -q 'groups X25519MLKEM768:SecP384r1MLKEM1024, profile default' "$out" || fail "TLS line"
r=(--server "$url" --data-dir "$data")

health=$("$qsapi" call GET /v1/health "${r[@]}" --status 2>"$dir/err") || fail "health: $(cat "$dir/err")"
grep -q '"status":"ok"' <<<"$health" || fail "health: $health"
grep -q 'HTTP 200 (TLS group X25519MLKEM768)' "$dir/err" || fail "status line: $(cat "$dir/err")"
"$qsapi" call POST /v1/keys --data '{"name":"e2e","type":"AES-256-GCM"}' "${r[@]}" >/dev/null || fail "create key"
ct=$("$qsapi" call POST /v1/encrypt/e2e --data '{"plaintext":"c2VjcmV0"}' "${r[@]}" | sed -n 's/.*"ciphertext":"\([^"]*\)".*/\1/p')
[[ $ct == qsapi:v1:* ]] || fail "ciphertext: $ct"
if "$qsapi" call GET /v1/keys "${r[@]}" --token-file /dev/null 2>"$dir/err"; then fail "an empty token was accepted"; fi
grep -q 'the API token is empty' "$dir/err" || fail "empty token message: $(cat "$dir/err")"
echo "qsapi_00000000_forged" >"$dir/forged"
if "$qsapi" call GET /v1/keys "${r[@]}" --token-file "$dir/forged" 2>"$dir/err" >/dev/null; then fail "a forged token was accepted"; fi
grep -q 'HTTP 401' "$dir/err" || fail "401 expected: $(cat "$dir/err")"

# A client certificate from the deployment CA (no policy configured for it: authenticated, then 403).
"$qsapi" ca issue tester --client --out "$dir/tester" --data-dir "$data" >/dev/null || fail "ca issue"
[[ $(stat -c %a "$dir/tester.key") == 600 ]] || fail "tester.key mode"
if "$qsapi" call GET /v1/keys "${r[@]}" --cert "$dir/tester.pem" --key "$dir/tester.key" 2>"$dir/err" >"$dir/body"; then
  fail "a certificate without a policy was allowed"
fi
grep -q 'no policy is configured for client certificate CN \\"tester\\"' "$dir/body" || fail "cert denial: $(cat "$dir/body")"

# An independent TLS client: classical groups refused, the hybrid group accepted with a verified chain.
if echo | "$openssl" s_client -connect "127.0.0.1:$port" -groups X25519 -CAfile "$data/ca/ca.pem" >"$dir/s1" 2>&1; then
  fail "s_client -groups X25519 exited 0: $(cat "$dir/s1")"
fi
grep -q 'alert handshake failure' "$dir/s1" || fail "no handshake failure alert: $(cat "$dir/s1")"
grep -q 'Cipher is (NONE)' "$dir/s1" || fail "a cipher was negotiated with a classical group: $(cat "$dir/s1")"
echo | "$openssl" s_client -connect "127.0.0.1:$port" -groups X25519MLKEM768 -CAfile "$data/ca/ca.pem" \
  -verify_return_error >"$dir/s2" 2>&1 || fail "s_client with X25519MLKEM768: $(tail -5 "$dir/s2")"
grep -q 'Verify return code: 0 (ok)' "$dir/s2" || fail "hybrid handshake did not verify: $(tail -5 "$dir/s2")"
grep -qi 'Negotiated TLS1.3 group: X25519MLKEM768' "$dir/s2" || fail "group: $(grep -i group "$dir/s2")"
grep -q 'Peer signature type: mldsa65\|Peer signature type: ML-DSA-65' "$dir/s2" \
  || fail "signature: $(grep -i 'signature' "$dir/s2")"

# TLS resumption with s_client's session file, with a client certificate (which makes qsapid ask
# for one, the case that once answered every resumption with internal_error): the resumed
# connection runs a fresh hybrid key exchange and keeps the certificate's identity.
req() { printf 'GET %s HTTP/1.1\r\nHost: qsapid\r\nConnection: close\r\n\r\n' "$1"; }
sc=("$openssl" s_client -connect "127.0.0.1:$port" -groups X25519MLKEM768 -CAfile "$data/ca/ca.pem"
  -cert "$dir/tester.pem" -key "$dir/tester.key" -ign_eof)
req /v1/livez | "${sc[@]}" -sess_out "$dir/sess" >"$dir/s3" 2>&1 || fail "s_client -sess_out: $(tail -5 "$dir/s3")"
grep -q '^New, TLSv1.3' "$dir/s3" || fail "first connection: $(grep -E '^(New|Reused)' "$dir/s3")"
[[ -s "$dir/sess" ]] || fail "no session ticket was received"
req /v1/livez | "${sc[@]}" -sess_in "$dir/sess" >"$dir/s4" 2>&1 || fail "s_client -sess_in: $(tail -5 "$dir/s4")"
grep -q '^Reused, TLSv1.3' "$dir/s4" || fail "the session was not resumed: $(grep -E '^(New|Reused)|alert' "$dir/s4")"
grep -q 'HTTP/1.1 200' "$dir/s4" || fail "resumed request: $(tail -5 "$dir/s4")"
grep -qi 'Negotiated TLS1.3 group: X25519MLKEM768' "$dir/s4" || fail "resumed without the hybrid group: $(grep -i group "$dir/s4")"
req /v1/keys | "${sc[@]}" -sess_in "$dir/sess" >"$dir/s5" 2>&1 || true
grep -q '^Reused, TLSv1.3' "$dir/s5" || fail "second resumption: $(grep -E '^(New|Reused)|alert' "$dir/s5")"
grep -q 'no policy is configured for client certificate CN \\"tester\\"' "$dir/s5" \
  || fail "the resumed connection lost its identity: $(tail -3 "$dir/s5")"

# --check-config: a good file passes, a mistake is named with its line.
printf 'data_dir = "%s"\n[server]\nlisten = "127.0.0.1:9443"\n' "$data" >"$dir/good.toml"
"$qsapid" --check-config "$dir/good.toml" | grep -q 'is valid' || fail "good config"
printf 'data_dir = "%s"\n[server]\nthreads = "two"\n' "$data" >"$dir/bad.toml"
if "$qsapid" --check-config "$dir/bad.toml" 2>"$dir/err"; then fail "bad config accepted"; fi
grep -q 'bad.toml:3: server.threads: expected an integer' "$dir/err" || fail "bad config message: $(cat "$dir/err")"

# qsapi doctor: healthy here; a stuck QRNG under qrng = require is a FAIL with a fix, and exit 1.
"$qsapi" doctor --data-dir "$data" --server "$url" >"$dir/doc" || fail "doctor: $(cat "$dir/doc")"
for c in openssl hsm ca server-cert service; do grep -q "^ok    $c " "$dir/doc" || fail "doctor $c: $(cat "$dir/doc")"; done
grep -q '^warn  admin-token' "$dir/doc" || fail "doctor did not warn about the admin token file"
printf 'data_dir = "%s"
[entropy]
qrng = "require"
[[entropy.device]]
path = "/dev/zero"
' "$data" >"$dir/stuck.toml"
if "$qsapi" doctor --config "$dir/stuck.toml" --server "$url" >"$dir/doc" 2>&1; then fail "doctor passed a stuck QRNG"; fi
grep -q '^FAIL  entropy' "$dir/doc" || fail "doctor entropy: $(cat "$dir/doc")"

stop
rm "$data/admin-token"
start
grep -q 'admin API token' "$out" && fail "a second admin token was shown"
# The admin token file is gone (as the operator is told); use a token made with the CLI instead.
tok=$("$qsapi" token --data-dir "$data" create e2e-ops --keys "*" --operations decrypt | grep -o 'qsapi_[A-Za-z0-9_-]*' | head -1)
[[ -n "$tok" ]] || fail "token create"
for _ in $(seq 1 30); do
  pt=$(QSAPI_TOKEN=$tok "$qsapi" call POST /v1/decrypt/e2e --data "{\"ciphertext\":\"$ct\"}" --server "$url" \
    --data-dir "$data" 2>/dev/null) && break
  sleep 0.2
done
grep -q '"plaintext":"c2VjcmV0"' <<<"$pt" || fail "decrypt after restart: $pt"
stop

# A partial last line in the audit log (a crash while writing) stops qsapid with the repair named;
# `qsapi audit repair` moves it aside, records the repair, and qsapid starts again.
"$qsapi" audit verify --data-dir "$data" >"$dir/av" || fail "audit verify: $(cat "$dir/av")"
printf '{"seq":999999,"ti' >>"$data/audit.log"
if "$qsapid" --data-dir "$data" --listen 127.0.0.1:0 >"$dir/torn" 2>&1; then fail "qsapid started on a torn audit log"; fi
grep -q 'qsapi audit repair' "$dir/torn" || fail "the torn-log error does not name the repair: $(cat "$dir/torn")"
"$qsapi" audit repair --data-dir "$data" >"$dir/ar" || fail "audit repair: $(cat "$dir/ar")"
grep -q 'removed a partial last line of 17 bytes' "$dir/ar" || fail "audit repair: $(cat "$dir/ar")"
"$qsapi" audit verify --data-dir "$data" >"$dir/av" || fail "audit verify after repair: $(cat "$dir/av")"
tail -n 1 "$data/audit.log" | grep -q '"action":"audit.repair"' || fail "the repair is not audited"
start
stop
echo "qsapid end to end: ok"
