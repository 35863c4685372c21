# Helpers for scripts/bench.sh: servers in namespace B, clients in namespace A, one result line
# per run in $RES ("scenario<TAB>variant<TAB>rep<TAB>json").  Sourced after tests/integration/lib.sh.
# shellcheck shell=bash

PERF=$BUILD/tools/sst_perf
TCPB=$BUILD/tools/bench_tcp
SST_SRV_PID=
SST_SRV_CONF=
IPERF_PID=
TCP_SRV_PID=
TCP_SRV_CONF=

# Machine and build facts for the report header (key: value lines).
bench_meta() {
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  echo "cores: $(nproc)"
  echo "memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "kernel: $(uname -r)"
  echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
  # BENCH_COMMIT: say what was built when BUILD is not this tree's build (e.g. a clean export).
  echo "commit: ${BENCH_COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- core 2>/dev/null || echo ' (core/ has uncommitted changes)')}"
  echo "libsodium: $(pkg-config --modversion libsodium 2>/dev/null)"
  echo "iperf3: $(iperf3 --version 2>/dev/null | head -1)"
  echo "quick: $QUICK"
  echo "reps: $REPS"
}
bench_meta_duration() { echo "duration_s: $1"; }

# record SCENARIO VARIANT REP JSON
record() {
  local json=$4
  [ -n "$json" ] || json='{"ok":false,"error":"no output"}'
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$json" >>"$RES"
  local short
  short=$(/usr/bin/python3 -c '
import json, sys
try:
    j = json.loads(sys.argv[1])
except Exception as e:
    print("BAD JSON", e); sys.exit()
out = []
for k in ("goodput_bps", "bulk_goodput_bps"):
    if k in j: out.append("%s=%.1fM" % (k, j[k] / 1e6))
if "latency_us" in j: out.append("p50=%.1fms p99=%.1fms" % (j["latency_us"]["p50"] / 1e3, j["latency_us"]["p99"] / 1e3))
for k in ("rate_per_s", "server_heap_per", "failures"):
    if k in j: out.append("%s=%s" % (k, j[k]))
if not j.get("ok", True): out.append("FAILED: %s" % j.get("error"))
print(" ".join(out))' "$json")
  log "  $1 | $2 | rep $3 | $short"
}

# capture CMD...: the command's last JSON line, or a failure object with its exit status.
capture() {
  local out rc line
  out=$("$@" 2>>"$OUT/stderr.log"); rc=$?
  line=$(grep '^{' <<<"$out" | tail -1)
  if [ -z "$line" ]; then
    line="{\"ok\":false,\"error\":\"exit status $rc, no JSON\"}"
  fi
  echo "$line"
}

# net_up ARGS...: (re)builds the namespace pair; servers inside die with the old namespaces.
net_up() {
  lib_net_up "$@"
  SST_SRV_PID= SST_SRV_CONF= IPERF_PID= TCP_SRV_PID= TCP_SRV_CONF=
}

ns_of() { [ "$1" = A ] && echo "$NS_A" || echo "$NS_B"; }

stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# sst_server SECURITY CC [ADDR] [NS A|B]: (re)starts the sst_perf server unless the same one runs.
sst_server() {
  local sec=$1 cc=$2 addr=${3:-$IP_B} ns=${4:-B}
  local conf="$sec $cc $addr $ns"
  if [ -n "$SST_SRV_PID" ] && [ "$conf" = "$SST_SRV_CONF" ] && kill -0 "$SST_SRV_PID" 2>/dev/null; then
    return 0
  fi
  stop_pid "$SST_SRV_PID"
  lib_bg ip netns exec "$(ns_of "$ns")" "$PERF" server --bind "$addr:5201" --security "$sec" --cc "$cc" \
    --buffer "$BUF" 2>>"$OUT/server.log"
  SST_SRV_PID=$LIB_BG_PID
  SST_SRV_CONF=$conf
  wait_for_port "$(ns_of "$ns")" 5201 udp 5
}

# Streams left by a memory run make a graceful exit slow (stream_free walks all streams).
sst_server_kill() {
  [ -n "$SST_SRV_PID" ] && kill -KILL "$SST_SRV_PID" 2>/dev/null
  wait "$SST_SRV_PID" 2>/dev/null
  SST_SRV_PID= SST_SRV_CONF=
}

# sst_client ARGS...: one sst_perf client run in namespace A; prints its JSON.
# SST_TARGET overrides the server address, SST_BUF the stream buffer (0 = engine default).
sst_client() {
  capture ip netns exec "$NS_A" timeout 300 "$PERF" client "${SST_TARGET:-$IP_B:5201}" --json \
    --buffer "${SST_BUF-$BUF}" --timeout 280 "$@"
}

iperf_server() {
  if [ -n "$IPERF_PID" ] && kill -0 "$IPERF_PID" 2>/dev/null; then return 0; fi
  lib_bg ip netns exec "$NS_B" iperf3 -s -p 5202 >>"$OUT/iperf-server.log" 2>&1
  IPERF_PID=$LIB_BG_PID
  wait_for_port "$NS_B" 5202 tcp 5
}

# iperf_client SECONDS CC: kernel TCP bulk upload A -> B with that congestion control.
iperf_client() {
  iperf_server
  local raw
  raw=$(ip netns exec "$NS_A" timeout $(($1 + 30)) iperf3 -c "$IP_B" -p 5202 -t "$1" -C "$2" -J 2>>"$OUT/stderr.log")
  /usr/bin/python3 "$ROOT/scripts/bench/iperf_summary.py" <<<"$raw"
}

# tcp_server [ADDR] [NS]: bench_tcp server on port 5203.
tcp_server() {
  local addr=${1:-$IP_B} ns=${2:-B}
  local conf="$addr $ns"
  if [ -n "$TCP_SRV_PID" ] && [ "$conf" = "$TCP_SRV_CONF" ] && kill -0 "$TCP_SRV_PID" 2>/dev/null; then
    return 0
  fi
  stop_pid "$TCP_SRV_PID"
  lib_bg ip netns exec "$(ns_of "$ns")" "$TCPB" server --bind "$addr:5203" 2>>"$OUT/server.log"
  TCP_SRV_PID=$LIB_BG_PID
  TCP_SRV_CONF=$conf
  wait_for_port "$(ns_of "$ns")" 5203 tcp 5
}

stop_servers() {
  stop_pid "$SST_SRV_PID"
  stop_pid "$TCP_SRV_PID"
  stop_pid "$IPERF_PID"
  SST_SRV_PID= TCP_SRV_PID= IPERF_PID=
}

ns_cc() { lib_set_cc "$1" "$2" >/dev/null; }

# fair_pair REP SECONDS: an SST cubic upload and an iperf3 cubic upload start together and
# share the bottleneck; each one's goodput is recorded.
fair_pair() {
  local rep=$1 secs=$2 f1 f2 p1 p2
  iperf_server
  f1=$(mktemp "$OUT/fair.XXXXXX")
  f2=$(mktemp "$OUT/fair.XXXXXX")
  sst_client --time "$secs" --security strong --cc cubic >"$f1" &
  p1=$!
  ip netns exec "$NS_A" timeout $((secs + 30)) iperf3 -c "$IP_B" -p 5202 -t "$secs" -C cubic -J 2>>"$OUT/stderr.log" |
    /usr/bin/python3 "$ROOT/scripts/bench/iperf_summary.py" >"$f2" &
  p2=$!
  wait "$p1" "$p2"
  record fair "SST strong cubic" "$rep" "$(cat "$f1")"
  record fair "TCP cubic" "$rep" "$(cat "$f2")"
  rm -f "$f1" "$f2"
}
