#!/usr/bin/env bash
# The shim hands connections to sstd, so channels are shared across processes and stay warm:
# two curls in sequence over a 50 ms RTT link -- the second performs no channel handshake and
# completes a small GET in one round trip (within 95 ms: two never take under 98), where kernel
# TCP needs two.  Parallel processes share one channel.  If sstd dies, new connections still
# succeed (in-process engine).
#
#   $NS_A  sst0 10.77.0.1 ==TUN== linkemu (25 ms each way) ==TUN== sst0 10.77.0.2  $NS_B
#          sstd (client side)                                         sstd --forward 8080
#          curl under the shim, SST_HELPER=$SA                        http.server 0.0.0.0:8080
. "$(dirname "$0")/lib.sh"
lib_init shim_helper
need_tool curl /usr/bin/python3
SHIM=$BUILD/libsstshim.so
for b in sstd sstctl libsstshim.so; do [ -e "$BUILD/$b" ] || env_fail "$BUILD/$b not built"; done
CTL=$BUILD/sstctl
SA=$LIB_TMP/a.sock
json() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

lib_net_up --link emu --delay 25ms --seed 5
mkdir -p "$LIB_TMP/www"
head -c 1000 /dev/urandom >"$LIB_TMP/www/tiny"
head -c 3000000 /dev/urandom >"$LIB_TMP/www/big"
# http.server with a listen backlog of 128 (`-m http.server` uses 5, which resets connections
# when ten arrive at once; the gateway would faithfully pass those resets on).
lib_bg in_b /usr/bin/python3 -c '
import functools, http.server, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
Server(("0.0.0.0", 8080), handler).serve_forever()' "$LIB_TMP/www" 2>/dev/null
wait_for_port "$NS_B" 8080
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" --forward 8080 \
  --log info 2>"$LIB_TMP/b.log"
lib_bg in_a "$BUILD/sstd" --foreground --socket "$SA" --keydir "$LIB_TMP/ka" --log info 2>"$LIB_TMP/a.log"
poll_until 20 test -S "$SA" || fail "no socket $SA"
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "no socket in B"

# get OUT: one small GET under the shim through the helper; prints curl's total time in ms.
get() {
  in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER="$SA" SST_KEYDIR="$LIB_TMP/kshim" \
    SST_LOG=debug SST_LOG_FILE="$LIB_TMP/shim.log" \
    curl -sS -m 20 -o "$1" -w '%{time_total}\n' "http://$IP_B:8080/tiny" |
    /usr/bin/python3 -c 'import sys; print(int(float(sys.stdin.read()) * 1000))'
}

log "kernel TCP baseline (TCP allowed): a small GET needs two round trips"
# The best of up to 5 GETs: load only adds time (one GET took 683 ms on a busy machine, the best
# of 3 420 ms), and two round trips never take under 98 ms whatever the load, which is what the
# baseline shows; the upper bound (1000 ms) only catches a link that is not the 50 ms one.
tcp_ms=999999
for _ in 1 2 3 4 5; do
  ms=$(in_a curl -sS -m 20 -o "$LIB_TMP/tcp.out" -w '%{time_total}\n' "http://$IP_B:8080/tiny" |
       /usr/bin/python3 -c 'import sys; print(int(float(sys.stdin.read()) * 1000))')
  cmp -s "$LIB_TMP/www/tiny" "$LIB_TMP/tcp.out" || fail "TCP baseline body differs"
  [ "$ms" -lt "$tcp_ms" ] && tcp_ms=$ms
  [ "$tcp_ms" -le 250 ] && break
done
assert_range 98 1000 "$tcp_ms" "kernel TCP GET ms"
lib_block_tcp
if in_a curl -s -m 2 -o /dev/null "http://$IP_B:8080/tiny"; then fail "TCP is not blocked: the test would not prove SST"; fi

log "first curl through the helper: the channel is opened (one handshake)"
t1=$(get "$LIB_TMP/c1") || fail "first curl failed: $(tail -5 "$LIB_TMP/shim.log")"
cmp -s "$LIB_TMP/www/tiny" "$LIB_TMP/c1" || fail "first body differs"
grep -q "handing the connection to the helper" "$LIB_TMP/shim.log" || fail "the shim did not use the helper"
"$CTL" --socket "$SA" status --json >"$LIB_TMP/s1.json" || fail "status failed"
assert_eq 1 "$(json "$LIB_TMP/s1.json" 'd["host"]["handshakes_completed"]')" "handshakes after the first curl"

log "warm curls (new processes): no handshake, one stream each, one round trip"
# sstd published the host in its capability file next to the socket, so a new process hands
# the connection over inside connect() without a CAPS round trip to sstd.
grep -q "^$IP_B:8661 [0-9]*$" "$LIB_TMP/a.caps" || fail "sstd's capability file does not list $IP_B: $(cat "$LIB_TMP/a.caps")"
# Two round trips never complete in under 98 ms on this link (kernel TCP's above) whatever the
# load, so one warm GET within 95 ms proves a single round trip; load only adds time (process
# start-up, the hand-off, http.server), so up to 10 curls keep a busy machine from failing it.
# No handshake and exactly one stream per curl are asserted from sstd's counters.
opened0=$(json "$LIB_TMP/s1.json" 'd["stream_totals"]["opened"]')
t2=999999
n=0
while [ $n -lt 10 ] && { [ $n -lt 1 ] || [ "$t2" -gt 95 ]; }; do
  n=$((n + 1))
  lines=$(wc -l <"$LIB_TMP/shim.log")
  t=$(get "$LIB_TMP/c2") || fail "warm curl $n failed"
  tail -n +"$((lines + 1))" "$LIB_TMP/shim.log" | grep -q "known to speak SST (sstd's capability file $LIB_TMP/a.caps): no CAPS" ||
    fail "warm curl $n asked CAPS instead of reading sstd's capability file"
  cmp -s "$LIB_TMP/www/tiny" "$LIB_TMP/c2" || fail "warm curl $n: body differs"
  [ "$t" -lt "$t2" ] && t2=$t
done
"$CTL" --socket "$SA" status --json >"$LIB_TMP/s2.json" || fail "status failed"
assert_eq 1 "$(json "$LIB_TMP/s2.json" 'd["host"]["handshakes_completed"]')" "handshakes after $n warm curls"
assert_eq "$n" "$(( $(json "$LIB_TMP/s2.json" 'd["stream_totals"]["opened"]') - opened0 ))" \
  "streams opened by $n warm curls (one each)"
assert_range 48 95 "$t2" "best warm GET ms over SST (1 RTT = 50 ms, 2 RTT >= 98)"
log "first GET $t1 ms, best warm GET $t2 ms ($n curls), kernel TCP $tcp_ms ms"
# The host is known to speak SST now: the second curl's connect() handed its socket to sstd at
# once (no event thread, sstd pumps the socket itself); a 3 MB download that way arrives intact.
grep -q "handed to the helper inside connect()" "$LIB_TMP/shim.log" ||
  fail "the warm connection was not handed to the helper inside connect()"
in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER="$SA" SST_KEYDIR="$LIB_TMP/kshim" \
  curl -sS -m 30 -o "$LIB_TMP/big.out" "http://$IP_B:8080/big" || fail "big download failed"
cmp -s "$LIB_TMP/www/big" "$LIB_TMP/big.out" || fail "big download differs"
[ "$t2" -lt "$tcp_ms" ] || fail "warm SST GET ($t2 ms) not faster than kernel TCP ($tcp_ms ms)"

log "10 processes at once share the one channel"
pids=()
for i in $(seq 10); do get "$LIB_TMP/p$i" >/dev/null & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || fail "a parallel curl failed: $(grep -v "debug" "$LIB_TMP/shim.log" | tail -20)"; done
for i in $(seq 10); do cmp -s "$LIB_TMP/www/tiny" "$LIB_TMP/p$i" || fail "parallel body $i differs"; done
"$CTL" --socket "$SA" status --json >"$LIB_TMP/s3.json" || fail "status failed"
assert_eq 1 "$(json "$LIB_TMP/s3.json" 'len(d["channels"])')" "channels in the helper"
assert_eq 1 "$(json "$LIB_TMP/s3.json" 'd["host"]["handshakes_completed"]')" "handshakes after the parallel curls"

log "sstd dies: new connections still succeed through the in-process engine"
pkill -f -- "--socket $SA" || true
poll_until 5 sh -c "! test -S '$SA' || ! $CTL --socket '$SA' status >/dev/null 2>&1" || true
poll_until 5 sh -c "! test -e '$LIB_TMP/a.caps'" || fail "sstd left its capability file behind"
get "$LIB_TMP/c4" >/dev/null || fail "curl after the helper died failed: $(tail -5 "$LIB_TMP/shim.log")"
cmp -s "$LIB_TMP/www/tiny" "$LIB_TMP/c4" || fail "body after the helper died differs"
grep -q "SST engine started" "$LIB_TMP/shim.log" || fail "the in-process engine did not take over"
log "SST_HELPER=auto with no daemon running: the shim starts sstd, which then carries the connection"
# root's default socket is the machine-wide /run/sst/sstd.sock, which a concurrent run (or a
# daemon left behind) may hold: curl and the sstd it starts see this test's own directory
# there, bind-mounted in a private mount namespace, and the checks below use it by that path.
AUTO_SOCK=/run/sst/sstd.sock
AUTO_DIR=$LIB_TMP/run-sst
mkdir -p /run/sst "$AUTO_DIR" && chmod 700 "$AUTO_DIR"
in_a unshare -m --propagation private sh -c 'mount --bind "$1" /run/sst && shift && exec "$@"' sh "$AUTO_DIR" \
  env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER=auto SST_KEYDIR="$LIB_TMP/kauto" \
  SST_LOG=debug SST_LOG_FILE="$LIB_TMP/auto.log" curl -sS -m 20 -o "$LIB_TMP/c5" "http://$IP_B:8080/tiny" ||
  fail "curl with SST_HELPER=auto failed: $(tail -5 "$LIB_TMP/auto.log")"
cmp -s "$LIB_TMP/www/tiny" "$LIB_TMP/c5" || fail "body via the autostarted helper differs"
grep -q "SST_HELPER=auto: started .*sstd --socket $AUTO_SOCK" "$LIB_TMP/auto.log" || fail "sstd was not autostarted"
grep -q "handing the connection to the helper at $AUTO_SOCK" "$LIB_TMP/auto.log" || fail "the autostarted sstd was not used"
"$CTL" --socket "$AUTO_DIR/sstd.sock" status --json >"$LIB_TMP/s5.json" || fail "autostarted sstd does not answer"
assert_eq 1 "$(json "$LIB_TMP/s5.json" 'len(d["channels"])')" "channels in the autostarted helper"
auto_pid=$(cat "$AUTO_DIR/sstd.pid" 2>/dev/null || true)
[ -n "$auto_pid" ] || fail "the autostarted sstd wrote no pid file"
kill "$auto_pid" 2>/dev/null || true
poll_until 10 sh -c "! kill -0 $auto_pid 2>/dev/null" || { kill -9 "$auto_pid" 2>/dev/null; fail "autostarted sstd ignored SIGTERM"; }
log "PASS"
