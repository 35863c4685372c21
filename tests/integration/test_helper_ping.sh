#!/usr/bin/env bash
# sstctl ping over a 50 ms RTT emulated link reports ~50 ms, measured with SST pings; the warm
# channel is reused by the next ping (no second handshake); a small GET through the hand-off on
# the warm channel takes one round trip (within 95 ms: two never take under 98, whatever the
# load), where kernel TCP needs two; sstd's counters show no new handshake and one stream per GET.
#
#   $NS_A  sst0 10.77.0.1 ==TUN== linkemu (25 ms each way) ==TUN== sst0 10.77.0.2  $NS_B
#          sstd, sstctl, sstd_handoff, curl                          sstd --forward 8080
#                                                                    http.server 0.0.0.0:8080
. "$(dirname "$0")/lib.sh"
lib_init helper_ping
need_tool /usr/bin/python3
for b in sstd sstctl; do
  [ -x "$BUILD/$b" ] || make -C "$LIB_ROOT" --no-print-directory BUILD="$BUILD" "$BUILD/$b" >/dev/null 2>&1 || true
  [ -x "$BUILD/$b" ] || env_fail "$BUILD/$b not built (make tests)"
done
CTL=$BUILD/sstctl
SA=$LIB_TMP/a.sock
SB=$LIB_TMP/b.sock
json() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

lib_net_up --link emu --delay 25ms --seed 3
lib_bg in_a "$BUILD/sstd" --foreground --socket "$SA" --keydir "$LIB_TMP/ka" --log info 2>"$LIB_TMP/a.log"
lib_bg in_b "$BUILD/sstd" --foreground --socket "$SB" --keydir "$LIB_TMP/kb" --log info --forward 8080 \
  2>"$LIB_TMP/b.log"
mkdir -p "$LIB_TMP/www"
head -c 1000 /dev/urandom >"$LIB_TMP/www/tiny"
lib_bg in_b /usr/bin/python3 -m http.server 8080 --bind 0.0.0.0 --directory "$LIB_TMP/www" 2>/dev/null
wait_for_port "$NS_B" 8080
poll_until 20 test -S "$SA" || fail "no socket $SA"
poll_until 20 test -S "$SB" || fail "no socket $SB"

log "first ping opens the channel (one handshake), then measures"
"$CTL" --socket "$SA" ping --json "$IP_B" 5 >"$LIB_TMP/p1.json" || fail "ping failed: $(cat "$LIB_TMP/p1.json")"
assert_eq 5 "$(json "$LIB_TMP/p1.json" 'len(d["rtt_ms"])')" "ping samples"
assert_range 48 65 "$(json "$LIB_TMP/p1.json" 'd["min_ms"]')" "ping min RTT ms over 50 ms link"
assert_range 48 70 "$(json "$LIB_TMP/p1.json" 'd["avg_ms"]')" "ping avg RTT ms"
assert_range 48 70 "$(json "$LIB_TMP/p1.json" 'd["srtt_ms"]')" "channel srtt ms"
# The initiator's handshake completes after one round trip (Noise XX: e / e,ee,s,es / s,se).
# At most 95 ms separates it from two round trips (98 ms at least, as kernel TCP's are measured
# below) however loaded the machine is: load only adds time.
assert_range 48 95 "$(json "$LIB_TMP/p1.json" 'd["handshake_ms"]')" "handshake ms (1 RTT, 2 RTT >= 98)"

log "second ping reuses the warm channel"
"$CTL" --socket "$SA" ping --json "$IP_B" 3 >"$LIB_TMP/p2.json" || fail "second ping failed"
assert_eq 0.0 "$(json "$LIB_TMP/p2.json" 'd["handshake_ms"]')" "second ping needed no handshake"
assert_range 48 65 "$(json "$LIB_TMP/p2.json" 'd["min_ms"]')" "second ping min RTT ms"
"$CTL" --socket "$SA" status --json >"$LIB_TMP/st.json" || fail "status failed"
assert_eq 1 "$(json "$LIB_TMP/st.json" 'd["host"]["handshakes_initiated"]')" "handshakes initiated"
assert_range 48 70 "$(json "$LIB_TMP/st.json" 'd["channels"][0]["rtt_ms"]')" "status rtt_ms"
"$CTL" --socket "$SA" ping "$IP_B" 2 | grep -q "rtt" || fail "human ping output lacks rtt"

log "small GET on the warm channel: one round trip (kernel TCP: two), no handshake, one stream"
[ -x "$BUILD/tools/sstd_handoff" ] || make -C "$LIB_ROOT" --no-print-directory BUILD="$BUILD" \
  "$BUILD/tools/sstd_handoff" >/dev/null 2>&1 || env_fail "sstd_handoff not built"
need_tool curl
# What proves "one round trip, not two" on a 50 ms link: two round trips never complete in
# under 98 ms (kernel TCP's below) whatever the load, so one GET within 95 ms is proof; load
# only adds time (process start-up, http.server), so up to 10 tries keep a busy machine from
# failing the test.
# That no handshake and exactly one stream per GET were needed is asserted from sstd's counters.
"$CTL" --socket "$SA" status --json >"$LIB_TMP/st1.json" || fail "status failed"
opened0=$(json "$LIB_TMP/st1.json" 'd["stream_totals"]["opened"]')
best_sst=999999
best_tcp=999999
tries=0
while [ $tries -lt 10 ] && { [ $tries -lt 3 ] || [ "$best_sst" -gt 95 ]; }; do
  tries=$((tries + 1))
  t0=$(date +%s%N)
  printf 'GET /tiny HTTP/1.0\r\n\r\n' | in_a "$BUILD/tools/sstd_handoff" "$SA" "$IP_B" 8080 >"$LIB_TMP/tiny.out" 2>/dev/null ||
    fail "hand-off GET failed"
  t1=$(date +%s%N)
  tail -c 1000 "$LIB_TMP/tiny.out" | cmp -s - "$LIB_TMP/www/tiny" || fail "tiny body differs"
  ms=$(((t1 - t0) / 1000000))
  [ "$ms" -lt "$best_sst" ] && best_sst=$ms
  tcp=$(in_a curl -s -o /dev/null -w '%{time_total}' "http://$IP_B:8080/tiny") || fail "curl over TCP failed"
  tcp=$(awk -v t="$tcp" 'BEGIN { printf "%d", t * 1000 }')
  [ "$tcp" -lt "$best_tcp" ] && best_tcp=$tcp
done
log "best hand-off GET $best_sst ms, kernel TCP $best_tcp ms ($tries tries)"
# At least one round trip (the link was crossed), fewer than two.
assert_range 48 95 "$best_sst" "best hand-off GET ms on the warm channel (1 RTT = 50 ms, 2 RTT >= 98)"
# Kernel TCP's two round trips (SYN, then the request) take 100 ms at least.
assert_range 98 400 "$best_tcp" "best kernel TCP GET ms (SYN round trip + request)"
"$CTL" --socket "$SA" status --json >"$LIB_TMP/st2.json" || fail "status failed"
assert_eq 1 "$(json "$LIB_TMP/st2.json" 'd["host"]["handshakes_initiated"]')" "handshakes after $tries GETs"
assert_eq 1 "$(json "$LIB_TMP/st2.json" 'd["host"]["channels"]')" "channels after $tries GETs"
assert_eq "$tries" "$(( $(json "$LIB_TMP/st2.json" 'd["stream_totals"]["opened"]') - opened0 ))" \
  "streams opened by $tries GETs (one each)"
log "PASS"
