#!/usr/bin/env bash
# The peer's sstd restarts (SIGKILL, then started again with the same key) while a shimmed
# program's in-process engine still holds an established channel to it: the program's next
# connection must work, as a new TCP connection to a restarted server does.  It goes out on the
# stale channel, the new sstd resets that channel, and the engine migrates the unanswered stream
# to a fresh channel, where its Attach creates it (docs/protocol-streams.md §2).  Before, the
# reset failed it: python read "Remote end closed connection without response".
#
#   $NS_A  10.77.0.1 == linkemu (5 ms each way, TCP dropped) == 10.77.0.2  $NS_B
#          one python process under the shim (SST_HELPER=off)     sstd --forward 8080 (restarted)
#          GET, [restart B's sstd], GET, GET                      python http.server :8080
. "$(dirname "$0")/lib.sh"
lib_init shim_restart
need_tool /usr/bin/python3
SHIM=$BUILD/libsstshim.so
[ -f "$SHIM" ] || env_fail "$SHIM not built"
[ -x "$BUILD/sstd" ] || env_fail "$BUILD/sstd not built"

lib_net_up --link emu --delay 5ms
lib_block_tcp
mkdir -p "$LIB_TMP/www"
head -c 100000 /dev/urandom >"$LIB_TMP/www/blob"
lib_bg in_b /usr/bin/python3 -m http.server 8080 --bind 0.0.0.0 --directory "$LIB_TMP/www" >/dev/null 2>&1
wait_for_port "$NS_B" 8080
start_b() {
  rm -f "$LIB_TMP/b.sock"
  lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" \
    --forward 8080 --log warn 2>>"$LIB_TMP/sstd.log"
  SSTD_B=$LIB_BG_PID
  poll_until 20 test -S "$LIB_TMP/b.sock" || fail "sstd in B did not start"
}
start_b

# One process, three GETs; between the first and the second B's sstd is restarted.
in_a timeout 60 env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER=off \
  SST_KEYDIR="$LIB_TMP/ka" /usr/bin/python3 -c "
import hashlib, os, time, urllib.request
want = hashlib.sha256(open('$LIB_TMP/www/blob', 'rb').read()).hexdigest()
def get(name):
    try:
        body = urllib.request.urlopen('http://$IP_B:8080/blob', timeout=15).read()
        ok = hashlib.sha256(body).hexdigest() == want
        print(name, 'ok' if ok else 'body differs (%d bytes)' % len(body), flush=True)
    except Exception as e:
        print(name, 'failed:', repr(e), flush=True)
get('before')
open('$LIB_TMP/ready', 'w').close()
while not os.path.exists('$LIB_TMP/restarted'):
    time.sleep(0.02)
get('after-restart')
get('again')
" >"$LIB_TMP/out" 2>&1 &
PY=$!
poll_until 20 test -e "$LIB_TMP/ready" || fail "first GET did not finish: $(cat "$LIB_TMP/out")"
{ kill -KILL "$SSTD_B" && wait "$SSTD_B"; } 2>/dev/null
start_b
touch "$LIB_TMP/restarted"
wait "$PY" || fail "python exited $?: $(cat "$LIB_TMP/out")"
for name in before after-restart again; do
  grep -qx "$name ok" "$LIB_TMP/out" || fail "$name: $(grep "^$name" "$LIB_TMP/out")"
done
log "ok: the connection after the peer's restart and the next one, byte-exact"
