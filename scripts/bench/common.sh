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
  echo "engine default cc: $(engine_default_cc)"
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
if "pages" in j:
    t = sorted(x for p in j["pages"] for x in p["load_ms"])
    if t: out.append("page load ms median=%.0f max=%.0f" % (t[len(t) // 2], t[-1]))
for k in ("rate_per_s", "server_heap_per", "failures"):
    if k in j: out.append("%s=%s" % (k, j[k]))
if not j.get("ok", True): out.append("FAILED: %s" % j.get("error"))
print(" ".join(out))' "$json")
  log "  $1 | $2 | rep $3 | $short"
}

# proc_cpu_s PID: user + system CPU seconds of a running process (empty if it is gone).
proc_cpu_s() {
  [ -r "/proc/$1/stat" ] || return 0
  awk -v t="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / t }' "/proc/$1/stat"
}

# with_server_cpu JSON C0 C1: the JSON with "server_cpu_s": C1 - C0 (the server's CPU during the run).
with_server_cpu() {
  /usr/bin/python3 -c 'import json, sys
j = json.loads(sys.argv[1])
if sys.argv[2] and sys.argv[3]:
    j["server_cpu_s"] = round(float(sys.argv[3]) - float(sys.argv[2]), 2)
print(json.dumps(j))' "$1" "$2" "$3" 2>/dev/null || echo "$1"
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
  SSTD_A_PID= SSTD_B_PID= HTTP_B_PID=
  NGTCP2_PID= KCP_SRV_PID= KCP_CLI_PID=
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

# Ends a server at once (a memory run leaves tens of thousands of streams to free at exit).
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

# fair_pair REP SECONDS CC SCENARIO FIRST: an SST upload (congestion control CC) and an iperf3
# cubic upload share the bottleneck; each one's goodput is recorded, with "first" (sst|tcp) added
# to both records.  The flow whose data starts first keeps the larger share for a run of this
# length (scripts/bench/bottlenecks.md, "Fairness": a lead of 1-3 round trips decides it, either
# way, for either controller), and launched together SST's data would always lead by 60-150 ms
# (iperf3 exchanges parameters over a control connection first).  So every repetition runs both
# orders, the second flow launched FAIR_LAG seconds after the first: SST first, its data leads by
# about FAIR_LAG plus iperf3's set-up; TCP first, iperf3's data leads by about FAIR_LAG minus
# iperf3's set-up plus SST's one-round-trip handshake.
FAIR_LAG=${FAIR_LAG:-0.3}
fair_pair() {
  local rep=$1 secs=$2 cc=$3 scen=$4 first=$5 f1 f2 p1 p2
  iperf_server
  f1=$(mktemp "$OUT/fair.XXXXXX")
  f2=$(mktemp "$OUT/fair.XXXXXX")
  if [ "$first" = tcp ]; then
    ip netns exec "$NS_A" timeout $((secs + 30)) iperf3 -c "$IP_B" -p 5202 -t "$secs" -C cubic -J 2>>"$OUT/stderr.log" |
      /usr/bin/python3 "$ROOT/scripts/bench/iperf_summary.py" >"$f2" &
    p2=$!
    sleep "$FAIR_LAG"
    sst_client --time "$secs" --security strong --cc "$cc" >"$f1" &
    p1=$!
  else
    sst_client --time "$secs" --security strong --cc "$cc" >"$f1" &
    p1=$!
    sleep "$FAIR_LAG"
    ip netns exec "$NS_A" timeout $((secs + 30)) iperf3 -c "$IP_B" -p 5202 -t "$secs" -C cubic -J 2>>"$OUT/stderr.log" |
      /usr/bin/python3 "$ROOT/scripts/bench/iperf_summary.py" >"$f2" &
    p2=$!
  fi
  wait "$p1" "$p2"
  record "$scen" "SST strong $cc" "$rep" "$(with_first "$first" <"$f1")"
  record "$scen" "TCP cubic" "$rep" "$(with_first "$first" <"$f2")"
  rm -f "$f1" "$f2"
}

# with_first sst|tcp: the JSON on stdin with "first" added (unparsable input passes unchanged).
with_first() {
  /usr/bin/python3 -c 'import json, sys
t = sys.stdin.read()
try:
    j = json.loads(t)
    j["first"] = sys.argv[1]
    print(json.dumps(j))
except Exception:
    print(t.strip())' "$1"
}

# tcp_fair_pair REP SECONDS SCENARIO: the kernel reference for fair_pair -- an iperf3 bbr upload
# (to the usual server on 5202) and an iperf3 cubic upload (to a one-test server on 5206) start
# together on the same link; shows what Linux's own BBR does against cubic there.
tcp_fair_pair() {
  local rep=$1 secs=$2 scen=$3 f1 f2 p1 p2 srv
  iperf_server
  lib_bg ip netns exec "$NS_B" iperf3 -s -1 -p 5206 >>"$OUT/iperf-server.log" 2>&1
  srv=$LIB_BG_PID
  wait_for_port "$NS_B" 5206 tcp 5
  f1=$(mktemp "$OUT/fair.XXXXXX")
  f2=$(mktemp "$OUT/fair.XXXXXX")
  ip netns exec "$NS_A" timeout $((secs + 30)) iperf3 -c "$IP_B" -p 5202 -t "$secs" -C bbr -J 2>>"$OUT/stderr.log" |
    /usr/bin/python3 "$ROOT/scripts/bench/iperf_summary.py" >"$f1" &
  p1=$!
  ip netns exec "$NS_A" timeout $((secs + 30)) iperf3 -c "$IP_B" -p 5206 -t "$secs" -C cubic -J 2>>"$OUT/stderr.log" |
    /usr/bin/python3 "$ROOT/scripts/bench/iperf_summary.py" >"$f2" &
  p2=$!
  wait "$p1" "$p2"
  stop_pid "$srv"
  record "$scen" "TCP bbr" "$rep" "$(cat "$f1")"
  record "$scen" "TCP cubic" "$rep" "$(cat "$f2")"
  rm -f "$f1" "$f2"
}

# ---- the shim rows: unmodified programs under LD_PRELOAD=libsstshim.so -------------------------
SHIM_LIB=$BUILD/libsstshim.so
SSTD_B_PID=
SSTD_A_PID=
HTTP_B_PID=

# The engine's default congestion control (core/host.c sst_host_config_default): the targets
# belong to the default configuration, so the report evaluates them on that row.
engine_default_cc() {
  sed -n 's/.*c->cc = SST_CC_\([A-Z]*\);.*/\1/p' "$ROOT/core/host.c" | head -1 | tr 'A-Z' 'a-z'
}

# The servers below are started from the main shell (shim_servers), never inside the $(...) of a
# measurement: a daemon started there would hold the substitution's pipe open, and its pid would
# be lost with the subshell.

# sstd_gateway: sstd in B on UDP 8661 delivering SST streams for iperf3 (5202, and 5210-5249 for
# the shim rows' one-test servers), bench_tcp (5203), the HTTP server (8080) and the page-load
# nginx (8090) to the local services; once per namespace pair.
sstd_gateway() {
  if [ -n "$SSTD_B_PID" ] && kill -0 "$SSTD_B_PID" 2>/dev/null; then return 0; fi
  rm -f "$LIB_TMP/sstd-b.sock"
  lib_bg ip netns exec "$NS_B" "$BUILD/sstd" --foreground --socket "$LIB_TMP/sstd-b.sock" \
    --keydir "$LIB_TMP/keys-b" --forward 5202,5203,5210-5249,8080,8090 --log warn >>"$OUT/sstd.log" 2>&1
  SSTD_B_PID=$LIB_BG_PID
  poll_until 5 test -S "$LIB_TMP/sstd-b.sock" || fail "sstd in B did not start"
}

# sstd_client: sstd in A that keeps channels warm for shimmed programs (SST_HELPER=its socket).
sstd_client() {
  if [ -n "$SSTD_A_PID" ] && kill -0 "$SSTD_A_PID" 2>/dev/null; then return 0; fi
  rm -f "$LIB_TMP/sstd-a.sock"
  lib_bg ip netns exec "$NS_A" "$BUILD/sstd" --foreground --socket "$LIB_TMP/sstd-a.sock" \
    --keydir "$LIB_TMP/keys-a" --log warn >>"$OUT/sstd.log" 2>&1
  SSTD_A_PID=$LIB_BG_PID
  poll_until 5 test -S "$LIB_TMP/sstd-a.sock" || fail "sstd in A did not start"
}

# nginx_b PORT ROOT NAME: a one-process nginx in B (no daemon, no master; keep-alive without a
# practical limit, sendfile, no access log) serving ROOT on PORT; prints nothing, sets LIB_BG_PID.
nginx_b() {
  local port=$1 root=$2 dir=$LIB_TMP/$3-nginx conf=$LIB_TMP/$3-nginx.conf
  mkdir -p "$dir/logs" "$dir/tmp"
  cat >"$conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/tmp;
  proxy_temp_path $dir/tmp;
  fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp;
  scgi_temp_path $dir/tmp;
  sendfile on;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  server {
    listen 0.0.0.0:$port backlog=4096;
    root $root;
  }
}
NGINX
  lib_bg ip netns exec "$NS_B" nginx -c "$conf" -p "$dir" >>"$OUT/nginx.log" 2>&1
  wait_for_port "$NS_B" "$port" tcp 5
}

# http_server: nginx in B on 8080 serving $LIB_TMP/www (f<size> files) for the curl rows.  Until
# 2026-11-22 it was python http.server, whose own time per request (0.4-1.6 ms on loopback here,
# against nginx's 0.2-0.4) sat inside the 2 ms the warm-channel target allows the transport.
http_server() {
  if [ -n "$HTTP_B_PID" ] && kill -0 "$HTTP_B_PID" 2>/dev/null; then return 0; fi
  mkdir -p "$LIB_TMP/www"
  local s
  for s in "${TXN_SIZES[@]}"; do
    [ -f "$LIB_TMP/www/f$s" ] || head -c "$s" /dev/urandom >"$LIB_TMP/www/f$s"
  done
  nginx_b 8080 "$LIB_TMP/www" http
  HTTP_B_PID=$LIB_BG_PID
}

# The shim's environment for A: strict (SST or the connect fails), so every shim row is proof
# that SST carried it.  SST_HELPER=off: the process's own engine.
shim_env() {
  echo LD_PRELOAD="$SHIM_LIB" SST_PEERS="$IP_B" SST_MODE=strict SST_KEYDIR="$LIB_TMP/keys-shim" "$@"
}

# shim_iperf_client SECONDS CC: unmodified iperf3 upload A -> B through the shim's in-process
# engine (SST_CC=CC) and sstd --forward 5202 in B.  iperf3 opens a control and a data connection:
# two streams on one channel.  No -C: the congestion controller is SST's, not the kernel's.
# Needs shim_iperf_server (just before) and sstd_gateway running.
shim_iperf_client() {
  local raw
  # shellcheck disable=SC2046
  raw=$(ip netns exec "$NS_A" timeout $(($1 + 30)) env $(shim_env SST_HELPER=off SST_CC="$2") \
    iperf3 -c "$IP_B" -p "$SHIM_IPERF_PORT" -t "$1" -J 2>>"$OUT/stderr.log")
  /usr/bin/python3 "$ROOT/scripts/bench/iperf_summary.py" <<<"$raw" |
    /usr/bin/python3 -c 'import json, sys
j = json.loads(sys.stdin.read()); j.update(transport="sst-shim", cc=sys.argv[1]); print(json.dumps(j))' "$2"
}

# curl_rr N SIZE [shim]: N sequential curl GETs of a SIZE-byte file from B's nginx (8080), plain
# kernel TCP or through the shim with sstd in A holding the channel warm.  Needs shim_servers.
curl_rr() {
  local n=$1 size=$2 mode=${3:-tcp} envs=()
  if [ "$mode" = shim ]; then
    # shellcheck disable=SC2207
    envs=($(shim_env SST_HELPER="$LIB_TMP/sstd-a.sock"))
  fi
  capture ip netns exec "$NS_A" /usr/bin/python3 "$ROOT/scripts/bench/curl_rr.py" --n "$n" \
    --url "http://$IP_B:8080/f$size" --size "$size" --transport "$mode" -- "${envs[@]}"
}

# shim_iperf_server: a one-test iperf3 server (-1) in B on the next port of 5210-5249.
SHIM_IPERF_PORT=5209
shim_iperf_server() {
  SHIM_IPERF_PORT=$((SHIM_IPERF_PORT + 1))
  [ "$SHIM_IPERF_PORT" -le 5249 ] || SHIM_IPERF_PORT=5210
  lib_bg ip netns exec "$NS_B" iperf3 -s -1 -p "$SHIM_IPERF_PORT" >>"$OUT/iperf-server.log" 2>&1
  wait_for_port "$NS_B" "$SHIM_IPERF_PORT" tcp 5
}

# shim_servers: iperf3 -s, nginx (8080) and sstd --forward in B, sstd in A.
shim_servers() {
  iperf_server
  http_server
  sstd_gateway
  sstd_client
}

stop_shim_servers() {
  stop_pid "$SSTD_A_PID"
  stop_pid "$SSTD_B_PID"
  stop_pid "$HTTP_B_PID"
  SSTD_A_PID= SSTD_B_PID= HTTP_B_PID=
}

# proc_cpu PID: user + system CPU seconds of a process so far (0 if it is gone).
proc_cpu() {
  awk -v t="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# shim_rate N MODE(inproc|sstd): bench_tcp's connect/request/close loop (64 in flight, 1-byte
# answers), unmodified, under the shim in A (SST_MODE=strict: SST or nothing) against bench_tcp in
# B (0.0.0.0:5203) behind sstd --forward 5203, across the namespace pair.  inproc: the shim's
# in-process engine (SST_HELPER=off); sstd: handed to sstd in A on its warm channel, whose CPU
# over the run is added to the JSON as helper_cpu_s.  Needs tcp_server 0.0.0.0 B, shim_servers.
shim_rate() {
  local n=$1 mode=$2 envs c0 c1 out
  if [ "$mode" = sstd ]; then
    # shellcheck disable=SC2207
    envs=($(shim_env SST_HELPER="$LIB_TMP/sstd-a.sock"))
  else
    # shellcheck disable=SC2207
    envs=($(shim_env SST_HELPER=off))
  fi
  c0=$(proc_cpu "$SSTD_A_PID")
  out=$(capture ip netns exec "$NS_A" env "${envs[@]}" timeout 120 "$TCPB" client "$IP_B:5203" \
    --rate "$n" --size 1 --window 64 --json --timeout 100)
  c1=$(proc_cpu "$SSTD_A_PID")
  /usr/bin/python3 -c 'import json, sys
j = json.loads(sys.argv[1]); j.update(transport="sst-shim", helper=sys.argv[2])
if sys.argv[2] == "sstd": j["helper_cpu_s"] = round(float(sys.argv[4]) - float(sys.argv[3]), 3)
print(json.dumps(j))' "$out" "$mode" "$c0" "$c1"
}

# wrk_run SECONDS PRELOAD(0|1) CONNHDR(keepalive|close): wrk against nginx on 127.0.0.1:8088 in
# namespace A; with PRELOAD both run under the shim with SST_PEERS naming an unrelated address
# (192.0.2.1, TEST-NET-1), so the shim is active but carries nothing.  wrk_cpu.py adds the CPU
# time nginx and wrk used per request (the robust number on a shared machine) to wrk's req/s.
wrk_run() {
  local secs=$1 pre=$2 conn=$3 envs=() hdr=() pid
  if [ "$pre" = 1 ]; then
    envs=(LD_PRELOAD="$SHIM_LIB" SST_PEERS=192.0.2.1 SST_HELPER=off SST_KEYDIR="$LIB_TMP/keys-shim")
  fi
  [ "$conn" = close ] && hdr=(-H "Connection: close")
  lib_bg ip netns exec "$NS_A" env "${envs[@]}" nginx -c "$LIB_TMP/nginx.conf" -p "$LIB_TMP/nginx" \
    >>"$OUT/nginx.log" 2>&1
  pid=$LIB_BG_PID
  wait_for_port "$NS_A" 8088 tcp 5
  ip netns exec "$NS_A" /usr/bin/python3 "$ROOT/scripts/bench/wrk_cpu.py" --server-pid "$pid" \
    --preload "$pre" --connection "$conn" -- env "${envs[@]}" timeout $((secs + 30)) \
    wrk -t1 -c32 -d"${secs}s" "${hdr[@]}" http://127.0.0.1:8088/index.html 2>>"$OUT/stderr.log"
  stop_pid "$pid"
}

# nginx_conf: a one-process nginx (no daemon, no master) serving a 612-byte page on 8088.
nginx_conf() {
  mkdir -p "$LIB_TMP/nginx/logs" "$LIB_TMP/nginx/html" "$LIB_TMP/nginx/tmp"
  head -c 612 /dev/urandom | base64 -w 76 | head -c 612 >"$LIB_TMP/nginx/html/index.html"
  cat >"$LIB_TMP/nginx.conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $LIB_TMP/nginx/nginx.pid;
error_log $LIB_TMP/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $LIB_TMP/nginx/tmp;
  proxy_temp_path $LIB_TMP/nginx/tmp;
  fastcgi_temp_path $LIB_TMP/nginx/tmp;
  uwsgi_temp_path $LIB_TMP/nginx/tmp;
  scgi_temp_path $LIB_TMP/nginx/tmp;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:8088;
    root $LIB_TMP/nginx/html;
  }
}
NGINX
}

# ---- TCP Fast Open row of the transaction benchmark (4) --------------------------------------
TFO_SRV_PID=

# tfo_server: Fast Open on in both namespaces (net.ipv4.tcp_fastopen is per namespace: 1 = client,
# 2 = server; the root namespace is never touched) and a bench_tcp --fastopen server on 5204, so
# the plain TCP row keeps its own server on 5203.  The namespaces must be fresh (net_up).
tfo_server() {
  local ns
  for ns in "$NS_A" "$NS_B"; do
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_fastopen=3 || fail "cannot enable tcp_fastopen in $ns"
  done
  stop_pid "$TFO_SRV_PID"
  lib_bg ip netns exec "$NS_B" "$TCPB" server --bind "$IP_B:5204" --fastopen 2>>"$OUT/server.log"
  TFO_SRV_PID=$LIB_BG_PID
  wait_for_port "$NS_B" 5204 tcp 5
}

# tfo_counters NS: the namespace's TcpExtTCPFastOpen* counters as "name value" lines.
tfo_counters() { ip netns exec "$1" nstat -asz 'TcpExtTCPFastOpen*' 2>/dev/null | grep '^TcpExt'; }

# tfo_client N SIZE: bench_tcp --rr --fastopen (its warm-up fetches the cookie), plus the kernel's
# own proof: the Fast Open counters of both namespaces over the run ("nstat" in the JSON; the
# client's TcpExtTCPFastOpenActive and the server's ...Passive count the connections whose SYN
# data was accepted, the warm-up included once it has a cookie).  A transaction that fell back to a
# normal handshake shows as fastopen_syn_data < transactions; report.py flags such a row.
tfo_client() {
  local a0 b0 a1 b1 json
  a0=$(tfo_counters "$NS_A"); b0=$(tfo_counters "$NS_B")
  json=$(capture ip netns exec "$NS_A" timeout 300 "$TCPB" client "$IP_B:5204" --rr "$1" --size "$2" \
    --fastopen --timeout 280)
  a1=$(tfo_counters "$NS_A"); b1=$(tfo_counters "$NS_B")
  /usr/bin/python3 -c '
import json, sys
def parse(t):
    return {l.split()[0]: int(l.split()[1]) for l in t.splitlines() if len(l.split()) >= 2}
j = json.loads(sys.argv[1])
a0, b0, a1, b1 = (parse(x) for x in sys.argv[2:6])
j["nstat"] = {"client": {k: a1[k] - a0.get(k, 0) for k in a1}, "server": {k: b1[k] - b0.get(k, 0) for k in b1}}
print(json.dumps(j))' "$json" "$a0" "$b0" "$a1" "$b1"
}

# ---- (5) web-style page loads -----------------------------------------------------------------
PAGES_NGINX_PID=

# pages_server: the synthetic site (tests/tools/page_load.py gen, fixed seed) served by nginx in B
# on 8090 (one process, keep-alive without a practical limit, sendfile), which sstd in B also
# forwards; sstd in A holds the warm channel for the shim rows.
pages_server() {
  local www=$LIB_TMP/pages-www
  [ -f "$www/pages.json" ] || /usr/bin/python3 "$ROOT/tests/tools/page_load.py" gen --dir "$www" \
    >>"$OUT/stderr.log" || fail "page_load.py gen failed"
  stop_pid "$PAGES_NGINX_PID"
  nginx_b 8090 "$www" pages
  PAGES_NGINX_PID=$LIB_BG_PID
  sstd_gateway
  sstd_client
}

# page_load tcp|shim MODE PARALLEL [--keep]: one page_load.py run (every page once, after an
# untimed warm-up page) from A; "shim" runs the loader itself under the shim in strict mode with
# SST_HELPER naming sstd in A, so every connection is a stream on sstd's warm channel.
page_load() {
  local tr=$1 mode=$2 par=$3 envs=()
  shift 3
  # shellcheck disable=SC2207
  [ "$tr" = shim ] && envs=($(shim_env SST_HELPER="$LIB_TMP/sstd-a.sock"))
  capture ip netns exec "$NS_A" timeout 600 env "${envs[@]}" /usr/bin/python3 "$ROOT/tests/tools/page_load.py" \
    load --base "http://$IP_B:8090" --manifest "$LIB_TMP/pages-www/pages.json" --mode "$mode" \
    --parallel "$par" --transport "$tr" --timeout 120 "$@"
}

# ---- other encrypted user-space transports on the same link (benchmark 1, issue [bench]) --------
# ngtcp2: Debian's ngtcp2-server/-client examples (gtlsserver/gtlsclient, 0.12, GnuTLS), HTTP/3.
# kcptun: Debian's kcptun, a TCP-over-KCP tunnel, with iperf3 through it.  docs/benchmarking.md
# says why each option is what it is.
NGTCP2_PORT=4433
NGTCP2_PID=
NGTCP2_CC=
# TLS 1.3 with AES-256-GCM only: the same AEAD as SST's strong suite.
NGTCP2_CIPHERS='NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-256-GCM'
KCP_PORT=29900
KCP_LOCAL=12948
KCP_SRV_PID=
KCP_CLI_PID=
KCP_KEY=sstshim-bench
# Fast mode (kcptun's default profile), no compression (SST does not compress and iperf3's data
# is random anyway), send/receive windows of 4096 packets (~5.5 MB at 1350 bytes), about the
# 4 MiB stream buffers SST runs with (kcptun's default client windows, 128/512 packets, cap it
# at ~33 Mbit/s on the veth), and no FEC (--ds 0 --ps 0): these links lose nothing at random,
# and the default 10+3 Reed-Solomon shards halved kcptun's goodput on the veth (~200 vs ~390
# Mbit/s in a trial).  Every choice favours kcptun; none tunes it down.
KCP_OPTS=(--mode fast --nocomp --sndwnd 4096 --rcvwnd 4096 --ds 0 --ps 0 --quiet)
# kcptun's "aes" is AES-256-CFB keyed from --key (pbkdf2) with a CRC32 checksum per packet —
# confidentiality but no authentication, i.e. weaker than an AEAD; the strongest it offers.
KCP_CRYPT=aes

# ngtcp2_cert: a self-signed P-256 certificate for gtlsserver in the run's temp dir.
ngtcp2_cert() {
  [ -f "$LIB_TMP/ngtcp2/cert.pem" ] && return 0
  mkdir -p "$LIB_TMP/ngtcp2"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench \
    -keyout "$LIB_TMP/ngtcp2/key.pem" -out "$LIB_TMP/ngtcp2/cert.pem" >/dev/null 2>&1 ||
    env_fail "openssl could not make a certificate"
}

# ngtcp2_server CC: gtlsserver in B on UDP 4433 (sender of the download) unless one with CC runs.
ngtcp2_server() {
  local cc=$1
  if [ -n "$NGTCP2_PID" ] && [ "$cc" = "$NGTCP2_CC" ] && kill -0 "$NGTCP2_PID" 2>/dev/null; then
    return 0
  fi
  stop_pid "$NGTCP2_PID"
  ngtcp2_cert
  lib_bg ip netns exec "$NS_B" gtlsserver -q --no-quic-dump --no-http-dump --cc="$cc" \
    --ciphers="$NGTCP2_CIPHERS" --max-dyn-length=8G -d "$LIB_TMP/ngtcp2" \
    "$IP_B" "$NGTCP2_PORT" "$LIB_TMP/ngtcp2/key.pem" "$LIB_TMP/ngtcp2/cert.pem" >>"$OUT/ngtcp2-server.log" 2>&1
  NGTCP2_PID=$LIB_BG_PID
  NGTCP2_CC=$cc
  wait_for_port "$NS_B" "$NGTCP2_PORT" udp 5
}

# ngtcp2_client BYTES CC: A downloads BYTES generated bytes from gtlsserver in B over HTTP/3.
ngtcp2_client() {
  local bytes=$1 cc=$2
  ngtcp2_server "$cc"
  capture ip netns exec "$NS_A" /usr/bin/python3 "$ROOT/scripts/bench/ngtcp2_get.py" \
    --url "https://$IP_B:$NGTCP2_PORT/$bytes" --bytes "$bytes" --dir "/dev/shm/sst-bench-ngtcp2.$$" \
    --server-pid "$NGTCP2_PID" --cc "$cc" --cipher AES-256-GCM --timeout 280 -- \
    gtlsclient -q --no-quic-dump --no-http-dump --exit-on-all-streams-close \
    --ciphers="$NGTCP2_CIPHERS" "$IP_B" "$NGTCP2_PORT"
}

# kcptun_pair: kcptun-server in B (UDP 29900 -> iperf3 on B's 127.0.0.1:5202) and kcptun-client
# in A (TCP 127.0.0.1:12948 -> UDP), once per namespace pair.
kcptun_pair() {
  iperf_server
  if [ -z "$KCP_SRV_PID" ] || ! kill -0 "$KCP_SRV_PID" 2>/dev/null; then
    lib_bg ip netns exec "$NS_B" kcptun-server -l "$IP_B:$KCP_PORT" -t 127.0.0.1:5202 \
      --crypt "$KCP_CRYPT" --key "$KCP_KEY" "${KCP_OPTS[@]}" >>"$OUT/kcptun.log" 2>&1
    KCP_SRV_PID=$LIB_BG_PID
    wait_for_port "$NS_B" "$KCP_PORT" udp 5
  fi
  if [ -z "$KCP_CLI_PID" ] || ! kill -0 "$KCP_CLI_PID" 2>/dev/null; then
    lib_bg ip netns exec "$NS_A" kcptun-client -l "127.0.0.1:$KCP_LOCAL" -r "$IP_B:$KCP_PORT" \
      --crypt "$KCP_CRYPT" --key "$KCP_KEY" "${KCP_OPTS[@]}" >>"$OUT/kcptun.log" 2>&1
    KCP_CLI_PID=$LIB_BG_PID
    wait_for_port "$NS_A" "$KCP_LOCAL" tcp 5
  fi
}

# kcptun_client SECONDS: iperf3 upload A -> B through the tunnel (iperf3 itself sees loopback TCP;
# goodput is what the iperf3 server in B received).
kcptun_client() {
  kcptun_pair
  local raw
  raw=$(ip netns exec "$NS_A" timeout $(($1 + 30)) iperf3 -c 127.0.0.1 -p "$KCP_LOCAL" -t "$1" -J 2>>"$OUT/stderr.log")
  /usr/bin/python3 "$ROOT/scripts/bench/iperf_summary.py" <<<"$raw" |
    /usr/bin/python3 -c 'import json, sys
j = json.loads(sys.stdin.read())
j.pop("retransmits", None)  # iperf3 counts its loopback TCP socket, not the tunnel
j.update(transport="kcptun", cc="kcp", crypt=sys.argv[1], kcp_opts=sys.argv[2])
print(json.dumps(j))' "$KCP_CRYPT" "${KCP_OPTS[*]}"
}

stop_peers() {
  stop_pid "$NGTCP2_PID"
  stop_pid "$KCP_CLI_PID"
  stop_pid "$KCP_SRV_PID"
  NGTCP2_PID= KCP_CLI_PID= KCP_SRV_PID=
}
