#!/usr/bin/env bash
# scripts/cluster_demo.sh [--bin DIR] [--keep] [--migrate]: three qsapid nodes on one PostgreSQL 15 database,
# behind haproxy in TCP pass-through mode, all on loopback (docs/OPERATIONS.md, "Several nodes").
#
#   PostgreSQL (initdb into a temporary directory, unix socket only) <- n1, n2, n3 <- haproxy <- client
#
# What it shows, each step checked:
#   1. `qsapi cluster init` on n1 (token, KEK, cluster identity), `qsapi cluster join` on n2 and n3
#      (a copy of n1's token), one deployment CA and one admin token for the whole cluster;
#   2. a key created through haproxy is used by every node (encrypt and decrypt round-robin, and on
#      each node directly);
#   3. an API token made with the CLI on one node is accepted by another within 2 s, and refused
#      by every node within 2 s of its revocation;
#   4. a rotation on one node is what the next encryption on another uses;
#   5. n2 killed with SIGKILL: requests through haproxy go on, none fails;
#   6. every node's audit trail verifies, and the keystore's trail (one for the cluster) holds.
# With --migrate, n1 first runs alone on SQLite (a key, a ciphertext, an API token), and step 1 is
# `qsapi store migrate` instead of `cluster init`: the old ciphertext then decrypts on every node,
# the old token works on every node, and the SQLite file is refused from then on.
# Everything it starts is stopped by PID; the temporary directory is removed (unless --keep).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib/qsapid_url.sh"
source "$here/lib/cluster.sh"
bin="$here/../build/release/programs"
keep=0
migrate=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --migrate) migrate=1; shift ;;
    *) echo "usage: $0 [--bin DIR] [--keep] [--migrate]" >&2; exit 2 ;;
  esac
done
qsapid="$bin/qsapid"
qsapi="$bin/qsapi"
for tool in "$qsapid" "$qsapi" "$pgbin/initdb" /usr/sbin/haproxy; do
  [[ -x $tool ]] || { echo "cluster demo: $tool is missing (./scripts/setup.sh, then build)" >&2; exit 1; }
done

dir=$(mktemp -d /tmp/qsapi-cluster.XXXXXX)
declare -A pid=()
cleanup() {
  stop_all
  if [[ $keep == 1 ]]; then echo "cluster demo: kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
fail() {
  echo "cluster demo: FAIL: $*" >&2
  for f in "$dir"/n*.out "$dir"/haproxy.cfg.out; do [[ -f $f ]] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  exit 1
}
step() { echo "cluster demo: $*"; }

# --- PostgreSQL: a server of our own, listening on a unix socket in $dir/pg only -------------
pg_init pg
pg_start pg 55433
psql_at pg 55433 'CREATE DATABASE qsapi' postgres || fail "CREATE DATABASE"
conninfo="host=$dir/pg port=55433 dbname=qsapi user=qsapi"

# --- the nodes' configurations ---------------------------------------------------------------
declare -A port=()
for n in n1 n2 n3; do
  port[$n]=$(free_port)
  node_config "$n" "${port[$n]}" "$conninfo" 5
done

field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }
if [[ $migrate == 1 ]]; then
  step "n1 alone on SQLite: a key, a ciphertext, an API token"
  cat >"$dir/n1-single.toml" <<EOF
data_dir = "$dir/n1"
[server]
listen = "127.0.0.1:${port[n1]}"
EOF
  "$qsapid" --config "$dir/n1-single.toml" >"$dir/n1-single.out" 2>&1 &
  pid[single]=$!
  qsapid_url "$dir/n1-single.out" "${pid[single]}" >/dev/null || fail "n1 did not start on SQLite"
  single=(--server "https://127.0.0.1:${port[n1]}" --data-dir "$dir/n1")
  "$qsapi" call POST /v1/keys --data '{"name":"legacy","type":"AES-256-GCM"}' "${single[@]}" >/dev/null \
    || fail "create key on the single node"
  legacy_ct=$("$qsapi" call POST /v1/encrypt/legacy --data '{"plaintext":"b2xk"}' "${single[@]}" | field ciphertext)
  [[ $legacy_ct == qsapi:v1:* ]] || fail "encrypt on the single node"
  "$qsapi" token create old-app --keys legacy --operations decrypt --config "$dir/n1-single.toml" \
    >"$dir/old-app.token" 2>"$dir/token.err" || fail "token create: $(cat "$dir/token.err")"
  chmod 600 "$dir/old-app.token"
  kill -TERM "${pid[single]}"; wait "${pid[single]}" || fail "the single node exited $? after SIGTERM"; unset 'pid[single]'

  step "qsapi store migrate on n1: SQLite -> PostgreSQL"
  "$qsapi" store migrate --config "$dir/n1.toml" >"$dir/init.out" 2>&1 || fail "store migrate: $(cat "$dir/init.out")"
  cluster_id=$(sed -n 's/^  cluster: *\([0-9a-f]*\)$/\1/p' "$dir/init.out")
  grep -q "added: *api-token old-app" "$dir/init.out" || fail "the token file did not move: $(cat "$dir/init.out")"
  grep -q "added: *deployment-ca ca" "$dir/init.out" || fail "the CA did not move: $(cat "$dir/init.out")"
  if "$qsapid" --config "$dir/n1-single.toml" >"$dir/n1-retired.out" 2>&1; then fail "qsapid started on the moved SQLite file"; fi
  grep -q "was moved to PostgreSQL" "$dir/n1-retired.out" || fail "no clear refusal: $(tail -3 "$dir/n1-retired.out")"
else
  step "qsapi cluster init on n1"
  "$qsapi" cluster init --config "$dir/n1.toml" >"$dir/init.out" 2>&1 || fail "cluster init: $(cat "$dir/init.out")"
  cluster_id=$(sed -n 's/^    cluster_id = "\([0-9a-f]*\)"$/\1/p' "$dir/init.out")
fi
[[ ${#cluster_id} == 32 ]] || fail "no cluster id in: $(cat "$dir/init.out")"
for n in n1 n2 n3; do echo "cluster_id = \"$cluster_id\"" >>"$dir/$n.toml"; done
for n in n2 n3; do
  step "qsapi cluster join on $n"
  "$qsapi" cluster join --from "$dir/n1" --config "$dir/$n.toml" >"$dir/join-$n.out" 2>&1 \
    || fail "cluster join $n: $(cat "$dir/join-$n.out")"
  grep -q "this node holds the KEK of cluster $cluster_id" "$dir/join-$n.out" || fail "join $n: $(cat "$dir/join-$n.out")"
done

start() {
  local n=$1
  "$qsapid" --config "$dir/$n.toml" >"$dir/$n.out" 2>&1 &
  pid[$n]=$!
  qsapid_url "$dir/$n.out" "${pid[$n]}" >/dev/null || fail "$n did not start"
  grep -q "metadata in PostgreSQL .*(cluster $cluster_id)" "$dir/$n.out" || fail "$n: no cluster line"
}
step "starting n1, n2, n3"
for n in n1 n2 n3; do start "$n"; done
[[ -f $dir/n1/admin-token ]] || fail "n1 wrote no admin token"
[[ ! -e $dir/n2/admin-token && ! -e $dir/n3/admin-token ]] || fail "a second admin token was made"
cmp -s "$dir/n1/ca/ca.pem" "$dir/n2/ca/ca.pem" && cmp -s "$dir/n1/ca/ca.pem" "$dir/n3/ca/ca.pem" \
  || fail "the nodes do not share the deployment CA"

# --- haproxy in front: TCP pass-through, round robin, health checks every 500 ms ------------
haproxy_start "$dir/haproxy.cfg" "${port[n1]}" "${port[n2]}" "${port[n3]}"
pid[haproxy]=$haproxy_pid
front=$haproxy_front

via_haproxy=(--server "https://127.0.0.1:$front" --data-dir "$dir/n1")
node() { echo --server "https://127.0.0.1:${port[$1]}" --data-dir "$dir/n1"; }

if [[ $migrate == 1 ]]; then
  step "what n1 held alone serves every node: the old ciphertext, the old token"
  for n in n1 n2 n3; do
    # shellcheck disable=SC2046
    pt=$("$qsapi" call POST /v1/decrypt/legacy --data "{\"ciphertext\":\"$legacy_ct\"}" $(node "$n") \
      --token-file "$dir/old-app.token" | field plaintext)
    [[ $pt == b2xk ]] || fail "$n cannot decrypt what n1 encrypted on SQLite with the token made there"
  done
fi

step "a key made through haproxy serves every node"
"$qsapi" call POST /v1/keys --data '{"name":"demo","type":"AES-256-GCM"}' "${via_haproxy[@]}" >/dev/null \
  || fail "create key"
cts=()
for i in 1 2 3 4 5 6; do
  ct=$("$qsapi" call POST /v1/encrypt/demo --data '{"plaintext":"aGVsbG8="}' "${via_haproxy[@]}" | field ciphertext)
  [[ $ct == qsapi:v1:* ]] || fail "encrypt $i through haproxy"
  cts+=("$ct")
done
for n in n1 n2 n3; do
  for ct in "${cts[@]}"; do
    # shellcheck disable=SC2046
    pt=$("$qsapi" call POST /v1/decrypt/demo --data "{\"ciphertext\":\"$ct\"}" $(node "$n") | field plaintext)
    [[ $pt == aGVsbG8= ]] || fail "$n cannot decrypt a ciphertext of the cluster"
  done
done

step "an API token made on n2 works on n3; revoked on n1, refused everywhere"
"$qsapi" token create app --keys demo --operations encrypt,decrypt --config "$dir/n2.toml" >"$dir/app.token" \
  2>"$dir/token.err" || fail "token create: $(cat "$dir/token.err")"
chmod 600 "$dir/app.token"
accepted=0
for _ in $(seq 1 20); do
  # shellcheck disable=SC2046
  if "$qsapi" call POST /v1/encrypt/demo --data '{"plaintext":"aGk="}' $(node n3) --token-file "$dir/app.token" \
      >/dev/null 2>&1; then accepted=1; break; fi
  sleep 0.1
done
[[ $accepted == 1 ]] || fail "n3 did not accept a token made on n2 within 2 s"
"$qsapi" token revoke app --config "$dir/n1.toml" >/dev/null || fail "token revoke"
refused=0
for _ in $(seq 1 20); do
  refused=1
  for n in n1 n2 n3; do
    # shellcheck disable=SC2046
    if "$qsapi" call POST /v1/encrypt/demo --data '{"plaintext":"aGk="}' $(node "$n") --token-file "$dir/app.token" \
        >/dev/null 2>&1; then refused=0; fi
  done
  [[ $refused == 1 ]] && break
  sleep 0.1
done
[[ $refused == 1 ]] || fail "a revoked token was still accepted 2 s later"

step "a rotation on n2 is what n3 encrypts with next"
# shellcheck disable=SC2046
"$qsapi" call POST /v1/keys/demo/rotate $(node n2) >/dev/null || fail "rotate on n2"
# shellcheck disable=SC2046
ct=$("$qsapi" call POST /v1/encrypt/demo --data '{"plaintext":"aGVsbG8="}' $(node n3) | field ciphertext)
# shellcheck disable=SC2046
info=$("$qsapi" call GET /v1/keys/demo $(node n1))
grep -q '"current_version":2' <<<"$info" || fail "the key is not at version 2: $info"
# shellcheck disable=SC2046
"$qsapi" call POST /v1/decrypt/demo --data "{\"ciphertext\":\"$ct\"}" $(node n1) | grep -q '"version":2' \
  || fail "n3 did not encrypt with version 2"

step "n2 killed with SIGKILL: requests through haproxy go on"
kill -KILL "${pid[n2]}"
wait "${pid[n2]}" 2>/dev/null || true
unset 'pid[n2]'
failed=0
for i in $(seq 1 12); do
  "$qsapi" call POST /v1/encrypt/demo --data '{"plaintext":"aGVsbG8="}' "${via_haproxy[@]}" >/dev/null 2>&1 \
    || failed=$((failed + 1))
done
[[ $failed == 0 ]] || fail "$failed of 12 requests failed after n2 was killed"

step "every node's audit trail verifies; the cluster's keystore trail holds"
for n in n1 n3; do kill -TERM "${pid[$n]}"; wait "${pid[$n]}" || fail "$n exited $? after SIGTERM"; unset "pid[$n]"; done
for n in n1 n2 n3; do
  "$qsapi" audit verify --config "$dir/$n.toml" >"$dir/verify-$n.out" 2>&1 || fail "audit verify $n: $(cat "$dir/verify-$n.out")"
done
"$qsapi" key verify --config "$dir/n3.toml" >"$dir/key-verify.out" 2>&1 || fail "key verify: $(cat "$dir/key-verify.out")"
"$qsapi" cluster status --config "$dir/n3.toml" | grep -q "cluster $cluster_id" || fail "cluster status"
echo "cluster demo: ok"
