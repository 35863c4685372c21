#!/usr/bin/env bash
# connect() to a closed port of a host that speaks SST fails as with kernel TCP (ECONNREFUSED,
# curl exit 7, nc -z exit 1), and only ports that answered before come up at once (0-RTT):
#
#   $NS_A  sst0 10.77.0.1 ==TUN== linkemu (25 ms each way) ==TUN== sst0 10.77.0.2  $NS_B
#          sstd (client side)                                   sstd --forward 8080,8081
#          shimmed curl/nc/shim_probe                           http.server :8080; 8081 closed
#
# Before: the peer's gateway accepted the stream before its local connect, and the shim handed
# any port of a host known to speak SST over inside connect(): curl to 8081 read "Empty reply
# from server" (exit 52) and `nc -z` called the closed port open.  TCP is blocked between the
# namespaces, so every answer below comes over SST (strict mode: no TCP fallback).
. "$(dirname "$0")/lib.sh"
lib_init helper_refuse
need_tool curl nc /usr/bin/python3
SHIM=$BUILD/libsstshim.so
PROBE=$BUILD/tools/shim_probe
for b in sstd sstctl libsstshim.so tools/shim_probe; do [ -e "$BUILD/$b" ] || env_fail "$BUILD/$b not built"; done
SA=$LIB_TMP/a.sock
CAPS=$LIB_TMP/a.caps

lib_net_up --link emu --delay 25ms --seed 9
mkdir -p "$LIB_TMP/www"
head -c 1000 /dev/urandom >"$LIB_TMP/www/tiny"
http_up() {
  lib_bg in_b /usr/bin/python3 -c '
import functools, http.server, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
Server(("0.0.0.0", 8080), handler).serve_forever()' "$LIB_TMP/www" 2>/dev/null
  HTTP_PID=$LIB_BG_PID
  wait_for_port "$NS_B" 8080
}
http_up
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" --forward 8080,8081,8083 \
  --log info 2>"$LIB_TMP/b.log"
lib_bg in_a "$BUILD/sstd" --foreground --socket "$SA" --keydir "$LIB_TMP/ka" --log info 2>"$LIB_TMP/a.log"
poll_until 20 test -S "$SA" || fail "no socket $SA"
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "no socket in B"
lib_block_tcp

shimmed() {
  in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER="$SA" SST_KEYDIR="$LIB_TMP/kshim" \
    SST_LOG=debug SST_LOG_FILE="$LIB_TMP/shim.log" "$@"
}
# curl_rc PORT [ms-file]: curl's exit code for a GET of /tiny on PORT through the helper.
curl_rc() {
  local rc=0
  shimmed curl -sS -m 10 -o "$LIB_TMP/body" -w '%{time_total}\n' "http://$IP_B:$1/tiny" \
    >"$LIB_TMP/time" 2>"$LIB_TMP/curl.err" || rc=$?
  echo "$rc"
}

log "first GET of the open port: the channel comes up, sstd learns that 8080 answers"
assert_eq 0 "$(curl_rc 8080)" "curl exit, open port 8080"
cmp -s "$LIB_TMP/www/tiny" "$LIB_TMP/body" || fail "body differs"
poll_until 5 grep -q "^$IP_B:8661/8080 [0-9]*$" "$CAPS" || fail "capability file does not list 8080: $(cat "$CAPS")"

log "the host is known to speak SST; its closed port 8081 (forwarded, nothing listens) is refused"
assert_eq 7 "$(curl_rc 8081)" "curl exit, closed port 8081 (7: could not connect)"
grep -q "Connection refused\|Failed to connect\|Couldn't connect" "$LIB_TMP/curl.err" || fail "curl: $(cat "$LIB_TMP/curl.err")"
assert_eq 7 "$(curl_rc 8082)" "curl exit, port 8082 the peer does not forward"
rc=0; shimmed nc -z -w 5 "$IP_B" 8081 || rc=$?
assert_eq 1 "$rc" "nc -z exit, closed port"
rc=0; shimmed nc -z -w 5 "$IP_B" 8080 || rc=$?
assert_eq 0 "$rc" "nc -z exit, open port"
shimmed "$PROBE" probe "$IP_B" 8081 block >"$LIB_TMP/p1" || true
grep -qx connect=ECONNREFUSED "$LIB_TMP/p1" || fail "blocking connect: $(cat "$LIB_TMP/p1")"
shimmed "$PROBE" probe "$IP_B" 8081 nonblock >"$LIB_TMP/p2" || true
for l in connect=EINPROGRESS poll=1 so_error=ECONNREFUSED; do
  grep -qx "$l" "$LIB_TMP/p2" || fail "non-blocking connect: no '$l' in: $(cat "$LIB_TMP/p2")"
done
log "ok: blocking connect ECONNREFUSED; non-blocking EINPROGRESS, POLLOUT, SO_ERROR=ECONNREFUSED"
shimmed /usr/bin/python3 -c "
import socket, errno
s = socket.socket()
print(errno.errorcode.get(s.connect_ex(('$IP_B', 8081)), 'OK'))" >"$LIB_TMP/py" || fail "python failed"
assert_eq ECONNREFUSED "$(cat "$LIB_TMP/py")" "python connect_ex, closed port"
grep -q "^$IP_B:8661/8081 " "$CAPS" && fail "the refused port is listed as answering"
"$BUILD/sstctl" --socket "$SA" caps "$IP_B" 8080 >"$LIB_TMP/c80" || fail "sstctl caps failed"
grep -q "^$IP_B:8661: sst (.*); port 8080 answered (0-RTT for [0-9]* s)$" "$LIB_TMP/c80" || fail "sstctl caps 8080: $(cat "$LIB_TMP/c80")"
"$BUILD/sstctl" --socket "$SA" caps "$IP_B" 8081 >"$LIB_TMP/c81" || fail "sstctl caps failed"
grep -q "port 8081 has not answered lately" "$LIB_TMP/c81" || fail "sstctl caps 8081: $(cat "$LIB_TMP/c81")"
log "ok: sstctl caps: $(cat "$LIB_TMP/c80") / $(cat "$LIB_TMP/c81")"
grep -q "gateway: local service .*>8081: Connection refused; refusing the stream" "$LIB_TMP/b.log" ||
  fail "B's gateway did not log the refusal"

log "a local connect that hangs (full accept queue: the SYN is dropped) is refused after 10 s"
# A listener on 8083 that never accepts, its queue (backlog 0) filled by a local connection.
lib_bg in_b /usr/bin/python3 -c "
import socket, time
l = socket.socket()
l.bind(('127.0.0.1', 8083))
l.listen(0)
held = []
for _ in range(3):
    c = socket.socket()
    c.setblocking(False)
    c.connect_ex(('127.0.0.1', 8083))
    held.append(c)
time.sleep(60)"
wait_for_port "$NS_B" 8083
sleep 0.3
t0=$(date +%s.%N)
shimmed /usr/bin/python3 -c "
import socket, errno
s = socket.socket()
s.settimeout(30)
print(errno.errorcode.get(s.connect_ex(('$IP_B', 8083)), 'OK'))" >"$LIB_TMP/hang" || fail "python failed"
t1=$(date +%s.%N)
assert_eq ECONNREFUSED "$(cat "$LIB_TMP/hang")" "connect to a port whose local connect hangs"
assert_range 9.5 14 "$(echo "$t1 - $t0" | bc)" "seconds until the refusal"
grep -q ">8083: Connection timed out; refusing the stream" "$LIB_TMP/b.log" || fail "B's gateway did not log the timeout"

log "the open port stays 0-RTT: handed over inside connect(), one round trip (50 ms; two take >= 98)"
best=999999
for i in 1 2 3 4 5; do
  lines=$(wc -l <"$LIB_TMP/shim.log")
  assert_eq 0 "$(curl_rc 8080)" "warm curl $i exit"
  cmp -s "$LIB_TMP/www/tiny" "$LIB_TMP/body" || fail "warm body $i differs"
  tail -n +"$((lines + 1))" "$LIB_TMP/shim.log" | grep -q "handed to the helper inside connect(): $IP_B:8661/8080 answered before" ||
    fail "warm curl $i was not handed over inside connect()"
  ms=$(/usr/bin/python3 -c 'import sys; print(int(float(open(sys.argv[1]).read()) * 1000))' "$LIB_TMP/time")
  [ "$ms" -lt "$best" ] && best=$ms
  [ "$best" -le 95 ] && break
done
assert_range 48 95 "$best" "best warm GET ms"

log "IPv6: the same rule with [fd77::2] keys"
in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP6_B" SST_MODE=strict SST_HELPER="$SA" SST_KEYDIR="$LIB_TMP/kshim" \
  curl -sS -g -m 10 -o "$LIB_TMP/body" "http://[$IP6_B]:8080/tiny" || fail "IPv6 GET failed"
cmp -s "$LIB_TMP/www/tiny" "$LIB_TMP/body" || fail "IPv6 body differs"
poll_until 5 grep -q "^\[$IP6_B\]:8661/8080 [0-9]*$" "$CAPS" || fail "capability file does not list [$IP6_B]:8661/8080: $(cat "$CAPS")"
lines=$(wc -l <"$LIB_TMP/shim.log")
in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP6_B" SST_MODE=strict SST_HELPER="$SA" SST_KEYDIR="$LIB_TMP/kshim" \
  SST_LOG=debug SST_LOG_FILE="$LIB_TMP/shim.log" curl -sS -g -m 10 -o "$LIB_TMP/body" "http://[$IP6_B]:8080/tiny" ||
  fail "second IPv6 GET failed"
tail -n +"$((lines + 1))" "$LIB_TMP/shim.log" | grep -q "handed to the helper inside connect(): \[$IP6_B\]:8661/8080 answered before" ||
  fail "the second IPv6 GET was not handed over inside connect()"
rc=0; in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP6_B" SST_MODE=strict SST_HELPER="$SA" SST_KEYDIR="$LIB_TMP/kshim" \
  curl -sS -g -m 10 -o /dev/null "http://[$IP6_B]:8081/tiny" 2>/dev/null || rc=$?
assert_eq 7 "$rc" "IPv6 curl exit, closed port 8081"

log "the port closes after it answered: the 0-RTT connect cannot know, the next one is refused"
kill "$HTTP_PID"; wait "$HTTP_PID" 2>/dev/null
poll_until 5 sh -c "! ip netns exec $NS_B ss -H -ltn 'sport = :8080' | grep -q ." || fail "http.server still listens"
# Reported up at once, then the refusal fails the read (sstd passes it back as a reset).
assert_eq 56 "$(curl_rc 8080)" "curl exit, the 0-RTT connection to 8080 closed since (56: recv failure)"
poll_until 5 sh -c "! grep -q '^$IP_B:8661/8080 ' '$CAPS'" || fail "sstd still lists 8080 after its refusal: $(cat "$CAPS")"
assert_eq 7 "$(curl_rc 8080)" "curl exit, 8080 after its refusal"
http_up
assert_eq 0 "$(curl_rc 8080)" "curl exit, 8080 open again"
cmp -s "$LIB_TMP/www/tiny" "$LIB_TMP/body" || fail "body differs"

log "the in-process engine (no helper) against the same gateway"
inproc() {
  in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER=off SST_KEYDIR="$LIB_TMP/kin" \
    SST_LOG=debug SST_LOG_FILE="$LIB_TMP/inproc.log" "$@"
}
rc=0; inproc curl -sS -m 10 -o /dev/null "http://$IP_B:8081/tiny" 2>/dev/null || rc=$?
assert_eq 7 "$rc" "in-process curl exit, closed port 8081"
# One process: an open port answers, then the closed one is refused on the warm channel, then
# the open one again (up at once: its first bytes ride in the Init).
inproc /usr/bin/python3 -c "
import socket, errno
for port in (8080, 8081, 8080):
    s = socket.socket()
    e = s.connect_ex(('$IP_B', port))
    if e == 0:
        s.sendall(b'GET /tiny HTTP/1.0\r\n\r\n')
        data = b''
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        print(port, 'OK', len(data) > 1000)
    else:
        print(port, errno.errorcode[e])
    s.close()" >"$LIB_TMP/inproc.out" || fail "in-process python failed"
assert_eq "8080 OK True|8081 ECONNREFUSED|8080 OK True" "$(paste -sd'|' "$LIB_TMP/inproc.out")" "in-process answers"
# A port that answered (0-RTT for this process) and closes: the optimistic connection fails,
# the port is forgotten, and the next connect gets ECONNREFUSED at connect().
mkfifo "$LIB_TMP/go"
inproc /usr/bin/python3 -c "
import socket, errno, sys
def get(port):
    s = socket.socket()
    e = s.connect_ex(('$IP_B', port))
    if e:
        return errno.errorcode[e]
    try:
        s.sendall(b'GET /tiny HTTP/1.0\r\n\r\n')
        data = b''
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        return 'OK' if len(data) > 1000 else 'EOF'
    except OSError as x:
        return errno.errorcode[x.errno]
    finally:
        s.close()
print(get(8080), flush=True)
open(sys.argv[1]).read()
print(get(8080))
print(get(8080))" "$LIB_TMP/go" >"$LIB_TMP/inproc2.out" &
py=$!
poll_until 10 grep -q . "$LIB_TMP/inproc2.out" || fail "in-process python did not connect"
kill "$HTTP_PID"; wait "$HTTP_PID" 2>/dev/null
poll_until 5 sh -c "! ip netns exec $NS_B ss -H -ltn 'sport = :8080' | grep -q ." || fail "http.server still listens"
echo go >"$LIB_TMP/go"
wait "$py" || fail "in-process python failed"
mapfile -t r <"$LIB_TMP/inproc2.out"
assert_eq OK "${r[0]}" "in-process: 8080 while open"
[ "${r[1]}" != OK ] || fail "in-process: 8080 after it closed succeeded"
log "ok: in-process: the 0-RTT connection to the closed 8080 failed (${r[1]})"
assert_eq ECONNREFUSED "${r[2]}" "in-process: the next connect to 8080"

log "SST_LISTEN: a shimmed server whose listener stops accepting refuses over SST too"
# shutdown() of a listening socket makes the kernel stop listening (connects get RST) while the
# shim, which does not see it, still listens for SST streams to the port: the bridge's loopback
# connect is refused.  Before: the stream was answered before that connect, so the client's
# connect succeeded and then read EOF.
mkfifo "$LIB_TMP/stop"
lib_bg in_b env LD_PRELOAD="$SHIM" SST_LISTEN=9090,9092 SST_PORT=8662 SST_HELPER=off SST_KEYDIR="$LIB_TMP/ksrv" \
  SST_LOG=debug SST_LOG_FILE="$LIB_TMP/srv.log" /usr/bin/python3 -c "
import socket, sys, threading
def serve(l):
    while True:
        try:
            c, _ = l.accept()
        except OSError:
            return
        c.sendall(b'hi')
        c.close()
ls = {}
for port in (9090, 9092):
    ls[port] = socket.socket()
    ls[port].setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls[port].bind(('0.0.0.0', port))
    ls[port].listen(16)
    threading.Thread(target=serve, args=(ls[port],), daemon=True).start()
l = ls[9090]
open(sys.argv[1]).read()
l.shutdown(socket.SHUT_RDWR)
open(sys.argv[1]).read()" "$LIB_TMP/stop"
wait_for_port "$NS_B" 9090
wait_for_port "$NS_B" 8662 udp
lclient() {
  in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_PORT=8662 SST_HELPER=off SST_KEYDIR="$LIB_TMP/kcl" \
    SST_LOG=debug SST_LOG_FILE="$LIB_TMP/lclient.log" /usr/bin/python3 -c "
import socket, errno, sys
s = socket.socket()
s.settimeout(10)
e = s.connect_ex(('$IP_B', int(sys.argv[1])))
if e:
    print(errno.errorcode[e])
else:
    try:
        print('OK', s.recv(10).decode() or 'EOF')
    except OSError as x:
        print('OK', errno.errorcode[x.errno])" "$1"
}
assert_eq "OK hi" "$(lclient 9090)" "SST_LISTEN: open port"
wait_for_port "$NS_B" 9092
# One process, channel up after its first connection: a port that has not answered yet
# (9092) is up only when the peer answers (one round trip, 50 ms); once it answered, connect()
# returns at once (0-RTT) and the server's first bytes still take one round trip.
in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_PORT=8662 SST_HELPER=off SST_KEYDIR="$LIB_TMP/kcl" \
  /usr/bin/python3 -c "
import socket, time
def one(port):
    s = socket.socket()
    t0 = time.monotonic()
    s.connect(('$IP_B', port))
    t1 = time.monotonic()
    data = s.recv(10)
    t2 = time.monotonic()
    s.close()
    assert data == b'hi', data
    return int((t1 - t0) * 1000), int((t2 - t0) * 1000)
one(9090)
first = one(9092)
w = [one(9092) for _ in range(3)]
print(*first, min(c for c, r in w), min(r for c, r in w))" >"$LIB_TMP/lt" || fail "timing client failed"
read -r c_new r_new c_warm r_warm <"$LIB_TMP/lt"
assert_range 45 400 "$c_new" "SST_LISTEN: connect() ms, port not answered before (waits for the answer)"
assert_range 0 20 "$c_warm" "SST_LISTEN: connect() ms, port that answered (0-RTT)"
assert_range 45 95 "$r_warm" "SST_LISTEN: first bytes ms on the 0-RTT connection (one round trip)"
assert_eq ECONNREFUSED "$(lclient 9091)" "SST_LISTEN: port nothing listens on"
echo stop >"$LIB_TMP/stop"
poll_until 5 sh -c "! ip netns exec $NS_B ss -H -ltn 'sport = :9090' | grep -q ." || fail "9090 still listens"
assert_eq ECONNREFUSED "$(lclient 9090)" "SST_LISTEN: port whose listener stopped"
grep -q "SST_LISTEN: loopback connect to port 9090 failed: Connection refused" "$LIB_TMP/srv.log" ||
  fail "the server's shim did not try the loopback connect"
echo done >"$LIB_TMP/stop"

log "auto mode, TCP allowed: a port sstd does not forward but kernel TCP serves works (fallback)"
# Before, such a port of a host known to speak SST was handed to sstd inside connect(), reported
# up, and then closed: the TCP service behind it was unreachable under the shim.
lib_allow_tcp
lib_bg in_b /usr/bin/python3 -m http.server --bind 0.0.0.0 --directory "$LIB_TMP/www" 8084 >/dev/null 2>&1
wait_for_port "$NS_B" 8084
auto() {
  in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=auto SST_HELPER="$SA" SST_KEYDIR="$LIB_TMP/kshim" \
    SST_LOG=info SST_LOG_FILE="$LIB_TMP/auto.log" "$@"
}
rc=0; auto curl -sS -m 10 -o "$LIB_TMP/body" "http://$IP_B:8084/tiny" 2>/dev/null || rc=$?
assert_eq 0 "$rc" "auto curl exit, TCP-only port 8084"
cmp -s "$LIB_TMP/www/tiny" "$LIB_TMP/body" || fail "body over the TCP fallback differs"
grep -q "falling back to TCP: SST peer has no service on this port" "$LIB_TMP/auto.log" ||
  fail "the connection did not go the SST way first: $(cat "$LIB_TMP/auto.log")"
rc=0; auto curl -sS -m 10 -o /dev/null "http://$IP_B:8081/tiny" 2>/dev/null || rc=$?
assert_eq 7 "$rc" "auto curl exit, port closed for SST and TCP"
log "PASS"
