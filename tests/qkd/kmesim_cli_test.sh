#!/usr/bin/env bash
# End to end through the programs: `qsapi kme-sim` in the background, `qsapi qkd` as the two SAEs,
# and curl (another TLS stack: the system's OpenSSL 3.0) as an independent ETSI 014 client using
# the files kme-sim wrote. Then SIGTERM must stop the simulator cleanly.
#   kmesim_cli_test.sh QSAPI_BINARY
set -euo pipefail
qsapi=$1
dir=$(mktemp -d)
out="$dir/kme-sim.out"
sim_pid=""
cleanup() {
  if [[ -n "$sim_pid" ]] && kill -0 "$sim_pid" 2>/dev/null; then kill -TERM "$sim_pid"; wait "$sim_pid" || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "--- kme-sim output:" >&2; cat "$out" >&2 || true; exit 1; }

"$qsapi" kme-sim --dir "$dir/pki" --rate 0 --max-key-count 20 >"$out" 2>&1 &
sim_pid=$!
for _ in $(seq 1 100); do grep -q '^Try:' "$out" 2>/dev/null && break; sleep 0.05; done
grep -q '^Try:' "$out" || fail "kme-sim did not start"
url_a=$(sed -n 's/^  KME A: \(https:[^ ]*\) .*/\1/p' "$out")
url_b=$(sed -n 's/^  KME B: \(https:[^ ]*\) .*/\1/p' "$out")
[[ -n "$url_a" && -n "$url_b" ]] || fail "no URLs printed"
p="$dir/pki"
[[ $(stat -c %a "$p/sae-a-key.pem") == 600 ]] || fail "sae-a-key.pem is not mode 600"

a=(--ca "$p/ca.pem" --cert "$p/sae-a.pem" --key "$p/sae-a-key.pem" --kme-id KME-A)
b=(--ca "$p/ca.pem" --cert "$p/sae-b.pem" --key "$p/sae-b-key.pem" --kme-id KME-B)

status=$("$qsapi" qkd status --kme-url "$url_a" "${a[@]}" --slave SAE-B) || fail "qkd status"
grep -q '^stored_key_count: 20$' <<<"$status" || fail "status: $status"
grep -q 'group X25519MLKEM768 (hybrid post-quantum)' <<<"$status" || fail "status link: $status"

keys=$("$qsapi" qkd get-key --kme-url "$url_a" "${a[@]}" --slave SAE-B --number 2 --size 256) || fail "get-key"
[[ $(wc -l <<<"$keys") == 2 ]] || fail "get-key printed: $keys"
grep -qE '^[0-9a-f-]{36} 256 bits$' <<<"$keys" || fail "get-key format: $keys"
id1=$(sed -n 1p <<<"$keys" | cut -d' ' -f1)
id2=$(sed -n 2p <<<"$keys" | cut -d' ' -f1)

got=$("$qsapi" qkd get-key-with-id --kme-url "$url_b" "${b[@]}" --master SAE-A --key-id "$id1" --key-id "$id2" --size 256) \
  || fail "get-key-with-id"
[[ "$got" == "$keys" ]] || fail "slave got [$got], master [$keys]"
# Exactly once.
if "$qsapi" qkd get-key-with-id --kme-url "$url_b" "${b[@]}" --master SAE-A --key-id "$id1" 2>"$dir/err"; then
  fail "a key was delivered twice"
fi
grep -q 'not found on KME' "$dir/err" || fail "second fetch error: $(cat "$dir/err")"
# The wrong SAE: 401.
if "$qsapi" qkd status --kme-url "$url_a" --ca "$p/ca.pem" --cert "$p/sae-b.pem" --key "$p/sae-b-key.pem" \
  --slave SAE-B 2>"$dir/err"; then fail "SAE-B was served by KME A"; fi
grep -q 'PERMISSION_DENIED.*HTTP 401' "$dir/err" || fail "401 error: $(cat "$dir/err")"

# curl (system OpenSSL 3.0, classical TLS) with the same files, if present.
if command -v curl >/dev/null; then
  body=$(curl -sS --fail --cacert "$p/ca.pem" --cert "$p/sae-a.pem" --key "$p/sae-a-key.pem" \
    -H 'Content-Type: application/json' -d '{"number":1,"size":128}' "$url_a/api/v1/keys/SAE-B/enc_keys") \
    || fail "curl enc_keys"
  id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["keys"][0]["key_ID"])' "$body") || fail "curl body: $body"
  curl -sS --fail --cacert "$p/ca.pem" --cert "$p/sae-b.pem" --key "$p/sae-b-key.pem" \
    "$url_b/api/v1/keys/SAE-A/dec_keys?key_ID=$id" | grep -q "\"key_ID\":\"$id\"" || fail "curl dec_keys"
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$p/ca.pem" --cert "$p/sae-b.pem" --key "$p/sae-b-key.pem" \
    "$url_a/api/v1/keys/SAE-B/status")
  [[ "$code" == 401 ]] || fail "curl as SAE-B at KME A got $code"
fi

kill -TERM "$sim_pid"
wait "$sim_pid" || fail "kme-sim exited with $? after SIGTERM"
sim_pid=""
grep -q 'SIGTERM received' "$out" || fail "no stop message"
echo "kme-sim end to end: ok"
