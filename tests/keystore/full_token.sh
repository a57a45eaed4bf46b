#!/usr/bin/env bash
# A token that cannot store objects (its storage full: RLIMIT_FSIZE = 0 makes every write fail)
# during `qsapi init` gives a clear error and leaves a state that the next `qsapi init` completes.
set -euo pipefail
qsapi="$1"
export QSAPI_DATA_DIR="$2"
rm -rf "$QSAPI_DATA_DIR"
# First start killed after the PIN files, before the token (a fault point), ...
QSAPI_FAULT_POINT=keystore.init.before_token "$qsapi" init >/dev/null 2>&1 && { echo "fault point not reached" >&2; exit 1; }
# ... then a start on full storage: refused clearly, no token, no key.
if out=$(bash -c "trap '' XFSZ; ulimit -f 0; exec \"$qsapi\" init" 2>&1); then
  echo "init succeeded on full storage" >&2; exit 1
fi
echo "$out" | grep -q "C_InitToken failed: CKR_DEVICE_ERROR (the token cannot store objects" || { echo "unclear error: $out" >&2; exit 1; }
# With space again, init completes with the PINs written before, and keys work.
"$qsapi" init >/dev/null 2>&1
"$qsapi" key create after-full --type AES-256-GCM >/dev/null
"$qsapi" key verify | grep -q '^ok$'
rm -rf "$QSAPI_DATA_DIR"
echo "full token: ok"
