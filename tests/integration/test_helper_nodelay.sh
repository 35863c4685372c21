#!/usr/bin/env bash
# sstd's gateway writes to the local service without Nagle's delay.  A request that arrives in
# two writes -- a header, then after a pause its body -- reached the server through the gateway's
# local TCP socket as two segments, the second held back by Nagle until the server's delayed
# ACK of the first (the server answers only once it has the body): 40 ms per request, where
# kernel TCP with the program's TCP_NODELAY takes well under a millisecond.
#
#   $NS_A  python client under libsstshim.so  ====  sstd --forward 7070 -> python server  $NS_B
#          (SST_MODE=strict, in-process engine)     (127.0.0.1 TCP, the gateway's own socket)
. "$(dirname "$0")/lib.sh"
lib_init helper_nodelay
need_tool /usr/bin/python3 strace
SHIM=$BUILD/libsstshim.so
for b in sstd libsstshim.so; do [ -e "$BUILD/$b" ] || env_fail "$BUILD/$b not built"; done

lib_net_up
cat >"$LIB_TMP/srv.py" <<'PY'
import socket
def need(c, n):
    b = b""
    while len(b) < n:
        x = c.recv(n - len(b))
        if not x:
            return None
        b += x
    return b
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", 7070))
ls.listen(16)
while True:
    c, _ = ls.accept()
    while True:
        head = need(c, 10)            # the header, then the body: answered only once both are in
        body = head and need(c, 10)
        if not body:
            break
        c.sendall(b"ok" + body)
    c.close()
PY
cat >"$LIB_TMP/cli.py" <<'PY'
import socket, sys, time
s = socket.create_connection((sys.argv[1], 7070), timeout=10)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
ts = []
for i in range(12):
    t = time.monotonic()
    s.sendall(b"H" * 10)
    time.sleep(0.005)
    s.sendall(b"%010d" % i)
    r = b""
    while len(r) < 12:
        x = s.recv(100)
        assert x, "connection closed"
        r += x
    assert r == b"ok%010d" % i, r
    ts.append((time.monotonic() - t - 0.005) * 1000)
ts.sort()
print("p50_ms %.2f max_ms %.2f" % (ts[len(ts) // 2], ts[-1]))
PY
lib_bg in_b /usr/bin/python3 "$LIB_TMP/srv.py"
wait_for_port "$NS_B" 7070
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" --forward 7070 --log warn
poll_until 10 test -S "$LIB_TMP/b.sock" || fail "sstd did not start"

log "control: the same exchange over kernel TCP"
tcp=$(in_a timeout 20 /usr/bin/python3 "$LIB_TMP/cli.py" "$IP_B") || fail "kernel TCP client failed"
log "kernel TCP: $tcp"

shim_cli() {
  in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER=off SST_KEYDIR="$LIB_TMP/ka" \
    timeout 20 /usr/bin/python3 "$LIB_TMP/cli.py" "$IP_B"
}
log "through sstd's gateway (the client carried over SST), sstd under strace"
# strace records the gateway's socket options.  The behaviour is timed by a second client
# once strace has let go: attached with -p, strace stops sstd at every system call, and
# under load that alone put the median above the bound (p50 22.97 ms, no stall: a stall
# is 40 ms at least on every exchange).
sstd_b=$(pgrep -f "sstd --foreground --socket $LIB_TMP/b.sock" | head -1)
[ -n "$sstd_b" ] || fail "no sstd pid"
strace -qq -e trace=setsockopt -o "$LIB_TMP/sstd.strace" -p "$sstd_b" &
strace_pid=$!
poll_until 10 grep -q "^TracerPid:[[:space:]]*$strace_pid\$" "/proc/$sstd_b/status" || fail "strace did not attach"
shim_cli >/dev/null || fail "client under the shim (sstd traced) failed"
kill -INT $strace_pid
wait $strace_pid 2>/dev/null
grep -q 'TCP_NODELAY, \[1\]' "$LIB_TMP/sstd.strace" || fail "the gateway's local socket has no TCP_NODELAY"
poll_until 10 grep -q "^TracerPid:[[:space:]]*0\$" "/proc/$sstd_b/status" || fail "strace did not detach"
log "the same, timed, sstd not traced"
sst=$(shim_cli) || fail "client under the shim failed"
log "SST via the gateway: $sst"
# Nagle's stall is the server's delayed ACK, 40 ms at least (Linux TCP_DELACK_MIN): the median of
# twelve exchanges stays far below it without the stall, at or above it with it.
p50=$(awk '{print $2}' <<<"$sst")
awk -v p="$p50" 'BEGIN { exit !(p < 20) }' || fail "median $p50 ms per request: the second write waited for a delayed ACK"
log "PASS"
