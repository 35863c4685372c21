#!/usr/bin/env bash
# Real programs the other tests do not run -- node (libuv), Java (Socket, NIO, java.net.http),
# perl (IO::Socket::INET) -- give the same output under the shim as over kernel TCP, with the
# in-process engine and handed to sstd, across a 20 ms RTT emulated link with TCP blocked.
# What this pins: node closes its sockets with a raw close(2) the shim never sees, and since the
# write hooks (9ddbddb) the entry left behind failed every write on the number's next holder
# with EPIPE when the connection had been shut for writing -- the shim's own control socket to
# sstd among them, so node's keep-alive agent through sstd got EPIPE for 95 of 100 requests
# (apps_stale.py reproduces it with python).  The JVM connects its dual-stack IPv6 sockets to
# ::ffff:a.b.c.d, which the shim passed to sstd as an IPv6 host (sstd dialled [::ffff:10.77.0.2]:8661, cached it as without
# SST, every Java connection through sstd failed); and getsockname on a carried connection said
# 0.0.0.0:0 (node's localAddress, Java's getLocalAddress, perl's sockhost) where TCP names the
# host's address and a port.
#
#   $NS_A  sst0 10.77.0.1 ==TUN== linkemu (10 ms each way) ==TUN== sst0 10.77.0.2  $NS_B
#          sstd (client side)                                         sstd --forward 7000,8080
#          node / java / perl under the shim (strict)                 echo [::]:7000, http 0.0.0.0:8080
. "$(dirname "$0")/lib.sh"
lib_init shim_apps
need_tool node java javac perl /usr/bin/python3
SHIM=$BUILD/libsstshim.so
for b in sstd sstctl libsstshim.so; do [ -e "$BUILD/$b" ] || env_fail "$BUILD/$b not built"; done
HERE=$(cd "$(dirname "$0")" && pwd)
SA=$LIB_TMP/a.sock

lib_net_up --link emu --delay 10ms --seed 11
mkdir -p "$LIB_TMP/www"
for i in $(seq 20); do echo "obj $i" >"$LIB_TMP/www/o$i.txt"; done
head -c 3000000 /dev/urandom >"$LIB_TMP/www/big"
lib_bg in_b /usr/bin/python3 -c '
import functools, http.server, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
Server(("0.0.0.0", 8080), functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])).serve_forever()
' "$LIB_TMP/www" 2>/dev/null
lib_bg in_b /usr/bin/python3 -c '
import socket, threading
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 7000)); s.listen(128)
def echo(c):
    while d := c.recv(65536):
        c.sendall(d)
    c.close()
while True:
    threading.Thread(target=echo, args=(s.accept()[0],), daemon=True).start()
'
wait_for_port "$NS_B" 8080
wait_for_port "$NS_B" 7000
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" --forward 7000,8080 \
  --log info 2>"$LIB_TMP/b.log"
lib_bg in_a "$BUILD/sstd" --foreground --socket "$SA" --keydir "$LIB_TMP/ka" --log info 2>"$LIB_TMP/a.log"
poll_until 20 test -S "$SA" || fail "no socket $SA"
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "no socket in B"

PERL='use IO::Socket::INET;
my $s = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => 7000, Timeout => 10) or die "connect: $@";
printf "perl: peer %s:%s sock %s port>0 %d\n", $s->peerhost, $s->peerport, $s->sockhost, $s->sockport > 0;
print $s "x" x 300000; $s->shutdown(1); local $/; my $r = <$s>;
print "perl: echo ", length($r), "\n";
my $r2 = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => 7999, Timeout => 10);
print "perl: refused port: ", ($r2 ? "connected" : "$!"), "\n";'

# AppsClient is compiled once: `java File.java` compiled it in every run (three), 3-4 s of both
# cores each, and with two busy loops on the machine a run spent its whole 60 s in the compiler
# (java exited 124 having printed nothing, over kernel TCP as under the shim).
mkdir -p "$LIB_TMP/java"
javac -d "$LIB_TMP/java" "$HERE/AppsClient.java" 2>"$LIB_TMP/javac.err" || fail "javac failed: $(cat "$LIB_TMP/javac.err")"

# run LABEL [env...]: the three programs in A, stdout to $LIB_TMP/LABEL.out, stderr to .err.
run() {
  local label=$1; shift
  : >"$LIB_TMP/$label.out"
  in_a env "$@" timeout 60 node "$HERE/apps_client.js" "$IP_B" "$IP6_B" >>"$LIB_TMP/$label.out" 2>>"$LIB_TMP/$label.err" ||
    fail "$label: node exited $?: $(tail -3 "$LIB_TMP/$label.err")"
  in_a env "$@" timeout 60 java -cp "$LIB_TMP/java" AppsClient "$IP_B" >>"$LIB_TMP/$label.out" 2>>"$LIB_TMP/$label.err" ||
    fail "$label: java exited $?: $(tail -3 "$LIB_TMP/$label.err")"
  in_a env "$@" timeout 60 perl -e "$PERL" "$IP_B" >>"$LIB_TMP/$label.out" 2>>"$LIB_TMP/$label.err" ||
    fail "$label: perl exited $?: $(tail -3 "$LIB_TMP/$label.err")"
  in_a env "$@" timeout 60 /usr/bin/python3 "$HERE/apps_stale.py" "$IP_B" >>"$LIB_TMP/$label.out" 2>>"$LIB_TMP/$label.err" ||
    fail "$label: apps_stale.py exited $?: $(tail -3 "$LIB_TMP/$label.err")"
  in_a env "$@" timeout 60 /usr/bin/python3 "$HERE/apps_sockopt.py" "$IP_B" "$IP6_B" >>"$LIB_TMP/$label.out" 2>>"$LIB_TMP/$label.err" ||
    fail "$label: apps_sockopt.py exited $?: $(tail -3 "$LIB_TMP/$label.err")"
}

log "kernel TCP: node, java, perl"
run tcp
grep -q "echo $IP_B 2000000: same true" "$LIB_TMP/tcp.out" || fail "kernel TCP baseline: $(cat "$LIB_TMP/tcp.out")"
grep -q "local /$IP_A port>0 true" "$LIB_TMP/tcp.out" || fail "kernel TCP baseline: $(cat "$LIB_TMP/tcp.out")"
[ -s "$LIB_TMP/tcp.err" ] && fail "kernel TCP run wrote to stderr: $(head -3 "$LIB_TMP/tcp.err")"
lib_block_tcp
if in_a timeout 3 node -e 'require("net").connect(7000, process.argv[1]).on("connect", () => process.exit(0))' "$IP_B"; then
  fail "TCP is not blocked: the test would not prove SST"
fi

SHIMENV=(LD_PRELOAD="$SHIM" SST_PEERS="$IP_B,$IP6_B" SST_MODE=strict SST_LOG_FILE="$LIB_TMP/shim.log" SST_LOG=info)
for mode in engine sstd; do
  if [ $mode = engine ]; then
    helper=off
  else
    helper=$SA
  fi
  log "under the shim ($mode): the same output"
  run "$mode" "${SHIMENV[@]}" SST_HELPER="$helper" SST_KEYDIR="$LIB_TMP/k-$mode"
  diff "$LIB_TMP/tcp.out" "$LIB_TMP/$mode.out" >"$LIB_TMP/$mode.diff" ||
    fail "$mode: output differs from kernel TCP: $(cat "$LIB_TMP/$mode.diff")"
  [ -s "$LIB_TMP/$mode.err" ] && fail "$mode: stderr: $(head -3 "$LIB_TMP/$mode.err")"
  log "ok: $mode: $(wc -l <"$LIB_TMP/$mode.out") lines as over kernel TCP, nothing on stderr"
done
grep -q "handing the connection to the helper\|carrying connection over sst" "$LIB_TMP/shim.log" ||
  fail "the shim log shows no SST connection"

log "sstd never saw a mapped address: the dual-stack sockets' host is the IPv4 host"
"$BUILD/sstctl" --socket "$SA" status >"$LIB_TMP/status" || fail "sstctl status failed"
grep -q "ffff" "$LIB_TMP/status" && fail "sstd knows a mapped host: $(grep ffff "$LIB_TMP/status")"
grep -q "10.77.0.2:8661/7000 *sst" "$LIB_TMP/status" || fail "sstd's cache lacks 7000: $(cat "$LIB_TMP/status")"
[ -e "${SA%.sock}.caps" ] || fail "sstd wrote no capability file"
grep -q ffff "${SA%.sock}.caps" && fail "the capability file lists a mapped host"
# IP_BIND_ADDRESS_NO_PORT (24) as curl --interface sets it: without it bind() takes a port and
# the socket stays on kernel TCP (§2).
log "getsockname keeps a source address the program bound before connect (IP_BIND_ADDRESS_NO_PORT)"
in_a ip addr add 10.77.0.11/24 dev sst0 || fail "cannot add a second address in A"
BOUND='import socket, sys
s = socket.socket(); s.setsockopt(socket.IPPROTO_IP, 24, 1)
s.bind(("10.77.0.11", 0)); s.connect((sys.argv[1], 7000))
print(s.getsockname()[0], s.getsockname()[1] > 0); s.sendall(b"b"); print(s.recv(1))'
for helper in off "$SA"; do
  got=$(in_a env "${SHIMENV[@]}" SST_HELPER="$helper" SST_KEYDIR="$LIB_TMP/k-bound" timeout 20 \
        /usr/bin/python3 -c "$BOUND" "$IP_B" 2>"$LIB_TMP/bound.err") ||
    fail "bound client (SST_HELPER=$helper) failed: $(tail -3 "$LIB_TMP/bound.err")"
  assert_eq "10.77.0.11 True b'b'" "$(echo $got)" "bound client's getsockname and echo (SST_HELPER=$helper)"
done

log "a changed host key: the shim's message reaches the log whole"
mkdir -p "$LIB_TMP/k-changed"
printf '%s %s\n' "$IP_B" "$(printf '%064d' 7)" >"$LIB_TMP/k-changed/known_hosts"
in_a env "${SHIMENV[@]}" SST_HELPER=off SST_KEYDIR="$LIB_TMP/k-changed" SST_LOG_FILE="$LIB_TMP/changed.log" \
  timeout 20 /usr/bin/python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], 7000))' "$IP_B" \
  2>/dev/null && fail "connected despite a changed host key"
grep -q "HOST KEY FOR $IP_B HAS CHANGED" "$LIB_TMP/changed.log" || fail "no changed-key message: $(cat "$LIB_TMP/changed.log")"
grep -q "set SST_ACCEPT_CHANGED_HOSTKEY=$IP_B for one run to re-pin it, then reconnect\.$" "$LIB_TMP/changed.log" ||
  fail "the changed-key message is cut: $(tail -2 "$LIB_TMP/changed.log")"
log "a link-local IPv6 peer (fe80::%sst0): sstd is told the zone"
LL_B=$(in_b ip -6 -br addr show dev sst0 | grep -o 'fe80::[0-9a-f:]*') || fail "B has no link-local address"
LL='import socket, sys
s = socket.create_connection((sys.argv[1], 7000), timeout=20); s.sendall(b"zone"); s.shutdown(socket.SHUT_WR)
print(s.recv(10).decode(), s.getpeername()[0] == sys.argv[1].split("%")[0], s.getpeername()[3] > 0)'
for helper in off "$SA"; do
  got=$(in_a env "${SHIMENV[@]}" SST_PEERS=fe80::/10 SST_HELPER="$helper" SST_KEYDIR="$LIB_TMP/k-ll" timeout 20 \
        /usr/bin/python3 -c "$LL" "$LL_B%sst0" 2>"$LIB_TMP/ll.err") ||
    fail "link-local client (SST_HELPER=$helper) failed: $(tail -3 "$LIB_TMP/ll.err")"
  assert_eq "zone True True" "$(echo $got)" "link-local echo over SST (SST_HELPER=$helper)"
done
"$BUILD/sstctl" --socket "$SA" status >"$LIB_TMP/status2" || fail "sstctl status failed"
grep -q "\[$LL_B%[0-9]*\]:8661/7000 *sst" "$LIB_TMP/status2" || fail "sstd's cache lacks the zoned host: $(cat "$LIB_TMP/status2")"
log "a refused port in strict mode: ECONNREFUSED, and nothing from the shim on stderr (as TCP)"
REFUSED='import socket, sys
try:
    socket.create_connection((sys.argv[1], 7999), timeout=10)
except ConnectionRefusedError:
    print("refused")'
for helper in off "$SA"; do
  got=$(in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER="$helper" SST_KEYDIR="$LIB_TMP/k-ref" \
        timeout 20 /usr/bin/python3 -c "$REFUSED" "$IP_B" 2>"$LIB_TMP/ref.err") || fail "refused-port client failed"
  assert_eq refused "$got" "a refused port (SST_HELPER=$helper)"
  [ -s "$LIB_TMP/ref.err" ] && fail "stderr on a refused port (SST_HELPER=$helper): $(cat "$LIB_TMP/ref.err")"
done
log "PASS"
