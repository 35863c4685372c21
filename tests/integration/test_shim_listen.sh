#!/usr/bin/env bash
# The shim's server side (SST_LISTEN): unmodified servers run under the shim in B accept SST
# streams on their ordinary listening sockets, with TCP between the hosts blocked; accept() and
# getpeername() report A's real address, getsockname() B's (not the loopback bridge).
#
#   $NS_A  sst0 10.77.0.1 ===== veth (TCP dropped) ===== sst0 10.77.0.2  $NS_B
#          fd77::1                                          fd77::2
#          curl / python / nc under the shim                python http.server :8080
#          (SST_MODE=strict, SST_HELPER=off)                  SST_LISTEN=1, UDP 8661
#                                                           python echo :9000 (dual-stack),
#                                                             :9001 (not selected), :9002 (closes
#                                                             its listener after one client),
#                                                             :9003 asyncio, :9004 NULL accept
#                                                             SST_LISTEN=9000,9002-9004, UDP 8662
#                                                           python http.server :8081, no shim
#
# The control checks show each client fails without SST: TCP is blocked, and a server without
# the shim cannot be reached.
. "$(dirname "$0")/lib.sh"
lib_init shim_listen
need_tool curl nc ss /usr/bin/python3
SHIM=$BUILD/libsstshim.so
[ -f "$SHIM" ] || env_fail "$SHIM not built"

mkdir -p "$LIB_TMP/www"
: >"$LIB_TMP/www/f0"
head -c 1000 /dev/urandom >"$LIB_TMP/www/f1k"
head -c 10000000 /dev/urandom >"$LIB_TMP/www/f10m"

lib_net_up
lib_block_tcp

HTTP_PY='
import functools, http.server, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 64
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
Server(("0.0.0.0", int(sys.argv[2])), handler).serve_forever()'

SRV_ENVS=(LD_PRELOAD="$SHIM" SST_PEERS="$IP_A" SST_HELPER=off SST_LOG=debug)
lib_bg in_b env "${SRV_ENVS[@]}" SST_LISTEN=1 SST_KEYDIR="$LIB_TMP/kb" SST_LOG_FILE="$LIB_TMP/b-http.log" \
  /usr/bin/python3 -c "$HTTP_PY" "$LIB_TMP/www" 8080 2>"$LIB_TMP/http.log"

# Echo servers: the reply names the peer as accept() and getpeername() saw it, and the bytes
# received before the client's half-close.  :9002 closes its listening socket after one client;
# :9003 is an asyncio (epoll) server; :9004 accepts with accept(fd, NULL, NULL) through ctypes.
# No SST_PEERS here: SST_LISTEN alone activates the shim.
lib_bg in_b env LD_PRELOAD="$SHIM" SST_HELPER=off SST_LOG=debug SST_LISTEN=9000,9002,9003,9004,9005,9006,9007 SST_PORT=8662 \
  SST_KEYDIR="$LIB_TMP/kb" SST_LOG_FILE="$LIB_TMP/b-echo.log" /usr/bin/python3 -c '
import asyncio, ctypes, socket, threading
def serve(c, addr):
    data = b""
    while True:
        b = c.recv(65536)
        if not b: break
        data += b
    c.sendall(b"accept=%s peer=%s sock=%s got %d bytes then EOF\n" % (addr[0].encode(), c.getpeername()[0].encode(),
              c.getsockname()[0].encode(), len(data)))
    c.sendall(data); c.close()
def loop(s, once=False):
    while True:
        c, addr = s.accept()
        threading.Thread(target=serve, args=(c, addr), daemon=True).start()
        if once:
            s.close(); return
def loop_null(s):
    libc = ctypes.CDLL(None, use_errno=True)
    while True:
        fd = libc.accept(s.fileno(), None, None)
        threading.Thread(target=serve, args=(socket.socket(fileno=fd), ("null",)), daemon=True).start()
async def handle(r, w):
    data = await r.read()
    w.write(b"asyncio peer=%s got %d bytes then EOF\n" % (w.get_extra_info("peername")[0].encode(), len(data)))
    await w.drain(); w.close()
async def amain():
    srv = await asyncio.start_server(handle, "0.0.0.0", 9003)
    await srv.serve_forever()
s6 = socket.create_server(("::", 9000), family=socket.AF_INET6, dualstack_ipv6=True, backlog=64)
s1 = socket.create_server(("0.0.0.0", 9001))
s2 = socket.create_server(("0.0.0.0", 9002))
s4 = socket.create_server(("0.0.0.0", 9004))
s5 = socket.create_server(("::", 9005), family=socket.AF_INET6)   # IPV6_V6ONLY
s7 = socket.create_server(("127.0.0.1", 9006))                      # loopback only
s8 = socket.create_server(("'"$IP_B"'", 9007))                     # the host address, then loopback
s9 = socket.create_server(("127.0.0.1", 9007))
for s in (s7, s8, s9):
    threading.Thread(target=loop, args=(s,), daemon=True).start()
threading.Thread(target=loop, args=(s1,), daemon=True).start()
threading.Thread(target=loop, args=(s5,), daemon=True).start()
threading.Thread(target=loop, args=(s2, True), daemon=True).start()
threading.Thread(target=loop_null, args=(s4,), daemon=True).start()
threading.Thread(target=asyncio.run, args=(amain(),), daemon=True).start()
loop(s6)' 2>"$LIB_TMP/echo.log"

# The proof server: the same http.server without the shim.
lib_bg in_b /usr/bin/python3 -c "$HTTP_PY" "$LIB_TMP/www" 8081 2>"$LIB_TMP/http-plain.log"

wait_for_port "$NS_B" 8080
wait_for_port "$NS_B" 9000
wait_for_port "$NS_B" 9002
wait_for_port "$NS_B" 9003
wait_for_port "$NS_B" 9004
wait_for_port "$NS_B" 9005
wait_for_port "$NS_B" 9007
wait_for_port "$NS_B" 8081
wait_for_port "$NS_B" 8661 udp
wait_for_port "$NS_B" 8662 udp

CLI_ENVS=(LD_PRELOAD="$SHIM" SST_PEERS="$IP_B,$IP6_B" SST_MODE=strict SST_HELPER=off SST_KEYDIR="$LIB_TMP/ka"
          SST_LOG=debug SST_LOG_FILE="$LIB_TMP/a.log")
shimmed() { in_a env "${CLI_ENVS[@]}" "$@"; }
srvlog() { tail -5 "$LIB_TMP/b-http.log" "$LIB_TMP/b-echo.log" "$LIB_TMP/a.log" 2>/dev/null; }

log "control: without the shim, TCP to B is blocked"
if in_a curl -s -m 2 -o /dev/null "http://$IP_B:8080/f1k"; then fail "TCP is not blocked"; fi
log "control: a server without the shim is not reachable over SST (strict)"
if shimmed SST_PORT=8663 curl -s -m 5 -o /dev/null "http://$IP_B:8081/f1k"; then
  fail "reached a server without the shim: the test would not prove SST_LISTEN"
fi

for f in f0 f1k f10m; do
  log "curl $f from the shimmed http.server over SST"
  shimmed curl -sS -m 30 -o "$LIB_TMP/$f.curl" "http://$IP_B:8080/$f" || fail "curl $f failed: $(srvlog)"
  cmp "$LIB_TMP/www/$f" "$LIB_TMP/$f.curl" || fail "curl $f differs"
done
log "ok: 0 B, 1 KB, 10 MB byte-exact"
n=$(grep -c "^$IP_A - .*\"GET /f" "$LIB_TMP/http.log" || true)
assert_eq 3 "$n" "access log lines naming A's real address $IP_A"
if grep -q '^127\.' "$LIB_TMP/http.log"; then fail "access log shows a loopback peer: $(cat "$LIB_TMP/http.log")"; fi
n=$(grep -c "SST_LISTEN: stream from $IP_A:[0-9]* for port 8080" "$LIB_TMP/b-http.log" || true)
assert_eq 3 "$n" "SST streams the server's shim accepted for port 8080"

log "python raw sockets with half-close, IPv4 and IPv6, to a dual-stack listener"
shimmed SST_PORT=8662 /usr/bin/python3 - "$IP_B" "$IP6_B" "$IP_A" "$IP6_A" <<'PY' || fail "python echo checks failed: $(srvlog)"
import socket, sys
b4, b6, a4, a6 = sys.argv[1:5]
def echo(host, payload):
    s = socket.create_connection((host, 9000), timeout=20)
    s.sendall(payload); s.shutdown(socket.SHUT_WR)
    buf = b""
    while True:
        b = s.recv(65536)
        if not b: break
        buf += b
    return buf
got = echo(b4, b"hello" * 1000)
want = b"accept=::ffff:%s peer=::ffff:%s sock=::ffff:%s got 5000 bytes then EOF\n" % (a4.encode(), a4.encode(), b4.encode())
assert got == want + b"hello" * 1000, got[:120]
got = echo(b6, b"x" * 300000)
want = b"accept=%s peer=%s sock=%s got 300000 bytes then EOF\n" % (a6.encode(), a6.encode(), b6.encode())
assert got == want + b"x" * 300000, got[:120]
print("python-ok")
PY

log "nc with half-close"
printf 'abc' | shimmed SST_PORT=8662 nc -N "$IP_B" 9000 >"$LIB_TMP/nc.out" || fail "nc failed"
grep -q "accept=::ffff:$IP_A peer=::ffff:$IP_A sock=::ffff:$IP_B got 3 bytes then EOF" "$LIB_TMP/nc.out" || fail "nc: $(cat "$LIB_TMP/nc.out")"

log "an asyncio (epoll) server, and accept(fd, NULL, NULL) answered by getpeername"
printf 'abcd' | shimmed SST_PORT=8662 nc -N "$IP_B" 9003 >"$LIB_TMP/nc4.out" || fail "nc to asyncio failed"
grep -q "asyncio peer=$IP_A got 4 bytes then EOF" "$LIB_TMP/nc4.out" || fail "asyncio: $(cat "$LIB_TMP/nc4.out") $(srvlog)"
printf 'ab' | shimmed SST_PORT=8662 nc -N "$IP_B" 9004 >"$LIB_TMP/nc5.out" || fail "nc to :9004 failed"
grep -q "accept=null peer=$IP_A sock=$IP_B got 2 bytes then EOF" "$LIB_TMP/nc5.out" || fail "NULL accept: $(cat "$LIB_TMP/nc5.out") $(srvlog)"

log "a port SST_LISTEN does not select stays TCP only: refused over SST"
shimmed SST_PORT=8662 /usr/bin/python3 -c "
import socket, sys
try:
    socket.create_connection(('$IP_B', 9001), timeout=10)
except ConnectionRefusedError:
    sys.exit(0)
sys.exit('connected to a port SST_LISTEN does not select')" || fail "unselected port check"

log "a port listening in one family only refuses SST clients of the other, as TCP does"
# :9004 is IPv4 only (0.0.0.0), :9005 IPv6 only (IPV6_V6ONLY): kernel TCP refuses an IPv6
# client of the first and an IPv4 client of the second.  Before, both were bridged.
for dst in "[$IP6_B]:9004" "$IP_B:9005"; do
  shimmed SST_PORT=8662 /usr/bin/python3 -c "
import socket, sys
h, p = sys.argv[1].rsplit(':', 1)
try:
    socket.create_connection((h.strip('[]'), int(p)), timeout=10)
except ConnectionRefusedError:
    sys.exit(0)
sys.exit('connected to %s, which listens in the other family only' % sys.argv[1])" "$dst" || fail "family check $dst"
done
printf 'v6' | shimmed SST_PORT=8662 nc -N "$IP6_B" 9005 >"$LIB_TMP/nc6.out" || fail "nc to [$IP6_B]:9005 failed"
grep -q "accept=$IP6_A peer=$IP6_A sock=$IP6_B got 2 bytes then EOF" "$LIB_TMP/nc6.out" || fail "9005: $(cat "$LIB_TMP/nc6.out")"
printf 'v4' | shimmed SST_PORT=8662 nc -N "$IP_B" 9004 >"$LIB_TMP/nc7.out" || fail "nc to $IP_B:9004 failed"
grep -q "accept=null peer=$IP_A sock=$IP_B got 2 bytes then EOF" "$LIB_TMP/nc7.out" || fail "9004: $(cat "$LIB_TMP/nc7.out")"

log "a port bound to one address takes only streams toward it, as TCP does"
# :9006 listens on 127.0.0.1 only: no other host reaches it over TCP, so not over SST either;
# :9007 on B's address and on 127.0.0.1: A's streams go to the first.  Before 2026-11-22 both
# were bridged to the loopback socket.
shimmed SST_PORT=8662 /usr/bin/python3 -c "
import socket, sys
try:
    socket.create_connection(('$IP_B', 9006), timeout=10)
except ConnectionRefusedError:
    sys.exit(0)
sys.exit('connected to 127.0.0.1:9006 from another host')" || fail "loopback-only check"
printf 'b7' | shimmed SST_PORT=8662 nc -N "$IP_B" 9007 >"$LIB_TMP/nc9.out" || fail "nc to $IP_B:9007 failed"
grep -q "accept=$IP_A peer=$IP_A sock=$IP_B got 2 bytes then EOF" "$LIB_TMP/nc9.out" || fail "9007: $(cat "$LIB_TMP/nc9.out")"

log "close() of the listening socket stops its SST listener"
printf 'one' | shimmed SST_PORT=8662 nc -N "$IP_B" 9002 >"$LIB_TMP/nc2.out" || fail "first client of :9002 failed"
grep -q "got 3 bytes then EOF" "$LIB_TMP/nc2.out" || fail "9002: $(cat "$LIB_TMP/nc2.out")"
poll_until 5 grep -q "port 9002 no longer accepts SST streams" "$LIB_TMP/b-echo.log" ||
  fail "the SST listener of :9002 did not stop: $(srvlog)"
shimmed SST_PORT=8662 /usr/bin/python3 -c "
import socket, sys
try:
    socket.create_connection(('$IP_B', 9002), timeout=10)
except ConnectionRefusedError:
    sys.exit(0)
sys.exit('connected after the listener was closed')" || fail "closed listener still reachable"

log "plain local TCP clients in B are unaffected"
in_b curl -sS -m 10 -o "$LIB_TMP/local.curl" "http://127.0.0.1:8080/f1k" || fail "local curl to 127.0.0.1 failed"
cmp "$LIB_TMP/www/f1k" "$LIB_TMP/local.curl" || fail "local curl body differs"
in_b curl -sS -m 10 -o "$LIB_TMP/local2.curl" "http://$IP_B:8080/f1k" || fail "local curl to $IP_B failed"
cmp "$LIB_TMP/www/f1k" "$LIB_TMP/local2.curl" || fail "local curl body differs"
n=$(grep -c "^127\.0\.0\.1 - .*\"GET /f1k" "$LIB_TMP/http.log" || true)
assert_eq 1 "$n" "access log lines for the local client at 127.0.0.1"
printf 'zz' | in_b nc -N 127.0.0.1 9000 >"$LIB_TMP/nc3.out" || fail "local nc failed"
grep -q "accept=::ffff:127.0.0.1 peer=::ffff:127.0.0.1 sock=::ffff:127.0.0.1 got 2 bytes then EOF" "$LIB_TMP/nc3.out" ||
  fail "local nc: $(cat "$LIB_TMP/nc3.out")"

log "both directions, one process: a client first (engine on an ephemeral port), then a server"
# A serves :9200 under the shim on UDP 8664; B's process connects to it over SST, then listens
# on :9100 (its engine moves to UDP 8664), A reaches it, and B's next client connection works
# on the moved engine.
# One key directory per host (ka in A, kb in B): every process on a host shows the same identity,
# as the known_hosts entries (trust on first use) expect.
lib_bg in_a env LD_PRELOAD="$SHIM" SST_HELPER=off SST_LOG=debug SST_LISTEN=9200 SST_PORT=8664 \
  SST_KEYDIR="$LIB_TMP/ka" SST_LOG_FILE="$LIB_TMP/a-echo.log" /usr/bin/python3 -c '
import socket
s = socket.create_server(("0.0.0.0", 9200))
while True:
    c, addr = s.accept()
    data = c.recv(100)
    c.sendall(b"A saw %s: %s" % (addr[0].encode(), data)); c.close()' 2>"$LIB_TMP/a-echo.err"
wait_for_port "$NS_A" 9200
wait_for_port "$NS_A" 8664 udp
lib_bg in_b env LD_PRELOAD="$SHIM" SST_PEERS="$IP_A" SST_MODE=strict SST_HELPER=off SST_LOG=debug \
  SST_LISTEN=9100 SST_PORT=8664 SST_KEYDIR="$LIB_TMP/kb" SST_LOG_FILE="$LIB_TMP/b-both.log" \
  /usr/bin/python3 -c '
import socket, sys, time
a, out = sys.argv[1], open(sys.argv[2], "w", buffering=1)
def ask(msg):
    c = socket.create_connection((a, 9200), timeout=10)
    c.sendall(msg)
    got = c.recv(100); c.close(); return got.decode()
out.write("first: %s\n" % ask(b"one"))
time.sleep(0.3)   # let the first stream finish closing: the engine then has no live stream
s = socket.create_server(("0.0.0.0", 9100))
c, addr = s.accept()
c.sendall(b"B saw %s\n" % addr[0].encode()); c.close()
out.write("second: %s\n" % ask(b"two"))
time.sleep(30)
' "$IP_A" "$LIB_TMP/both.out" 2>"$LIB_TMP/both.err"
wait_for_port "$NS_B" 9100
poll_until 5 grep -q "port 9100 also accepts SST streams" "$LIB_TMP/b-both.log" ||
  fail "B's engine did not move to the SST port: $(tail -5 "$LIB_TMP/b-both.log")"
shimmed SST_PORT=8664 nc -N "$IP_B" 9100 </dev/null >"$LIB_TMP/nc6.out" || fail "A -> B:9100 failed: $(tail -5 "$LIB_TMP/b-both.log")"
grep -q "B saw $IP_A" "$LIB_TMP/nc6.out" || fail "A -> B:9100: $(cat "$LIB_TMP/nc6.out")"
poll_until 10 grep -q "^second:" "$LIB_TMP/both.out" || fail "B's second client connection: $(cat "$LIB_TMP/both.out")"
grep -q "^first: A saw $IP_B: one" "$LIB_TMP/both.out" || fail "B's first client: $(cat "$LIB_TMP/both.out")"
grep -q "^second: A saw $IP_B: two" "$LIB_TMP/both.out" || fail "B's second client: $(cat "$LIB_TMP/both.out")"

log "ok: SST_LISTEN: http.server and echo servers reached over SST only, real peer addresses, half-close, close, local clients unaffected"
