#!/usr/bin/env bash
# A frozen sstd (SIGSTOP here; a deadlock alike) still takes Unix connections into its listen
# backlog.  The shim hands a connection over inside connect() without asking CAPS only while
# sstd's capability file is fresh (sstd touches it from its keepalive, every <= 5 s while a
# channel is warm; fresh = at most SST_HELPER_CAPS_FRESH_SEC, 12 s, old).  Before 2026-11-21 a
# shimmed curl to a host the file listed hung for as long as sstd was frozen (curl -m 30 timed
# out with 0 bytes); now, once the file is stale, connect() asks CAPS, gets no answer within
# 100 ms and leaves the connection to the asynchronous path, which waits for sstd's answer (and
# falls back to the in-process engine after 15 s).
#
#   $NS_A  sst0 10.77.0.1 ===== veth (TCP dropped) ===== sst0 10.77.0.2  $NS_B
#          sstd (frozen, then continued); curl under the shim    sstd --forward 8080; http.server
. "$(dirname "$0")/lib.sh"
lib_init helper_frozen
need_tool curl /usr/bin/python3
SHIM=$BUILD/libsstshim.so
for b in sstd sstctl libsstshim.so; do [ -e "$BUILD/$b" ] || env_fail "$BUILD/$b not built"; done
SA=$LIB_TMP/a.sock

lib_net_up
lib_block_tcp
mkdir -p "$LIB_TMP/www"
head -c 100000 /dev/urandom >"$LIB_TMP/www/blob"
lib_bg in_b /usr/bin/python3 -m http.server -b 0.0.0.0 -d "$LIB_TMP/www" 8080 2>/dev/null
wait_for_port "$NS_B" 8080
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" --forward 8080 --log info 2>"$LIB_TMP/b.log"
lib_bg in_a "$BUILD/sstd" --foreground --socket "$SA" --keydir "$LIB_TMP/ka" --idle 4 --log info 2>"$LIB_TMP/a.log"
APID=$LIB_BG_PID
poll_until 20 test -S "$SA" || fail "no socket $SA"
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "no socket in B"

# get NAME: one GET of /blob under the shim through sstd, byte-exact; the shim logs to NAME.log.
get() {
  in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER="$SA" SST_KEYDIR="$LIB_TMP/kshim" \
    SST_LOG=debug SST_LOG_FILE="$LIB_TMP/$1.log" \
    curl -sS -m 20 -o "$LIB_TMP/$1" "http://$IP_B:8080/blob" 2>"$LIB_TMP/$1.err" ||
    fail "$1: curl failed: $(cat "$LIB_TMP/$1.err")"
  cmp -s "$LIB_TMP/www/blob" "$LIB_TMP/$1" || fail "$1: body differs"
}
get first
get warm
grep -q "handed to the helper inside connect()" "$LIB_TMP/warm.log" || fail "the warm curl was not handed over inside connect()"
log "ok: a warm curl is handed over inside connect() (fresh capability file)"
# --idle 4: keepalives every 2 s keep the file fresh while the channel is wanted
sleep 3
caps=${SA%.sock}.caps
age=$(( $(date +%s) - $(stat -c %Y "$caps") ))
assert_range 0 3 "$age" "capability file age (s) while sstd runs"

kill -STOP "$APID"
log "sstd frozen; waiting until its capability file is stale"
poll_until 20 sh -c "[ \$(( \$(date +%s) - \$(stat -c %Y '$caps') )) -gt 12 ]" || fail "capability file not stale"
( sleep 2; kill -CONT "$APID" ) &
t0=$(date +%s%N)
get frozen
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
! grep -q "handed to the helper inside connect()" "$LIB_TMP/frozen.log" ||
  fail "connect() handed the connection to a frozen sstd"
grep -q "capability file is stale" "$LIB_TMP/frozen.log" || fail "the shim did not note the stale file: $(tail -3 "$LIB_TMP/frozen.log")"
log "ok: with sstd frozen connect() did not hand over; the GET completed once sstd went on (${ms} ms)"
log "PASS"
