#!/usr/bin/env bash
# How fast a carried connection gives up on a silent peer, as the program asked with TCP's
# options (docs/shim.md §3): a client that must fail over fast (libpq's tcp_user_timeout and
# keepalives_*, gRPC, Redis clients) sets them.  Before, both were only remembered: the
# connection waited for the channel's own timeout and the migration period (30 s more), or for
# the liveness probe (minutes) when idle.
# - TCP_USER_TIMEOUT: bytes the peer does not acknowledge for the option's time fail the
#   connection with ETIMEDOUT, as kernel TCP gives up on it (RFC 5482): the stream's user
#   timeout (sst_stream_set_user_timeout).
# - SO_KEEPALIVE with TCP_KEEPIDLE/INTVL/CNT: an idle connection whose peer stays silent is
#   probed and given up with ETIMEDOUT (RFC 1122 4.2.3.6): the stream's keepalive
#   (sst_stream_set_keepalive), the channel's pings.
#
#   $NS_A 10.77.0.1 ======= veth (TCP dropped) ======= 10.77.0.2 $NS_B
#   python client under the shim (in-process          python echo server under the shim
#   engine; then handed to sstd in A)                 (SST_LISTEN 9000, UDP 8662), frozen
#                                                      with SIGSTOP after the first echo
#
# TCP_USER_TIMEOUT 2 s set before connect() (copied at the swap) and after it: SO_ERROR says
# ETIMEDOUT 2.0-5.0 s after the write the frozen peer never acknowledges (the engine looks
# every eighth of the limit: 2.0-2.5 s; the rest is slack for a loaded machine).  Keepalive
# 1 s idle, 2 probes 1 s apart, the client idle: ETIMEDOUT 1.5-6.0 s after the freeze (3 s
# after the peer was last heard).  Without the options the connection is still waiting 6 s
# later (no error).
. "$(dirname "$0")/lib.sh"
lib_init shim_peer_timeouts
need_tool /usr/bin/python3
SHIM=$BUILD/libsstshim.so
[ -f "$SHIM" ] || env_fail "$SHIM not built"

lib_net_up
lib_block_tcp

lib_bg in_b env LD_PRELOAD="$SHIM" SST_LISTEN=9000 SST_PORT=8662 SST_HELPER=off SST_KEYDIR="$LIB_TMP/kb" \
  /usr/bin/python3 -c '
import socket, threading
def echo(c):
    while True:
        b = c.recv(65536)
        if not b:
            break
        c.sendall(b)
    c.close()
s = socket.create_server(("0.0.0.0", 9000))
while True:
    c, _ = s.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
' 2>"$LIB_TMP/server.err"
SRV=$LIB_BG_PID
wait_for_port "$NS_B" 9000

cat >"$LIB_TMP/client.py" <<'PY'
import errno, os, select, socket, sys, time
mode, gate, wait_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
keepalive = mode.startswith("ka-")
def set_options():
    if keepalive:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)
    elif mode != "none":
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 2000)
s = socket.socket()
if mode.endswith("before"):
    set_options()
s.connect(("10.77.0.2", 9000))
if mode.endswith("after"):
    set_options()
s.sendall(b"ping")
assert s.recv(4) == b"ping"
if keepalive:
    assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 1
else:
    assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == (0 if mode == "none" else 2000)
open(gate + ".ready", "w").close()
while not os.path.exists(gate):
    time.sleep(0.01)
t0 = time.time()
if not keepalive:
    s.sendall(b"x" * 1000)
p = select.poll()
p.register(s, select.POLLIN)
p.poll(wait_ms)
dt = time.time() - t0
err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
print(errno.errorcode.get(err, err) if err else "none", f"{dt:.2f}")
PY

# run WHAT MODE WAIT_MS ENV...: the client's verdict and seconds, with the server frozen
# between the first echo and the client's next write; thawed afterwards.
run() {
  local what=$1 mode=$2 wait=$3
  shift 3
  rm -f "$LIB_TMP/gate" "$LIB_TMP/gate.ready"
  in_a timeout 30 env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_PORT=8662 SST_MODE=strict \
    SST_KEYDIR="$LIB_TMP/ka" "$@" /usr/bin/python3 "$LIB_TMP/client.py" "$mode" "$LIB_TMP/gate" "$wait" \
    >"$LIB_TMP/out" 2>&1 &
  local cli=$!
  poll_until 10 test -e "$LIB_TMP/gate.ready" || fail "$what: no echo before the freeze: $(cat "$LIB_TMP/out")"
  kill -STOP "$SRV"
  touch "$LIB_TMP/gate"
  wait "$cli" || { kill -CONT "$SRV"; fail "$what: the client failed: $(cat "$LIB_TMP/out")"; }
  kill -CONT "$SRV"
  read -r verdict secs <"$LIB_TMP/out"
}

for mode in before after; do
  run "in-process, set $mode connect" "$mode" 10000 SST_HELPER=off
  [ "$verdict" = ETIMEDOUT ] || fail "option set $mode connect: SO_ERROR '$verdict' after $secs s, want ETIMEDOUT"
  awk -v t="$secs" 'BEGIN { exit !(t >= 2.0 && t <= 5.0) }' ||
    fail "option set $mode connect: ETIMEDOUT after $secs s, want 2.0-5.0 s"
  log "ok: TCP_USER_TIMEOUT 2000 set $mode connect: ETIMEDOUT after $secs s"
done
# check_ka WHAT: the keepalive verdict of the last run.
check_ka() {
  [ "$verdict" = ETIMEDOUT ] || fail "$1: SO_ERROR '$verdict' after $secs s, want ETIMEDOUT"
  awk -v t="$secs" 'BEGIN { exit !(t >= 1.5 && t <= 6.0) }' || fail "$1: ETIMEDOUT after $secs s, want 1.5-6.0 s"
  log "ok: $1: ETIMEDOUT after $secs s"
}
for mode in before after; do
  run "in-process, keepalive set $mode connect" "ka-$mode" 10000 SST_HELPER=off
  check_ka "in-process, keepalive 1 s / 1 s x 2 set $mode connect"
done
run "in-process, no option" none 6000 SST_HELPER=off
[ "$verdict" = none ] || fail "without the option: SO_ERROR '$verdict' after $secs s, want none within 6 s"
log "ok: without the option the connection still waits after $secs s"

# Handed to sstd: the option set before connect() goes with CONNECT (UTIMEOUT=MS, read from
# the socket inside connect() on a warm channel), one set after it as MARK ... UTIMEOUT=MS;
# sstd's stream then fails the same way, and the app's SO_ERROR says ETIMEDOUT (RESET).
lib_bg in_a "$BUILD/sstd" --foreground --socket "$LIB_TMP/a.sock" --keydir "$LIB_TMP/ka" --log debug \
  2>"$LIB_TMP/sstd-a.log"
poll_until 20 test -S "$LIB_TMP/a.sock" || fail "sstd in A did not start"
in_a timeout 20 env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_PORT=8662 SST_MODE=strict SST_HELPER="$LIB_TMP/a.sock" \
  SST_KEYDIR="$LIB_TMP/ka" /usr/bin/python3 -c "
import socket
s = socket.create_connection(('$IP_B', 9000)); s.sendall(b'w'); assert s.recv(1) == b'w'" ||
  fail "warm-up through sstd failed"
for mode in before after; do
  : >"$LIB_TMP/via.log"
  run "through sstd, set $mode connect" "$mode" 10000 SST_HELPER="$LIB_TMP/a.sock" SST_LOG=debug \
    SST_LOG_FILE="$LIB_TMP/via.log"
  grep -q "handed to the helper inside connect()" "$LIB_TMP/via.log" || fail "$mode: not handed to sstd inside connect()"
  [ "$verdict" = ETIMEDOUT ] || fail "through sstd, option set $mode connect: SO_ERROR '$verdict' after $secs s, want ETIMEDOUT"
  awk -v t="$secs" 'BEGIN { exit !(t >= 2.0 && t <= 5.0) }' ||
    fail "through sstd, option set $mode connect: ETIMEDOUT after $secs s, want 2.0-5.0 s"
  log "ok: through sstd, TCP_USER_TIMEOUT 2000 set $mode connect: ETIMEDOUT after $secs s"
done
grep -q "MARK UTIMEOUT=2000: done" "$LIB_TMP/via.log" || fail "the option set after connect was not told to sstd"
for mode in before after; do
  : >"$LIB_TMP/via.log"
  run "through sstd, keepalive set $mode connect" "ka-$mode" 10000 SST_HELPER="$LIB_TMP/a.sock" SST_LOG=debug \
    SST_LOG_FILE="$LIB_TMP/via.log"
  grep -q "handed to the helper inside connect()" "$LIB_TMP/via.log" || fail "ka-$mode: not handed to sstd inside connect()"
  check_ka "through sstd, keepalive set $mode connect"
done
grep -q "MARK KEEPALIVE=1,1,2: done" "$LIB_TMP/via.log" || fail "keepalive set after connect was not told to sstd"
