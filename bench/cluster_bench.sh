#!/usr/bin/env bash
# bench/cluster_bench.sh: qsapid on several nodes, all in one run so that the ratios hold on a
# shared, noisy machine (docs/BENCHMARKS.md, "Several nodes on PostgreSQL"):
#   1. POST /v1/encrypt 1 KiB, keep-alive, through haproxy (TCP pass-through) in front of
#        one node on SQLite, then 1, 2 and 3 nodes on one PostgreSQL 15:
#      requests/s, p99, the server side's CPU (everything but the load generator) and requests per
#      CPU-second of it, lease grants per 1000 operations, database transactions per operation;
#   2. invalidation: a rotation on n1 against the next encryption on n2; a token revoked on n1
#      against the first refusal on n3;
#   3. recovery: n3 SIGKILLed under load, and PostgreSQL restarted under load (failed requests,
#      the longest time without a served request).
# Usage: bench/cluster_bench.sh [--seconds N] [--threads N] [--no-build]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib/qsapid_url.sh"
source "$root/scripts/lib/release_build.sh"
source "$root/scripts/lib/cluster.sh"
cd "$root"
seconds=10 threads=4 build=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "cluster_bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $build == 0 ]] || release_build qsapid qsapi_cli qsapid_load
bin=$root/build/release
qsapid=$bin/programs/qsapid qsapi=$bin/programs/qsapi load=$bin/bench/qsapid_load

dir=$(mktemp -d /tmp/qsapi-cluster-bench.XXXXXX)
declare -A pid=() port=()
cleanup() {
  stop_all
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "cluster bench: FAIL: $*" >&2; exit 1; }
pgport=55433

pg_init pg
pg_start pg "$pgport"
psql_at pg "$pgport" 'CREATE DATABASE qsapi' postgres
conninfo="host=$dir/pg port=$pgport dbname=qsapi user=qsapi"
for n in s1 n1 n2 n3; do port[$n]=$(free_port); done
printf 'data_dir = "%s"\n[server]\nlisten = "127.0.0.1:%s"\n' "$dir/s1" "${port[s1]}" >"$dir/s1.toml"
for n in n1 n2 n3; do node_config "$n" "${port[$n]}" "$conninfo" 60; done
"$qsapi" cluster init --config "$dir/n1.toml" >"$dir/init.out" 2>&1 || fail "cluster init: $(cat "$dir/init.out")"
cluster_id=$(sed -n 's/^    cluster_id = "\([0-9a-f]*\)"$/\1/p' "$dir/init.out")
for n in n1 n2 n3; do echo "cluster_id = \"$cluster_id\"" >>"$dir/$n.toml"; done
for n in n2 n3; do
  "$qsapi" cluster join --from "$dir/n1" --config "$dir/$n.toml" >"$dir/join-$n.out" 2>&1 \
    || fail "join $n: $(cat "$dir/join-$n.out")"
done
start() {
  "$qsapid" --config "$dir/$1.toml" --log-level debug >>"$dir/$1.out" 2>&1 &
  pid[$1]=$!
  qsapid_url "$dir/$1.out" "${pid[$1]}" >/dev/null || fail "$1 did not start"
}
for n in s1 n1 n2 n3; do start "$n"; done
for n in s1 n1; do
  "$qsapi" call POST /v1/keys --data '{"name":"bench","type":"AES-256-GCM"}' --server "https://127.0.0.1:${port[$n]}" \
    --data-dir "$dir/$n" >/dev/null || fail "create key on $n"
done

busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }  # user nice system irq softirq
xacts() { psql_at pg "$pgport" "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'qsapi'" postgres; }
leases() { cat "$dir"/n*.out "$dir"/s1.out | grep -c 'leased$' || true; }
hz=$(getconf CLK_TCK)

# run NAME TOKEN_DIR PORT...: haproxy in front of the ports, the load through it, figures as JSON.
run() {
  local name=$1 tokdir=$2
  shift 2
  haproxy_start "$dir/haproxy-$name.cfg" "$@"
  local hpid=$haproxy_pid b0 b1 x0 x1 l0 l1
  b0=$(busy_ticks); x0=$(xacts); l0=$(leases)
  /usr/bin/time -f '%U %S' -o "$dir/$name.time" "$load" --url "https://127.0.0.1:$haproxy_front" \
    --ca "$tokdir/ca/ca.pem" --token-file "$tokdir/admin-token" --mode encrypt --key bench \
    --threads "$threads" --seconds "$seconds" --payload-bytes 1024 >"$dir/$name.json" 2>"$dir/$name.err" \
    || fail "$name: $(cat "$dir/$name.err")"
  b1=$(busy_ticks); x1=$(xacts); l1=$(leases)
  kill -TERM "$hpid"; wait "$hpid" 2>/dev/null || true
  python3 - "$dir/$name.json" "$dir/$name.time" "$name" "$((b1 - b0))" "$hz" "$((x1 - x0))" "$((l1 - l0))" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); user, sys_ = map(float, open(sys.argv[2]).read().split()[-2:])
name, busy, hz, xacts, leases = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
server_cpu = max(busy / hz - user - sys_, 1e-9)  # machine busy time minus the load generator's
ops = d["requests"]
print(json.dumps({"setup": name, "requests_per_second": d["requests_per_second"], "p50_us": d["p50_us"],
                  "p99_us": d["p99_us"], "errors": d["errors"], "server_cpus": round(server_cpu / d["seconds"], 2),
                  "requests_per_server_cpu_second": round(ops / server_cpu, 1),
                  "lease_grants_per_1000_ops": round(1000 * leases / max(ops, 1), 3),
                  "db_transactions_per_op": round(xacts / max(ops, 1), 2) if name != "sqlite-1" else None}))
EOF
}

echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); $(date -u +%Y-%m-%dT%H:%MZ)"
echo "load: qsapid_load --mode encrypt --payload-bytes 1024 --threads $threads --seconds $seconds, through haproxy"
run sqlite-1 "$dir/s1" "${port[s1]}"
run postgresql-1 "$dir/n1" "${port[n1]}"
run postgresql-2 "$dir/n1" "${port[n1]}" "${port[n2]}"
run postgresql-3 "$dir/n1" "${port[n1]}" "${port[n2]}" "${port[n3]}"

# --- invalidation ------------------------------------------------------------------------------
at() { echo --server "https://127.0.0.1:${port[$1]}" --data-dir "$dir/n1"; }
seen=0 rounds=20
for i in $(seq 1 $rounds); do
  # shellcheck disable=SC2046
  "$qsapi" call POST /v1/keys/bench/rotate $(at n1) >/dev/null
  # shellcheck disable=SC2046
  v=$("$qsapi" call POST /v1/encrypt/bench --data '{"plaintext":"aGk="}' $(at n2) | sed -n 's/.*"version":\([0-9]*\).*/\1/p')
  # shellcheck disable=SC2046
  cur=$("$qsapi" call GET /v1/keys/bench $(at n3) | sed -n 's/.*"current_version":\([0-9]*\).*/\1/p')
  [[ $v == "$cur" ]] && seen=$((seen + 1))
done
delays=()
for i in 1 2 3 4 5; do
  "$qsapi" token create "app$i" --keys bench --operations encrypt --config "$dir/n1.toml" >"$dir/app.token" 2>/dev/null
  chmod 600 "$dir/app.token"
  # shellcheck disable=SC2046
  until "$qsapi" call POST /v1/encrypt/bench --data '{"plaintext":"aGk="}' $(at n3) --token-file "$dir/app.token" \
    >/dev/null 2>&1; do sleep 0.05; done
  t0=$(date +%s.%N)
  "$qsapi" token revoke "app$i" --config "$dir/n1.toml" >/dev/null
  # shellcheck disable=SC2046
  while "$qsapi" call POST /v1/encrypt/bench --data '{"plaintext":"aGk="}' $(at n3) --token-file "$dir/app.token" \
    >/dev/null 2>&1; do sleep 0.02; done
  delays+=("$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')")
done
echo "{\"invalidation\":\"rotation on n1, next encryption on n2\",\"rounds\":$rounds,\"new_version_used_at_once\":$seen}"
echo "{\"invalidation\":\"token revoked on n1 (CLI), first refusal on n3\",\"seconds\":[$(IFS=,; echo "${delays[*]}")]}"

# --- recovery ----------------------------------------------------------------------------------
# recover NAME ACTION: 3 nodes behind haproxy under load for 8 s, ACTION at 3 s.
recover() {
  local name=$1 action=$2
  haproxy_start "$dir/haproxy-$name.cfg" "${port[n1]}" "${port[n2]}" "${port[n3]}"
  local hpid=$haproxy_pid
  "$load" --url "https://127.0.0.1:$haproxy_front" --ca "$dir/n1/ca/ca.pem" --token-file "$dir/n1/admin-token" \
    --mode encrypt --key bench --threads "$threads" --seconds 8 --payload-bytes 1024 --timeline-ms 50 \
    >"$dir/$name.json" 2>"$dir/$name.err" &
  local lpid=$!
  sleep 3
  $action
  wait "$lpid" || true
  kill -TERM "$hpid"; wait "$hpid" 2>/dev/null || true
  python3 - "$dir/$name.json" "$name" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); t = d["timeline"]; ms = d["timeline_ms"]
gap = cur = 0
for ok, _ in t[20:-1]:  # from 1 s in: the longest run of intervals without a served request
    cur = cur + 1 if ok == 0 else 0
    gap = max(gap, cur)
print(json.dumps({"recovery": sys.argv[2], "requests": d["requests"], "failed": d["errors"],
                  "errors_by_kind": d["errors_by_kind"], "longest_gap_ms": gap * ms}))
EOF
}
kill_n3() { kill -KILL "${pid[n3]}"; wait "${pid[n3]}" 2>/dev/null || true; unset 'pid[n3]'; }
restart_db() { "${pg_as[@]}" "$pgbin/pg_ctl" -D "$dir/pg/data" -m fast -w restart >/dev/null 2>&1; }
recover node-kill kill_n3
start n3
recover db-restart restart_db
