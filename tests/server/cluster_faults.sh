#!/usr/bin/env bash
# tests/server/cluster_faults.sh BIN_DIR LOAD FAULT: one fault of a qsapid cluster on PostgreSQL 15
# (docs/RELIABILITY.md, "Several nodes: faults"), against real servers started here and stopped by
# PID: PostgreSQL on a unix socket in a temporary directory, qsapid nodes (BIN_DIR/qsapid, built
# with fault points), haproxy where clients need one address, and LOAD (bench's qsapid_load) as
# the clients. Each fault prints its figures ("cluster faults: FAULT: ...") and ends with
# "cluster faults: FAULT: ok". FAULT is one of:
#   leases          3 nodes x 4 client threads on one key with a small operation limit; one node
#                   SIGKILLed and restarted, PostgreSQL restarted, another node SIGKILLed: no version
#                   ever serves more than its limit, no two processes ever held overlapping blocks
#                   (the nodes' lease log lines), no lease went backwards, every ciphertext decrypts
#   storm           3 nodes reach one key's limit at the same moments, again and again: exactly one
#                   new version each time (no version retired before it was spent), no failed request
#   kill-node       SIGKILL of a node under load through haproxy: the others go on; failed requests
#                   no more than those in flight
#   db-down         PostgreSQL stopped under load: fast 503s that say so, no more operations than
#                   the nodes had leased, all recover when it is back, nothing lost
#   standby         a synchronous streaming standby (pg_basebackup) promoted mid-run: no key version
#                   or lease goes backwards, every ciphertext decrypts on the new primary
#   frozen-sweeper  the node running the rotation sweep frozen (SIGSTOP) with the sweep's lock held:
#                   another node takes the sweep once PostgreSQL ends the frozen transaction; one
#                   new version, not two, when the frozen node wakes
#   session-elsewhere  a peer session held by n1, asked for on n2: 421 naming n1 (message and
#                   QSAPI-Session-Node / -Url headers); 404 once closed, or once n1 restarted after a crash
#   clock-skew      nodes whose clocks are an hour off: periods judged, and rows stamped, by the
#                   database's clock
#   bad-start       a node started on a wrong connection string, a wrong password, another
#                   cluster's database, a schema newer than the binary, another KEK: each refused
#                   with a clear error, the database unchanged
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../../scripts/lib/qsapid_url.sh"
source "$here/../../scripts/lib/cluster.sh"
[[ $# == 3 ]] || { echo "usage: $0 BIN_DIR LOAD FAULT" >&2; exit 2; }
bin=$1 load=$2 fault=$3
qsapid="$bin/qsapid" qsapi="$bin/qsapi"
for tool in "$qsapid" "$qsapi" "$load" "$pgbin/initdb" /usr/sbin/haproxy; do
  [[ -x $tool ]] || { echo "cluster faults: $tool is missing (./scripts/setup.sh, then build)" >&2; exit 1; }
done

dir=$(mktemp -d /tmp/qsapi-faults.XXXXXX)
declare -A pid=() port=() starts=()
cleanup() {
  stop_all
  if [[ -n ${QSAPI_KEEP_FAULTS_DIR:-} ]]; then echo "cluster faults: kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
fail() {
  echo "cluster faults: $fault: FAIL: $*" >&2
  for f in "$dir"/n*.out "$dir"/*.load.err "$dir"/pg*/server.log; do
    [[ -f $f ]] && { echo "--- $f" >&2; tail -15 "$f" >&2; }
  done
  exit 1
}
say() { echo "cluster faults: $fault: $*"; }
now() { date +%s.%N; }
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

pgport=55433
db=pg  # the server the nodes use now (standby: pg, then pg2)

# cluster N [CONNINFO]: PostgreSQL, then N nodes' configurations, cluster init on n1, join on the rest.
cluster() {
  local count=$1 conninfo=${2:-"host=$dir/pg port=$pgport dbname=qsapi user=qsapi"} n
  if [[ ! -d $dir/pg/data ]]; then
    pg_init pg
    pg_start pg "$pgport"
  fi
  psql_at pg "$pgport" 'CREATE DATABASE qsapi' postgres || fail "CREATE DATABASE"
  for i in $(seq 1 "$count"); do
    n=n$i
    port[$n]=$(free_port)
    node_config "$n" "${port[$n]}" "$conninfo" "${SWEEP_SECONDS:-60}" "connect_timeout_seconds = 2"
  done
  "$qsapi" cluster init --config "$dir/n1.toml" >"$dir/init.out" 2>&1 || fail "cluster init: $(cat "$dir/init.out")"
  cluster_id=$(sed -n 's/^    cluster_id = "\([0-9a-f]*\)"$/\1/p' "$dir/init.out")
  [[ ${#cluster_id} == 32 ]] || fail "no cluster id in: $(cat "$dir/init.out")"
  for i in $(seq 1 "$count"); do
    echo "cluster_id = \"$cluster_id\"" >>"$dir/n$i.toml"
    [[ $i == 1 ]] && continue
    "$qsapi" cluster join --from "$dir/n1" --config "$dir/n$i.toml" >"$dir/join-n$i.out" 2>&1 \
      || fail "cluster join n$i: $(cat "$dir/join-n$i.out")"
  done
}

# start NODE [VAR=VALUE...]: starts the node (debug log: its lease lines) with the environment
# given; each start writes its own output file, NODE.K.out.
start() {
  local n=$1
  shift
  starts[$n]=$((${starts[$n]:-0} + 1))
  local out="$dir/$n.${starts[$n]}.out"
  env "$@" "$qsapid" --config "$dir/$n.toml" --log-level debug >"$out" 2>&1 &
  pid[$n]=$!
  qsapid_url "$out" "${pid[$n]}" >/dev/null || fail "$n did not start: $(tail -3 "$out")"
}
stop_node() {  # stop_node NODE SIGNAL
  kill "-$2" "${pid[$1]}" 2>/dev/null || true
  wait "${pid[$1]}" 2>/dev/null || true
  unset "pid[$1]"
}
call() {  # call NODE METHOD PATH [BODY [FLAG...]]
  local n=$1 m=$2 p=$3 body=${4:-}
  shift 3
  [[ $# == 0 ]] || shift
  "$qsapi" call "$m" "$p" ${body:+--data "$body"} "$@" --server "https://127.0.0.1:${port[$n]}" --data-dir "$dir/n1"
}
# load NAME URL THREADS SECONDS [ARG...]: qsapid_load in the background (admin token, the cluster's
# CA), its JSON in NAME.load.json; sets load_pid[NAME].
declare -A load_pid=()
load() {
  local name=$1 url=$2 threads=$3 seconds=$4
  shift 4
  "$load" --url "$url" --ca "$dir/n1/ca/ca.pem" --token-file "$dir/n1/admin-token" --threads "$threads" \
    --seconds "$seconds" --payload-bytes 16 "$@" >"$dir/$name.load.json" 2>"$dir/$name.load.err" &
  load_pid[$name]=$!
}
wait_loads() {
  local name
  for name in "${!load_pid[@]}"; do wait "${load_pid[$name]}" || true; done
  load_pid=()
}
node_url() { echo "https://127.0.0.1:${port[$1]}"; }
make_key() {  # make_key NAME [POLICY-JSON-FIELDS]
  call n1 POST /v1/keys "{\"name\":\"$1\",\"type\":\"AES-256-GCM\"${2:+,$2}}" >/dev/null || fail "create key $1"
}

# check_leases KEY LIMIT LOADS...: the leases of KEY, read from every node's output, against what
# the loads got and what the database holds (database $db), printed as figures.
check_leases() {
  local key=$1 limit=$2
  shift 2
  psql_at "$db" "$pgport" "SELECT v.version, v.ops_leased FROM key_versions v JOIN keys k USING (key_id)
                           WHERE k.name = '$key' ORDER BY v.version" >"$dir/versions.txt" || fail "read key_versions"
  python3 - "$key" "$limit" "$dir/versions.txt" "$dir" "$@" <<'EOF' || fail "the lease check failed"
import glob, json, re, sys
key, limit, versions_file, d = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
loads = sys.argv[5:]
grant = re.compile(r'key "([^"]+)" version (\d+): operations \[(\d+), (\d+)\) of (\d+) leased')
blocks = {}
for f in sorted(glob.glob(d + "/n*.out")):
    for line in open(f, errors="replace"):
        m = grant.search(line)
        if m and m.group(1) == key:
            blocks.setdefault(int(m.group(2)), []).append((int(m.group(3)), int(m.group(4)), f.split("/")[-1]))
leased = {}
for line in open(versions_file):
    v, n = line.strip().split("|")
    leased[int(v)] = int(n)
used = {}
for name in loads:
    for v, n in json.load(open(d + "/" + name + ".load.json"))["per_version"].items():
        used[int(v)] = used.get(int(v), 0) + n
bad = []
for v, bs in blocks.items():
    bs.sort()
    for (a, b, f), (c, e, g) in zip(bs, bs[1:]):
        if c < b:
            bad.append(f"version {v}: blocks [{a},{b}) ({f}) and [{c},{e}) ({g}) overlap")
    if bs[-1][1] > limit:
        bad.append(f"version {v}: a block ends at {bs[-1][1]}, past the limit {limit}")
    if v not in leased or leased[v] < bs[-1][1]:
        bad.append(f"version {v}: the database says {leased.get(v)} leased, a node held up to {bs[-1][1]}")
for v, n in used.items():
    granted = sum(b - a for a, b, _ in blocks.get(v, []))
    if n > limit:
        bad.append(f"version {v}: {n} successful operations, over the limit {limit}")
    if n > granted:
        bad.append(f"version {v}: {n} successful operations but only {granted} granted")
for line in bad:
    print("cluster faults: " + line, file=sys.stderr)
total_used = sum(used.values())
total_granted = sum(b - a for bs in blocks.values() for a, b, _ in bs)
print(f"{total_used} operations over {len(used)} versions (limit {limit} each), "
      f"{sum(len(b) for b in blocks.values())} blocks granted ({total_granted} operations), "
      f"{total_granted - total_used} granted but unused (over-counted, never under-counted)")
sys.exit(1 if bad else 0)
EOF
}

# decrypt_all KEY NODE LOADS...: every ciphertext the loads wrote decrypts on NODE to its plaintext
# and version.
decrypt_all() {
  local key=$1 n=$2 name
  shift 2
  for name in "$@"; do cat "$dir/$name.ct"; done >"$dir/all.ct"
  "$load" --mode decrypt --key "$key" --ciphertexts-in "$dir/all.ct" --url "$(node_url "$n")" \
    --ca "$dir/n1/ca/ca.pem" --token-file "$dir/n1/admin-token" --threads 2 --payload-bytes 16 \
    >"$dir/decrypt.json" 2>"$dir/decrypt.err" || fail "decrypt: $(cat "$dir/decrypt.err")"
  local got errors
  got=$(json "$dir/decrypt.json" 'd["requests"]')
  errors=$(json "$dir/decrypt.json" 'd["errors"]')
  [[ $errors == 0 && $got == $(wc -l <"$dir/all.ct") ]] \
    || fail "only $got of $(wc -l <"$dir/all.ct") ciphertexts decrypted ($errors errors: $(cat "$dir/decrypt.err"))"
  say "all $got ciphertexts decrypt on $n"
}

errors_of() { json "$dir/$1.load.json" 'd["errors"]'; }
kinds_of() { json "$dir/$1.load.json" 'd["errors_by_kind"]'; }

case $fault in
  leases)
    cluster 3
    for n in n1 n2 n3; do start "$n"; done
    make_key k '"max_operations_per_version":5000'
    for n in n1 n2 n3; do load "$n" "$(node_url "$n")" 4 14 --key k --ciphertexts "$dir/$n.ct"; done
    sleep 3
    stop_node n2 KILL
    say "n2 SIGKILLed at 3 s"
    sleep 1
    start n2
    sleep 2
    pg_stop pg fast
    say "PostgreSQL stopped (fast) at 6 s"
    sleep 1
    pg_start pg "$pgport"
    sleep 2
    stop_node n3 KILL
    say "PostgreSQL back at 7 s, n3 SIGKILLed at 9 s"
    sleep 1
    start n3
    wait_loads
    for n in n1 n2 n3; do say "clients of $n: $(json "$dir/$n.load.json" 'd["requests"]') ok, $(errors_of "$n") failed $(kinds_of "$n")"; done
    figures=$(check_leases k 5000 n1 n2 n3)
    say "$figures"
    decrypt_all k n1 n1 n2 n3
    ;;

  storm)
    cluster 3
    for n in n1 n2 n3; do start "$n"; done
    # A limit below one block: each version is leased whole by one node, and the other two find it
    # spent at the same moment, each time.
    make_key k '"max_operations_per_version":200'
    for n in n1 n2 n3; do load "$n" "$(node_url "$n")" 4 10 --key k --ciphertexts "$dir/$n.ct"; done
    wait_loads
    failed=0
    for n in n1 n2 n3; do failed=$((failed + $(errors_of "$n"))); done
    [[ $failed == 0 ]] || fail "$failed requests failed: $(kinds_of n1) $(kinds_of n2) $(kinds_of n3)"
    figures=$(check_leases k 200 n1 n2 n3)
    say "$figures"
    current=$(call n2 GET /v1/keys/k | sed -n 's/.*"current_version":\([0-9]*\).*/\1/p')
    # Exactly one new version per exhaustion: every version before the current one was spent
    # (leased to the limit) before the next was made, and there is one row per version.
    psql_at pg "$pgport" "SELECT count(*), count(*) FILTER (WHERE v.ops_leased = 200 OR v.version = k.current_version)
                          FROM key_versions v JOIN keys k USING (key_id) WHERE k.name = 'k'" >"$dir/spent.txt"
    [[ $(cat "$dir/spent.txt") == "$current|$current" ]] \
      || fail "versions: $(cat "$dir/spent.txt") (rows|spent or current), current version $current"
    rotations=$(grep -h 'rotated to version' "$dir"/n*.out | wc -l)
    [[ $rotations == $((current - 1)) ]] || fail "$rotations rotations logged for $((current - 1)) new versions"
    [[ $current -ge 5 ]] || fail "only $current versions: the storm did not happen"
    say "$((current - 1)) rotations, each made once by one of 3 nodes (by node: $(for n in n1 n2 n3; do
      echo -n "$n $(grep -h 'rotated to version' "$dir/$n".*.out | wc -l) "; done)), no failed request"
    decrypt_all k n3 n1 n2 n3
    ;;

  kill-node)
    cluster 3
    for n in n1 n2 n3; do start "$n"; done
    haproxy_start "$dir/haproxy.cfg" "${port[n1]}" "${port[n2]}" "${port[n3]}"
    pid[haproxy]=$haproxy_pid
    make_key k
    threads=6
    load front "https://127.0.0.1:$haproxy_front" "$threads" 9 --key k --ciphertexts "$dir/front.ct" --timeline-ms 250
    sleep 3
    stop_node n2 KILL
    wait_loads
    failed=$(errors_of front)
    say "$(json "$dir/front.load.json" 'd["requests"]') requests ok through haproxy, $failed failed $(kinds_of front) after n2 was SIGKILLed at 3 s with $threads in flight at most"
    [[ $failed -le $threads ]] || fail "$failed requests failed: more than the $threads in flight"
    # Throughput after the kill: every second from 1 s after it on served requests.
    python3 - "$dir/front.load.json" <<'EOF' || fail "a gap in service after the kill"
import json, sys
t = json.load(open(sys.argv[1]))["timeline"]
before = [ok for ok, _ in t[4:12]]
after = [ok for ok, _ in t[16:-1]]
idle = [i for i in range(16, len(t) - 4) if sum(ok for ok, _ in t[i:i + 4]) == 0]
print(f"cluster faults: kill-node: requests per 250 ms: {min(before)}..{max(before)} before, "
      f"{min(after)}..{max(after)} from 1 s after the kill (2 nodes left)")
sys.exit(1 if idle else 0)
EOF
    decrypt_all k n1 front
    ;;

  db-down)
    cluster 2
    for n in n1 n2; do start "$n"; done
    make_key k
    for n in n1 n2; do
      load "$n" "$(node_url "$n")" 2 9 --key k --ciphertexts "$dir/$n.ct" --timeline-ms 100
    done
    t0=$(now)
    sleep 3
    t_stop=$(now)
    pg_stop pg fast
    sleep 4
    t_back=$(now)
    pg_start pg "$pgport"
    t_ready=$(now)
    wait_loads
    for n in n1 n2; do
      kinds=$(kinds_of "$n")
      say "clients of $n: $(json "$dir/$n.load.json" 'd["requests"]') ok, $(errors_of "$n") failed $kinds, slowest failure $(json "$dir/$n.load.json" 'round(d["error_max_us"]/1000)') ms"
      python3 -c "import json,sys; k=json.load(open(sys.argv[1]))['errors_by_kind']; sys.exit(0 if set(k) <= {'http 503'} else 1)" \
        "$dir/$n.load.json" || fail "$n: failures other than 503: $kinds"
      python3 -c "import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))['error_max_us'] < 3e6 else 1)" \
        "$dir/$n.load.json" || fail "$n: a failure took 3 s or more (not fast)"
      [[ $(errors_of "$n") -gt 0 ]] || fail "$n: no request failed while the database was down for 4 s"
      grep -q 'keystore database' "$dir/$n.load.err" || fail "$n: the 503 does not name the database: $(cat "$dir/$n.load.err")"
      # Served again after the database is back: the first interval with successes and no failure.
      python3 - "$dir/$n.load.json" "$t0" "$t_stop" "$t_back" "$n" "$t_ready" <<'EOF' || fail "$n did not recover"
import json, sys
d = json.load(open(sys.argv[1])); t0, stop, back = map(float, sys.argv[2:5]); n = sys.argv[5]
ready = float(sys.argv[6])
ms = d["timeline_ms"] / 1000
t = d["timeline"]
first_fail = next((i for i, (_, e) in enumerate(t) if e), None)
ok_at = next((i for i in range(int((back - t0) / ms), len(t)) if t[i][0] and not t[i][1]), None)
if first_fail is None or ok_at is None:
    sys.exit(1)
print(f"cluster faults: db-down: {n}: first 503 within {max(0, first_fail * ms - (stop - t0)):.1f} s of the stop "
      f"(every operation reads the store's change counter), served again {ok_at * ms - (back - t0):.1f} s after "
      f"the restart began (PostgreSQL took {ready - back:.1f} s to accept connections)")
EOF
    done
    figures=$(check_leases k 2147483648 n1 n2)
    say "$figures"
    decrypt_all k n2 n1 n2
    ;;

  standby)
    pg_init pg
    pg_start pg "$pgport" -c synchronous_standby_names=pg2 -c synchronous_commit=on
    pg_standby pg2 pg "$pgport"
    pg_start pg2 $((pgport + 1))
    for _ in $(seq 1 50); do
      [[ $(psql_at pg "$pgport" "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'pg2'" postgres) == sync ]] && break
      sleep 0.1
    done
    [[ $(psql_at pg "$pgport" "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'pg2'" postgres) == sync ]] \
      || fail "the standby is not synchronous"
    say "primary pg with synchronous standby pg2 (streaming)"
    cluster 2 "host=$dir/pg,$dir/pg2 port=$pgport,$((pgport + 1)) dbname=qsapi user=qsapi target_session_attrs=read-write"
    for n in n1 n2; do start "$n"; done
    make_key k '"max_operations_per_version":3000'
    for n in n1 n2; do load "$n" "$(node_url "$n")" 2 9 --key k --ciphertexts "$dir/$n.ct" --timeline-ms 250; done
    sleep 4
    pg_stop pg immediate
    "${pg_as[@]}" "$pgbin/pg_ctl" -D "$dir/pg2/data" -w promote >/dev/null || fail "promote pg2"
    say "primary crashed (immediate stop) at 4 s, pg2 promoted"
    wait_loads
    db=pg2
    pgport=$((pgport + 1))
    figures=$(check_leases k 3000 n1 n2)
    say "$figures"
    for n in n1 n2; do say "clients of $n: $(json "$dir/$n.load.json" 'd["requests"]') ok, $(errors_of "$n") failed $(kinds_of "$n")"; done
    decrypt_all k n1 n1 n2
    ;;

  frozen-sweeper)
    SWEEP_SECONDS=1 cluster 2
    start n1 QSAPI_FAULT_POINT=keystore.sweep.before_rotate:stop
    make_key k '"auto_rotate_seconds":8'
    frozen=""
    for _ in $(seq 1 200); do
      if [[ $(awk '{print $3}' "/proc/${pid[n1]}/stat") == T ]]; then frozen=$(now); break; fi
      sleep 0.1
    done
    [[ -n $frozen ]] || fail "n1 never reached the sweep's rotation"
    say "n1 frozen by SIGSTOP inside the sweep, its lock held"
    start n2
    rotated=""
    for _ in $(seq 1 300); do
      if [[ $(psql_at pg "$pgport" "SELECT current_version FROM keys WHERE name = 'k'") == 2 ]]; then rotated=$(now); break; fi
      sleep 0.1
    done
    [[ -n $rotated ]] || fail "no node rotated the key while n1 was frozen"
    grep -q 'rotated key "k"' "$dir"/n2.*.out || fail "the rotation was not n2's"
    say "n2 took the sweep $(python3 -c "print(round($rotated - $frozen, 1))") s after n1 froze (PostgreSQL ends an idle transaction after 15 s)"
    kill -CONT "${pid[n1]}"
    sleep 2
    kill -0 "${pid[n1]}" || fail "n1 died when it woke"
    [[ $(psql_at pg "$pgport" "SELECT count(*) FROM key_versions v JOIN keys k USING (key_id) WHERE k.name = 'k'") == 2 ]] \
      || fail "two rotations: $(psql_at pg "$pgport" "SELECT version FROM key_versions")"
    [[ $(psql_at pg "$pgport" "SELECT count(*) FROM audit WHERE action = 'rotate' AND key_name = 'k'") == 1 ]] \
      || fail "the audit trail records more than one rotation"
    say "n1 woke: its rotation found version 2 already made; one new version, one audit entry"
    call n1 POST /v1/encrypt/k '{"plaintext":"aGk="}' | grep -q '"version":2' || fail "n1 does not encrypt with version 2"
    ;;

  bad-start)
    cluster 1
    start n1
    make_key k
    stop_node n1 TERM
    snapshot() { "$pgbin/pg_dump" -h "$dir/pg" -p "$pgport" -U qsapi -d qsapi --data-only --no-owner | grep -v -e "^--" -e "^\\\\restrict" -e "^\\\\unrestrict" | sha256sum; }
    before=$(snapshot)
    refused() {  # refused NAME PATTERN CONFIG: qsapid on CONFIG exits non-zero with PATTERN, nothing changed
      local name=$1 pattern=$2 cfg=$3
      if "$qsapid" --config "$cfg" >"$dir/$name.bad.out" 2>&1; then fail "$name: qsapid started"; fi
      grep -q -- "$pattern" "$dir/$name.bad.out" || fail "$name: not the clear error expected ($pattern): $(tail -3 "$dir/$name.bad.out")"
      grep -qi 'password=\|hunter2' "$dir/$name.bad.out" && fail "$name: a password in the output"
      [[ $(snapshot) == "$before" ]] || fail "$name: the database changed"
      say "$name: refused: $(grep -m1 -- "$pattern" "$dir/$name.bad.out" | cut -c1-200)"
    }
    sed "s|port=$pgport|port=$((pgport + 9))|" "$dir/n1.toml" >"$dir/noserver.toml"
    refused "no server" "cannot connect\|could not connect\|connection" "$dir/noserver.toml"
    # A role that must give a password (scram-sha-256 for it first in pg_hba.conf), given a wrong one.
    psql_at pg "$pgport" "CREATE ROLE app LOGIN PASSWORD 'right-password'; GRANT ALL ON ALL TABLES IN SCHEMA public TO app" \
      || fail "create role"
    sed -i '1i local all app scram-sha-256' "$dir/pg/data/pg_hba.conf"
    "${pg_as[@]}" "$pgbin/pg_ctl" -D "$dir/pg/data" reload >/dev/null
    sleep 0.5
    before=$(snapshot)
    echo hunter2 >"$dir/wrong-password"
    chmod 600 "$dir/wrong-password"
    sed "s|user=qsapi\"|user=app\"\npassword_file = \"$dir/wrong-password\"|" "$dir/n1.toml" >"$dir/badpassword.toml"
    refused "wrong password" "password authentication failed" "$dir/badpassword.toml"
    sed "s|^cluster_id = .*|cluster_id = \"0123456789abcdef0123456789abcdef\"|" "$dir/n1.toml" >"$dir/othercluster.toml"
    refused "another cluster" "0123456789abcdef0123456789abcdef" "$dir/othercluster.toml"
    # Another KEK: a node whose token was made on its own (qsapi init), not joined.
    sed "s|data_dir = .*|data_dir = \"$dir/lone\"|" "$dir/n1.toml" >"$dir/otherkek.toml"
    "$qsapi" init --data-dir "$dir/lone" >/dev/null 2>&1 || fail "qsapi init of a lone token"
    before=$(snapshot)
    refused "another KEK" "KEK is not the cluster's" "$dir/otherkek.toml"
    psql_at pg "$pgport" "UPDATE qsapi_meta SET value = '2' WHERE name = 'schema_version'"
    before=$(snapshot)
    refused "schema newer" "schema version 2; this build reads version 1" "$dir/n1.toml"
    ;;

  session-elsewhere)
    cluster 2
    start n1  # its first start makes the cluster's deployment CA
    mkdir -m 0700 "$dir/b-peer"
    "$qsapi" ca issue site-b --peer --out "$dir/b-peer/site-b" --config "$dir/n1.toml" >/dev/null 2>"$dir/issue.err" \
      || fail "ca issue: $(cat "$dir/issue.err")"
    cp "$dir/n1/ca/ca.pem" "$dir/b-peer/ca.pem"
    stop_node n1 TERM
    # site-b: one node of its own (SQLite), its peer certificate from the cluster's CA.
    cat >"$dir/b.toml" <<EOF
data_dir = "$dir/b"
[server]
listen = "127.0.0.1:0"
[session]
name = "site-b"
listen = "127.0.0.1:0"
cert_file = "$dir/b-peer/site-b.pem"
key_file = "$dir/b-peer/site-b.key"
ca_file = "$dir/b-peer/ca.pem"
[[peer]]
name = "site-a"
address = "127.0.0.1:9"
EOF
    start b
    b_peer=$(sed -n 's/.*peer link listening on port \([0-9]*\)$/\1/p' "$dir/b.1.out")
    [[ -n $b_peer ]] || fail "site-b printed no peer port"
    for n in n1 n2; do printf '[session]\nname = "site-a"\n[[peer]]\nname = "site-b"\naddress = "127.0.0.1:%s"\n' "$b_peer" >>"$dir/$n.toml"; done
    start n1
    start n2
    id=$(call n1 POST /v1/sessions '{"peer":"site-b"}' | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
    [[ -n $id ]] || fail "n1 established no session"
    say "n1 holds session $id to site-b"
    answered=""
    for _ in $(seq 1 20); do
      if ! call n2 GET "/v1/sessions/$id" "" --status >"$dir/elsewhere.json" 2>"$dir/elsewhere.err" \
          && grep -q '^HTTP 421' "$dir/elsewhere.err"; then answered=1; break; fi
      sleep 0.1
    done
    [[ -n $answered ]] || fail "n2 did not answer 421: $(cat "$dir/elsewhere.err" "$dir/elsewhere.json")"
    grep -q "^QSAPI-Session-Node: n1$" "$dir/elsewhere.err" || fail "no holder header: $(cat "$dir/elsewhere.err")"
    grep -q "^QSAPI-Session-Node-Url: https://127.0.0.1:${port[n1]}$" "$dir/elsewhere.err" \
      || fail "no holder address header: $(cat "$dir/elsewhere.err")"
    grep -q "is held by node n1" "$dir/elsewhere.json" || fail "the message does not name n1: $(cat "$dir/elsewhere.json")"
    say "n2: $(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' "$dir/elsewhere.json")"
    if call n2 POST "/v1/sessions/$id/seal" '{"plaintext":"aGk="}' --status >"$dir/seal2.json" 2>"$dir/seal2.err"; then
      fail "n2 sealed with a session it does not hold"
    fi
    grep -q '^HTTP 421' "$dir/seal2.err" || fail "seal on n2: $(cat "$dir/seal2.err")"
    call n1 POST "/v1/sessions/$id/seal" '{"plaintext":"aGk="}' | grep -q '"envelope":"qse1:' || fail "seal on n1"
    # The holder's record goes with the session: closed on n1, then unknown (404) on n2.
    call n1 DELETE "/v1/sessions/$id" >/dev/null || fail "close the session on n1"
    for _ in $(seq 1 20); do
      call n2 GET "/v1/sessions/$id" "" --status >/dev/null 2>"$dir/closed.err" || true
      grep -q '^HTTP 404' "$dir/closed.err" && break
      sleep 0.1
    done
    grep -q '^HTTP 404' "$dir/closed.err" || fail "n2 after the close: $(cat "$dir/closed.err")"
    # A holder that crashed: its records are dropped when it starts again.
    id=$(call n1 POST /v1/sessions '{"peer":"site-b"}' | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
    stop_node n1 KILL
    call n2 GET "/v1/sessions/$id" "" --status >/dev/null 2>"$dir/crashed.err" || true
    grep -q '^HTTP 421' "$dir/crashed.err" || fail "n2 while n1 is down: $(cat "$dir/crashed.err")"
    start n1
    call n2 GET "/v1/sessions/$id" "" --status >/dev/null 2>"$dir/restarted.err" || true
    grep -q '^HTTP 404' "$dir/restarted.err" || fail "n2 after n1 restarted: $(cat "$dir/restarted.err")"
    say "closed on its holder, or its holder restarted after a crash: 404 on the other node"
    ;;

  clock-skew)
    cluster 3
    start n1
    start n2 QSAPI_FAULT_CLOCK_SKEW_SECONDS=-3600
    start n3 QSAPI_FAULT_CLOCK_SKEW_SECONDS=3600
    say "n2's clock an hour behind, n3's an hour ahead (fault builds: QSAPI_FAULT_CLOCK_SKEW_SECONDS)"
    version() { sed -n 's/.*"version":\([0-9]*\).*/\1/p'; }
    make_key k '"auto_rotate_seconds":4'
    [[ $(call n3 POST /v1/encrypt/k '{"plaintext":"aGk="}' | version) == 1 ]] \
      || fail "n3 (an hour ahead) rotated a key whose period has not ended by the database's clock"
    call n3 POST /v1/keys '{"name":"k3","type":"AES-256-GCM"}' >/dev/null || fail "create k3 on n3"
    skew=$(psql_at pg "$pgport" "SELECT abs(created - floor(extract(epoch FROM now()))) FROM keys WHERE name = 'k3'")
    [[ $skew -le 5 ]] || fail "a key made on n3 carries n3's clock ($skew s off the database's)"
    sleep 5
    [[ $(call n2 POST /v1/encrypt/k '{"plaintext":"aGk="}' | version) == 2 ]] \
      || fail "n2 (an hour behind) did not rotate a key whose period ended by the database's clock"
    [[ $(call n3 POST /v1/encrypt/k '{"plaintext":"aGk="}' | version) == 2 ]] || fail "n3 did not use version 2"
    say "on use, periods are judged by the database's clock: no early rotation an hour ahead, none missed an hour behind; rows carry the database's time"
    ;;

  *) echo "cluster faults: unknown fault $fault" >&2; exit 2 ;;
esac
say ok
