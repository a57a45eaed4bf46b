#!/usr/bin/env bash
# qsapi seal / open with the recipient key in the keystore (SoftHSM2 embedded default):
# seal to `key public --format hpke`, rotate the key, open with the old version, refuse another key,
# and leave no output behind on failure.
set -euo pipefail
qsapi="$1"
work="$2"
rm -rf "$work"
mkdir -p "$work"
export QSAPI_DATA_DIR="$work/data"
"$qsapi" init >/dev/null 2>&1
"$qsapi" key create inbox --type X-Wing >/dev/null
"$qsapi" key create other --type ML-KEM-768 >/dev/null
"$qsapi" key public inbox --format hpke >"$work/inbox.pub"
grep -q -- '-----BEGIN QSAPI PUBLIC KEY-----' "$work/inbox.pub"
head -c 1000000 /dev/urandom >"$work/plain"
"$qsapi" seal --to "$work/inbox.pub" --in "$work/plain" --out "$work/sealed" --no-progress
"$qsapi" key rotate inbox >/dev/null 2>&1
"$qsapi" open --key inbox --in "$work/sealed" --out "$work/opened" --no-progress
cmp "$work/plain" "$work/opened"
if "$qsapi" open --key other --in "$work/sealed" --out "$work/wrong" --no-progress 2>"$work/err"; then
  echo "opened with the wrong key" >&2
  exit 1
fi
grep -q 'not sealed to key "other"' "$work/err"
[ ! -e "$work/wrong" ] || { echo "output left behind" >&2; exit 1; }
# A flipped byte in the body: authentication fails, nothing is written.
python3 - "$work/sealed" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 1
open(p + '.bad', 'wb').write(b)
PY
if "$qsapi" open --key inbox --in "$work/sealed.bad" --out "$work/bad-out" --no-progress 2>/dev/null; then
  echo "tampered message opened" >&2
  exit 1
fi
[ ! -e "$work/bad-out" ]
rm -rf "$work"
echo "seal/open with the keystore: ok"
