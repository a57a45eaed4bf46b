#!/usr/bin/env bash
# scripts/test.sh: set everything up, build, and run the whole test suite.
#
#   scripts/test.sh                 # the dev preset (what the README's quick start runs)
#   scripts/test.sh --preset asan   # AddressSanitizer + UndefinedBehaviorSanitizer
#   scripts/test.sh --preset tsan   # ThreadSanitizer (clang); docs/RELIABILITY.md says what it covers
#
# Idempotent: scripts/setup.sh installs what is missing (Debian packages, OpenSSL 3.5 into a
# cache, the npm packages of the interop tests) and reuses what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

preset=dev
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) preset=${2:?--preset needs a value}; shift 2 ;;
    --preset=*) preset=${1#--preset=}; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

./scripts/setup.sh >/dev/null
jobs=$(nproc)
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$jobs"
ctest --preset "$preset" -j "$jobs"
