#!/usr/bin/env bash
# scripts/run.sh: set everything up, build the release configuration, and run qsapid on its
# embedded default (data directory $QSAPI_DATA_DIR, default ~/.local/share/qsapi).
# Extra arguments go to qsapid.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh >/dev/null
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target qsapid qsapi_cli
data_dir=${QSAPI_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/qsapi}
exec ./build/release/programs/qsapid --data-dir "$data_dir" "$@"
