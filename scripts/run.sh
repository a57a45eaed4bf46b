#!/usr/bin/env bash
# scripts/run.sh: set everything up, build the release configuration, and run qsapid on its
# embedded default (data directory $QSAPI_DATA_DIR, default ~/.local/share/qsapi): on first start
# it creates the SoftHSM2 token, keystore, deployment CA, ML-DSA-65 TLS certificate and the admin
# API token, then serves HTTPS on 127.0.0.1:8443 (QSAPI_LISTEN overrides) until Ctrl-C / SIGTERM.
# Extra arguments go to qsapid (for example --config FILE, which then names the data directory).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh >/dev/null
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target qsapid qsapi_cli
bin=$PWD/build/release/programs
echo "run.sh: the qsapi CLI is $bin/qsapi (added to PATH for the commands below)"
export PATH="$bin:$PATH"
if [[ " $* " == *" --config "* ]]; then
  exec "$bin/qsapid" "$@"
fi
data_dir=${QSAPI_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/qsapi}
exec "$bin/qsapid" --data-dir "$data_dir" --listen "${QSAPI_LISTEN:-127.0.0.1:8443}" "$@"
