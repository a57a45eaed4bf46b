#!/usr/bin/env bash
# fuzz/run_fuzzers.sh [SECONDS]: build the `fuzz` preset (clang, libFuzzer + ASan + UBSan) and run
# every fuzz target for SECONDS (default 60) on a scratch copy of its checked-in corpus.
# Prints executions and the result per target; exits non-zero if any target crashed.
# A crashing input is left as crash-* in the scratch directory: add it to fuzz/corpus/<target>/
# once fixed, so that ctest replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
./scripts/setup.sh >/dev/null
cmake --preset fuzz >/dev/null
targets=$(sed -n 's/^set(QSAPI_FUZZ_TARGETS \(.*\))$/\1/p' fuzz/CMakeLists.txt)
cmake --build --preset fuzz $(for t in $targets; do printf -- '--target %s_fuzzer ' "$t"; done)
status=0
for t in $targets; do
  work=$(mktemp -d "/tmp/qsapi-fuzz-$t.XXXXXX")
  cp fuzz/corpus/"$t"/* "$work"/
  log="$work/fuzz.log"
  if (cd "$work" && "$OLDPWD/build/fuzz/fuzz/${t}_fuzzer" "$work" -max_total_time="$seconds" -max_len=8192 >"$log" 2>&1); then
    result=ok
  else
    result="CRASH (see $work)"; status=1
  fi
  runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' || echo "?")
  printf '%-24s %10s executions in %ss: %s\n' "$t" "$runs" "$seconds" "$result"
done
exit $status
