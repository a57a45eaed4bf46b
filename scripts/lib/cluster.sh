# scripts/lib/cluster.sh, sourced by the scripts that run qsapid nodes on PostgreSQL 15
# (scripts/cluster_demo.sh, tests/server/cluster_faults.sh, bench/cluster_bench.sh).
#
# The sourcing script sets $dir (its temporary directory, removed by its own cleanup) and defines
# fail MESSAGE. Every server listens on loopback or on a unix socket in $dir only; everything is
# stopped by PID (the postmaster's from its pid file).
pgbin=/usr/lib/postgresql/15/bin

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# node_config NAME PORT CONNINFO SWEEP_SECONDS [LINE...]: $dir/NAME.toml for a node on PostgreSQL
# (data directory $dir/NAME, API on 127.0.0.1:PORT, node name NAME); each LINE is added to its
# [store] table, which comes last.
node_config() {
  local name=$1 port=$2 conninfo=$3 sweep=$4
  shift 4
  {
    printf 'data_dir = "%s"\n[server]\nlisten = "127.0.0.1:%s"\n' "$dir/$name" "$port"
    printf '[rotation]\nsweep_interval_seconds = %s\n' "$sweep"
    printf '[store]\nbackend = "postgresql"\nconninfo = "%s"\nnode = "%s"\n' "$conninfo" "$name"
    [[ $# == 0 ]] || printf '%s\n' "$@"
  } >"$dir/$name.toml"
}

# As root, the servers run as the postgres user (initdb refuses root).
pg_as=()
pg_prepare() {
  if [[ $(id -u) == 0 ]]; then
    chmod 755 "$dir"
    pg_as=(runuser -u postgres --)
  fi
}

# pg_init NAME: a new database cluster in $dir/NAME/data whose socket directory is $dir/NAME,
# superuser qsapi, trust for local connections (the socket is reachable by this user only).
pg_init() {
  local name=$1
  pg_prepare
  mkdir -p "$dir/$name"
  [[ ${#pg_as[@]} == 0 ]] || chown postgres: "$dir/$name"
  "${pg_as[@]}" "$pgbin/initdb" -D "$dir/$name/data" -U qsapi -A trust --no-instructions >"$dir/$name/initdb.log" 2>&1 \
    || fail "initdb $name: $(tail -3 "$dir/$name/initdb.log")"
}

# pg_start NAME PORT [OPTION...]: starts the server of $dir/NAME on its unix socket only; OPTIONs
# are postgres settings ("-c synchronous_standby_names=*").
pg_start() {
  local name=$1 port=$2
  shift 2
  "${pg_as[@]}" "$pgbin/pg_ctl" -D "$dir/$name/data" -w -t 60 -l "$dir/$name/server.log" \
    -o "-c listen_addresses='' -k $dir/$name -p $port $*" start >/dev/null || fail "PostgreSQL $name did not start"
}

# pg_stop NAME [MODE]: stops it (fast by default: in-flight transactions are cut; immediate: as a crash).
pg_stop() {
  local name=$1 mode=${2:-fast}
  [[ -f $dir/$name/data/postmaster.pid ]] || return 0
  "${pg_as[@]}" "$pgbin/pg_ctl" -D "$dir/$name/data" -m "$mode" -w -t 60 stop >/dev/null 2>&1 || true
}

# stop_all: the cleanup of a script that keeps its processes' PIDs in the associative array pid:
# each SIGKILLed (and SIGCONTed, should it be frozen) and reaped, then every PostgreSQL server.
stop_all() {
  local n
  for n in "${!pid[@]}"; do
    kill -KILL "${pid[$n]}" 2>/dev/null || true
    kill -CONT "${pid[$n]}" 2>/dev/null || true
    wait "${pid[$n]}" 2>/dev/null || true
  done
  pg_kill_all
}

# pg_kill_all: the cleanup's part, for every server under $dir (SIGINT, the fast shutdown, by PID).
pg_kill_all() {
  local pidfile
  for pidfile in "$dir"/*/data/postmaster.pid; do
    [[ -f $pidfile ]] || continue
    kill -INT "$(head -1 "$pidfile")" 2>/dev/null || true
    for _ in $(seq 1 100); do [[ -f $pidfile ]] || break; sleep 0.1; done
  done
}

# psql_at NAME PORT SQL: runs SQL in database qsapi (postgres with a fourth argument), prints the
# rows unaligned, without headers.
psql_at() {
  "$pgbin/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$dir/$1" -p "$2" -U qsapi -d "${4:-qsapi}" -c "$3"
}

# pg_standby NAME PRIMARY PRIMARY_PORT: $dir/NAME becomes a streaming standby of PRIMARY
# (pg_basebackup with -R: standby.signal and primary_conninfo written), named NAME to the primary.
pg_standby() {
  local name=$1 primary=$2 primary_port=$3
  mkdir -p "$dir/$name"
  [[ ${#pg_as[@]} == 0 ]] || chown postgres: "$dir/$name"
  "${pg_as[@]}" "$pgbin/pg_basebackup" -h "$dir/$primary" -p "$primary_port" -U qsapi -D "$dir/$name/data" -R \
    -X stream -c fast -d "application_name=$name" >"$dir/$name/basebackup.log" 2>&1 \
    || fail "pg_basebackup $name: $(tail -3 "$dir/$name/basebackup.log")"
}

# haproxy_start CFG PORT...: haproxy in TCP pass-through mode, round robin over 127.0.0.1:PORT each
# (health checks every 500 ms), on a free front port; sets haproxy_front and haproxy_pid.
haproxy_start() {
  local cfg=$1 i=0 p
  shift
  haproxy_front=$(free_port)
  {
    cat <<EOF
global
  maxconn 256
defaults
  mode tcp
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch
frontend qsapi
  bind 127.0.0.1:$haproxy_front
  default_backend nodes
backend nodes
  balance roundrobin
EOF
    for p in "$@"; do
      i=$((i + 1))
      echo "  server n$i 127.0.0.1:$p check inter 500 fall 1 rise 2"
    done
  } >"$cfg"
  /usr/sbin/haproxy -f "$cfg" -db >"$cfg.out" 2>&1 &
  haproxy_pid=$!
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$haproxy_front") 2>/dev/null && return 0
    sleep 0.1
  done
  fail "haproxy did not listen on $haproxy_front: $(tail -3 "$cfg.out")"
}
