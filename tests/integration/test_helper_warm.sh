#!/usr/bin/env bash
# Warm channels: closed gracefully after --idle seconds without use, opened again by session
# resumption (the first channel's ticket), and re-established while still wanted after the peer's
# sstd restarts (full handshake then: a new process holds no tickets).
#
#   $NS_A  sst0 10.77.0.1 ===== veth ===== sst0 10.77.0.2  $NS_B
#          sstd --idle 3                         sstd (killed and restarted)
. "$(dirname "$0")/lib.sh"
lib_init helper_warm
need_tool /usr/bin/python3
for b in sstd sstctl; do
  [ -x "$BUILD/$b" ] || make -C "$LIB_ROOT" --no-print-directory BUILD="$BUILD" "$BUILD/$b" >/dev/null 2>&1 || true
  [ -x "$BUILD/$b" ] || env_fail "$BUILD/$b not built (make tests)"
done
CTL=$BUILD/sstctl
SA=$LIB_TMP/a.sock
SB=$LIB_TMP/b.sock
json() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
status_a() { "$CTL" --socket "$SA" status --json >"$LIB_TMP/st.json" 2>/dev/null; }

lib_net_up
lib_bg in_a "$BUILD/sstd" --foreground --socket "$SA" --keydir "$LIB_TMP/ka" --log info --idle 3 2>"$LIB_TMP/a.log"
lib_bg in_b "$BUILD/sstd" --foreground --socket "$SB" --keydir "$LIB_TMP/kb" --log info 2>"$LIB_TMP/b.log"
PID_B=$LIB_BG_PID
poll_until 20 test -S "$SA" || fail "no socket $SA"
poll_until 20 test -S "$SB" || fail "no socket $SB"

log "an unused warm channel closes after --idle 3 s"
"$CTL" --socket "$SA" warm "$IP_B" >/dev/null || fail "warm failed"
status_a || fail "status failed"
assert_eq True "$(json "$LIB_TMP/st.json" 'd["channels"][0]["warm"]')" "warm right after WARM"
t0=$SECONDS
no_channels() { status_a && [ "$(json "$LIB_TMP/st.json" 'len(d["channels"])')" = 0 ]; }
poll_until 8 no_channels || fail "warm channel still open after 8 s: $(cat "$LIB_TMP/st.json")"
assert_range 2 6 "$((SECONDS - t0))" "seconds until the idle channel closed"
grep -q "idle for 3s: closing the warm channel" "$LIB_TMP/a.log" || fail "A did not close it as idle"
b_closed() { grep -q "channel to $IP_A:8661 down: closed" "$LIB_TMP/b.log"; }
poll_until 3 b_closed || fail "B did not see a graceful close"

log "the second channel to the same peer is resumed with the first one's ticket"
"$CTL" --socket "$SA" warm "$IP_B" >/dev/null || fail "warm failed"
resumed_up() {
  status_a && [ "$(json "$LIB_TMP/st.json" 'len([c for c in d["channels"] if c["state"]=="established"])')" = 1 ]
}
poll_until 5 resumed_up || fail "second channel not up: $(cat "$LIB_TMP/st.json")"
assert_eq 2 "$(json "$LIB_TMP/st.json" 'd["host"]["handshakes_completed"]')" "handshakes completed by A"
assert_eq 1 "$(json "$LIB_TMP/st.json" 'd["host"]["handshakes_resumed"]')" "of them resumed"
"$CTL" --socket "$SB" status --json >"$LIB_TMP/stb.json" 2>/dev/null || fail "status B failed"
assert_eq 1 "$(json "$LIB_TMP/stb.json" 'd["host"]["handshakes_resumed"]')" "resumed on B too"

log "a wanted channel is re-established after the peer's sstd restarts"
# WARM keeps the channel wanted for 3 s from the request.  The checks above take seconds under
# load (a channel wanted since the second WARM was closed as idle before B was killed, and
# nothing re-established it), so the channel is wanted afresh right before the kill, and again
# once the new B runs: the next keepalive (every 1.5 s) and the retry 0.5 s after it fall
# inside the second WARM's 3 s whatever the restart took.  If the channel had been closed as
# idle already, the first WARM opens it again (resumed with the old B's ticket): the counts
# this case compares with are read after it, with the channel up, from one status snapshot
# (sstctl alone: quick), and parsed once the new B runs.  The second WARM opens nothing: A's
# channel is up throughout (asserted below: no idle close from here, and A saw it fail with an
# error); its ping may be what meets the new B first: it then fails ("went down during ping")
# and the channel's failure is the one a keepalive would have met.
"$CTL" --socket "$SA" warm "$IP_B" >/dev/null || fail "warm failed"
"$CTL" --socket "$SA" status --json >"$LIB_TMP/st3.json" 2>/dev/null || fail "status failed"
idle_closes=$(grep -c "idle for 3s: closing the warm channel" "$LIB_TMP/a.log")
kill -KILL "$PID_B"
wait "$PID_B" 2>/dev/null
lib_bg in_b "$BUILD/sstd" --foreground --socket "$SB" --keydir "$LIB_TMP/kb" --log info 2>"$LIB_TMP/b2.log"
poll_until 20 test -S "$SB" || fail "restarted B has no socket"
"$CTL" --socket "$SA" warm "$IP_B" >/dev/null 2>"$LIB_TMP/warm3.err" ||
  grep -q "went down during ping" "$LIB_TMP/warm3.err" || fail "warm failed: $(cat "$LIB_TMP/warm3.err")"
assert_eq 1 "$(json "$LIB_TMP/st3.json" 'len([c for c in d["channels"] if c["state"]=="established"])')" \
  "A's channels up as B was killed"
before=$(json "$LIB_TMP/st3.json" 'd["host"]["handshakes_completed"]')
resumed=$(json "$LIB_TMP/st3.json" 'd["host"]["handshakes_resumed"]')
# The next keepalive reaches a B that has no such channel; A's channel fails and, still wanted,
# is opened again without anyone asking.
# A new handshake completed (the channel was up then): on a loaded machine a status read and
# its parse take seconds, and the re-established channel, wanted only until the second WARM's
# 3 s ran out, may be closed as idle again before a poll sees it up.
reestablished() {
  status_a && [ "$(json "$LIB_TMP/st.json" 'd["host"]["handshakes_completed"]')" -gt "$before" ]
}
poll_until 10 reestablished || fail "not re-established: $(cat "$LIB_TMP/st.json"); A log: $(tail -5 "$LIB_TMP/a.log")"
b_has_channel() { grep -q "channel to $IP_A:8661 up (accepted" "$LIB_TMP/b2.log"; }
poll_until 3 b_has_channel || fail "restarted B accepted no channel from A: $(tail -3 "$LIB_TMP/b2.log")"
"$CTL" --socket "$SB" status --json >"$LIB_TMP/stb.json" 2>/dev/null || fail "status B failed"
assert_eq "$idle_closes" "$(grep -c "idle for 3s: closing the warm channel" "$LIB_TMP/a.log")" \
  "A's idle closes (none while B restarted: a WARM did not reopen a closed channel)"
grep "channel to $IP_B:8661 down: " "$LIB_TMP/a.log" | grep -vq "down: closed$" ||
  fail "A's channel never failed with an error: $(tail -5 "$LIB_TMP/a.log")"
# B lost its tickets with the process: A offered one, B answered with a full handshake.
assert_eq 0 "$(json "$LIB_TMP/stb.json" 'd["host"]["handshakes_resumed"]')" "restarted B resumed nothing"
status_a || fail "status failed"
assert_eq "$resumed" "$(json "$LIB_TMP/st.json" 'd["host"]["handshakes_resumed"]')" "A: no new resumption"
log "ok: $(grep -c "channel to $IP_B:8661 up" "$LIB_TMP/a.log") channel-ups in A's log"
log "PASS"
