#!/usr/bin/env bash
# shellcheck disable=SC2034  # ES, EA, DS, DA: used through ${!env_name}
# Unmodified clients under heavy and unusual use, carried over SST across a 10 ms RTT emulated
# link with TCP blocked, against unmodified servers behind `sstd --forward`: the in-process
# engine and the sstd hand-off, strict and auto mode, each compared with kernel TCP (same output,
# exit code, byte-exact data, nothing on stderr).
#   * apps_probe.c (epoll edge-triggered, MSG_PEEK, MSG_WAITALL, sendfile, splice both ways,
#     writev of 1024 iovecs, TCP_CORK and MSG_MORE, FIONREAD / SIOCOUTQ), apps_probe.rs (Rust
#     std::net: connect_timeout, nodelay, peek, read timeout, non-blocking, shutdown(Write),
#     try_clone), apps_probe.tcl (tclsh `socket -async`: Tcl binds every client socket to the
#     wildcard with port 0 before connecting, and the shim kept such a socket on kernel TCP --
#     in strict mode with TCP blocked it hung until Tcl gave up; hook_bind.c since 2026-11-22);
#     python: a socket bound to port 0 keeps its port in getsockname; curl --local-port and
#     iperf3 --cport (a port the program named) in strict mode: carried over SST, the port kept
#     (they went to kernel TCP, and hung with TCP blocked);
#   * iperf3 -P 8, -R, --bidir, -n; redis-benchmark -c 100 and -P 16, redis-cli --pipe; curl
#     --parallel over 200 URLs, HTTP/2 prior knowledge to nginx, a 20 MB upload -T, --limit-rate
#     with --max-time (exit 28); wrk keep-alive and Connection: close; scp, sftp and git clone
#     over ssh://;
#   * a curl stopped with SIGSTOP for 30 s mid-transfer (in-process engine and sstd), then
#     continued: the body arrives whole; a server restarted mid-transfer: curl fails with its
#     own error (18), no hang.
# A program whose binary is missing is skipped with a logged reason.
#
#   $NS_A  sst0 10.77.0.1 ==TUN== linkemu (5 ms each way) ==TUN== sst0 10.77.0.2  $NS_B
#          sstd (client side)                                   sstd --forward (own SST_PORT)
#          clients under the shim                               echo, http (PUT), nginx, iperf3,
#                                                               redis, sshd (none preloaded)
. "$(dirname "$0")/lib.sh"
lib_init shim_apps_heavy
need_tool /usr/bin/python3 cc curl
SHIM=$BUILD/libsstshim.so
for b in sstd libsstshim.so; do [ -e "$BUILD/$b" ] || env_fail "$BUILD/$b not built"; done
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=8763   # SST_PORT of this test: never the default port
SA=$LIB_TMP/a.sock
T0=$SECONDS

have() {
  command -v "$1" >/dev/null 2>&1 && return 0
  [ "$1" = sshd ] && [ -x /usr/sbin/sshd ] && return 0
  log "SKIP: '$1' is not installed"
  return 1
}

lib_net_up --link emu --delay 5ms --seed 21
mkdir -p "$LIB_TMP/www"
for i in $(seq 200); do echo "object $i $RANDOM$RANDOM" >"$LIB_TMP/www/o$i.txt"; done
head -c 20000000 /dev/urandom >"$LIB_TMP/www/big"
FWD=7000,8000,8001

# B: an echo server (7000) and an HTTP server that also takes PUT and answers "<bytes> <sha256>".
lib_bg in_b /usr/bin/python3 -c '
import functools, hashlib, http.server, socket, sys, threading
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_PUT(self):
        n, got, h = int(self.headers["Content-Length"]), 0, hashlib.sha256()
        while got < n:
            d = self.rfile.read(min(65536, n - got))
            if not d: break
            h.update(d); got += len(d)
        body = b"%d %s\n" % (got, h.hexdigest().encode())
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True
threading.Thread(target=S(("0.0.0.0", 8000), functools.partial(H, directory=sys.argv[1])).serve_forever,
                 daemon=True).start()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000)); s.listen(256)
def echo(c):
    while d := c.recv(65536):
        c.sendall(d)
    c.close()
while True:
    threading.Thread(target=echo, args=(s.accept()[0],), daemon=True).start()
' "$LIB_TMP/www" 2>"$LIB_TMP/py.err"
HAVE_NGINX=0 HAVE_IPERF=0 HAVE_REDIS=0 HAVE_SSH=0
if have nginx; then
  lib_nginx_http off "  keepalive_requests 100000;
  server { listen 8080; root $LIB_TMP/www; }
  server { listen 8443 http2; root $LIB_TMP/www; }"
  lib_bg in_b nginx -c "$LIB_TMP/nginx.conf"
  HAVE_NGINX=1 FWD=$FWD,8080,8443
fi
if have iperf3; then
  lib_bg in_b iperf3 -s -p 5201 >/dev/null 2>&1
  HAVE_IPERF=1 FWD=$FWD,5201
fi
if have redis-server && have redis-cli && have redis-benchmark; then
  lib_bg in_b redis-server --port 6379 --bind 0.0.0.0 --protected-mode no --save "" --appendonly no \
    --dir "$LIB_TMP" --logfile "$LIB_TMP/redis.log"
  HAVE_REDIS=1 FWD=$FWD,6379
fi
if have ssh && have scp && have sftp && have git && have sshd; then
  lib_sshd_conf 0.0.0.0 "Subsystem sftp internal-sftp"
  in_b /usr/sbin/sshd -f "$LIB_TMP/sshd_config" -E "$LIB_TMP/sshd.log" || fail "sshd did not start"
  poll_until 20 test -s "$LIB_TMP/sshd.pid" || fail "sshd wrote no pid file"
  LIB_BG_PIDS+=("$(cat "$LIB_TMP/sshd.pid")")
  HAVE_SSH=1 FWD=$FWD,2222
fi
for p in 7000 8000; do wait_for_port "$NS_B" $p tcp 20; done
[ $HAVE_NGINX = 1 ] && wait_for_port "$NS_B" 8443 tcp 20
[ $HAVE_IPERF = 1 ] && wait_for_port "$NS_B" 5201 tcp 20
[ $HAVE_REDIS = 1 ] && wait_for_port "$NS_B" 6379 tcp 20
[ $HAVE_SSH = 1 ] && wait_for_port "$NS_B" 2222 tcp 20
lib_bg in_b "$BUILD/sstd" --foreground --port $PORT --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" \
  --forward "$FWD" --log info 2>"$LIB_TMP/b.log"
lib_bg in_a "$BUILD/sstd" --foreground --port $PORT --socket "$SA" --keydir "$LIB_TMP/ka" --log info 2>"$LIB_TMP/a.log"

# The probes, built here (as test_shim_apps.sh builds AppsClient.java).
cc -std=gnu11 -O2 -o "$LIB_TMP/apps_probe" "$HERE/apps_probe.c" 2>"$LIB_TMP/cc.err" || fail "cc: $(cat "$LIB_TMP/cc.err")"
PROBES=("$LIB_TMP/apps_probe $IP_B 7000")
REFUSED=()   # the same probes, also trying a port nobody serves (strict mode and kernel TCP only:
             # auto mode tries kernel TCP after SST's refusal, and that is blocked)
if have rustc; then
  rustc --edition 2021 -C opt-level=1 -o "$LIB_TMP/apps_probe_rs" "$HERE/apps_probe.rs" 2>"$LIB_TMP/rustc.err" ||
    fail "rustc: $(cat "$LIB_TMP/rustc.err")"
  PROBES+=("$LIB_TMP/apps_probe_rs $IP_B 7000")
  REFUSED+=("$LIB_TMP/apps_probe_rs $IP_B 7000 7999")
fi
if have tclsh; then
  PROBES+=("tclsh $HERE/apps_probe.tcl $IP_B 7000")
  REFUSED+=("tclsh $HERE/apps_probe.tcl $IP_B 7000 7999")
fi
cat >"$LIB_TMP/bound.py" <<'PY'
import socket, sys
s = socket.socket(); s.bind(("0.0.0.0", 0)); before = s.getsockname()[1]
s.connect((sys.argv[1], 7000)); ip, port = s.getsockname()
s.sendall(b"bound"); print("python bound port 0: same port", port == before, "ip", ip, "echo", s.recv(5).decode())
PY
PROBES+=("/usr/bin/python3 $LIB_TMP/bound.py $IP_B")
poll_until 20 test -S "$SA" || fail "no sstd socket in A"
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "no sstd socket in B"

# probes LABEL PROBES|REFUSED [env...]: every probe of that list in A, stdout to LABEL.out,
# stderr to LABEL.err.
probes() {
  local label=$1 p
  local -n list=$2
  shift 2
  : >"$LIB_TMP/$label.out"
  for p in "${list[@]}"; do
    # shellcheck disable=SC2086  # the probe's words
    in_a env "$@" timeout 60 $p >>"$LIB_TMP/$label.out" 2>>"$LIB_TMP/$label.err" ||
      fail "$label: '${p%% *}' exited $?: $(tail -n 3 "$LIB_TMP/$label.out" "$LIB_TMP/$label.err")"
  done
}

log "kernel TCP: the probes"
probes tcp PROBES
[ -s "$LIB_TMP/tcp.err" ] && fail "kernel TCP run wrote to stderr: $(head -3 "$LIB_TMP/tcp.err")"
grep -q "epoll-et: sent 4194304 echoed 4194304 same 1 rdhup 1 edges>1 1" "$LIB_TMP/tcp.out" || fail "baseline: $(cat "$LIB_TMP/tcp.out")"
grep -q "python bound port 0: same port True ip $IP_A echo bound" "$LIB_TMP/tcp.out" || fail "baseline: $(cat "$LIB_TMP/tcp.out")"
probes tcp-refused REFUSED
lib_block_tcp
in_a timeout 3 curl -s -o /dev/null "http://$IP_B:8000/o1.txt" && fail "TCP is not blocked: the test would not prove SST"

SHIMENV=(LD_PRELOAD="$SHIM" SST_PEERS="$IP_B,$IP6_B" SST_PORT="$PORT" SST_LOG=info SST_LOG_FILE="$LIB_TMP/shim.log")
ES=("${SHIMENV[@]}" SST_MODE=strict SST_HELPER=off SST_KEYDIR="$LIB_TMP/k-es")
EA=("${SHIMENV[@]}" SST_MODE=auto SST_HELPER=off SST_KEYDIR="$LIB_TMP/k-ea")
DS=("${SHIMENV[@]}" SST_MODE=strict SST_HELPER="$SA" SST_KEYDIR="$LIB_TMP/k-ds")
DA=("${SHIMENV[@]}" SST_MODE=auto SST_HELPER="$SA" SST_KEYDIR="$LIB_TMP/k-da")

# SIGSTOP for 30 s mid-transfer, in the background while the rest runs: --limit-rate keeps the
# transfer going until the stop.
stopped() {   # LABEL env...: a curl of 20 MB that will be stopped
  local label=$1
  shift
  in_a env "$@" timeout 90 curl -sS --limit-rate 4M -o "$LIB_TMP/$label.body" "http://$IP_B:8080/big" \
    2>"$LIB_TMP/$label.err"
  echo $? >"$LIB_TMP/$label.rc"
}
STOPPED=()
if [ $HAVE_NGINX = 1 ]; then
  for m in es ds; do
    env_name="${m^^}[@]"
    stopped "stop-$m" "${!env_name}" &
    LIB_BG_PIDS+=($!)
  done
  sleep 1.5
  for m in es ds; do
    pid=$(pgrep -f "^curl -sS --limit-rate 4M -o $LIB_TMP/stop-$m.body") || fail "stop-$m: curl not running"
    [ "$(stat -c %s "$LIB_TMP/stop-$m.body" 2>/dev/null || echo 0)" -gt 0 ] || fail "stop-$m: nothing received yet"
    kill -STOP "$pid"
    STOPPED+=("$pid")
  done
  STOP_T=$SECONDS
  log "two curls stopped mid-transfer (in-process engine, sstd)"
fi

for m in es ds ea da; do
  env_name="${m^^}[@]"
  log "the probes under the shim ($m)"
  probes "$m" PROBES "${!env_name}"
  diff "$LIB_TMP/tcp.out" "$LIB_TMP/$m.out" >"$LIB_TMP/$m.diff" || fail "$m: not as over kernel TCP: $(cat "$LIB_TMP/$m.diff")"
  [ -s "$LIB_TMP/$m.err" ] && fail "$m: stderr: $(head -3 "$LIB_TMP/$m.err")"
done
for m in es ds; do
  env_name="${m^^}[@]"
  probes "$m-refused" REFUSED "${!env_name}"
  diff "$LIB_TMP/tcp-refused.out" "$LIB_TMP/$m-refused.out" >"$LIB_TMP/$m.diff" ||
    fail "$m: not as over kernel TCP: $(cat "$LIB_TMP/$m.diff")"
done
log "ok: $(wc -l <"$LIB_TMP/tcp.out") probe lines as over kernel TCP in every mode, nothing on stderr"

# run LABEL EXPECT_RC env... -- cmd...: a client in A, its rc checked, and its stderr empty
# when it succeeds.
run() {
  local label=$1 want=$2 rc
  shift 2
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  in_a env "${envs[@]}" timeout 60 "$@" >"$LIB_TMP/$label.out" 2>"$LIB_TMP/$label.err"
  rc=$?
  [ "$rc" = "$want" ] || fail "$label: exit $rc, want $want: $(tail -3 "$LIB_TMP/$label.err")"
  [ "$want" != 0 ] || [ ! -s "$LIB_TMP/$label.err" ] || fail "$label: stderr: $(head -3 "$LIB_TMP/$label.err")"
}

URLS=()
for i in $(seq 200); do URLS+=("http://$IP_B:8000/o$i.txt"); done
for m in es ds; do
  env_name="${m^^}[@]"
  log "curl ($m): --parallel --parallel-max 50 over 200 URLs, a 20 MB upload, --limit-rate --max-time"
  mkdir -p "$LIB_TMP/par-$m"
  (cd "$LIB_TMP/par-$m" && run "par-$m" 0 "${!env_name}" -- curl -sS --parallel --parallel-max 50 --remote-name-all "${URLS[@]}")
  diff -r -q --exclude=big "$LIB_TMP/www" "$LIB_TMP/par-$m" >/dev/null || fail "par-$m: the 200 files differ"
  run "put-$m" 0 "${!env_name}" -- curl -sS -T "$LIB_TMP/www/big" "http://$IP_B:8000/up"
  assert_eq "20000000 $(sha256sum <"$LIB_TMP/www/big" | cut -d' ' -f1)" "$(cat "$LIB_TMP/put-$m.out")" "upload ($m) as the server read it"
  in_a env "${!env_name}" timeout 30 curl -sS --limit-rate 1M --max-time 1 -o /dev/null "http://$IP_B:8000/big" 2>"$LIB_TMP/rate-$m.err"
  assert_eq 28 $? "curl --limit-rate 1M --max-time 1 ($m): exit"
  grep -q "Operation timed out after 10[0-9][0-9] milliseconds with [0-9]* out of 20000000 bytes" "$LIB_TMP/rate-$m.err" ||
    fail "rate-$m: $(cat "$LIB_TMP/rate-$m.err")"
  # A port the program named (curl --local-port): strict mode carries it over SST, the port
  # stays the socket's name (before 2026-11-22: kernel TCP, which hung here with TCP blocked).
  run "lport-$m" 0 "${!env_name}" -- curl -sS --local-port 40100-40200 -o /dev/null -w '%{http_code} %{local_port}' \
    "http://$IP_B:8000/o1.txt"
  assert_eq "200 40100" "$(cat "$LIB_TMP/lport-$m.out")" "curl --local-port ($m, strict): status and local port"
  if [ $HAVE_NGINX = 1 ]; then
    run "h2-$m" 0 "${!env_name}" -- curl -sS --http2-prior-knowledge -o "$LIB_TMP/h2-$m.body" -w '%{http_version} %{http_code}' \
      "http://$IP_B:8443/big"
    assert_eq "2 200" "$(cat "$LIB_TMP/h2-$m.out")" "curl --http2-prior-knowledge ($m)"
    cmp -s "$LIB_TMP/www/big" "$LIB_TMP/h2-$m.body" || fail "h2-$m: body differs"
  fi
done

if [ $HAVE_NGINX = 1 ]; then
  for m in es ds; do
    env_name="${m^^}[@]"
    log "wrk -c 64 -t 2 ($m): keep-alive, then Connection: close"
    for hdr in keep-alive close; do
      run "wrk-$m-$hdr" 0 "${!env_name}" -- wrk -c 64 -t 2 -d 1 -H "Connection: $hdr" "http://$IP_B:8080/o1.txt"
      grep -q "Socket errors\|Non-2xx" "$LIB_TMP/wrk-$m-$hdr.out" && fail "wrk $m $hdr: $(cat "$LIB_TMP/wrk-$m-$hdr.out")"
      n=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$LIB_TMP/wrk-$m-$hdr.out")
      assert_range 200 10000000 "$n" "wrk $m Connection: $hdr requests"
    done
  done
fi

if [ $HAVE_IPERF = 1 ]; then
  log "iperf3 -P 8 and --bidir (in-process engine), -R and -n with --cport (sstd)"
  for m in es ds; do
    env_name="${m^^}[@]"
    if [ $m = es ]; then forms=("-P 8 -t 2" "--bidir -t 1"); else forms=("-R -t 1" "-n 20M --cport 40300"); fi
    for args in "${forms[@]}"; do
      # shellcheck disable=SC2086
      run "iperf-$m" 0 "${!env_name}" -- iperf3 -c "$IP_B" -J $args
      /usr/bin/python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert not r.get("error"), r.get("error")
e = r["end"]
assert e["sum_received"]["bytes"] > 0, "nothing received"
if sys.argv[2].startswith("-n 20M"):
    assert e["sum_sent"]["bytes"] == 20 * 1024 * 1024, e["sum_sent"]["bytes"]
if "sum_received_bidir_reverse" in e:
    assert e["sum_received_bidir_reverse"]["bytes"] > 0, "nothing received in reverse"
' "$LIB_TMP/iperf-$m.out" "$args" 2>"$LIB_TMP/iperf.err" || fail "iperf3 $args ($m): $(tail -2 "$LIB_TMP/iperf.err")"
    done
  done
  log "ok: iperf3 in every form, no error"
fi

if [ $HAVE_REDIS = 1 ]; then
  for i in $(seq 20000); do printf 'SET key:%d val%d\r\n' "$i" "$i"; done >"$LIB_TMP/pipe.txt"
  for m in es ds; do
    env_name="${m^^}[@]"
    log "redis ($m): redis-benchmark -c 100 and -P 16, redis-cli --pipe"
    run "rb-$m" 0 "${!env_name}" -- redis-benchmark -h "$IP_B" -c 100 -n 5000 -t set,get --csv
    run "rbp-$m" 0 "${!env_name}" -- redis-benchmark -h "$IP_B" -P 16 -n 20000 -t set,get --csv
    grep -q '^"SET"' "$LIB_TMP/rb-$m.out" && grep -q '^"GET"' "$LIB_TMP/rbp-$m.out" || fail "redis-benchmark $m: $(cat "$LIB_TMP/rb-$m.out")"
    in_a env "${!env_name}" timeout 60 redis-cli -h "$IP_B" FLUSHALL >/dev/null || fail "FLUSHALL ($m)"
    run "pipe-$m" 0 "${!env_name}" -- redis-cli -h "$IP_B" --pipe <"$LIB_TMP/pipe.txt"
    grep -q "errors: 0, replies: 20000" "$LIB_TMP/pipe-$m.out" || fail "redis-cli --pipe $m: $(cat "$LIB_TMP/pipe-$m.out")"
    assert_eq 20000 "$(in_a env "${!env_name}" timeout 20 redis-cli -h "$IP_B" DBSIZE)" "keys after --pipe ($m)"
  done
fi

if [ $HAVE_SSH = 1 ]; then
  SSHO="-i $LIB_TMP/userkey -p 2222 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes"
  git init -q --bare "$LIB_TMP/repo.git"
  git -C "$LIB_TMP" init -q src && cp "$LIB_TMP/www/o"1*.txt "$LIB_TMP/src/" &&
    git -C "$LIB_TMP/src" add . && git -C "$LIB_TMP/src" -c user.email=t@t -c user.name=t commit -qm t &&
    git -C "$LIB_TMP/src" push -q "$LIB_TMP/repo.git" HEAD:master || fail "cannot make a repository"
  for m in es ds; do
    env_name="${m^^}[@]"
    log "ssh ($m): scp and sftp of 20 MB, git clone ssh://"
    # shellcheck disable=SC2086
    run "scp-$m" 0 "${!env_name}" -- scp -P 2222 ${SSHO/-p 2222/} "root@$IP_B:$LIB_TMP/www/big" "$LIB_TMP/scp-$m"
    cmp -s "$LIB_TMP/www/big" "$LIB_TMP/scp-$m" || fail "scp $m: differs"
    echo "get $LIB_TMP/www/big $LIB_TMP/sftp-$m" >"$LIB_TMP/sftp.cmd"
    # shellcheck disable=SC2086
    run "sftp-$m" 0 "${!env_name}" -- sftp -P 2222 ${SSHO/-p 2222/} -b "$LIB_TMP/sftp.cmd" "root@$IP_B"
    cmp -s "$LIB_TMP/www/big" "$LIB_TMP/sftp-$m" || fail "sftp $m: differs"
    run "clone-$m" 0 "${!env_name}" GIT_SSH_COMMAND="ssh $SSHO" -- git clone -q "ssh://root@$IP_B:2222$LIB_TMP/repo.git" "$LIB_TMP/clone-$m"
    diff -r -q --exclude=.git "$LIB_TMP/src" "$LIB_TMP/clone-$m" || fail "git clone $m: differs"
  done
fi

log "a server killed and restarted mid-transfer: curl's own error (18) at once, then a new transfer works"
SERVE='import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8001)); s.listen(8)
while True:
    c, _ = s.accept(); c.recv(4096)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n" + b"x" * 3000000)
    open(sys.argv[1], "w").close()
    if sys.argv[2] == "whole":
        c.sendall(b"x" * 7000000); c.close()'
for m in es ds; do
  env_name="${m^^}[@]"
  rm -f "$LIB_TMP/sent"
  lib_bg in_b /usr/bin/python3 -c "$SERVE" "$LIB_TMP/sent" part
  server=$LIB_BG_PID
  wait_for_port "$NS_B" 8001
  in_a env "${!env_name}" timeout 30 curl -sS -o "$LIB_TMP/cut-$m" "http://$IP_B:8001/" 2>"$LIB_TMP/cut-$m.err" &
  client=$!
  poll_until 20 test -e "$LIB_TMP/sent" || fail "restart $m: the server sent nothing"
  sleep 0.3
  kill -KILL "$server"; wait "$server" 2>/dev/null
  t=$SECONDS
  wait "$client"
  assert_eq 18 $? "curl ($m) whose server was killed mid-transfer: exit"
  assert_range 0 3 $((SECONDS - t)) "seconds from the kill to curl's exit ($m)"
  grep -q "transfer closed with 7000000 bytes remaining to read" "$LIB_TMP/cut-$m.err" ||
    fail "restart $m: $(cat "$LIB_TMP/cut-$m.err")"
  lib_bg in_b /usr/bin/python3 -c "$SERVE" "$LIB_TMP/sent" whole
  wait_for_port "$NS_B" 8001
  run "again-$m" 0 "${!env_name}" -- curl -sS -o "$LIB_TMP/again-$m" "http://$IP_B:8001/"
  assert_eq 10000000 "$(stat -c %s "$LIB_TMP/again-$m")" "bytes from the restarted server ($m)"
  kill -KILL "$LIB_BG_PID"; wait "$LIB_BG_PID" 2>/dev/null
done

if [ ${#STOPPED[@]} -gt 0 ]; then
  left=$((30 - (SECONDS - STOP_T)))
  [ $left -gt 0 ] && { log "waiting ${left}s more: the curls stay stopped 30 s"; sleep $left; }
  kill -CONT "${STOPPED[@]}"
  log "continued after $((SECONDS - STOP_T)) s"
  for m in es ds; do
    poll_until 30 test -s "$LIB_TMP/stop-$m.rc" || fail "stop-$m: curl did not finish within 30 s of SIGCONT"
    assert_eq 0 "$(cat "$LIB_TMP/stop-$m.rc")" "curl stopped 30 s ($m): exit ($(cat "$LIB_TMP/stop-$m.err"))"
    cmp -s "$LIB_TMP/www/big" "$LIB_TMP/stop-$m.body" || fail "stop-$m: body differs"
  done
  log "ok: both stopped curls completed byte-exact"
fi
grep -q "carrying connection over sst" "$LIB_TMP/shim.log" || fail "the shim log shows no SST connection"
grep -q "carrying connection over sst (SST_PEERS match, warm helper)" "$LIB_TMP/shim.log" ||
  fail "the shim log shows no connection handed to sstd"
grep -q "over tcp" "$LIB_TMP/shim.log" && fail "a connection went over kernel TCP: $(grep -m3 'over tcp' "$LIB_TMP/shim.log")"
log "PASS in $((SECONDS - T0)) s"
