#!/usr/bin/env bash
# The peer's sstd restarts (SIGKILL or SIGTERM, then started again) while ours still holds the
# channel to it: the next connection must work, as a new TCP connection to a restarted server
# does.  The new process does not know the old channel and resets it when the connection's
# stream arrives on it; the engine migrates the stream to a fresh channel, where its Attach
# creates it (or, failing that, sstd opens it again with the bytes the client wrote).  Until 2026-11-21 that first connection failed (curl: "Empty reply from server").
#
#   $NS_A  sst0 10.77.0.1 ==TUN== linkemu (10 ms each way, TCP dropped) ==TUN== sst0 10.77.0.2  $NS_B
#          sstd; curl under the shim (SST_HELPER)           sstd --forward 8080 (restarted); http.server :8080
. "$(dirname "$0")/lib.sh"
lib_init helper_restart
need_tool curl /usr/bin/python3
SHIM=$BUILD/libsstshim.so
for b in sstd sstctl libsstshim.so; do [ -e "$BUILD/$b" ] || env_fail "$BUILD/$b not built"; done
SA=$LIB_TMP/a.sock
SB=$LIB_TMP/b.sock

lib_net_up --link emu --delay 10ms
lib_block_tcp
mkdir -p "$LIB_TMP/www"
head -c 200000 /dev/urandom >"$LIB_TMP/www/blob"
lib_bg in_b /usr/bin/python3 -m http.server -b 0.0.0.0 -d "$LIB_TMP/www" 8080 2>/dev/null
wait_for_port "$NS_B" 8080
start_b() {
  lib_bg in_b "$BUILD/sstd" --foreground --socket "$SB" --keydir "$LIB_TMP/kb" --forward 8080 --log info 2>>"$LIB_TMP/b.log"
  BPID=$LIB_BG_PID
  poll_until 20 test -S "$SB" || fail "no socket in B"
}
start_b
lib_bg in_a "$BUILD/sstd" --foreground --socket "$SA" --keydir "$LIB_TMP/ka" --log info 2>"$LIB_TMP/a.log"
poll_until 20 test -S "$SA" || fail "no socket $SA"

# get NAME: one GET of /blob under the shim through sstd; the body must be byte-exact.
get() {
  in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER="$SA" SST_KEYDIR="$LIB_TMP/kshim" \
    curl -sS -m 20 -o "$LIB_TMP/$1" "http://$IP_B:8080/blob" 2>"$LIB_TMP/$1.err" ||
    fail "$1: curl failed: $(cat "$LIB_TMP/$1.err")"
  cmp -s "$LIB_TMP/www/blob" "$LIB_TMP/$1" || fail "$1: body differs"
  log "ok: $1"
}
get before
for sig in KILL TERM; do
  sleep 0.5   # the last GET's stream is done: nothing of ours is in flight when B goes
  kill -"$sig" "$BPID"
  poll_until 5 sh -c "! kill -0 $BPID 2>/dev/null" || fail "B's sstd did not exit on SIG$sig"
  rm -f "$SB"
  start_b
  get "after-SIG$sig"
  get "again-after-SIG$sig"
done
# Proof the stale channel was hit: the restarted peer reset it (the engine then migrated the new
# stream to a fresh channel, docs/protocol-streams.md §2), or sstd opened the stream again.
grep -q -e "down: reset by peer" -e "opening it again" "$LIB_TMP/a.log" ||
  fail "the stale channel was not hit (no reset by the peer, no stream opened again): the test proves nothing"
"$BUILD/sstctl" --socket "$SA" status >"$LIB_TMP/status" || fail "sstctl status failed"
grep -q "streams:" "$LIB_TMP/status" || fail "status: $(cat "$LIB_TMP/status")"
log "PASS"
