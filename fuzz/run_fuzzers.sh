#!/usr/bin/env bash
# fuzz/run_fuzzers.sh [--preset P] [SECONDS] [TARGET...]: build the fuzz targets of preset P
# (default `fuzz`: clang, libFuzzer + ASan + UBSan; `asan` builds them too, which CI uses so that
# its ASan job's libraries serve both) and run each target (all of them by default) for SECONDS
# (default 60) on a scratch copy of its checked-in corpus, one after the other.
#
# Prints one table row per target: seconds run, executions, corpus entries at the start and at the
# end (after libFuzzer added the inputs that reached new coverage), coverage (edges) and crashes.
# Exits non-zero if any target crashed, leaked or timed out. A crashing input is left as
# crash-* / leak-* / timeout-* in the scratch directory named in the table: fix the code, then add
# the input to fuzz/corpus/<target>/ so that ctest (fuzz.<target>) replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=fuzz
if [ "${1:-}" = --preset ]; then
  preset=${2:?--preset needs a value}
  shift 2
fi
seconds=${1:-60}
[ $# -gt 0 ] && shift
./scripts/setup.sh >/dev/null
cmake --preset "$preset" >/dev/null
build=build/$preset
[ -f "$build/fuzz/targets.txt" ] && grep -q '^QSAPI_BUILD_FUZZERS:BOOL=ON' "$build/CMakeCache.txt" \
  || { echo "run_fuzzers: preset $preset does not build the fuzz targets (QSAPI_BUILD_FUZZERS)" >&2; exit 2; }
if [ $# -gt 0 ]; then
  targets="$*"
else
  targets=$(cat "$build/fuzz/targets.txt")
fi
cmake --build --preset "$preset" $(for t in $targets; do printf -- '--target %s_fuzzer ' "$t"; done)

status=0
rows=()
for t in $targets; do
  work=$(mktemp -d "/tmp/qsapi-fuzz-$t.XXXXXX")
  mkdir "$work/corpus"
  cp fuzz/corpus/"$t"/* "$work/corpus/"
  seeds=$(find "$work/corpus" -type f | wc -l)
  log="$work/fuzz.log"
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="$PWD/fuzz/dict/$t.dict")
  if (cd "$work" && "$OLDPWD/$build/fuzz/${t}_fuzzer" "$work/corpus" "${dict[@]}" -max_total_time="$seconds" -max_len=8192 \
        -timeout=25 -rss_limit_mb=4096 -artifact_prefix="$work/" -print_final_stats=1 >"$log" 2>&1); then
    result=ok
  else
    result=FAILED; status=1
  fi
  runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' || true)
  [ -n "$runs" ] || runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || echo "?")
  corpus=$(find "$work/corpus" -type f | wc -l)
  crashes=$(find "$work" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  rows+=("$(printf '%-18s %7s %12s %7s %7s %7s %8s  %s' "$t" "$seconds" "$runs" "$seeds" "$corpus" "$cov" "$crashes" \
    "$result ($work)")")
  printf '%s\n' "${rows[-1]}" >&2
done
printf '\n%-18s %7s %12s %7s %7s %7s %8s  %s\n' target seconds executions seeds corpus edges crashes "result (scratch dir)"
printf '%s\n' "${rows[@]}"
exit $status
