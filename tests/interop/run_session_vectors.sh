#!/usr/bin/env bash
# tests/interop/run_session_vectors.sh: the ctest entry point that keeps the committed session
# vectors honest. Installs the npm dependencies if needed (setup.sh), re-runs
# session_vectors.mjs (node:crypto and @noble/ciphers, independent of qsapi's code) and compares
# its output with tests/data/session/vectors.json byte for byte.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
node=${QSAPI_NODE:-node}
committed=$here/../data/session/vectors.json

"$here/setup.sh"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$node" "$here/session_vectors.mjs" "$out"
if ! cmp -s "$out" "$committed"; then
  echo "session vectors: the generator's output differs from $committed:" >&2
  diff -u "$committed" "$out" | head -40 >&2 || true
  exit 1
fi
echo "session vectors: regenerated output equals $committed"
