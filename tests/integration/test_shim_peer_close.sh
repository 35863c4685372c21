#!/usr/bin/env bash
# Writes and reads after the peer's close answer as kernel TCP's (docs/shim.md §2 "The peer's
# close, then a write").  Kernel TCP, measured on Linux 6.x: the peer closes (FIN), our read
# returns 0; our first write succeeds (the peer's kernel answers it with RST); every later write
# fails with EPIPE and SIGPIPE (none with MSG_NOSIGNAL), and reads still return 0: a RST in
# CLOSE_WAIT sets EPIPE, not ECONNRESET (tcp_reset), which SO_ERROR reports once, and
# tcp_recvmsg answers 0 once the FIN was read (SOCK_DONE before sk_err).
# The reference is measured: the same client against the same server over kernel TCP.
#
#   $NS_A 10.77.0.1 ======= veth (TCP dropped) ======= 10.77.0.2 $NS_B
#   client under the shim: in-process engine,           sstd --forward 9000
#   and handed to sstd (a.sock)                        python server :9000 ("CLOSE n": n bytes,
#                                                       then close)
#                                                       the same server under the shim on :9001
#                                                       (SST_LISTEN, SST_PORT 8662, sstd's key)
#                                                       client over kernel TCP and over the
#                                                       shim's TCP fallback, on loopback
. "$(dirname "$0")/lib.sh"
lib_init shim_peer_close
need_tool /usr/bin/python3
SHIM=$BUILD/libsstshim.so
[ -f "$SHIM" ] || env_fail "$SHIM not built"
[ -x "$BUILD/sstd" ] || env_fail "$BUILD/sstd not built"

lib_net_up
lib_block_tcp

cat >"$LIB_TMP/server.py" <<'PY'
import socket, struct, sys, threading, time
def serve(c):
    f = c.makefile("rb")
    cmd, n = f.readline().split()
    if cmd == b"EARLY":                # answer first, read the request (n bytes) afterwards
        time.sleep(0.5)
        c.sendall(b"early answer\n")
        time.sleep(0.5)
        got, end = 0, "EOF"
        try:
            while True:
                b = f.read1(65536)
                if not b:
                    break
                got += len(b)
        except OSError as e:
            end = type(e).__name__
        with open(sys.argv[2], "a") as out:
            out.write(f"{got} {end}\n")
        c.close()
        return
    c.sendall(b"d" * int(n))
    if cmd != b"CLOSE":                # HALF, FIN: the FIN first, the connection stays open
        c.shutdown(socket.SHUT_WR)
    if cmd == b"HALF":                 # ... then RST, without any write of the client
        time.sleep(0.3)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif cmd == b"FIN":                # ... for as long as the client keeps it
        while c.recv(65536):
            pass
    c.close()
s = socket.create_server(("0.0.0.0", int(sys.argv[1])))
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY

# client.py HOST PORT CMD N OPS: sends "CMD N", waits 0.3 s for the N bytes and the server's
# FIN, then runs OPS (comma list) and prints "OP:RESULT" for each, SIGPIPEs counted after each:
#   recv (all that is queued, or EOF), send / sendns (one byte, the second with MSG_NOSIGNAL),
#   write (os.write), soerr (SO_ERROR), hup (waits, at most 5 s, until
#   poll says POLLHUP: the RST has arrived), gate (creates
#   $GATE.ready, then waits for $GATE), arrived (waits, at most 20 s, until TCP_INFO's
#   tcpi_bytes_received -- read plus buffered, the engine's or sstd's buffer included -- is N:
#   the whole answer is here, unread).
cat >"$LIB_TMP/client.py" <<'PY'
import errno, os, select, signal, socket, struct, sys, time
host, port, cmd, n, ops = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5].split(",")
pipes = [0]
signal.signal(signal.SIGPIPE, lambda *a: pipes.__setitem__(0, pipes[0] + 1))
s = socket.create_connection((host, port))
s.sendall(b"%s %d\n" % (cmd.encode(), n))
time.sleep(0.3)
out = []
for op in ops:
    if op == "hup":
        p = select.poll()
        p.register(s.fileno(), 0)
        t = time.time() + 5
        while time.time() < t and not any(ev & select.POLLHUP for _, ev in p.poll(50)):
            pass
        continue
    if op == "arrived":
        t = time.time() + 20
        while (got := struct.unpack_from("Q", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232), 128)[0]) < n:
            if time.time() > t:
                out.append(f"arrived:only-{got}")
                break
            time.sleep(0.01)
        continue
    if op == "gate":
        open(os.environ["GATE"] + ".ready", "w").close()
        while not os.path.exists(os.environ["GATE"]):
            time.sleep(0.01)
        continue
    try:
        if op == "send":
            r = str(s.send(b"x"))
        elif op == "sendns":
            r = str(s.send(b"x", socket.MSG_NOSIGNAL))
        elif op == "write":
            r = str(os.write(s.fileno(), b"x"))
        elif op == "soerr":
            e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            r = errno.errorcode[e] if e else "0"
        else:
            got = b""
            while len(got) < n:
                b = s.recv(65536)
                if not b:
                    break
                got += b
            r = str(len(got)) if got else "EOF"
    except OSError as e:
        r = errno.errorcode[e.errno]
    time.sleep(0.05)   # a SIGPIPE's handler has run
    out.append(f"{op}:{r}/{pipes[0]}")
print(" ".join(out))
PY

lib_bg in_b /usr/bin/python3 "$LIB_TMP/server.py" 9000 "$LIB_TMP/early.out" 2>"$LIB_TMP/srv.err"
wait_for_port "$NS_B" 9000
lib_bg in_b env LD_PRELOAD="$SHIM" SST_LISTEN=9001 SST_PORT=8662 SST_HELPER=off SST_KEYDIR="$LIB_TMP/kb" \
  /usr/bin/python3 "$LIB_TMP/server.py" 9001 "$LIB_TMP/early.out" 2>"$LIB_TMP/srv-listen.err"
wait_for_port "$NS_B" 9001
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" --forward 9000 \
  2>"$LIB_TMP/sstd-b.log"
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "sstd in B did not start"
lib_bg in_a "$BUILD/sstd" --foreground --socket "$LIB_TMP/a.sock" --keydir "$LIB_TMP/ka" 2>"$LIB_TMP/sstd-a.log"
SSTD_A=$LIB_BG_PID
poll_until 20 test -S "$LIB_TMP/a.sock" || fail "sstd in A did not start"

shimmed() {
  local ns=$1 peer=$2
  shift 2
  ip netns exec "$ns" timeout 20 env LD_PRELOAD="$SHIM" SST_PEERS="$peer" SST_KEYDIR="$LIB_TMP/k$ns" "$@"
}

# CMD N OPS WANT: kernel TCP's answers, measured (the runners below check themselves against
# them).  HALF: the server's RST after its FIN comes without a write of the client.
AFTER_RST="recv:1000/0 recv:EOF/0 soerr:EPIPE/0 send:EPIPE/1 sendns:EPIPE/1 recv:EOF/1 soerr:0/1"
CASES=(
  "CLOSE|1000|recv,recv,send,hup,send,sendns,write,recv,soerr|recv:1000/0 recv:EOF/0 send:1/0 send:EPIPE/1 sendns:EPIPE/1 write:EPIPE/2 recv:EOF/2 soerr:0/2"
  "CLOSE|1000|recv,recv,soerr,send,hup,soerr,recv,send|recv:1000/0 recv:EOF/0 soerr:0/0 send:1/0 soerr:EPIPE/0 recv:EOF/0 send:EPIPE/1"
  "CLOSE|1000|send,hup,recv,recv,send|send:1/0 recv:1000/0 recv:EOF/0 send:EPIPE/1"
  "HALF|1000|recv,recv,hup,soerr,send,sendns,recv,soerr|$AFTER_RST"
)
# The server's whole answer (1 MB: more than the program's socket holds, the rest waits in the
# engine or sstd) and its close have arrived, unread, when the program writes: the server's
# engine has freed the stream and answers with a reset (paper §4.3.8; a late window update
# draws the same).  The bytes that arrived before it are still read, then EOF, and writes fail
# with EPIPE: TCP's reads give a FIN's data before a later RST's error (tcp_recvmsg; the RST in
# CLOSE_WAIT says EPIPE).  Before, the reset ended the pump at once: the program read what its
# socket held, then ECONNRESET -- and test_shim_sst_close.sh's exiting server lost its answer's
# tail now and then.  Carried connections only: kernel TCP's server cannot close before its
# client has read most of 1 MB, so its RST there cuts the answer (recv:ECONNRESET).
# "arrived" waits until the whole answer is in, as the case says: the 0.3 s the client slept
# did not always carry 1 MB across on a loaded machine (28 runs in 30 failed under 4 busy
# loops).  The tail then still sat in the server side's stream, behind the client's window,
# when the client's byte reached the gateway; the gateway's write to the closed server socket
# fails (EPIPE) and it resets the stream, discarding that tail as the server's kernel RST
# discards its unsent queue over kernel TCP (the reference's recv:ECONNRESET above): right,
# but not this case.
BIG="CLOSE|1000000|arrived,send,recv,recv,hup,send|send:1/0 recv:1000000/0 recv:EOF/0 send:EPIPE/1"
# check WHAT RUNNER...: every case against kernel TCP's answers (and BIG with WITH_BIG set).
check() {
  local what=$1 c cmd n ops want got cases=("${CASES[@]}")
  shift
  [ -n "${WITH_BIG:-}" ] && cases+=("$BIG")
  for c in "${cases[@]}"; do
    IFS='|' read -r cmd n ops want <<<"$c"
    got=$("$@" /usr/bin/python3 "$LIB_TMP/client.py" "$HOST" "$PORT" "$cmd" "$n" "$ops" 2>&1)
    [ "$got" = "$want" ] || fail "$what: $ops after the peer's close: got '$got', want '$want'"
    log "ok: $what: $got"
  done
}

HOST=127.0.0.1 PORT=9000
log "reference: kernel TCP (no shim)"
check "kernel TCP" in_b
check "TCP fallback" shimmed "$NS_B" 127.0.0.1 SST_SHIM_TEST_SST=unavailable SST_HELPER=off
HOST=$IP_B
WITH_BIG=1 check "in-process engine" shimmed "$NS_A" "$IP_B" SST_MODE=strict SST_HELPER=off
PORT=9001
WITH_BIG=1 check "SST_LISTEN server" shimmed "$NS_A" "$IP_B" SST_MODE=strict SST_HELPER=off SST_PORT=8662
PORT=9000
shimmed "$NS_A" "$IP_B" SST_MODE=strict SST_HELPER="$LIB_TMP/a.sock" /usr/bin/python3 -c "
import socket; s = socket.create_connection(('$IP_B', 9000)); s.sendall(b'CLOSE 10\n'); s.recv(10)" ||
  fail "warm-up through sstd failed"
WITH_BIG=1 check "sstd hand-off" shimmed "$NS_A" "$IP_B" SST_MODE=strict SST_HELPER="$LIB_TMP/a.sock" \
  SST_LOG=debug SST_LOG_FILE="$LIB_TMP/now.log"
grep -q "handed to the helper inside connect()" "$LIB_TMP/now.log" || fail "not handed over inside connect()"
# The relayed hand-off (the host not yet known to sstd): a fresh sstd for every connection
# (on the same UDP port: the first one goes).
kill "$SSTD_A"
wait "$SSTD_A" 2>/dev/null
relayed() {
  lib_bg in_a "$BUILD/sstd" --foreground --socket "$LIB_TMP/r.sock" --keydir "$LIB_TMP/ka" 2>>"$LIB_TMP/sstd-r.log"
  local pid=$LIB_BG_PID
  poll_until 20 test -S "$LIB_TMP/r.sock" || fail "sstd r did not start"
  shimmed "$NS_A" "$IP_B" SST_MODE=strict SST_HELPER="$LIB_TMP/r.sock" SST_LOG=debug SST_LOG_FILE="$LIB_TMP/relay.log" "$@"
  kill "$pid"
  wait "$pid" 2>/dev/null
}
check "sstd relayed" relayed
[ "$(grep -c "handing the connection to the helper" "$LIB_TMP/relay.log")" -eq "${#CASES[@]}" ] || fail "not relayed: $(cat "$LIB_TMP/relay.log")"
grep -q "inside connect()" "$LIB_TMP/relay.log" && fail "handed over inside connect(), not relayed"

# sstd killed after the peer's FIN reached the program (the server keeps its end open): the
# shim's hold (docs/helper.md "sstd's death") makes that the reset after the FIN, whose answers
# kernel TCP gave in case HALF.  Before: ECONNRESET for SO_ERROR, the first write and the read.
for path in now relay; do
  lib_bg in_a "$BUILD/sstd" --foreground --socket "$LIB_TMP/d.sock" --keydir "$LIB_TMP/ka" 2>>"$LIB_TMP/sstd-d.log"
  pid=$LIB_BG_PID
  poll_until 20 test -S "$LIB_TMP/d.sock" || fail "sstd d did not start"
  if [ "$path" = now ]; then
    shimmed "$NS_A" "$IP_B" SST_MODE=strict SST_HELPER="$LIB_TMP/d.sock" /usr/bin/python3 -c "
import socket; s = socket.create_connection(('$IP_B', 9000)); s.sendall(b'CLOSE 10\n'); s.recv(10)" ||
      fail "warm-up through sstd failed"
  fi
  rm -f "$LIB_TMP/gate" "$LIB_TMP/gate.ready"
  : >"$LIB_TMP/death.log"
  shimmed "$NS_A" "$IP_B" GATE="$LIB_TMP/gate" SST_MODE=strict SST_HELPER="$LIB_TMP/d.sock" SST_LOG=debug \
    SST_LOG_FILE="$LIB_TMP/death.log" /usr/bin/python3 "$LIB_TMP/client.py" "$IP_B" 9000 FIN 1000 \
    recv,recv,gate,hup,soerr,send,sendns,recv,soerr >"$LIB_TMP/out" 2>&1 &
  cli=$!
  poll_until 10 test -e "$LIB_TMP/gate.ready" || fail "sstd death ($path): the client did not get its bytes: $(cat "$LIB_TMP/out")"
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null
  touch "$LIB_TMP/gate"
  wait "$cli"
  got=$(cat "$LIB_TMP/out")
  case $path in
    now) grep -q "handed to the helper inside connect()" "$LIB_TMP/death.log" || fail "not handed over inside connect()" ;;
    *) grep -q "handing the connection to the helper" "$LIB_TMP/death.log" || fail "not relayed" ;;
  esac
  [ "$got" = "$AFTER_RST" ] || fail "sstd killed after the peer's FIN ($path): got '$got', want '$AFTER_RST' (kernel TCP's after a RST that follows the FIN)"
  log "ok: sstd killed after the peer's FIN ($path): $got"
done

# The other way round: a client sends its request (1 MB) and closes its socket, while its
# process (and engine) lives on; the server answers before it reads the request.  The client's
# engine freed the stream once the server's end acknowledged all of it, and answers the answer
# with a reset.  The server must still read the whole request, then EOF (the client's FIN came
# before the reset), as a TCP server reads what its socket had received before an RST.  Before,
# sstd's gateway reset the server's socket at once (ConnectionResetError after what the loopback
# held) -- the request's tail was lost.  Through sstd --forward (9000) and a server under the
# shim with SST_LISTEN (9001).
for PORT in 9000 9001; do
  : >"$LIB_TMP/early.out"
  udp=8661                 # sstd's
  [ "$PORT" = 9001 ] && udp=8662
  shimmed "$NS_A" "$IP_B" SST_MODE=strict SST_HELPER=off SST_PORT=$udp \
    /usr/bin/python3 -c "
import socket, time
s = socket.create_connection(('$IP_B', $PORT))
s.sendall(b'EARLY 1000000\n' + b'r' * 1000000)
s.close()
time.sleep(2.5)" || fail "early answer ($PORT): the client failed"
  poll_until 20 test -s "$LIB_TMP/early.out" || fail "early answer ($PORT): the server printed nothing"
  got=$(cat "$LIB_TMP/early.out")
  [ "$got" = "1000000 EOF" ] || fail "early answer ($PORT): the server read '$got', want '1000000 EOF'"
  log "ok: a request the server read after its answer, port $PORT: $got"
done
log "ok: after the peer's close, writes and reads answer as kernel TCP's"
