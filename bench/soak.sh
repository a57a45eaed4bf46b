#!/usr/bin/env bash
# bench/soak.sh: qsapid under a mixed load from several client processes for a bounded time, with
# faults injected, reporting requests served, errors by kind, p99 latency and qsapid's RSS over
# time (docs/RELIABILITY.md, "Soak").
#
#   bench/soak.sh [--seconds 120] [--clients 3] [--no-build] [--bin DIR]
#
# Load: each client process runs rounds of encrypt, decrypt (plaintext checked), sign and verify
# (validity checked) over one kept-alive TLS connection.
# Faults, at fixed points of the run:
#   - every 10 s the AES and ML-DSA keys are rotated through the API (decrypts and verifies of
#     older versions must keep working);
#   - at 1/3: one client is killed with SIGKILL mid-request and replaced (a peer gone);
#   - at 1/2: qsapid is frozen with SIGSTOP for 3 s, then continued (a stall);
#   - at 2/3: a burst of 50 connections that send half a request and go silent (slow clients).
# At the end: qsapi audit verify on the audit log, and SIGTERM must exit 0.
# The exit status is non-zero if a wrong plaintext or invalid signature was ever returned, if the
# audit chain does not verify, or if qsapid does not stop cleanly.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/qsapid_url.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/release_build.sh"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds=120 clients=3 build=1 bin=$root/build/release
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --bin) bin=$2; build=0; shift 2 ;;
    *) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $build == 0 ]] || release_build qsapid qsapi_cli qsapid_load
qsapid=$bin/programs/qsapid qsapi=$bin/programs/qsapi load=$bin/bench/qsapid_load
work=$(mktemp -d)
qpid=""
declare -a cpids=()
cleanup() {
  for p in "${cpids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  if [[ -n $qpid ]]; then kill -CONT "$qpid" 2>/dev/null || true; kill -KILL "$qpid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$qsapid" --data-dir "$work/data" --listen 127.0.0.1:0 >"$work/qsapid.out" 2>&1 &
qpid=$!
url=$(qsapid_url "$work/qsapid.out" "$qpid") || { cat "$work/qsapid.out"; exit 1; }
port=${url##*:}
r=(--server "$url" --data-dir "$work/data")
"$qsapi" call POST /v1/keys --data '{"name":"bench","type":"AES-256-GCM"}' "${r[@]}" >/dev/null
"$qsapi" call POST /v1/keys --data '{"name":"bench-sig","type":"ML-DSA-65"}' "${r[@]}" >/dev/null

start_client() {
  "$load" --url "$url" --ca "$work/data/ca/ca.pem" --token-file "$work/data/admin-token" --mode mixed \
    --threads 1 --seconds "$1" --payload-bytes 1024 >"$work/client-$2.json" 2>"$work/client-$2.err" &
  cpids+=($!)
}
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$qpid/status"; }

for i in $(seq 1 "$clients"); do start_client "$seconds" "$i"; done
echo "t_seconds,rss_kib,connections" >"$work/rss.csv"
t=0 rotations=0 replaced=""
while (( t < seconds )); do
  sleep 1
  t=$((t + 1))
  conns=$(ss -Htn state established "( sport = :$port )" 2>/dev/null | wc -l)
  (( t % 5 == 0 )) && echo "$t,$(rss),$conns" >>"$work/rss.csv"
  if (( t % 10 == 0 )); then
    "$qsapi" call POST /v1/keys/bench/rotate --data '{}' "${r[@]}" >/dev/null && rotations=$((rotations + 1))
    "$qsapi" call POST /v1/keys/bench-sig/rotate --data '{}' "${r[@]}" >/dev/null && rotations=$((rotations + 1))
  fi
  if (( t == seconds / 3 )); then
    kill -KILL "${cpids[0]}" 2>/dev/null || true
    replaced="client 1 killed at ${t}s"
    start_client $((seconds - t)) "1b"
  fi
  if (( t == seconds / 2 )); then
    kill -STOP "$qpid"; sleep 3; kill -CONT "$qpid"; t=$((t + 3))
  fi
  if (( t == 2 * seconds / 3 )); then
    for _ in $(seq 1 50); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port"; printf '\x16\x03\x01' >&3; sleep 15) 2>/dev/null &
    done
  fi
done
for p in "${cpids[@]:1}"; do wait "$p" || true; done

audit=$("$qsapi" audit verify "$work/data/audit.log" 2>&1) || { echo "audit verify failed: $audit"; exit 1; }
kill -TERM "$qpid"
rc=0; wait "$qpid" || rc=$?
qpid=""

echo "soak: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); ${seconds}s, $clients clients; $(date -u +%Y-%m-%dT%H:%MZ)"
echo "faults: $rotations key rotations under load; $replaced; qsapid SIGSTOP 3s at $((seconds / 2))s; 50 silent half-handshakes at $((2 * seconds / 3))s"
total=0 wrong=0
for f in "$work"/client-*.json; do
  [[ -s $f ]] || continue
  line=$(cat "$f")
  echo "  $(basename "$f" .json): $line"
  total=$((total + $(sed -n 's/.*"requests":\([0-9]*\).*/\1/p' <<<"$line")))
  grep -q '"wrong plaintext"\|"signature not valid"' <<<"$line" && wrong=1
done
echo "requests served: $total"
echo "rss over time (KiB):"; column -t -s, "$work/rss.csv" | sed 's/^/  /'
awk -F, 'NR == 2 { first = $2 } NR > 1 { last = $2; if ($2 > max) max = $2 }
  END { printf "rss first %d KiB, last %d KiB, max %d KiB, last/first %.2f\n", first, last, max, last / first }' "$work/rss.csv"
echo "audit: $audit"
echo "qsapid exit status after SIGTERM: $rc"
[[ $wrong == 0 ]] || { echo "soak: FAILED: a wrong answer was returned"; exit 1; }
[[ $rc == 0 ]] || { echo "soak: FAILED: qsapid did not stop cleanly"; exit 1; }
echo "soak: ok"
