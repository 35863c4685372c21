#!/usr/bin/env bash
# SO_ERROR through sstd gives the stream's real cause, as with the in-process engine (docs/shim.md
# §2 "A peer's reset", docs/helper.md "Resets"): sstd's RESET carries the errno (a refusal
# ECONNREFUSED, a reset ECONNRESET, a dead channel ETIMEDOUT) and the shim records it for the
# app's SO_ERROR and its first failing write.  Before, SO_ERROR through sstd was always
# ECONNRESET (the kernel's only word for a unix socket's reset).
#
#   $NS_A 10.77.0.1 ======= veth (TCP dropped) ======= 10.77.0.2 $NS_B
#   python under the shim, SST_HELPER=a.sock             sstd --forward 9001
#   sstd (a.sock)                                      python server :9001, stopped after
#                                                       the first connection answered
. "$(dirname "$0")/lib.sh"
lib_init shim_helper_errno
need_tool /usr/bin/python3
SHIM=$BUILD/libsstshim.so
[ -f "$SHIM" ] || env_fail "$SHIM not built"
[ -x "$BUILD/sstd" ] || env_fail "$BUILD/sstd not built"

lib_net_up
lib_block_tcp

lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" --forward 9001 \
  2>"$LIB_TMP/sstd-b.log"
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "sstd in B did not start"
lib_bg in_a "$BUILD/sstd" --foreground --socket "$LIB_TMP/a.sock" --keydir "$LIB_TMP/ka" --log debug \
  2>"$LIB_TMP/sstd-a.log"
poll_until 20 test -S "$LIB_TMP/a.sock" || fail "sstd in A did not start"

shimmed() {
  ip netns exec "$NS_A" timeout 20 env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_KEYDIR="$LIB_TMP/kc" \
    SST_MODE=strict SST_HELPER="$LIB_TMP/a.sock" SST_LOG=debug SST_LOG_FILE="$LIB_TMP/shim.log" "$@"
}

# answered_then_closed: 9001 serves one connection through sstd (so it "answered lately" and the
# next connect is handed over at once), then its server stops.
answered_then_closed() {
  lib_bg in_b /usr/bin/python3 -c "
import socket
s = socket.create_server(('0.0.0.0', 9001))
while True:
    c, _ = s.accept()
    c.recv(100); c.sendall(b'hi'); c.close()" 2>"$LIB_TMP/srv.err"
  local srv=$LIB_BG_PID got
  wait_for_port "$NS_B" 9001
  got=$(shimmed /usr/bin/python3 -c "
import socket
s = socket.create_connection(('$IP_B', 9001)); s.sendall(b'q'); print(s.recv(10).decode())")
  [ "$got" = hi ] || fail "a connection to 9001 through sstd: got '$got'"
  kill "$srv"
  wait "$srv" 2>/dev/null
  poll_until 5 bash -c "! ip netns exec $NS_B ss -H -ltn 'sport = :9001' | grep -q ." || fail "server still listening"
  : >"$LIB_TMP/shim.log"
  log "ok: 9001 answered through sstd, then its server stopped"
}

answered_then_closed
# The port answered lately: connect() hands the connection over at once (0-RTT), and the
# peer's refusal comes after it -- as TCP Fast Open's would.
got=$(shimmed /usr/bin/python3 -c "
import select, socket
s = socket.create_connection(('$IP_B', 9001))
s.sendall(b'q')
r, _, _ = select.select([s], [], [], 10)
e1 = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
e2 = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
print('readable' if r else 'silent', f'so_error={e1}', f'so_error={e2}', f'then={len(s.recv(10))}')" 2>&1)
grep -q "handed to the helper inside connect()" "$LIB_TMP/shim.log" || fail "not handed over inside connect()"
[ "$got" = "readable so_error=111 so_error=0 then=0" ] ||
  fail "a refusal after the optimistic hand-off: got '$got', want 'readable so_error=111 so_error=0 then=0' (ECONNREFUSED, as sstd reported it)"
log "ok: SO_ERROR after a refusal through sstd: $got"
grep -q "end passed back to pid" "$LIB_TMP/sstd-a.log" || fail "sstd did not pass the stream back"

# The first failing write gives it too (shim/hook_write.c), without SIGPIPE.
answered_then_closed
got=$(shimmed /usr/bin/python3 -c "
import errno, select, socket, time
s = socket.create_connection(('$IP_B', 9001))
s.sendall(b'q')
select.select([s], [], [], 10)
time.sleep(0.2)
out = []
for _ in range(2):
    try:
        s.send(b'x'); out.append('ok')
    except OSError as e:
        out.append(errno.errorcode[e.errno])
print(' '.join(out))" 2>&1)
[ "$got" = "ECONNREFUSED EPIPE" ] || fail "writes after a refusal through sstd: got '$got', want 'ECONNREFUSED EPIPE'"
grep -q "handed to the helper inside connect()" "$LIB_TMP/shim.log" || fail "not handed over inside connect()"
log "ok: writes after a refusal through sstd: $got"
log "ok: SO_ERROR through sstd says what sstd reported"
