#!/usr/bin/env bash
# scripts/lint.sh: the source gates that CI runs (.ci/run) after the dev job, which writes the
# compile_commands.json clang-tidy reads, and before the sanitizer jobs.
#   scripts/lint.sh            # format check of every C++ file, clang-tidy on the gated paths
#   scripts/lint.sh --format   # the format check only (seconds)
#   scripts/lint.sh --fix      # rewrite the files clang-format would change
#
# The tools are pinned: Debian 12's clang-format and clang-tidy, version 14 (setup.sh installs
# them). Another major version formats differently, so the check refuses to run with one.
#
# clang-tidy (the project's .clang-tidy) must report nothing on TIDY_PATHS (docs/RELIABILITY.md,
# "Source gates"). It needs the dev build's compile_commands.json (scripts/test.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/.."

readonly PINNED_MAJOR=14
# Paths whose translation units clang-tidy must pass with zero findings.
readonly TIDY_PATHS=(src service programs)

mode=all
case "${1:-}" in
  --format) mode=format ;;
  --fix) mode=fix ;;
  "") ;;
  *) echo "usage: scripts/lint.sh [--format|--fix]" >&2; exit 2 ;;
esac

need_version() {
  local tool=$1 version
  command -v "$tool" >/dev/null || { echo "lint: $tool is not installed (run scripts/setup.sh)" >&2; exit 1; }
  version=$("$tool" --version | grep -Eo 'version [0-9]+' | head -1 | grep -Eo '[0-9]+')
  if [ "$version" != "$PINNED_MAJOR" ]; then
    echo "lint: $tool is version $version; the project pins $PINNED_MAJOR (Debian 12's)" >&2
    exit 1
  fi
}

need_version clang-format
mapfile -t files < <(git ls-files '*.cc' '*.h')
if [ "$mode" = fix ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
if ! clang-format --dry-run --Werror "${files[@]}" 2>/tmp/qsapi-lint-format.$$; then
  grep -Eo '^[^:]+:[0-9]+' /tmp/qsapi-lint-format.$$ | sort -u | head -40 >&2
  rm -f /tmp/qsapi-lint-format.$$
  echo "lint: the files above are not formatted; run scripts/lint.sh --fix" >&2
  exit 1
fi
rm -f /tmp/qsapi-lint-format.$$
echo "lint: clang-format: ${#files[@]} files formatted"
[ "$mode" = format ] && exit 0

need_version clang-tidy
[ -f build/dev/compile_commands.json ] || { echo "lint: no build/dev/compile_commands.json (run scripts/test.sh first)" >&2; exit 1; }
mapfile -t tus < <(git ls-files "${TIDY_PATHS[@]/%//*.cc}")
# The build precompiles some headers (QSAPI_PCH) for g++; clang-tidy cannot read g++'s .gch, and
# each file must include what it uses anyway: it reads the commands without the forced include.
tidy_db=$(mktemp -d)
python3 - build/dev/compile_commands.json "$tidy_db/compile_commands.json" <<'PY'
import json, re, sys
entries = json.load(open(sys.argv[1]))
for e in entries:
    e["command"] = re.sub(r" -Winvalid-pch| -include \S+/cmake_pch\.hxx", "", e["command"])
json.dump(entries, open(sys.argv[2], "w"))
PY
log=$(mktemp)
# Findings in headers count where they are: only headers under the gated paths and include/qsapi.
# The paths are joined with '|' ("${TIDY_PATHS[*]// /|}" would keep the spaces between them).
filter="^$PWD/($(IFS='|' && echo "${TIDY_PATHS[*]}")|include/qsapi)/"
if ! printf '%s\n' "${tus[@]}" | xargs -P "$(nproc)" -n 4 clang-tidy -p "$tidy_db" --quiet --warnings-as-errors='*' \
      --header-filter="$filter" >"$log" 2>&1; then
  grep -E 'warning:|error:' "$log" | sort -u >&2 || true
  rm -rf "$log" "$tidy_db"
  echo "lint: clang-tidy found the above in ${TIDY_PATHS[*]}" >&2
  exit 1
fi
rm -rf "$log" "$tidy_db"
echo "lint: clang-tidy: ${#tus[@]} translation units in ${TIDY_PATHS[*]}: no findings"
