#!/usr/bin/env bash
# Buffer sizes set on the TCP socket before connect() reach the carried connection (docs/shim.md
# §2 step 3): getsockopt answers SO_RCVBUF / SO_SNDBUF as kernel TCP does for the same values,
# and a program that reads slowly with a small SO_RCVBUF has no more than about that much
# waiting in its receive queue (until 2026-11-22: the socketpair's defaults, ≈ 200 KiB queued
# whatever the program asked for).
#
#   $NS_A  10.77.0.1 ===== veth ===== 10.77.0.2  $NS_B
#          shimmed python (strict)               python sender under SST_LISTEN (UDP 8676)
#          in-process engine; then the TCP fallback on A's loopback
. "$(dirname "$0")/lib.sh"
lib_init shim_sockbuf
need_tool /usr/bin/python3
SHIM=$BUILD/libsstshim.so
[ -f "$SHIM" ] || env_fail "$SHIM not built"

lib_net_up
lib_block_tcp

# SENDER: accepts, writes 4 MB, closes (a thread per connection).
SENDER='
import socket, sys, threading
ls = socket.create_server((sys.argv[1], int(sys.argv[2])))
open(sys.argv[3], "w").write(str(ls.getsockname()[1]))
def serve(c):
    c.sendall(b"s" * 4000000)
    c.close()
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'
lib_bg in_b env LD_PRELOAD="$SHIM" SST_HELPER=off SST_LISTEN=9300 SST_PORT=8676 SST_KEYDIR="$LIB_TMP/kb" \
  /usr/bin/python3 -c "$SENDER" 0.0.0.0 9300 "$LIB_TMP/b.port"
wait_for_port "$NS_B" 9300

# The client: SO_RCVBUF and SO_SNDBUF 6000 before connect (8192 would read back as 16384,
# the kernel default SO_SNDBUF of a TCP socket: indistinguishable from unset, docs/shim.md), reads nothing for a second, then
# everything.
CLIENT='
import fcntl, os, socket, struct, sys, termios, time
S = socket.SOL_SOCKET
ref = socket.socket()
ref.setsockopt(S, socket.SO_RCVBUF, 6000)
ref.setsockopt(S, socket.SO_SNDBUF, 6000)
want = (ref.getsockopt(S, socket.SO_RCVBUF), ref.getsockopt(S, socket.SO_SNDBUF))
s = socket.socket()
s.setsockopt(S, socket.SO_RCVBUF, 6000)
s.setsockopt(S, socket.SO_SNDBUF, 6000)
s.connect((sys.argv[1], int(sys.argv[2])))
ino = os.fstat(s.fileno()).st_ino
if not any(l.split()[6] == str(ino) for l in open("/proc/net/unix").readlines()[1:]):
    sys.exit("not carried by the shim: the test would prove nothing")
time.sleep(1)
queued = struct.unpack("i", fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0" * 4))[0]
got = (s.getsockopt(S, socket.SO_RCVBUF), s.getsockopt(S, socket.SO_SNDBUF))
n = 0
while True:
    b = s.recv(65536)
    if not b:
        break
    n += len(b)
print("kernel TCP answers", want, "carried", got, "queued unread", queued, "read", n)
if got != want:
    sys.exit("SO_RCVBUF/SO_SNDBUF %r, kernel TCP gives %r for the same setsockopt" % (got, want))
if not 0 < queued <= 4 * want[0]:
    sys.exit("%d bytes waiting unread with SO_RCVBUF %d" % (queued, want[0]))
if n != 4000000:
    sys.exit("read %d bytes of 4000000" % n)
'
log "in-process engine across the namespaces"
out=$(in_a timeout 30 env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_PORT=8676 SST_HELPER=off \
  SST_KEYDIR="$LIB_TMP/ka" /usr/bin/python3 -c "$CLIENT" "$IP_B" 9300 2>&1) || fail "engine: $out"
log "ok: $out"

log "TCP fallback (A's loopback)"
lib_bg in_a /usr/bin/python3 -c "$SENDER" 127.0.0.1 0 "$LIB_TMP/a.port"
poll_until 20 test -s "$LIB_TMP/a.port" || fail "the loopback sender did not start"
out=$(in_a timeout 30 env LD_PRELOAD="$SHIM" SST_PEERS=127.0.0.1 SST_SHIM_TEST_SST=unavailable SST_HELPER=off \
  /usr/bin/python3 -c "$CLIENT" 127.0.0.1 "$(cat "$LIB_TMP/a.port")" 2>&1) || fail "fallback: $out"
log "ok: $out"
log "ok: buffer sizes set before connect are carried, and bound what waits unread"
