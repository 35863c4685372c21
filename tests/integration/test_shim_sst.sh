#!/usr/bin/env bash
# Real programs under the shim carried over SST, with TCP between the hosts blocked: only SST can
# carry the traffic.  The server side is unmodified python http.server behind `sstd --forward`.
#
#   $NS_A  sst0 10.77.0.1 ===== veth (TCP dropped) ===== sst0 10.77.0.2  $NS_B
#          fd77::1                                          fd77::2
#          curl / wget / python / nc                        sstd :8661 --forward 8080,9000
#          under LD_PRELOAD=libsstshim.so                   python http.server :8080
#          (in-process SST engine, SST_HELPER=off)          nc -l :9000 (echo via python)
#
# Every check is also run with the shim off, where it must fail: proof that it tests SST.
. "$(dirname "$0")/lib.sh"
lib_init shim_sst
need_tool curl wget nc /usr/bin/python3
SHIM=$BUILD/libsstshim.so
[ -f "$SHIM" ] || env_fail "$SHIM not built"
[ -x "$BUILD/sstd" ] || env_fail "$BUILD/sstd not built"

mkdir -p "$LIB_TMP/www"
: >"$LIB_TMP/www/f0"
head -c 1000 /dev/urandom >"$LIB_TMP/www/f1k"
head -c 10000000 /dev/urandom >"$LIB_TMP/www/f10m"

lib_net_up
lib_block_tcp
lib_bg in_b /usr/bin/python3 -c '
import functools, http.server, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
Server(("0.0.0.0", 8080), handler).serve_forever()' "$LIB_TMP/www" 2>"$LIB_TMP/http.log"
# An echo server that also reports the half-close it saw.
lib_bg in_b /usr/bin/python3 -c '
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000)); s.listen(64)
def serve(c):
    data = b""
    while True:
        b = c.recv(65536)
        if not b: break
        data += b
    c.sendall(b"got %d bytes then EOF\n" % len(data)); c.sendall(data); c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()' 2>"$LIB_TMP/echo.log"
wait_for_port "$NS_B" 8080
wait_for_port "$NS_B" 9000
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" --forward 8080,9000 \
  --log info 2>"$LIB_TMP/sstd.log"
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "sstd did not start"

ENVS=(LD_PRELOAD="$SHIM" SST_PEERS="$IP_B,$IP6_B" SST_HELPER=off SST_KEYDIR="$LIB_TMP/ka"
      SST_LOG=debug SST_LOG_FILE="$LIB_TMP/shim.log")
shimmed() { in_a env "${ENVS[@]}" "$@"; }

log "control: without the shim, TCP to B is blocked"
if in_a curl -s -m 2 -o /dev/null "http://$IP_B:8080/f1k"; then fail "TCP is not blocked"; fi
if in_a env SST_PEERS="$IP_B" SST_MODE=off LD_PRELOAD="$SHIM" curl -s -m 2 -o /dev/null "http://$IP_B:8080/f1k"; then
  fail "SST_MODE=off still reached B: the test would not prove SST"
fi

for f in f0 f1k f10m; do
  log "curl $f over SST (strict: proof that SST carries it)"
  shimmed SST_MODE=strict curl -sS -m 30 -o "$LIB_TMP/$f.curl" "http://$IP_B:8080/$f" || fail "curl $f failed: $(tail -5 "$LIB_TMP/shim.log")"
  cmp "$LIB_TMP/www/$f" "$LIB_TMP/$f.curl" || fail "curl $f differs"
  log "wget $f over SST (auto)"
  shimmed wget -q -T 30 -O "$LIB_TMP/$f.wget" "http://$IP_B:8080/$f" || fail "wget $f failed"
  cmp "$LIB_TMP/www/$f" "$LIB_TMP/$f.wget" || fail "wget $f differs"
done
log "ok: 0 B, 1 KB, 10 MB byte-exact with curl and wget"

log "curl over IPv6"
shimmed SST_MODE=strict curl -sS -m 30 -o "$LIB_TMP/v6" "http://[$IP6_B]:8080/f1k" || fail "IPv6 curl failed"
cmp "$LIB_TMP/www/f1k" "$LIB_TMP/v6" || fail "IPv6 body differs"

log "SST_CC=bbr reaches the in-process engine (and the transfer works under it)"
shimmed SST_MODE=strict SST_CC=bbr SST_LOG_FILE="$LIB_TMP/bbr.log" curl -sS -m 30 -o "$LIB_TMP/bbr" \
  "http://$IP_B:8080/f10m" || fail "curl with SST_CC=bbr failed"
cmp "$LIB_TMP/www/f10m" "$LIB_TMP/bbr" || fail "SST_CC=bbr body differs"
grep -q "SST engine started (strong security, bbr congestion control" "$LIB_TMP/bbr.log" ||
  fail "SST_CC=bbr not applied: $(grep 'engine started' "$LIB_TMP/bbr.log")"

log "python: urllib, raw socket with half-close, asyncio non-blocking connect"
shimmed SST_MODE=strict /usr/bin/python3 - "$IP_B" "$LIB_TMP/www/f1k" <<'PY' || fail "python checks failed"
import asyncio, socket, sys, urllib.request
host, ref = sys.argv[1], open(sys.argv[2], "rb").read()
assert urllib.request.urlopen("http://%s:8080/f1k" % host, timeout=20).read() == ref
s = socket.create_connection((host, 9000), timeout=20)
s.sendall(b"hello" * 1000); s.shutdown(socket.SHUT_WR)
buf = b""
while True:
    b = s.recv(65536)
    if not b: break
    buf += b
assert buf == b"got 5000 bytes then EOF\n" + b"hello" * 1000, buf[:80]
async def main():
    r, w = await asyncio.open_connection(host, 9000)
    w.write(b"x" * 200000); w.write_eof()
    data = await r.read()
    assert data == b"got 200000 bytes then EOF\n" + b"x" * 200000
asyncio.run(main())
print("python-ok")
PY

log "nc with half-close"
printf 'abc' | shimmed SST_MODE=strict nc -N "$IP_B" 9000 >"$LIB_TMP/nc.out" || fail "nc failed"
grep -q "got 3 bytes then EOF" "$LIB_TMP/nc.out" || fail "nc: $(cat "$LIB_TMP/nc.out")"

log "a port the gateway does not forward: ECONNREFUSED in strict mode"
shimmed SST_MODE=strict /usr/bin/python3 -c "
import socket, sys
try:
    socket.create_connection(('$IP_B', 7777), timeout=10)
except ConnectionRefusedError:
    print('refused'); sys.exit(0)
sys.exit('connected to an unforwarded port')" >"$LIB_TMP/ref.out" || fail "refused check: $(cat "$LIB_TMP/ref.out")"

log "50 concurrent connections from one process share one channel"
shimmed SST_MODE=strict /usr/bin/python3 - "$IP_B" "$LIB_TMP/www/f1k" <<'PY' || fail "concurrent fetches failed"
import concurrent.futures, sys, urllib.request
host, ref = sys.argv[1], open(sys.argv[2], "rb").read()
def get(i):
    return urllib.request.urlopen("http://%s:8080/f1k" % host, timeout=30).read()
with concurrent.futures.ThreadPoolExecutor(50) as ex:
    bodies = list(ex.map(get, range(50)))
assert all(b == ref for b in bodies)
print("50 ok")
PY
n=$(grep -c "connection carried over SST" "$LIB_TMP/shim.log" || true)
[ "$n" -ge 60 ] || fail "only $n connections logged as carried over SST"
log "ok: $n connections carried over SST so far"

log "10 processes at once"
pids=()
for i in $(seq 10); do
  shimmed SST_MODE=strict curl -sS -m 30 -o "$LIB_TMP/p$i" "http://$IP_B:8080/f1k" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a parallel curl failed"; done
for i in $(seq 10); do cmp -s "$LIB_TMP/www/f1k" "$LIB_TMP/p$i" || fail "parallel body $i differs"; done

log "fd leak check: 100 connections in one process"
shimmed SST_MODE=strict /usr/bin/python3 - "$IP_B" <<'PY' || fail "fd leak check failed"
import os, socket, sys
host = sys.argv[1]
def nfds(): return len(os.listdir("/proc/self/fd"))
def once():
    s = socket.create_connection((host, 9000), timeout=20)
    s.sendall(b"x"); s.shutdown(socket.SHUT_WR)
    while s.recv(65536): pass
    s.close()
once()
base = nfds()
for _ in range(100): once()
assert nfds() <= base + 1, (base, nfds())
print("no leak")
PY
log "fork and exec with an open SST connection; a forked child opens its own"
shimmed SST_MODE=strict /usr/bin/python3 - "$IP_B" <<'PY' || fail "fork/exec over SST failed"
import os, socket, subprocess, sys
host = sys.argv[1]
def drain(c):
    got = b""
    while True:
        b = c.recv(65536)
        if not b: return got
        got += b
s = socket.create_connection((host, 9000), timeout=20)
s.sendall(b"parent1;")
fd = s.fileno()
subprocess.run([sys.executable, "-c", "import os; os.write(%d, b'exec-child;')" % fd], pass_fds=[fd], check=True)
pid = os.fork()
if pid == 0:   # the child's engine is its own: a new UDP socket, a new channel
    c = socket.create_connection((host, 9000), timeout=20)
    c.sendall(b"forked"); c.shutdown(socket.SHUT_WR)
    os._exit(0 if drain(c) == b"got 6 bytes then EOF\nforked" else 3)
_, status = os.waitpid(pid, 0)
assert os.WEXITSTATUS(status) == 0, "forked child's SST connection failed"
s.sendall(b"parent2"); s.shutdown(socket.SHUT_WR)
got = drain(s)
assert got == b"got 26 bytes then EOF\nparent1;exec-child;parent2", got
print("fork-ok")
PY

log "a blocking connect interrupted by a signal: EINTR, the attempt goes on (host silent on UDP)"
in_b nft add table inet sstsilent
in_b nft add chain inet sstsilent in '{ type filter hook input priority 0; }'
in_b nft add rule inet sstsilent in udp dport 8999 drop
PROBE=$BUILD/tools/shim_probe
shimmed SST_MODE=strict SST_PORT=8999 "$PROBE" eintr "$IP_B" 8080 300 >"$LIB_TMP/eintr.out" || fail "eintr probe failed"
for l in connect=EINTR connect_again=EALREADY poll=1 so_error=ECONNREFUSED; do
  grep -qx "$l" "$LIB_TMP/eintr.out" || fail "eintr: expected $l, got: $(tr '\n' ' ' <"$LIB_TMP/eintr.out")"
done

pass_msg="shim over SST: curl/wget/python/nc, IPv6, refusal, concurrency, no fd leak, fork/exec, EINTR"
log "ok: $pass_msg"
