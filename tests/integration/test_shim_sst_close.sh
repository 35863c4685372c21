#!/usr/bin/env bash
# How a connection carried by the in-process SST engine ends, compared with kernel TCP
# (docs/shim.md §2 "The pump and half-close"):
#
#   $NS_A 10.77.0.1 ======= veth ======= 10.77.0.2 $NS_B
#   python under the shim                  sstd --forward 9000, python server :9000
#   (SST_HELPER=off, strict)               python server :9500 under the shim, SST_LISTEN
#                                          (its own engine on UDP 8662, the host key of sstd)
#
# 1. shutdown(SHUT_RD), then a 4 MiB upload while the server sends 400 KB the client no
#    longer reads: TCP delivers the upload (incoming data is dropped); the shim used to reset
#    the stream at the first incoming byte, so the upload failed with EPIPE and was lost.
# 2. SO_LINGER {1, 0} then close(), set after connect and (copied at connect) before it: the
#    server's recv must fail with ECONNRESET, as TCP's RST makes it; the shim used to close
#    gracefully, so the server read EOF and took a truncated request for a complete one.
# 3. Control: a plain close still ends with EOF and every byte.
# 4. The server side: a server under the shim (SST_LISTEN) writes 4 MiB to an accepted
#    connection and exits at once, with the socket closed or left open: the client must read
#    all of it and EOF.  The exit drain used to skip accepted connections: the bytes still in
#    the loopback bridge died with the process and the client hung without EOF.
# 5. exec: a program writes 4 MiB and execs another one (python's socket is FD_CLOEXEC, so
#    exec closes it: TCP delivers and ends it); and bash's `exec 3<>/dev/tcp` (fd 3 survives
#    the exec, unpumped): what was written arrives and the server sees the end.  Before, the
#    engine died with the old image: nothing arrived and the server never saw an end.  An
#    execvp that fails (no such command on PATH) leaves the connection working: the drain only
#    runs when exec will find its file (before, it closed the socket under the program).
. "$(dirname "$0")/lib.sh"
lib_init shim_sst_close
need_tool /usr/bin/python3
SHIM=$BUILD/libsstshim.so
[ -f "$SHIM" ] || env_fail "$SHIM not built"
[ -x "$BUILD/sstd" ] || env_fail "$BUILD/sstd not built"

lib_net_up
lib_block_tcp

# One line per connection: what the server saw (bytes, then EOF or the error).
lib_bg in_b /usr/bin/python3 -c '
import hashlib, socket, threading
s = socket.create_server(("0.0.0.0", 9000))
def serve(c):
    n, h = 0, hashlib.sha256()
    try:
        first = c.recv(1)
        if first == b"G":                  # a greeting the client will not read
            c.sendall(b"g" * 400000)
        else:
            n += len(first); h.update(first)
        while True:
            b = c.recv(65536)
            if not b:
                break
            n += len(b); h.update(b)
        print("EOF", n, h.hexdigest()[:16], flush=True)
    except OSError as e:
        print(type(e).__name__, n, flush=True)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()' >"$LIB_TMP/srv.out" 2>&1
wait_for_port "$NS_B" 9000
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" \
  --forward 9000 2>"$LIB_TMP/sstd.log"
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "sstd did not start"

shimmed() {
  in_a timeout 20 env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER=off \
    SST_KEYDIR="$LIB_TMP/ka" /usr/bin/python3 -c "$1"
}
# srv_line N: the server's Nth line (waits 10 s at most).
srv_line() {
  poll_until 10 test "$(wc -l <"$LIB_TMP/srv.out")" -ge "$1" || true
  sed -n "${1}p" "$LIB_TMP/srv.out"
}

log "shutdown(SHUT_RD), then a 4 MiB upload while the server writes"
shimmed "
import hashlib, socket, time
s = socket.create_connection(('$IP_B', 9000))
s.shutdown(socket.SHUT_RD)
d = bytes(range(256)) * 16384
s.sendall(b'G')
time.sleep(0.3)                            # the greeting arrives before the upload
s.sendall(d)
s.shutdown(socket.SHUT_WR)
time.sleep(0.3)
s.close()
print(hashlib.sha256(d).hexdigest()[:16])" >"$LIB_TMP/c1.out" 2>&1 ||
  fail "client: $(tail -1 "$LIB_TMP/c1.out")"
want="EOF $((4 * 1024 * 1024)) $(cat "$LIB_TMP/c1.out")"
got=$(srv_line 1)
[ "$got" = "$want" ] || fail "SHUT_RD: server saw '$got', want '$want'"
log "ok: $got"

log "SO_LINGER 0 then close: the server must see a reset"
# linger_client WHEN [HOST]: a client that sets SO_LINGER {1, 0} before or after connect (or not
# at all: close), writes 100000 bytes and closes; the same program through the in-process engine,
# through sstd and over the TCP fallback.
linger_client() {
  local when=$1 host=${2:-$IP_B}
  echo "
import socket, struct, time
s = socket.socket()
lg = struct.pack('ii', 1, 0)
if '$when' == 'before':
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, lg)
s.connect(('$host', 9000))
s.sendall(b'x' * 100000)
time.sleep(0.3)
if '$when' == 'after':
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, lg)
if '$when' != 'close':
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8) == lg
s.close()
time.sleep(0.3)"
}
for when in after before; do
  shimmed "$(linger_client $when)" || fail "linger client ($when) failed"
done
got="$(srv_line 2) / $(srv_line 3)"
[ "$got" = "ConnectionResetError 100000 / ConnectionResetError 100000" ] ||
  fail "SO_LINGER 0: server saw '$got', want ConnectionResetError after 100000 bytes, twice"
log "ok: $got"

log "control: a plain close ends with EOF"
shimmed "
import socket
s = socket.create_connection(('$IP_B', 9000))
s.sendall(b'x' * 100000)
s.close()"
got=$(srv_line 4)
[ "${got% *}" = "EOF 100000" ] || fail "plain close: server saw '$got'"

log "server side: write 4 MiB, exit at once (closed, and left open)"
N=$((4 * 1024 * 1024))
for how in close open; do
  # The previous server's keeper (it finishes delivering what that server wrote before its
  # exit, docs/shim.md §5) may hold UDP 8662 a moment after the server exited: a server started
  # then finds its SST port taken and binds it on a retry, which the strict client's HELLO can
  # miss (ICMP, "its SST port is closed": 1 of ~12 runs).  Each server starts on a free port.
  poll_until 10 port_free "$NS_B" udp 8662 || fail "UDP 8662 still held in B 10 s after the last server exited"
  in_b timeout 20 env LD_PRELOAD="$SHIM" SST_LISTEN=9500 SST_PORT=8662 SST_KEYDIR="$LIB_TMP/kb" \
    /usr/bin/python3 -c "
import socket
s = socket.create_server(('0.0.0.0', 9500))
open('$LIB_TMP/listening', 'w').close()
c, _ = s.accept()
c.sendall(b'y' * $N)
if '$how' == 'close':
    c.close()" >"$LIB_TMP/server.out" 2>&1 &
  SRV=$!
  poll_until 5 test -e "$LIB_TMP/listening" || fail "the SST_LISTEN server did not start"
  rm -f "$LIB_TMP/listening"
  got=$(in_a timeout 20 env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_PORT=8662 SST_MODE=strict \
    SST_HELPER=off SST_KEYDIR="$LIB_TMP/ka" /usr/bin/python3 -c "
import socket
s = socket.create_connection(('$IP_B', 9500))
n = 0
while True:
    b = s.recv(65536)
    if not b:
        break
    n += len(b)
print(n)" 2>&1) || fail "client of the exiting server ($how): '$got' (no EOF?)"
  wait "$SRV" || fail "server ($how) exited $?: $(tail -2 "$LIB_TMP/server.out")"
  [ "$got" = "$N" ] || fail "client of the exiting server ($how) read '$got' bytes, want $N"
  log "ok ($how): $got bytes and EOF"
done

log "exec after writing: FD_CLOEXEC socket, and an fd that survives the exec"
shimmed "
import os, socket
s = socket.create_connection(('$IP_B', 9000))
s.sendall(b'e' * $N)
os.execv('/bin/true', ['true'])"
got=$(srv_line 5)
[ "${got% *}" = "EOF $N" ] || fail "write then exec (CLOEXEC): server saw '$got', want EOF $N"
in_a timeout 20 env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER=off \
  SST_KEYDIR="$LIB_TMP/ka" bash -c "exec 3<>/dev/tcp/$IP_B/9000; head -c 1000000 /dev/zero >&3; exec true" ||
  fail "bash exec failed"
got=$(srv_line 6)
[ "${got% *}" = "EOF 1000000" ] || fail "bash exec 3<>/dev/tcp then exec: server saw '$got', want EOF 1000000"
log "ok: exec delivers what was written and ends the connection"
log "an exec that fails (a bare name PATH does not have) leaves the connection working"
# libc's execvp itself (python's os.execvp searches PATH on its own and execs full paths).
shimmed "
import ctypes, socket
s = socket.create_connection(('$IP_B', 9000))
s.sendall(b'f' * 100000)
name = b'no-such-command-sstshim'
argv = (ctypes.c_char_p * 2)(name, None)
assert ctypes.CDLL(None, use_errno=True).execvp(name, argv) == -1
s.sendall(b'g' * 100000)
s.close()"
got=$(srv_line 7)
[ "${got% *}" = "EOF 200000" ] || fail "failed execvp: server saw '$got', want EOF 200000"
log "ok: after a failed execvp the connection goes on"

# The same abortive close through sstd in A (docs/helper.md "MARK"): sstd pumps the app's
# socket and sees its close, so the shim tells it about SO_LINGER {1, 0} (set after connect:
# MARK LINGER0; before: CONNECT's LINGER0 word) and sstd resets the stream.  Before, sstd closed
# it gracefully: the server read EOF.
log "SO_LINGER 0 then close through sstd: the server must see a reset"
lib_bg in_a "$BUILD/sstd" --foreground --socket "$LIB_TMP/a.sock" --keydir "$LIB_TMP/kas" --log debug \
  2>"$LIB_TMP/sstd-a.log"
SSTD_AS=$LIB_BG_PID
poll_until 20 test -S "$LIB_TMP/a.sock" || fail "sstd in A did not start"
via_sstd() {
  in_a timeout 20 env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER="$LIB_TMP/a.sock" \
    SST_KEYDIR="$LIB_TMP/ka" SST_LOG=debug SST_LOG_FILE="$LIB_TMP/via.log" /usr/bin/python3 -c "$1"
}
base=$(wc -l <"$LIB_TMP/srv.out")
via_sstd "
import socket
s = socket.create_connection(('$IP_B', 9000)); s.sendall(b'w'); s.close()" || fail "warm-up through sstd failed"
[ "$(srv_line $((base + 1)))" != "" ] || fail "warm-up: the server saw nothing"
base=$((base + 1))
: >"$LIB_TMP/via.log"
for when in after before; do
  via_sstd "$(linger_client $when)" || fail "linger client through sstd ($when) failed"
done
grep -q "handed to the helper inside connect()" "$LIB_TMP/via.log" || fail "not handed to sstd inside connect()"
got="$(srv_line $((base + 1))) / $(srv_line $((base + 2)))"
[ "$got" = "ConnectionResetError 100000 / ConnectionResetError 100000" ] ||
  fail "SO_LINGER 0 through sstd: server saw '$got', want ConnectionResetError after 100000 bytes, twice"
log "ok: $got"
via_sstd "
import socket, time
s = socket.create_connection(('$IP_B', 9000))
s.sendall(b'x' * 100000)
time.sleep(0.3)
s.close()"
got=$(srv_line $((base + 3)))
[ "${got% *}" = "EOF 100000" ] || fail "plain close through sstd: server saw '$got'"
log "ok: a plain close through sstd still ends with EOF"
# The relayed hand-off (a fresh sstd does not know the host yet: the shim pumps the app's end to
# a pair whose other end sstd pumps): SO_LINGER is told for the relay's end, and sstd resets the
# stream when the relay pump closes it after the app's close.
kill "$SSTD_AS"
wait "$SSTD_AS" 2>/dev/null
lib_bg in_a "$BUILD/sstd" --foreground --socket "$LIB_TMP/a.sock" --keydir "$LIB_TMP/kas" --log debug \
  2>>"$LIB_TMP/sstd-a.log"
poll_until 20 test -S "$LIB_TMP/a.sock" || fail "sstd in A did not restart"
: >"$LIB_TMP/via.log"
via_sstd "
import socket, struct, time
s = socket.create_connection(('$IP_B', 9000))
s.sendall(b'x' * 100000)
time.sleep(0.3)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
s.close()
time.sleep(0.3)" || fail "linger client through sstd (relayed) failed"
grep -q "handing the connection to the helper" "$LIB_TMP/via.log" || fail "not relayed: $(tail -3 "$LIB_TMP/via.log")"
got=$(srv_line $((base + 4)))
[ "$got" = "ConnectionResetError 100000" ] || fail "SO_LINGER 0 through sstd, relayed: server saw '$got'"
log "ok: relayed: $got"
# The TCP fallback (kernel TCP to the server on loopback in B): the pump closes its TCP socket
# with SO_LINGER {1, 0} too, so the server sees TCP's own RST.  Before, a FIN: EOF.
log "SO_LINGER 0 then close over the TCP fallback: the server must see a reset"
fallback() {
  in_b timeout 20 env LD_PRELOAD="$SHIM" SST_PEERS=127.0.0.1 SST_SHIM_TEST_SST=unavailable SST_HELPER=off \
    SST_KEYDIR="$LIB_TMP/kb2" SST_LOG=info SST_LOG_FILE="$LIB_TMP/fb.log" /usr/bin/python3 -c "$1"
}
base=$(wc -l <"$LIB_TMP/srv.out")
for how in after before close; do
  fallback "$(linger_client $how 127.0.0.1)" || fail "linger client over the TCP fallback ($how) failed"
done
grep -q "carrying connection over tcp" "$LIB_TMP/fb.log" || fail "not the TCP fallback: $(tail -3 "$LIB_TMP/fb.log")"
got="$(srv_line $((base + 1))) / $(srv_line $((base + 2))) / $(srv_line $((base + 3)))"
[ "${got% *}" = "ConnectionResetError 100000 / ConnectionResetError 100000 / EOF 100000" ] ||
  fail "SO_LINGER 0 over the TCP fallback: server saw '$got', want ConnectionResetError after 100000 bytes twice, then EOF 100000"
log "ok: ${got% *}"
log "ok: SHUT_RD keeps the connection, SO_LINGER 0 resets it (in-process, through sstd, TCP fallback), close ends it, a server's exit delivers, exec too"
