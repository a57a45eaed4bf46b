#!/usr/bin/env bash
# tests/interop/run_hpke_interop.sh TOOL: the ctest entry point of the hpke-js interop test.
# Installs the npm dependencies if needed (setup.sh), then runs the node harness against TOOL
# (the qsapi_hpke_interop_tool binary).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 path/to/qsapi_hpke_interop_tool" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
node=${QSAPI_NODE:-node}

"$here/setup.sh"
exec "$node" "$here/hpke_interop.test.mjs" "$1"
