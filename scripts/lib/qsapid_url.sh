# scripts/lib/qsapid_url.sh, sourced by the scripts that start qsapid (demo, tests, benchmarks).
#
# qsapid_url OUT PID: waits (30 s at most, less if PID exits) until qsapid, whose output goes to
# the file OUT, prints "qsapid: ready on URL"; prints URL, or returns 1 when it never did.
qsapid_url() {
  local out=$1 pid=$2 url=""
  for _ in $(seq 1 300); do
    url=$(sed -n 's/^qsapid: ready on \(https:[^ ]*\)$/\1/p' "$out" 2>/dev/null)
    [[ -n $url ]] && { echo "$url"; return 0; }
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
