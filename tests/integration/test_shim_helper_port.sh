#!/usr/bin/env bash
# SST_PORT is the peer's UDP port on every path, also when a connection is handed to an sstd
# whose own --port differs: the shim asked sstd about ADDR:SST_PORT (CAPS) but the CONNECT named
# the bare address, so sstd dialled the peer at its own port -- nothing there (curl failed in
# strict mode), or a different SST endpoint.  Both hand-off paths: the first curl (CAPS, then
# CONNECT from the event thread) and the warm ones (CONNECT inside connect(), from the
# capability file).
#
#   $NS_A  sst0 10.77.0.1 ===== veth ===== sst0 10.77.0.2  $NS_B
#          sstd (UDP 8661, client side)           sstd --port 8671 --forward 8080
#          curl under the shim, SST_PORT=8671     http.server 0.0.0.0:8080
. "$(dirname "$0")/lib.sh"
lib_init shim_helper_port
need_tool curl /usr/bin/python3
SHIM=$BUILD/libsstshim.so
for b in sstd sstctl libsstshim.so; do [ -e "$BUILD/$b" ] || env_fail "$BUILD/$b not built"; done
CTL=$BUILD/sstctl
SA=$LIB_TMP/a.sock
json() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

lib_net_up
mkdir -p "$LIB_TMP/www"
head -c 5000 /dev/urandom >"$LIB_TMP/www/small"
lib_bg in_b /usr/bin/python3 -m http.server -b 0.0.0.0 -d "$LIB_TMP/www" 8080 2>/dev/null
wait_for_port "$NS_B" 8080
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" --port 8671 \
  --forward 8080 --log info 2>"$LIB_TMP/b.log"
lib_bg in_a "$BUILD/sstd" --foreground --socket "$SA" --keydir "$LIB_TMP/ka" --log info 2>"$LIB_TMP/a.log"
poll_until 20 test -S "$SA" || fail "no socket $SA"
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "no socket in B"
lib_block_tcp

get() {
  in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_PORT=8671 SST_MODE=strict SST_HELPER="$SA" \
    SST_KEYDIR="$LIB_TMP/kshim" SST_LOG=debug SST_LOG_FILE="$LIB_TMP/shim.log" \
    curl -sS -m 10 -o "$1" "http://$IP_B:8080/small"
}

log "first curl: CAPS for $IP_B:8671, then the hand-off"
get "$LIB_TMP/c1" || fail "first curl failed: $(tail -3 "$LIB_TMP/shim.log"; tail -3 "$LIB_TMP/a.log")"
cmp -s "$LIB_TMP/www/small" "$LIB_TMP/c1" || fail "first body differs"
grep -q "handing the connection to the helper" "$LIB_TMP/shim.log" || fail "the shim did not use the helper"
log "warm curls: handed over inside connect()"
for i in 2 3; do
  get "$LIB_TMP/c$i" || fail "curl $i failed: $(tail -3 "$LIB_TMP/shim.log")"
  cmp -s "$LIB_TMP/www/small" "$LIB_TMP/c$i" || fail "body $i differs"
done
"$CTL" --socket "$SA" status --json >"$LIB_TMP/s.json" || fail "status failed"
assert_eq "['$IP_B:8671']" "$(json "$LIB_TMP/s.json" 'sorted(c["peer"] for c in d["channels"])')" "A's channels"
assert_eq 1 "$(json "$LIB_TMP/s.json" 'd["host"]["handshakes_completed"]')" "handshakes (one channel, reused)"
log "PASS"
