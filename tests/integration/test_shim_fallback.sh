#!/usr/bin/env bash
# SST_PEERS selects 127.0.0.1, SST_MODE=auto, SST switched off by the test knob: every connection
# goes through the shim's socketpair and the "tcp" transport, transparently and byte-exact.  (The
# same socketpair + kernel TCP path carries connections when TCP wins the race against SST; the
# SST path itself is tested in test_shim_sst.sh.)
source "$(dirname "$0")/../tools/shim_common.sh"
start_http
start_echo
start_echo6
E=(SST_PEERS=127.0.0.1 SST_MODE=auto SST_SHIM_TEST_SST=unavailable SST_LOG=info SST_LOG_FILE="$TMP/log")

for f in f0 f1k f10m; do
  shim "${E[@]}" -- curl -sS -o "$TMP/out" "http://127.0.0.1:$HTTP_PORT/$f"
  cmp "$TMP/out" "$TMP/www/$f" || fail "curl $f differs"
  shim "${E[@]}" -- wget -q -O "$TMP/out" "http://127.0.0.1:$HTTP_PORT/$f"
  cmp "$TMP/out" "$TMP/www/$f" || fail "wget $f differs"
  shim "${E[@]}" -- "$PY" -c "import urllib.request,sys; sys.stdout.buffer.write(urllib.request.urlopen('http://127.0.0.1:$HTTP_PORT/$f').read())" >"$TMP/out"
  cmp "$TMP/out" "$TMP/www/$f" || fail "urllib $f differs"
done
n=$(grep -c "carrying connection over tcp (SST not available" "$TMP/log" || true)
[ "$n" -ge 9 ] || { cat "$TMP/log"; fail "expected >= 9 connections carried by the tcp transport, log has $n"; }
grep -q "info: active: SST_PEERS=127.0.0.1 SST_LOG=info SST_LOG_FILE=" "$TMP/log" || { cat "$TMP/log"; fail "no banner"; }
pass "curl, wget, urllib: 0 B, 1 KiB, 10 MiB byte-exact through the shim ($n connections)"

# Blocking and non-blocking connect: replaced fd, answers as TCP, half-close both ways.
for mode in block nonblock; do
  shim "${E[@]}" -- "$PROBE" probe 127.0.0.1 "$ECHO_PORT" $mode >"$TMP/p"
  for l in raw_domain=unix sndbuf_ok=yes so_domain=inet so_type=stream so_protocol=tcp \
           "peer=127.0.0.1:$ECHO_PORT" echo=ping-half-close; do
    expect_line "$TMP/p" "$l"
  done
done
expect_line "$TMP/p" connect=EINPROGRESS
expect_line "$TMP/p" so_error=OK
expect_line "$TMP/p" reconnect=OK
pass "probe: blocking and non-blocking connect, SO_*, send buffer given back, getpeername, half-close"

# Honest EINPROGRESS: not writable while the TCP handshake is pending, writable after.
shim "${E[@]}" -- "$PROBE" pending >"$TMP/p"
for l in connect=EINPROGRESS poll_while_pending=0 write_while_pending=EAGAIN getpeername_while_pending=ENOTCONN \
         timed_blocking_connect=EINPROGRESS poll_after_accept=1 so_error=OK server_got=hello raw_domain=unix; do
  expect_line "$TMP/p" "$l"
done
"$PROBE" pending >"$TMP/plain"
diff <(grep -v raw_domain "$TMP/plain") <(grep -v raw_domain "$TMP/p") || fail "pending connect differs from kernel TCP"
expect_line "$TMP/plain" raw_domain=inet
pass "non-blocking connect reports POLLOUT only once established"

# asyncio (non-blocking connect + epoll) and a raw-socket client, with half-close.
cat >"$TMP/aio.py" <<PYEOF
import asyncio, socket, sys
sys.path.insert(0, "$ROOT/tests/tools")
from shim_rawdomain import raw_domain

async def main():
    r, w = await asyncio.open_connection("127.0.0.1", $ECHO_PORT)
    assert raw_domain(w.get_extra_info("socket").fileno()) == "unix"
    payload = bytes(range(256)) * 4096
    w.write(payload)
    await w.drain()
    w.write_eof()
    got = await r.read()
    assert got == payload, (len(got), len(payload))
    w.close()
    await w.wait_closed()

asyncio.run(main())
# epoll registration made BEFORE connect() must survive the swap (epoll watches the file
# description the swap replaces).
import select, errno
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setblocking(False)
ep = select.epoll()
ep.register(s.fileno(), select.EPOLLOUT)
ep.poll(0)   # an unconnected TCP socket reports EPOLLOUT|EPOLLHUP: drain that
assert s.connect_ex(("127.0.0.1", $ECHO_PORT)) == errno.EINPROGRESS
ev = ep.poll(5)
assert ev and ev[0][0] == s.fileno() and ev[0][1] & select.EPOLLOUT, ev
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
assert raw_domain(s.fileno()) == "unix"
ep.close()
s.close()

s = socket.create_connection(("127.0.0.1", $ECHO_PORT))
assert raw_domain(s.fileno()) == "unix"
assert s.getpeername() == ("127.0.0.1", $ECHO_PORT)
assert s.family == socket.AF_INET and s.type == socket.SOCK_STREAM
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
# Options set after connect reach the kernel socket carrying the bytes: ss shows its keepalive.
import subprocess, time
s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 4242)
assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 4242
for _ in range(100):
    out = subprocess.run(["ss", "-tnoH", "state", "established", "dst", "127.0.0.1:$ECHO_PORT"],
                         capture_output=True, text=True).stdout
    if "keepalive,70min" in out:
        break
    time.sleep(0.02)
assert "keepalive,70min" in out, out
s.sendall(b"raw")
s.shutdown(socket.SHUT_WR)
assert s.recv(10) == b"raw"
assert s.recv(10) == b""
print("python-ok")
PYEOF
shim "${E[@]}" -- "$PY" "$TMP/aio.py" >"$TMP/out" || fail "asyncio/raw socket client failed"
expect_line "$TMP/out" python-ok
pass "python asyncio, raw sockets, epoll registered before connect"

# Options set before connect() are read back from the app's socket only when it may have any
# (docs/shim.md §2, shim_fd_optset): set directly, set through a dup (which the hooks cannot
# watch), or none at all, whose answers are the kernel's defaults.
cat >"$TMP/opts.py" <<PYEOF
import os, socket, subprocess, time
def keepalive_shown(port_filter, want):
    for _ in range(100):
        out = subprocess.run(["ss", "-tnoH", "state", "established", "dst", port_filter],
                             capture_output=True, text=True).stdout
        if want in out:
            return True
        time.sleep(0.02)
    return False
# Set on the socket itself, before connect: the carrying kernel socket has them.
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 4343)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, b"\x07" + b"\x00" * 15)   # 7 s
s.connect(("127.0.0.1", $ECHO_PORT))
assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 4343
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)[0] == 7
assert keepalive_shown("127.0.0.1:$ECHO_PORT", "keepalive,72min"), "direct: no keepalive on the carrying socket"
s.close()
# Set through a duplicate (os.dup: the copy is not watched), then connect the original.
s = socket.socket()
d = socket.socket(fileno=os.dup(s.fileno()))
d.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
d.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 4444)
d.detach()
s.connect(("127.0.0.1", $ECHO_PORT))
assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 4444
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
assert keepalive_shown("127.0.0.1:$ECHO_PORT", "keepalive,74min"), "dup: no keepalive on the carrying socket"
s.close()
# Nothing set: the kernel's defaults.
idle = int(open("/proc/sys/net/ipv4/tcp_keepalive_time").read())
s = socket.socket()
s.connect(("127.0.0.1", $ECHO_PORT))
assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == idle
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16) == b"\x00" * 16
s.close()
print("opts-ok")
PYEOF
shim "${E[@]}" -- "$PY" "$TMP/opts.py" >"$TMP/out" || fail "socket options before connect"
expect_line "$TMP/out" opts-ok
# And a socket nothing was set on costs no read-back: two getsockopt calls per carried connect
# in the connecting thread (SO_TYPE, SO_PROTOCOL), where there were fifteen (strace without -f:
# the shim's event thread and its transport sockets are not counted; 5 more allowed for start-up).
cat >"$TMP/plain.py" <<PYEOF
import socket
for _ in range(20):
    s = socket.socket()
    s.connect(("127.0.0.1", $ECHO_PORT))
    s.close()
PYEOF
shim "${E[@]}" -- strace -qq -e trace=getsockopt -o "$TMP/gso" "$PY" "$TMP/plain.py" || fail "plain connects failed"
n=$(grep -c 'getsockopt(' "$TMP/gso" || true)
[ "$n" -le 45 ] || { awk -F'[(,]' '{print $2, $4}' "$TMP/gso" | sort | uniq -c | sort -rn | head; fail "$n getsockopt calls for 20 carried connects"; }
pass "options set before connect (directly, through a dup) carried; none set: defaults, $n getsockopt for 20 connects"

# nc with half-close (and it really went through the shim: one more logged connection).
before=$(grep -c "carrying connection" "$TMP/log")
printf 'hello-nc' | shim "${E[@]}" -- nc -N 127.0.0.1 "$ECHO_PORT" >"$TMP/out"
[ "$(cat "$TMP/out")" = "hello-nc" ] || fail "nc echo: '$(cat "$TMP/out")'"
[ "$(grep -c "carrying connection" "$TMP/log")" -eq $((before + 1)) ] || fail "nc was not carried by the shim"
pass "nc with half-close"

# IPv6: a [::1]:port entry selects exactly that destination.
for mode in block nonblock; do
  shim SST_PEERS="[::1]:$ECHO6_PORT" -- "$PROBE" probe ::1 "$ECHO6_PORT" $mode >"$TMP/p"
  for l in raw_domain=unix so_domain=inet6 "peer=::1:$ECHO6_PORT" echo=ping-half-close; do
    expect_line "$TMP/p" "$l"
  done
done
shim SST_PEERS="[::1]:$ECHO6_PORT" -- "$PROBE" probe 127.0.0.1 "$ECHO_PORT" block >"$TMP/p"
expect_line "$TMP/p" raw_domain=inet
pass "IPv6 destination carried; other destinations untouched"
