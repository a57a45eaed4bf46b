#!/usr/bin/env bash
# scripts/two_site_demo.sh: two qsapid nodes (site-a, site-b) and a simulated QKD link between
# them (`qsapi kme-sim`), establishing a QKD-layered peer session end to end and carrying
# envelopes both ways through the REST API (docs/OPERATIONS.md, "Two-site demo"). The test suite
# runs it (ctest -R two_site_demo).
#
#   scripts/two_site_demo.sh [--bin DIR] [--keep]     DIR holds qsapid and qsapi (default build/release/programs)
#
# What it does, step by step (each step prints what it shows):
#   1. starts the KME pair (KME-A for SAE-A = site-a, KME-B for SAE-B = site-b);
#   2. creates site-a's keystore and deployment CA, and from that CA issues site-b's peer
#      certificate (ML-DSA-65); site-b trusts site-a's CA for peer links;
#   3. starts site-b (peer link listening) and site-a, each with its KME and the other as a peer,
#      qkd = require;
#   4. site-a establishes a session to site-b: TLS 1.3 X25519MLKEM768 with ML-DSA-65 certificates
#      both ways, the TLS exporter, one QKD key reserved at KME-A and fetched by key_ID at KME-B,
#      both nodes' QRNG/OS contributions, key confirmation;
#   5. an application at site-a seals a payload; the envelope travels (here: a shell variable) to
#      site-b, which opens it; a replay is refused; site-b answers and site-a opens the answer;
#   6. site-a rotates the session with fresh QKD keys: it reserves a key at KME-A and proposes its
#      key_ID over the peer link, site-b fetches it at KME-B and enters the next epoch with it mixed
#      in, and both nodes report the epoch as a fresh-key epoch; envelopes of the new epoch open;
#      then site-a re-establishes the session in place (a new TLS handshake and ML-KEM exchange, a
#      new QKD key and randoms; the same session id), and envelopes of the next epoch open;
#   7. the KME link is corrupted (the simulator hands out different keys): a new establishment
#      fails with "the QKD keys differ" instead of producing a session, and so does a fresh-key
#      rotation of the existing session, which both nodes then close.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/qsapid_url.sh"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin=$root/build/release/programs keep=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "two_site_demo.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
qsapid=$bin/qsapid qsapi=$bin/qsapi
[[ -x $qsapid && -x $qsapi ]] || { echo "two_site_demo.sh: build first (./scripts/run.sh builds $bin)" >&2; exit 2; }
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ $keep == 1 ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
  echo "two-site demo: FAILED: $*" >&2
  for f in "$work"/*.out; do echo "--- $f" >&2; tail -20 "$f" >&2; done
  exit 1
}
step() { printf '\n== %s\n' "$*"; }
wait_for() { for _ in $(seq 1 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; fail "no '$2' in $1"; }

step "1. the simulated QKD link: KME-A (SAE-A) and KME-B (SAE-B)"
"$qsapi" kme-sim --dir "$work/kme" --rate 0 --max-key-count 100 >"$work/kme.out" 2>&1 &
pids+=($!)
wait_for "$work/kme.out" '^Try:'
kme_a=$(sed -n 's/^  KME A: \(https:[^ ]*\) .*/\1/p' "$work/kme.out")
kme_b=$(sed -n 's/^  KME B: \(https:[^ ]*\) .*/\1/p' "$work/kme.out")
echo "KME A $kme_a, KME B $kme_b"

step "2. site-a's keystore and deployment CA; site-b's peer certificate from that CA"
"$qsapi" init --data-dir "$work/a" >/dev/null
"$qsapi" ca init --data-dir "$work/a"
mkdir -m 0700 -p "$work/b-peer"
"$qsapi" ca issue site-b --peer --out "$work/b-peer/site-b" --data-dir "$work/a"
cp "$work/a/ca/ca.pem" "$work/b-peer/deployment-ca.pem"

kme_block() {  # name url sae cert key
  printf '[[kme]]\nname = "%s"\nurl = "%s"\nsae_id = "%s"\ncert_file = "%s"\nkey_file = "%s"\nca_file = "%s"\n' \
    "$1" "$2" "$3" "$4" "$5" "$work/kme/ca.pem"
}
qrng_block() {  # /dev/urandom stands in for a QRNG device here (health-tested like one)
  printf '[entropy]\nqrng = "require"\n[[entropy.device]]\nid = "qrng-sim"\npath = "/dev/urandom"\n'
}
cat >"$work/b.toml" <<EOF
data_dir = "$work/b"
[server]
listen = "127.0.0.1:0"
$(qrng_block)
[session]
name = "site-b"
listen = "127.0.0.1:0"
cert_file = "$work/b-peer/site-b.pem"
key_file = "$work/b-peer/site-b.key"
ca_file = "$work/b-peer/deployment-ca.pem"
$(kme_block kme-b "$kme_b" SAE-B "$work/kme/sae-b.pem" "$work/kme/sae-b-key.pem")
[[peer]]
name = "site-a"
address = "127.0.0.1:9"
kme = "kme-b"
remote_sae_id = "SAE-A"
qkd = "require"
qrng = "require"
EOF

step "3. site-b, then site-a"
"$qsapid" --check-config "$work/b.toml"
"$qsapid" --config "$work/b.toml" >"$work/b.out" 2>&1 &
pids+=($!)
b_url=$(qsapid_url "$work/b.out" "${pids[-1]}") || fail "site-b did not start: $(cat "$work/b.out")"
b_peer_port=$(sed -n 's/.*peer link listening on port \([0-9]*\)$/\1/p' "$work/b.out")
[[ -n $b_peer_port ]] || fail "site-b printed no peer port"
cat >"$work/a.toml" <<EOF
data_dir = "$work/a"
[server]
listen = "127.0.0.1:0"
$(qrng_block)
[session]
name = "site-a"
$(kme_block kme-a "$kme_a" SAE-A "$work/kme/sae-a.pem" "$work/kme/sae-a-key.pem")
[[peer]]
name = "site-b"
address = "127.0.0.1:$b_peer_port"
kme = "kme-a"
remote_sae_id = "SAE-B"
qkd = "require"
qrng = "require"
EOF
"$qsapid" --config "$work/a.toml" >"$work/a.out" 2>&1 &
pids+=($!)
a_url=$(qsapid_url "$work/a.out" "${pids[-1]}") || fail "site-a did not start: $(cat "$work/a.out")"
grep 'peer sessions as' "$work/a.out" "$work/b.out" | sed 's/^.*qsapid: /  /'
# site-a's first start created its admin token; site-b's too.
at=(--server "$a_url" --data-dir "$work/a")
bt=(--server "$b_url" --data-dir "$work/b")
field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }

step "4. site-a establishes a session to site-b"
session=$("$qsapi" call POST /v1/sessions --data '{"peer":"site-b"}' "${at[@]}") || fail "establishment: $session"
echo "$session"
id=$(field id <<<"$session")
grep -q '"qkd":true' <<<"$session" || fail "the session does not use QKD"
grep -q '"sources":"tls-exporter+qkd+qrng-initiator+qrng-responder"' <<<"$session" || fail "sources: $session"
grep -q '"degraded":false' <<<"$session" || fail "degraded: $session"
grep -q '"tls_group":"X25519MLKEM768"' <<<"$session" || fail "group: $session"
grep -q '"peer_key_algorithm":"ML-DSA-65"' <<<"$session" || fail "peer key: $session"
for _ in $(seq 1 50); do "$qsapi" call GET "/v1/sessions/$id" "${bt[@]}" >"$work/b-session" 2>/dev/null && break; sleep 0.1; done
grep -q '"role":"responder"' "$work/b-session" || fail "site-b does not hold the session: $(cat "$work/b-session")"
echo "site-b holds session $id as responder with the same sources: $(field sources <"$work/b-session")"

step "5. envelopes: site-a seals, site-b opens (and refuses a replay); site-b answers"
env=$("$qsapi" call POST "/v1/sessions/$id/seal" --data '{"plaintext":"dHJhbnNmZXIgMTAwIEVVUg==","associated_data":"b3JkZXItNDI="}' "${at[@]}" | field envelope)
[[ $env == qse1:* ]] || fail "no envelope"
echo "envelope: ${env:0:60}..."
opened=$("$qsapi" call POST "/v1/sessions/$id/open" --data "{\"envelope\":\"$env\",\"associated_data\":\"b3JkZXItNDI=\"}" "${bt[@]}")
[[ $(field plaintext <<<"$opened") == dHJhbnNmZXIgMTAwIEVVUg== ]] || fail "site-b opened: $opened"
echo "site-b opened it: $(field plaintext <<<"$opened" | base64 -d)"
if "$qsapi" call POST "/v1/sessions/$id/open" --data "{\"envelope\":\"$env\",\"associated_data\":\"b3JkZXItNDI=\"}" \
  "${bt[@]}" >"$work/replay" 2>/dev/null; then fail "a replayed envelope was opened"; fi
echo "replay refused: $(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' "$work/replay")"
ans=$("$qsapi" call POST "/v1/sessions/$id/seal" --data '{"plaintext":"YWNr"}' "${bt[@]}" | field envelope)
[[ $("$qsapi" call POST "/v1/sessions/$id/open" --data "{\"envelope\":\"$ans\"}" "${at[@]}" | field plaintext) == YWNr ]] \
  || fail "site-a could not open site-b's answer"
echo "site-a opened site-b's answer"

step "6. a rotation with fresh QKD keys agreed over the peer link, then a re-establishment"
rotated=$("$qsapi" call POST "/v1/sessions/$id/rotate" --data '{"fresh_qkd":true}' "${at[@]}") || fail "fresh rotation: $rotated"
grep -q '"epoch":1,' <<<"$rotated" || fail "epoch after the fresh rotation: $rotated"
grep -q '"enabled":true' <<<"$rotated" && grep -q '"epochs":1' <<<"$rotated" || fail "fresh_qkd: $rotated"
echo "site-a: $(grep -o '"fresh_qkd":{[^}]*}' <<<"$rotated")"
"$qsapi" call GET "/v1/sessions/$id" "${bt[@]}" >"$work/b-session"
grep -q '"epochs":1' "$work/b-session" || fail "site-b did not enter a fresh-key epoch: $(cat "$work/b-session")"
echo "site-b: $(grep -o '"fresh_qkd":{[^}]*}' "$work/b-session")"
ans=$("$qsapi" call POST "/v1/sessions/$id/seal" --data '{"plaintext":"ZXBvY2ggMQ=="}' "${bt[@]}" | field envelope)
[[ $("$qsapi" call POST "/v1/sessions/$id/open" --data "{\"envelope\":\"$ans\"}" "${at[@]}" | field plaintext) == ZXBvY2ggMQ== ]] \
  || fail "site-a could not open site-b's envelope of the fresh-key epoch"
echo "an envelope of epoch 1 from site-b opened at site-a"
reest=$("$qsapi" call POST "/v1/sessions/$id/rotate" --data '{"reestablish":true}' "${at[@]}") || fail "re-establishment: $reest"
grep -q '"reestablishments":1' <<<"$reest" && grep -q '"epoch":2,' <<<"$reest" || fail "re-establishment: $reest"
"$qsapi" call GET "/v1/sessions/$id" "${bt[@]}" >"$work/b-session"
grep -q '"reestablishments":1' "$work/b-session" || fail "site-b did not re-establish: $(cat "$work/b-session")"
ans=$("$qsapi" call POST "/v1/sessions/$id/seal" --data '{"plaintext":"ZXBvY2ggMg=="}' "${at[@]}" | field envelope)
[[ $("$qsapi" call POST "/v1/sessions/$id/open" --data "{\"envelope\":\"$ans\"}" "${bt[@]}" | field plaintext) == ZXBvY2ggMg== ]] \
  || fail "site-b could not open site-a's envelope after the re-establishment"
echo "re-established in place (new TLS handshake, ML-KEM, QKD key; same session id): epoch 2 on both nodes"

step "7. a corrupt QKD link is detected"
kill -TERM "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
"$qsapi" kme-sim --dir "$work/kme" --rate 0 --max-key-count 100 --port-a "${kme_a##*:}" --port-b "${kme_b##*:}" \
  --reuse-pki --fault corrupt >"$work/kme2.out" 2>&1 &
pids[0]=$!
wait_for "$work/kme2.out" '^Try:'
if "$qsapi" call POST /v1/sessions --data '{"peer":"site-b"}' "${at[@]}" >"$work/corrupt" 2>/dev/null; then
  fail "a session was established over corrupt QKD keys: $(cat "$work/corrupt")"
fi
grep -q 'QKD keys differ' "$work/corrupt" || fail "corrupt-QKD error: $(cat "$work/corrupt")"
echo "refused: $(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' "$work/corrupt")"
if "$qsapi" call POST "/v1/sessions/$id/rotate" --data '{"fresh_qkd":true}' "${at[@]}" >"$work/corrupt-rotate" 2>/dev/null; then
  fail "a fresh-key rotation succeeded over corrupt QKD keys: $(cat "$work/corrupt-rotate")"
fi
grep -q 'QKD keys differ' "$work/corrupt-rotate" || fail "corrupt fresh-key error: $(cat "$work/corrupt-rotate")"
echo "fresh-key rotation refused: $(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' "$work/corrupt-rotate")"
for _ in $(seq 1 50); do
  "$qsapi" call GET "/v1/sessions/$id" "${bt[@]}" >"$work/b-closed" 2>/dev/null || true
  grep -q '"closed":true' "$work/b-closed" && break
  sleep 0.1
done
grep -q '"closed":true' "$work/b-closed" || fail "site-b kept the session: $(cat "$work/b-closed")"
echo "site-b closed the session too"
echo
echo "two-site demo: ok"
