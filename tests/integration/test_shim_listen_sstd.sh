#!/usr/bin/env bash
# Listeners handed to sstd (docs/shim.md §6c, docs/helper.md "LISTEN"): on a host where sstd
# holds the SST port, servers under the shim with SST_LISTEN register their ports with it and
# are reachable over SST -- two of them at once, one of them nginx with `daemon on` (its first
# process registers and exits; the keeper keeps the registration) -- and both see A's address
# from accept() (sstd announces each connection's loopback address with its SST peer, PEER,
# and connects once the shim recorded it, PEERED).
#
#   $NS_A 10.77.0.1 ======= veth (TCP dropped) ======= 10.77.0.2 $NS_B
#   python / curl under the shim                        sstd (UDP 8661, own socket) --forward 8095
#   (SST_MODE=strict, SST_HELPER=off)                   python echo :9000 under the shim,
#                                                         SST_LISTEN=9000, SST_HELPER=that socket
#                                                       nginx :8090 (daemon on) likewise
#
# Before (main up to 2026-11-22): the servers could not bind UDP 8661 (sstd has it), their
# ports stayed TCP only, and the strict clients' connections failed.
# Also: a registrant that never answers PEER gets its connection after sstd's 1 s wait; sstd
# refuses a LISTEN with a socket that does not listen (not-listening), a port
# --forward serves (forwarded; the shim's warning says so); takes an IPv6 socket of a port
# whose IPv4 one another process registered; a server that closes its listening socket and lives on ends its registration; a
# stopped sstd (SIGSTOP) is reported after 2 s and registers the port once continued; a server
# whose SST_PORT is taken by something else than sstd is told sstd's UDP port;
# stopping the server ends its registration (STATUS) and a new connection is refused
# (ECONNREFUSED); nginx stopped, its keeper ends and so does its registration; sstd restarted,
# the echo server registers again with the new one.
. "$(dirname "$0")/lib.sh"
lib_init shim_listen_sstd
need_tool /usr/bin/python3 curl nginx
SHIM=$BUILD/libsstshim.so
for b in sstd sstctl libsstshim.so; do [ -e "$BUILD/$b" ] || env_fail "$BUILD/$b not built"; done

lib_net_up
lib_block_tcp

SOCK=$LIB_TMP/b.sock
lib_bg in_b "$BUILD/sstd" --foreground --socket "$SOCK" --keydir "$LIB_TMP/kb" --forward 8095 \
  --log info 2>"$LIB_TMP/sstd.log"
SSTD=$LIB_BG_PID
poll_until 20 test -S "$SOCK" || fail "sstd did not start: $(tail -3 "$LIB_TMP/sstd.log")"

SRV=(LD_PRELOAD="$SHIM" SST_HELPER="$SOCK" SST_KEYDIR="$LIB_TMP/ks" SST_LOG=${SRV_LOG:-info})
SHIMENV=(LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER=off
         SST_KEYDIR="$LIB_TMP/ka" SST_LOG=info)

# listeners: STATUS's registered ports, "PORT:PID ..." sorted.
listeners() {
  in_b "$BUILD/sstctl" --socket "$SOCK" status --json | /usr/bin/python3 -c '
import json, sys
print(" ".join(sorted("%d:%d" % (l["port"], l["pid"]) for l in json.load(sys.stdin)["listeners"])))'
}
registered() { listeners | grep -qw "$1:[0-9]*"; }
unregistered() { ! listeners | grep -qw "$1:[0-9]*"; }

log "1. a python echo server under SST_LISTEN registers :9000 with sstd"
lib_bg in_b env "${SRV[@]}" SST_LISTEN=9000 SST_LOG_FILE="$LIB_TMP/b-echo.log" /usr/bin/python3 -c '
import socket, threading
def serve(c, addr):
    data = b""
    while True:
        b = c.recv(65536)
        if not b: break
        data += b
    c.sendall(b"peer=%s got %d\n" % (addr[0].encode(), len(data)))
    c.sendall(data); c.close()
s = socket.create_server(("0.0.0.0", 9000), backlog=64)
while True:
    c, addr = s.accept()
    threading.Thread(target=serve, args=(c, addr), daemon=True).start()'
ECHO=$LIB_BG_PID
wait_for_port "$NS_B" 9000
poll_until 10 grep -q "port 9000 also accepts SST streams, through sstd" "$LIB_TMP/b-echo.log" ||
  fail "echo server: not registered with sstd: $(tail -3 "$LIB_TMP/b-echo.log")"
grep -q "cannot bind UDP port 8661" "$LIB_TMP/b-echo.log" ||
  fail "echo server: UDP 8661 was not found taken by sstd: $(tail -3 "$LIB_TMP/b-echo.log")"
registered 9000 || fail "STATUS lists no listener for 9000: $(listeners)"
st=$(in_b "$BUILD/sstctl" --socket "$SOCK" status)
echo "$st" | grep -Eq "^  9000 +LISTEN  -> 127\.0\.0\.1:9000 \(pid [0-9]+\)$" ||
  fail "sstctl status does not list the registration: $(echo "$st" | sed -n '/^listeners:/,/^capability/p')"

log "2. nginx (daemon on) under SST_LISTEN registers :8090; its keeper keeps it"
lib_nginx_conf on 'nginx $remote_addr'
in_b env "${SRV[@]}" SST_LISTEN=8090 SST_LOG_FILE="$LIB_TMP/b-nginx.log" \
  nginx -c "$LIB_TMP/nginx.conf" -e "$LIB_TMP/nginx-error.log" || fail "nginx did not start"
wait_for_port "$NS_B" 8090
poll_until 10 grep -q "port 8090 also accepts SST streams, through sstd" "$LIB_TMP/b-nginx.log" ||
  fail "nginx: not registered with sstd: $(cat "$LIB_TMP/b-nginx.log")"
kn=$(sed -n 's/.*go on in keeper pid \([0-9]*\).*/\1/p' "$LIB_TMP/b-nginx.log" | tail -1)
[ -n "$kn" ] || fail "nginx: no keeper logged: $(tail -3 "$LIB_TMP/b-nginx.log")"
registered 8090 || fail "STATUS lists no listener for 8090: $(listeners)"

log "3. strict SST clients in A reach both (TCP between the hosts is blocked)"
for i in 1 2 3; do
  ngot=$(in_a timeout 15 env "${SHIMENV[@]}" curl -sS --max-time 10 "http://$IP_B:8090/" 2>"$LIB_TMP/curl.err")
  case $ngot in
    "nginx $IP_A") ;;
    *) fail "nginx through sstd: '$ngot': $(tail -3 "$LIB_TMP/curl.err")" ;;
  esac
done
head -c 300000 /dev/urandom >"$LIB_TMP/blob"
CLIENT='
import hashlib, socket, sys
data = open(sys.argv[1], "rb").read()
s = socket.create_connection((sys.argv[2], 9000), timeout=15)
s.sendall(data); s.shutdown(socket.SHUT_WR)
f = s.makefile("rb")
head = f.readline().decode().split()
back = f.read()
print(head[0], head[2], "same" if back == data else "DIFFERENT(%d)" % len(back))'
got=$(in_a timeout 20 env "${SHIMENV[@]}" /usr/bin/python3 -c "$CLIENT" "$LIB_TMP/blob" "$IP_B" 2>"$LIB_TMP/py.err")
case $got in
  "peer=$IP_A 300000 same") ;;
  *) fail "echo through sstd: '$got': $(tail -3 "$LIB_TMP/py.err")" ;;
esac
grep -q "listen: SST service 9000 -> 127.0.0.1:9000" "$LIB_TMP/sstd.log" ||
  fail "sstd did not log the registration of 9000"
log "ok: nginx ('$ngot') and the echo server ('$got') both answered over SST through sstd"

log "4. refusals: a socket that does not listen, a forwarded port; an IPv6 socket beside a port's IPv4 one"
RAW='
import socket, sys
port, kind = int(sys.argv[2]), sys.argv[3]
if kind == "connected":
    l = socket.create_server(("127.0.0.1", 0)); t = socket.create_connection(l.getsockname()); fd = t.fileno()
elif kind == "v6":
    t = socket.socket(socket.AF_INET6); t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    t.bind(("::1", port)); t.listen(); fd = t.fileno()
else:
    t = socket.create_server(("127.0.0.1", port)); fd = t.fileno()
c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1])
socket.send_fds(c, [b"LISTEN %d\n" % port], [fd])
print(c.makefile().readline().strip())'
ans=$(in_b /usr/bin/python3 -c "$RAW" "$SOCK" 9100 connected)
case $ans in *'"error":"not-listening"'*) ;; *) fail "LISTEN with a connected socket: $ans" ;; esac
ans=$(in_b /usr/bin/python3 -c "$RAW" "$SOCK" 8095 listen)
case $ans in *'"error":"forwarded"'*) ;; *) fail "LISTEN of a forwarded port: $ans" ;; esac
# Another socket of a registered port, at another place (IPv6 only, where the echo server
# listens on IPv4): registered beside it, as TCP lets both listen (in-use is for the same
# place: test_shim_listen_sstd_family.sh).
ans=$(in_b /usr/bin/python3 -c "$RAW" "$SOCK" 9000 v6)
case $ans in *'"ok":true'*) ;; *) fail "LISTEN of an IPv6 socket of a port registered for IPv4: $ans" ;; esac
ans=$(in_b /usr/bin/python3 -c "$RAW" "$SOCK" 9101 listen)
case $ans in *'"ok":true'*) ;; *) fail "LISTEN of a free port: $ans" ;; esac
poll_until 5 unregistered 9101 || fail "a registration outlived its connection: $(listeners)"
# A registrant that never answers PEER (no shim): sstd connects after its bounded wait (1 s),
# and the server then sees sstd's loopback address.
in_b /usr/bin/python3 -c '
import socket, sys, time
l = socket.create_server(("0.0.0.0", 9102)); l.settimeout(15)
c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1])
socket.send_fds(c, [b"LISTEN 9102\n"], [l.fileno()])
f = c.makefile()
ok = f.readline()
open(sys.argv[2] + ".reg", "w").write(ok)
dest = f.readline().split()   # DEST LOCAL ADDRESS (the address the client reached), then PEER
peer = f.readline().split()
t0 = time.monotonic()
a, addr = l.accept()
waited = time.monotonic() - t0
a.sendall(b"%s %s %.2f\n" % (peer[0].encode(), addr[0].encode(), waited)); a.close()
open(sys.argv[2], "w").write("%s %s %s:%d %.2f %s %s %s\n" % (peer[1], peer[2], addr[0], addr[1], waited, dest[0], dest[1], dest[2]))
time.sleep(0.5)' "$SOCK" "$LIB_TMP/raw9102" &
raw=$!
poll_until 10 test -s "$LIB_TMP/raw9102.reg" || fail "LISTEN 9102: no answer"
got=$(in_a timeout 15 env "${SHIMENV[@]}" /usr/bin/python3 -c "
import socket
s = socket.create_connection(('$IP_B', 9102), timeout=10)
print(s.makefile().readline().strip())" 2>"$LIB_TMP/py3.err")
wait "$raw"
read -r plocal ppeer acc waited dword dlocal daddr <"$LIB_TMP/raw9102"
[ "$dword $dlocal ${daddr%:*}" = "DEST $plocal $IP_B" ] ||
  fail "sstd's line before PEER $plocal was '$dword $dlocal $daddr', want DEST $plocal $IP_B:PORT"
[ "${ppeer%:*}" = "$IP_A" ] || fail "sstd's PEER line named '$ppeer', want $IP_A"
[ "$plocal" = "$acc" ] || fail "sstd's PEER line named $plocal, the server accepted $acc"
/usr/bin/python3 -c "import sys; sys.exit(not 0.9 <= float('$waited') <= 5)" ||
  fail "without PEERED sstd connected after ${waited}s, want its 1 s wait"
[ -n "$got" ] || fail "the client of 9102 got no answer: $(tail -3 "$LIB_TMP/py3.err")"
# A shimmed server on the forwarded port: the shim says why it stays TCP only.
in_b timeout 10 env "${SRV[@]}" SST_LISTEN=8095 SST_LOG_FILE="$LIB_TMP/b-fwd.log" /usr/bin/python3 -c '
import socket, time
s = socket.create_server(("0.0.0.0", 8095)); time.sleep(1)'
grep -q 'port 8095 stays TCP only (SST port 8661 is taken; sstd at .*"error":"forwarded"' "$LIB_TMP/b-fwd.log" ||
  fail "no warning for the forwarded port: $(tail -3 "$LIB_TMP/b-fwd.log")"
# A shimmed server that closes its listening socket and lives on: the shim's close ends the
# registration (not only the process's end).
in_b env "${SRV[@]}" SST_LISTEN=9103 SST_LOG_FILE="$LIB_TMP/b-close.log" /usr/bin/python3 -c '
import socket, sys, time
s = socket.create_server(("0.0.0.0", 9103))
while "through sstd" not in open(sys.argv[1]).read(): time.sleep(0.05)
s.close()
open(sys.argv[2], "w").close()
time.sleep(3)' "$LIB_TMP/b-close.log" "$LIB_TMP/closed9103" &
closer=$!
poll_until 10 test -e "$LIB_TMP/closed9103" || fail "the server of 9103 did not register: $(tail -3 "$LIB_TMP/b-close.log")"
poll_until 2 unregistered 9103 || fail "9103 still registered after its listening socket was closed: $(listeners)"
kill -0 "$closer" 2>/dev/null || fail "the server of 9103 ended too early for the check"
wait "$closer"
log "ok: not-listening, forwarded (and the shim's warning) refused, an IPv6 socket of 9000 taken; a free port taken and let go, one closed by its server's close(); no PEERED: connected after ${waited}s, the server saw $acc"

log "4b. sstd stopped (SIGSTOP) while a server registers: the shim says so after 2 s; registered once sstd runs again"
kill -STOP "$SSTD"
lib_bg in_b env "${SRV[@]}" SST_LISTEN=9104 SST_LOG_FILE="$LIB_TMP/b-slow.log" /usr/bin/python3 -c '
import socket, time
s = socket.create_server(("0.0.0.0", 9104)); time.sleep(30)'
slow=$LIB_BG_PID
if ! poll_until 6 grep -qs "has not answered LISTEN 9104 for 2 s" "$LIB_TMP/b-slow.log"; then
  kill -CONT "$SSTD"; fail "no word about the silent sstd: $(tail -3 "$LIB_TMP/b-slow.log")"
fi
kill -CONT "$SSTD"
poll_until 10 grep -qs "port 9104 also accepts SST streams, through sstd" "$LIB_TMP/b-slow.log" ||
  fail "9104 not registered once sstd ran again: $(tail -3 "$LIB_TMP/b-slow.log")"
registered 9104 || fail "STATUS lists no listener for 9104: $(listeners)"
kill "$slow"
# SST_PORT taken by something else than sstd (which runs on 8661): registered with sstd, and
# the shim says which UDP port its clients need.
in_b /usr/bin/python3 -c '
import socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::", 8670))
open("'"$LIB_TMP/held"'", "w").close(); time.sleep(4)' &
holder=$!
poll_until 10 test -e "$LIB_TMP/held" || fail "could not hold UDP 8670"
in_b timeout 10 env "${SRV[@]}" SST_LISTEN=9105 SST_PORT=8670 SST_LOG_FILE="$LIB_TMP/b-8670.log" /usr/bin/python3 -c '
import socket, time
s = socket.create_server(("0.0.0.0", 9105)); time.sleep(1)'
grep -q "port 9105 accepts SST streams through sstd at .* on its UDP port 8661, not SST_PORT 8670 .*SST_PORT=8661" \
  "$LIB_TMP/b-8670.log" || fail "no word about sstd's other UDP port: $(tail -3 "$LIB_TMP/b-8670.log")"
wait "$holder"
log "ok: a silent sstd is reported after 2 s and takes the port once it runs; sstd's UDP port named when it is not SST_PORT"

log "5. nginx stopped: its keeper ends, and with it the registration of :8090"
master=$(cat "$LIB_TMP/nginx.pid")
kill "$master"
poll_until 10 sh -c "! kill -0 $master 2>/dev/null" || fail "nginx did not stop"
poll_until 10 unregistered 8090 || fail "8090 still registered after nginx stopped: $(listeners)"
poll_until 10 sh -c "! grep -q '^State:[[:space:]]*[^Z]' /proc/$kn/status 2>/dev/null" ||
  fail "nginx's keeper $kn still runs"
log "ok: nginx stopped, its keeper $kn gone, 8090 no longer registered"

log "6. sstd restarted: the echo server registers :9000 again with the new one"
kill "$SSTD"
wait "$SSTD" 2>/dev/null
lib_bg in_b "$BUILD/sstd" --foreground --socket "$SOCK" --keydir "$LIB_TMP/kb" --forward 8095 \
  --log info 2>"$LIB_TMP/sstd2.log"
SSTD=$LIB_BG_PID
poll_until 20 test -S "$SOCK" || fail "sstd did not start again: $(tail -3 "$LIB_TMP/sstd2.log")"
grep -q "sstd ended: port 9000 no longer accepts SST streams" "$LIB_TMP/b-echo.log" ||
  fail "echo server: the end of sstd not logged: $(tail -3 "$LIB_TMP/b-echo.log")"
poll_until 10 registered 9000 || fail "9000 not registered again with the new sstd: $(listeners)"
got=$(in_a timeout 20 env "${SHIMENV[@]}" /usr/bin/python3 -c "$CLIENT" "$LIB_TMP/blob" "$IP_B" 2>"$LIB_TMP/py.err")
case $got in
  "peer=$IP_A 300000 same") ;;
  *) fail "echo through the new sstd: '$got': $(tail -3 "$LIB_TMP/py.err")" ;;
esac
log "ok: registered again with the restarted sstd and reached over SST"

log "7. the echo server stopped: its registration ends, a new connection is refused"
kill "$ECHO"
poll_until 10 unregistered 9000 || fail "9000 still registered after its server stopped: $(listeners)"
got=$(in_a timeout 15 env "${SHIMENV[@]}" /usr/bin/python3 -c "
import errno, socket
try:
    socket.create_connection(('$IP_B', 9000), timeout=10); print('connected')
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))" 2>"$LIB_TMP/py2.err")
[ "$got" = ECONNREFUSED ] || fail "a connection to the stopped server: '$got', want ECONNREFUSED"
log "ok: the registration ended with its server (ECONNREFUSED afterwards)"
