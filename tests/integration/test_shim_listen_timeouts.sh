#!/usr/bin/env bash
# A server under SST_LISTEN gives up on a silent client as fast as it asked with TCP's options
# (docs/shim.md §6c "Timeouts"): sshd's TCPKeepAlive, redis's tcp-keepalive, nginx's
# so_keepalive= set them on the accepted socket or the listening one.  That socket's peer is
# the loopback bridge, which never goes silent: before, the options acted on it alone, and the
# server learnt of a dead client only from the engine's liveness probe (~150 s).  Now they also
# reach the stream that carries the connection (sst_stream_set_user_timeout / _keepalive).
#
#   $NS_A 10.77.0.1 ======= veth (TCP dropped) ======= 10.77.0.2 $NS_B
#   python clients under the shim (in-process          python server under the shim (SST_LISTEN
#   engine, strict), each frozen with SIGSTOP          9000-9003; UDP 8671):
#   once the server set its options                    9000 accepted in the listening process,
#                                                      one thread each; 9001 and 9003
#                                                      (TCP_USER_TIMEOUT 2000 on the listener)
#                                                      accepted in a pre-forked worker; 9002
#                                                      accepted by the listening process, served
#                                                      by a child forked per connection
#                                                      (postgres's way)
#
# - ut (9000): TCP_USER_TIMEOUT 2000 set on the accepted socket; the server writes 1000 bytes
#   the frozen client never acknowledges: its read fails 2.0-5.0 s later (the engine looks every
#   eighth of the limit: 2.0-2.5 s; the rest is slack for a loaded machine).
# - ka (9000): SO_KEEPALIVE, TCP_KEEPIDLE 1, TCP_KEEPINTVL 1, TCP_KEEPCNT 2 on the accepted
#   socket, the server only reads: its read fails 1.5-6.0 s after the freeze (3 s after last
#   heard).
# - lut (9003): nothing set on the accepted socket, TCP_USER_TIMEOUT 2000 copied from the
#   listener by the kernel, the worker writes: 2.0-5.0 s (the listening process reads the
#   listener's options for the bridge).
# - wka (9001): the worker sets the keepalive and only reads: 1.5-6.0 s (its options go to the
#   listening process's mailbox; the listener's user timeout has nothing unacknowledged).
# - fut (9002): the forked child sets TCP_USER_TIMEOUT 2000 and writes: 2.0-5.0 s.
# - exec (9002): the child execs a new python that sets TCP_USER_TIMEOUT: that image cannot
#   reach the bridge; said once at info level, and the socket answers what was set.
# - none (9000): no option: no error 6 s after the freeze.
# The read's error is ECONNRESET: the bridge resets its loopback socket when the stream fails;
# no unprivileged call can give a kernel TCP socket ETIMEDOUT (docs/shim.md §6c).
. "$(dirname "$0")/lib.sh"
lib_init shim_listen_timeouts
need_tool /usr/bin/python3
SHIM=$BUILD/libsstshim.so
[ -f "$SHIM" ] || env_fail "$SHIM not built"

lib_net_up
lib_block_tcp

cat >"$LIB_TMP/server.py" <<'PY'
import errno, os, select, socket, sys, threading, time
tmp = sys.argv[1]
T = socket.IPPROTO_TCP
EXEC = """
import os, socket, sys
c = socket.socket(fileno=int(sys.argv[1]))
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 2000)
assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 2000
c.sendall(b"ok\\n")
assert c.recv(3) == b"go\\n"
open(os.path.join(sys.argv[2], sys.argv[3] + ".ready"), "w").close()
with open(os.path.join(sys.argv[2], sys.argv[3] + ".out"), "w") as o:
    o.write("exec 0\\n")
"""
def ka(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.setsockopt(T, socket.TCP_KEEPIDLE, 1)
    s.setsockopt(T, socket.TCP_KEEPINTVL, 1)
    s.setsockopt(T, socket.TCP_KEEPCNT, 2)
def handle(c):
    f = c.makefile("rb")
    mode, name = f.readline().decode().split()
    if mode == "ut":
        c.setsockopt(T, socket.TCP_USER_TIMEOUT, 2000)
        assert c.getsockopt(T, socket.TCP_USER_TIMEOUT) == 2000
    elif mode == "ka":
        ka(c)
        assert c.getsockopt(T, socket.TCP_KEEPIDLE) == 1 and c.getsockopt(T, socket.TCP_KEEPCNT) == 2
    elif mode == "lut":
        assert c.getsockopt(T, socket.TCP_USER_TIMEOUT) == 2000   # from the listener, by the kernel
    elif mode == "exec":
        os.set_inheritable(c.fileno(), True)
        os.execv(sys.executable, [sys.executable, "-c", EXEC, str(c.fileno()), tmp, name])
    c.sendall(b"ok\n")
    # The client's answer carries its acknowledgment of "ok": nothing is outstanding at the
    # freeze, so the user timeout can only count from the write after it.
    assert f.readline() == b"go\n"
    open(os.path.join(tmp, name + ".ready"), "w").close()
    gate = os.path.join(tmp, name + ".gate")
    while not os.path.exists(gate):
        time.sleep(0.01)
    t0 = time.time()
    if mode in ("ut", "lut"):
        c.sendall(b"x" * 1000)
    p = select.poll()
    p.register(c, select.POLLIN)
    verdict = "none"
    if p.poll(6000 if mode == "none" else 10000):
        try:
            b = c.recv(100)
            verdict = "data" if b else "eof"
        except OSError as e:
            verdict = errno.errorcode.get(e.errno, str(e.errno))
    with open(os.path.join(tmp, name + ".out.tmp"), "w") as o:
        o.write(f"{verdict} {time.time() - t0:.2f}\n")
    os.rename(os.path.join(tmp, name + ".out.tmp"), os.path.join(tmp, name + ".out"))
    c.close()
def serve(s):
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()
def serve_forking(s):
    while True:
        c, _ = s.accept()
        if os.fork() == 0:
            try:
                handle(c)
            finally:
                os._exit(0)
        c.close()
plain = socket.create_server(("0.0.0.0", 9000))
wplain = socket.create_server(("0.0.0.0", 9001))
wut = socket.socket()
wut.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
wut.setsockopt(T, socket.TCP_USER_TIMEOUT, 2000)
wut.bind(("0.0.0.0", 9003))
wut.listen()
forking = socket.create_server(("0.0.0.0", 9002))
if os.fork() == 0:
    plain.close()
    forking.close()
    threading.Thread(target=serve, args=(wut,), daemon=True).start()
    serve(wplain)   # the worker: 9001 and 9003
# The listening process keeps 9001 and 9003 open without accepting on them, as nginx's master
# does: its SST listener and bridges serve the worker.
threading.Thread(target=serve_forking, args=(forking,), daemon=True).start()
open(os.path.join(tmp, "server.ready"), "w").close()
serve(plain)
PY

cat >"$LIB_TMP/client.py" <<'PY'
import os, socket, sys, time
port, mode, name, tmp = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.create_connection(("10.77.0.2", port))
s.sendall(f"{mode} {name}\n".encode())
assert s.recv(3) == b"ok\n"
s.sendall(b"go\n")
time.sleep(60)
PY

lib_bg in_b env LD_PRELOAD="$SHIM" SST_LISTEN=9000,9001,9002,9003 SST_PORT=8671 SST_HELPER=off SST_KEYDIR="$LIB_TMP/kb" \
  SST_LOG=${SRV_LOG:-info} SST_LOG_FILE="$LIB_TMP/server.log" /usr/bin/python3 "$LIB_TMP/server.py" "$LIB_TMP" \
  2>"$LIB_TMP/server.err"
SRV=$LIB_BG_PID
poll_until 20 test -e "$LIB_TMP/server.ready" || fail "server did not start: $(cat "$LIB_TMP/server.err")"
wait_for_port "$NS_B" 9000
wait_for_port "$NS_B" 9001
wait_for_port "$NS_B" 9002
wait_for_port "$NS_B" 9003

# run NAME PORT MODE: the server's verdict on its read and seconds, the client frozen once its
# options are set.
run() {
  local name=$1 port=$2 mode=$3
  # ip netns exec, not in_a: a backgrounded function is a subshell, and SIGSTOP must reach python
  ip netns exec "$NS_A" env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_PORT=8671 SST_MODE=strict SST_HELPER=off \
    SST_KEYDIR="$LIB_TMP/ka" /usr/bin/python3 "$LIB_TMP/client.py" "$port" "$mode" "$name" "$LIB_TMP" \
    >"$LIB_TMP/$name.client" 2>&1 &
  local cli=$!
  poll_until 20 test -e "$LIB_TMP/$name.ready" || fail "$name: no answer before the freeze: $(cat "$LIB_TMP/$name.client")"
  kill -STOP "$cli"
  touch "$LIB_TMP/$name.gate"
  poll_until 15 test -e "$LIB_TMP/$name.out"
  kill -KILL "$cli" 2>/dev/null
  kill -CONT "$cli" 2>/dev/null
  wait "$cli" 2>/dev/null
  [ -e "$LIB_TMP/$name.out" ] || fail "$name: the server gave no verdict: $(cat "$LIB_TMP/server.err")"
  read -r verdict secs <"$LIB_TMP/$name.out"
  kill -0 "$SRV" 2>/dev/null || fail "$name: the server died: $(cat "$LIB_TMP/server.err")"
}

# check WHAT LO HI: the last run's read failed with ECONNRESET within [LO, HI] s.
check() {
  [ "$verdict" = ECONNRESET ] || fail "$1: the server's read: '$verdict' after $secs s, want ECONNRESET"
  awk -v t="$secs" -v lo="$2" -v hi="$3" 'BEGIN { exit !(t >= lo && t <= hi) }' ||
    fail "$1: the read failed after $secs s, want $2-$3 s"
  log "ok: $1: the server's read failed (ECONNRESET) after $secs s"
}

run ut 9000 ut
check "TCP_USER_TIMEOUT 2000 on the accepted socket" 2.0 5.0
run ka 9000 ka
check "keepalive 1 s / 1 s x 2 on the accepted socket" 1.5 6.0
run lut 9003 lut
check "TCP_USER_TIMEOUT 2000 on the listener, accepted by a pre-forked worker" 2.0 5.0
run wka 9001 ka
check "keepalive 1 s / 1 s x 2 set by a pre-forked worker" 1.5 6.0
run fut 9002 ut
check "TCP_USER_TIMEOUT 2000 set by a child forked per connection" 2.0 5.0
grep -q "bridged by another process" "$LIB_TMP/server.log" &&
  fail "a forked child's options were not taken by the mailbox: $(cat "$LIB_TMP/server.log")"
run exec 9002 exec
[ "$verdict" = exec ] || fail "exec: '$verdict': $(cat "$LIB_TMP/server.err")"
[ "$(grep -c "TCP_USER_TIMEOUT set on a connection bridged by another process" "$LIB_TMP/server.log")" = 1 ] ||
  fail "the exec'd image's TCP_USER_TIMEOUT is not said (once) to stay the loopback socket's: $(cat "$LIB_TMP/server.log")"
log "ok: an exec'd image's TCP_USER_TIMEOUT is set on its socket and said to act on the loopback socket only"

# Without the options the server waits: no verdict within its 6 s poll.
run none 9000 none
[ "$verdict" = none ] || fail "without options: '$verdict' after $secs s, want none"
log "ok: without the options the server's read still waits after $secs s"
grep -q "^Traceback" "$LIB_TMP/server.err" && fail "server: $(cat "$LIB_TMP/server.err")"
log "PASS"
