#!/usr/bin/env bash
# Peer-session establishments per second over loopback next to OpenSSL's own TLS handshakes, in the
# same run on the same machine: `openssl s_server` + `openssl s_time -new` with the same group
# (X25519MLKEM768), the same cipher suite (TLS_AES_256_GCM_SHA384), the same mutual ML-DSA-65
# certificates, chain verification on both ends and no resumption. The three measurements are
# interleaved over several rounds (the machine may be shared) and the medians compared, per second
# of wall-clock time and per CPU second (client and server together), the latter being robust to
# other load on the machine.
#   bench/session_establish_bench.sh [BUILD_DIR] [SECONDS] [ROUNDS]   (build/release, 10 s, 3 rounds)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}
seconds=${2:-10}
rounds=${3:-3}
bench=$build/bench/qsapi_session_establish_bench
openssl_bin=$(sed -n 's/^OPENSSL_ROOT_DIR:PATH=//p' "$build/CMakeCache.txt")/bin/openssl
export OPENSSL_CONF=/dev/null
dir=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$dir"' EXIT
"$bench" pki "$dir"
port=$((20000 + RANDOM % 20000))
"$openssl_bin" s_server -quiet -accept "$port" -tls1_3 -groups X25519MLKEM768 -ciphersuites TLS_AES_256_GCM_SHA384 \
  -num_tickets 0 -no_cache -cert "$dir/node-b.pem" -key "$dir/node-b-key.pem" -CAfile "$dir/ca.pem" -Verify 1 \
  -naccept 100000000 >/dev/null 2>&1 &
server=$!
sleep 1
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
: >"$dir/openssl" ; : >"$dir/link" ; : >"$dir/establish"; : >"$dir/openssl_cpu"; : >"$dir/link_cpu"; : >"$dir/establish_cpu"
for r in $(seq 1 "$rounds"); do
  s0=$(cpu_ticks "$server")
  t0=$(date +%s.%N)
  TIMEFORMAT='%U %S'
  { time "$openssl_bin" s_time -connect "127.0.0.1:$port" -new -tls1_3 -verify 2 -time "$seconds" \
      -cert "$dir/node-a.pem" -key "$dir/node-a-key.pem" -CAfile "$dir/ca.pem" >"$dir/stime.out" 2>&1; } 2>"$dir/stime.cpu"
  t1=$(date +%s.%N)
  s1=$(cpu_ticks "$server")
  n=$(awk '/real seconds/ { print $1; exit }' "$dir/stime.out")
  o=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')
  oc=$(awk -v n="$n" -v s0="$s0" -v s1="$s1" -v hz="$hz" 'NF == 2 { printf "%.1f", n / ($1 + $2 + (s1 - s0) / hz); exit }' "$dir/stime.cpu")
  read -r l lc < <("$bench" link "$dir" "$seconds" | awk '{ printf "%.1f %.1f\n", $7, $10 }')
  read -r e ec < <("$bench" establish "$dir" "$seconds" | awk '{ printf "%.1f %.1f\n", $7, $10 }')
  echo "round $r: openssl s_time $o/s ($oc/CPU s), qsapi link $l/s ($lc/CPU s), qsapi establishment $e/s ($ec/CPU s) (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  echo "$o" >>"$dir/openssl"; echo "$l" >>"$dir/link"; echo "$e" >>"$dir/establish"
  echo "$oc" >>"$dir/openssl_cpu"; echo "$lc" >>"$dir/link_cpu"; echo "$ec" >>"$dir/establish_cpu"
done
o=$(median <"$dir/openssl"); l=$(median <"$dir/link"); e=$(median <"$dir/establish")
oc=$(median <"$dir/openssl_cpu"); lc=$(median <"$dir/link_cpu"); ec=$(median <"$dir/establish_cpu")
echo "median per second: openssl s_server + s_time -new $o; qsapi link $l; qsapi establishment $e"
echo "median per CPU second: openssl $oc; qsapi link $lc; qsapi establishment $ec"
awk -v q="$e" -v l="$l" -v o="$o" -v qc="$ec" -v lc="$lc" -v oc="$oc" 'BEGIN {
  printf "ratio (wall clock): establishment / openssl %.2fx; link only / openssl %.2fx\n", q / o, l / o
  printf "ratio (per CPU second): establishment / openssl %.2fx; link only / openssl %.2fx\n", qc / oc, lc / oc }'
