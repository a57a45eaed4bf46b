#!/usr/bin/env bash
# Fault injection against a running qsapid (docs/RELIABILITY.md, "Fault injection"). Each fault
# must give a clear error or a documented fallback, lose no data, and clear when the fault does:
#   1. disk full during rotation   (the data directory is on a 64 MiB tmpfs in a private mount
#                                   namespace, filled up with a filler file, then freed)
#   2. token removed while running (the SoftHSM2 token directory moved away, then back)
#   3. kill -9 under load          (then restart: keys, ciphertexts and the audit chain intact)
#   4. PKCS#11 module missing      (start refused, naming the module)
#   5. QRNG stuck                  (require: start refused; prefer: starts, health says degraded)
#   qsapid_faults.sh QSAPID QSAPI
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/qsapid_url.sh"
qsapid=$1 qsapi=$2
if [[ -z ${QSAPI_FAULTS_NAMESPACE:-} ]]; then
  if unshare --mount true 2>/dev/null; then
    exec unshare --mount env QSAPI_FAULTS_NAMESPACE=1 bash "$0" "$@"
  fi
  echo "SKIP: the disk-full fault needs a private mount namespace (unshare --mount, as root)"
  exit 77
fi
dir=$(mktemp -d)
data="$dir/data"
mkdir -m 0700 "$data"
mount -t tmpfs -o size=64m,mode=0700 tmpfs "$data"
out="$dir/qsapid.out"
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; wait "$pid" 2>/dev/null || true; fi
  umount "$data" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "--- qsapid output:" >&2; cat "$out" >&2 || true; exit 1; }

start() {
  : >"$out"
  "$qsapid" "$@" >"$out" 2>&1 &
  pid=$!
  url=$(qsapid_url "$out" "$pid") || fail "qsapid did not start"
}
call() { "$qsapi" call "$@" --server "$url" --data-dir "$data"; }
field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }

start --data-dir "$data" --listen 127.0.0.1:0
cp "$data/admin-token" "$dir/token"
call POST /v1/keys --data '{"name":"f","type":"AES-256-GCM"}' >/dev/null || fail "create"
ct1=$(call POST /v1/encrypt/f --data '{"plaintext":"b25l"}' | field ciphertext)

# 1. Disk full during rotation: the rotation fails with a clear error, the key stays at version 1
#    and usable; once space is back, the rotation succeeds and the old ciphertext still decrypts.
dd if=/dev/zero of="$data/filler" bs=1M 2>/dev/null || true   # until ENOSPC
if call POST /v1/keys/f/rotate --data '{}' >"$dir/r1" 2>"$dir/e1"; then fail "rotation succeeded on a full disk"; fi
grep -q '"code":"\(UNAVAILABLE\|RESOURCE_EXHAUSTED\|INTERNAL\|DATA_LOSS\)"' "$dir/r1" || fail "rotation error: $(cat "$dir/r1")"
kill -0 "$pid" || fail "qsapid died on a full disk"
rm -f "$data/filler"
[[ $(call GET /v1/keys/f | sed -n 's/.*"current_version":\([0-9]*\).*/\1/p') == 1 ]] || fail "version changed by a failed rotation"
call POST /v1/keys/f/rotate --data '{}' >/dev/null || fail "rotation after the disk recovered"
[[ $(call GET /v1/keys/f | sed -n 's/.*"current_version":\([0-9]*\).*/\1/p') == 2 ]] || fail "rotation did not take"
[[ $(call POST /v1/decrypt/f --data "{\"ciphertext\":\"$ct1\"}" | field plaintext) == b25l ]] || fail "old ciphertext after rotation"
echo "fault 1 (disk full during rotation): ok: $(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' "$dir/r1")"

# 2. Token removed: health turns 503 naming the keystore, creating a key fails with a clear
#    error; after the token is back both work again.
mv "$data/tokens" "$dir/tokens.away"
code=$( ("$qsapi" call GET /v1/health --server "$url" --data-dir "$data" 2>&1 || true) |
  sed -n 's/.*"keystore":"\([^"]*\)".*/\1/p')
[[ $code == error:* ]] || fail "health with the token gone: $code"
if call POST /v1/keys --data '{"name":"g","type":"AES-256-GCM"}' >"$dir/r2" 2>/dev/null; then
  fail "a key was created without a token"
fi
grep -q '"error"' "$dir/r2" || fail "no error body: $(cat "$dir/r2")"
mv "$dir/tokens.away" "$data/tokens"
ok=""
for _ in $(seq 1 50); do
  if call GET /v1/health >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.2
done
[[ -n $ok ]] || fail "health did not recover after the token came back: $(call GET /v1/health 2>&1 | head -c 400)"
call POST /v1/keys --data '{"name":"g","type":"AES-256-GCM"}' >/dev/null || fail "create after the token came back"
echo "fault 2 (token removed while running): ok"

# 3. kill -9 under load: the restart serves every key, old ciphertexts decrypt, the audit chain holds.
( for i in $(seq 1 200); do call POST /v1/encrypt/f --data '{"plaintext":"bG9hZA=="}' >/dev/null 2>&1 || true; done ) &
loader=$!
sleep 1
kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
pid=""
kill "$loader" 2>/dev/null || true; wait "$loader" 2>/dev/null || true
start --data-dir "$data" --listen 127.0.0.1:0
[[ $(call POST /v1/decrypt/f --data "{\"ciphertext\":\"$ct1\"}" | field plaintext) == b25l ]] || fail "decrypt after kill -9"
call GET /v1/keys/g >/dev/null || fail "key g lost"
"$qsapi" audit verify "$data/audit.log" >/dev/null || fail "audit chain after kill -9: $("$qsapi" audit verify "$data/audit.log" 2>&1)"
kill -TERM "$pid"; wait "$pid" || fail "exit after SIGTERM"
pid=""
echo "fault 3 (kill -9 under load): ok"

# 4. PKCS#11 module missing: start refused with the module named; nothing in the data directory changes.
before=$(find "$data" -type f -newer "$data/audit.log" | wc -l)
printf 'data_dir = "%s"\n[keystore]\npkcs11_module = "/nonexistent/libpkcs11.so"\npin_file = "%s/pins/user.pin"\n' \
  "$data" "$data" >"$dir/nomod.toml"
if "$qsapid" --config "$dir/nomod.toml" >"$dir/o4" 2>&1; then fail "started without a PKCS#11 module"; fi
grep -q 'keystore.*/nonexistent/libpkcs11.so' "$dir/o4" || fail "module error: $(cat "$dir/o4")"
echo "fault 4 (PKCS#11 module missing): ok"

# 5. QRNG stuck (/dev/zero fails the repetition count test at start-up).
printf 'data_dir = "%s"\n[server]\nlisten = "127.0.0.1:0"\n[entropy]\nqrng = "require"\n[[entropy.device]]\npath = "/dev/zero"\n' \
  "$data" >"$dir/stuck.toml"
rc=0
timeout 60 "$qsapid" --config "$dir/stuck.toml" >"$dir/o5" 2>&1 || rc=$?
[[ $rc == 1 ]] || fail "qrng = require with a stuck QRNG: exit status $rc (expected 1): $(cat "$dir/o5")"
grep -q 'qsapid start-up, entropy: .*qrng = require' "$dir/o5" || fail "stuck QRNG error: $(cat "$dir/o5")"
sed -i 's/qrng = "require"/qrng = "prefer"/' "$dir/stuck.toml"
start --config "$dir/stuck.toml"
h=$("$qsapi" call GET /v1/health --server "$url" --data-dir "$data" 2>/dev/null || true)
grep -q '"entropy":"degraded' <<<"$h" || fail "health with a stuck QRNG under prefer: $h"
call POST /v1/random --data '{"bytes":16}' >/dev/null || fail "random under prefer with a stuck QRNG"
echo "fault 5 (QRNG stuck): ok"
echo "qsapid faults: ok"
