#!/usr/bin/env bash
# tests/interop/setup.sh: install the interop tests' npm dependencies (@noble/post-quantum, hpke-js,
# @hpke/core, @hpke/ml-kem, @hpke/hybridkem-x-wing, @noble/ciphers; pinned by package-lock.json) into
# tests/interop/node_modules.
#
# Idempotent: runs `npm ci` only when node_modules is missing or older than package-lock.json.
# Needs node and npm (scripts/setup.sh installs them) and access to the npm registry the first time.
set -euo pipefail

die() { printf 'interop setup: error: %s\n' "$*" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
node=${QSAPI_NODE:-node}

command -v "$node" >/dev/null 2>&1 || die "node not found (looked for '$node'); run scripts/setup.sh to install Node.js"
command -v npm >/dev/null 2>&1 || die "npm not found; run scripts/setup.sh to install npm"
[ -f "$here/package-lock.json" ] || die "$here/package-lock.json is missing"

stamp=$here/node_modules/.package-lock.json  # written by npm ci/install on every successful run
up_to_date() {
  [ -d "$here/node_modules/@noble/post-quantum" ] && [ -d "$here/node_modules/@noble/ciphers" ] && [ -d "$here/node_modules/hpke-js" ] &&
    [ -d "$here/node_modules/@hpke/ml-kem" ] && [ -d "$here/node_modules/@hpke/hybridkem-x-wing" ] && [ -f "$stamp" ] && [ ! "$here/package-lock.json" -nt "$stamp" ]
}
up_to_date && exit 0

# Several build trees may run this test at once against the one source tree: install only once.
if command -v flock >/dev/null 2>&1; then
  exec 9>"${TMPDIR:-/tmp}/qsapi-interop-npm-$(id -u).lock"
  flock 9
  up_to_date && exit 0
fi

printf 'interop setup: installing npm dependencies in %s\n' "$here" >&2
(cd "$here" && npm ci --no-audit --no-fund) >&2 || die "npm ci failed in $here (is the npm registry reachable?)"
# npm ci keeps the files' own timestamps; make the freshness stamp newer than the lock file.
touch "$stamp"
