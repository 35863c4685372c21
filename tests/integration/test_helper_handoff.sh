#!/usr/bin/env bash
# The hand-off and the gateway: a client passes one end of a socketpair to sstd (CONNECT with
# SCM_RIGHTS); sstd in A carries it over SST to sstd --forward in B, which connects it to
# python http.server on B's loopback.  TCP between the namespaces is blocked, so only SST works.
#
#   $NS_A  sst0 10.77.0.1 ===== veth (TCP dropped) ===== sst0 10.77.0.2  $NS_B
#          fd77::1                                          fd77::2
#          sstd :8661                                       sstd :8661 --forward 8080,8081
#          sstd_handoff clients                             python http.server 0.0.0.0:8080
#          sstd :8662 (PROXY test)                          sstd :8662 --forward 7070 --proxy-protocol
#                                                           sstd_proxy_echo.py 127.0.0.1:7070
. "$(dirname "$0")/lib.sh"
lib_init helper_handoff
need_tool curl /usr/bin/python3
for b in sstd sstctl tools/sstd_handoff; do
  [ -x "$BUILD/$b" ] || make -C "$LIB_ROOT" --no-print-directory BUILD="$BUILD" "$BUILD/$b" >/dev/null 2>&1 || true
  [ -x "$BUILD/$b" ] || env_fail "$BUILD/$b not built (make tests)"
done
CTL=$BUILD/sstctl
HO=$BUILD/tools/sstd_handoff
SA=$LIB_TMP/a.sock
SB=$LIB_TMP/b.sock
json() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

mkdir -p "$LIB_TMP/www"
head -c 3000000 /dev/urandom >"$LIB_TMP/www/blob"
head -c 100000 /dev/urandom >"$LIB_TMP/www/small"
head -c 64000000 /dev/zero >"$LIB_TMP/www/huge"

lib_net_up
lib_block_tcp
# python http.server with a listen backlog of 128: `-m http.server` listens with 5, and 20
# simultaneous connects overflow it (the kernel then resets some, which the gateway would
# faithfully turn into stream resets).
lib_bg in_b /usr/bin/python3 -c '
import functools, http.server, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
Server(("0.0.0.0", 8080), handler).serve_forever()' "$LIB_TMP/www" 2>"$LIB_TMP/http.log"
wait_for_port "$NS_B" 8080
if in_a curl -s -m 2 -o /dev/null "http://$IP_B:8080/small"; then
  fail "TCP between the namespaces is not blocked"
fi
log "ok: direct TCP to $IP_B:8080 is blocked"
lib_bg in_a "$BUILD/sstd" --foreground --socket "$SA" --keydir "$LIB_TMP/ka" --log ${SSTD_TEST_LOG:-info} 2>"$LIB_TMP/a.log"
lib_bg in_b "$BUILD/sstd" --foreground --socket "$SB" --keydir "$LIB_TMP/kb" --log ${SSTD_TEST_LOG:-info} --forward 8080,8081 \
  2>"$LIB_TMP/b.log"
poll_until 20 test -S "$SA" || fail "no socket $SA"
poll_until 20 test -S "$SB" || fail "no socket $SB"

# fetch NAME OUT: GET /NAME through the hand-off; the body (after the header) goes to OUT.
fetch() {
  printf 'GET /%s HTTP/1.0\r\n\r\n' "$1" | in_a "$HO" "$SA" "$IP_B" 8080 >"$2.raw" 2>"$2.reply" || return 1
  /usr/bin/python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); i=d.index(b"\r\n\r\n")+4; open(sys.argv[2],"wb").write(d[i:])' \
    "$2.raw" "$2"
}

log "fetch 3 MB byte-exact through sstd -> SST -> sstd --forward -> http.server"
fetch blob "$LIB_TMP/blob.out" || fail "fetch failed: $(cat "$LIB_TMP/blob.out.reply")"
grep -q '"result":"CONNECTED"' "$LIB_TMP/blob.out.reply" || fail "no CONNECTED reply"
cmp "$LIB_TMP/www/blob" "$LIB_TMP/blob.out" || fail "3 MB body differs"
log "ok: 3000000 bytes identical"

log "the same over IPv6 (a second channel, to [$IP6_B]:8661)"
printf 'GET /small HTTP/1.0\r\n\r\n' | in_a "$HO" "$SA" "$IP6_B" 8080 >"$LIB_TMP/v6.raw" 2>"$LIB_TMP/v6.reply" ||
  fail "IPv6 hand-off failed: $(cat "$LIB_TMP/v6.reply")"
tail -c 100000 "$LIB_TMP/v6.raw" | cmp -s - "$LIB_TMP/www/small" || fail "IPv6 body differs"
grep -q "\[$IP6_B\]:8661/8080" "$LIB_TMP/v6.reply" || fail "IPv6 reply: $(cat "$LIB_TMP/v6.reply")"
log "ok: IPv6 hand-off byte-exact"

log "a port B does not forward is refused (ECONNREFUSED for the shim)"
rc=0
echo x | in_a "$HO" "$SA" "$IP_B" 9090 >/dev/null 2>"$LIB_TMP/refused.reply" || rc=$?
assert_eq 2 "$rc" "client exit for a refused port"
grep -q '"result":"REFUSED"' "$LIB_TMP/refused.reply" || fail "reply: $(cat "$LIB_TMP/refused.reply")"
grep -q '"errno":111' "$LIB_TMP/refused.reply" || fail "refusal lacks errno 111"

log "a control client that closes with sstd's answer unread leaves other hand-offs alone"
got=$(in_a /usr/bin/python3 "$LIB_ROOT/tests/tools/sstd_ctl_reset.py" "$SA" "$IP_B" 8080 small 2>"$LIB_TMP/ctlreset.err") ||
  fail "$(cat "$LIB_TMP/ctlreset.err")"
assert_eq 100000 "$got" "body bytes through the hand-off after another client's reset"

log "20 parallel clients share one channel"
pids=()
for i in $(seq 1 20); do
  fetch small "$LIB_TMP/par$i" &
  pids+=($!)
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || fail "parallel client $((i + 1)) failed: $(cat "$LIB_TMP/par$((i + 1)).reply")" \
    "raw reply $(wc -c <"$LIB_TMP/par$((i + 1)).raw") bytes; A: $(tail -20 "$LIB_TMP/a.log"); B: $(tail -30 "$LIB_TMP/b.log"); http: $(tail -5 "$LIB_TMP/http.log")"
done
for i in $(seq 1 20); do
  cmp -s "$LIB_TMP/www/small" "$LIB_TMP/par$i" || fail "parallel client $i got different bytes"
done
"$CTL" --socket "$SA" status --json >"$LIB_TMP/st.json" || fail "status failed"
assert_eq 1 "$(json "$LIB_TMP/st.json" 'len([c for c in d["channels"] if c["peer"]=="'"$IP_B"':8661"])')" \
  "IPv4 channels after 23 hand-offs to $IP_B"
assert_eq 2 "$(json "$LIB_TMP/st.json" 'd["host"]["handshakes_initiated"]')" "handshakes (one IPv4, one IPv6)"
assert_eq 24 "$(json "$LIB_TMP/st.json" 'd["stream_totals"]["opened"]')" "streams opened (blob, v6, refused, the reset check, 20 parallel)"
assert_eq 0 "$(json "$LIB_TMP/st.json" 'len(d["streams"])')" "streams still open"

log "client killed mid-transfer: B sees the stream reset"
printf 'GET /huge HTTP/1.0\r\n\r\n' >"$LIB_TMP/huge.req"
# (A backgrounded command's stdin would be /dev/null: redirect inside; exec keeps one pid.)
lib_bg ip netns exec "$NS_A" bash -c 'exec "$0" "$1" "$2" "$3" stall <"$4" 2>/dev/null' \
  "$HO" "$SA" "$IP_B" 8080 "$LIB_TMP/huge.req"
CLIENT=$LIB_BG_PID
# The client sent its request and never reads: B pushes data until the windows are full.
b_busy() {
  "$CTL" --socket "$SB" status --json >"$LIB_TMP/stb.json" 2>/dev/null &&
    [ "$(json "$LIB_TMP/stb.json" 'len(d["streams"])')" = 1 ] &&
    [ "$(json "$LIB_TMP/stb.json" 'd["streams"][0]["bytes_up"]')" -gt 100000 ]
}
poll_until 5 b_busy || fail "B is not sending to the stalled client: $(cat "$LIB_TMP/stb.json") A: $("$CTL" --socket "$SA" status --json)"
log "ok: B sent $(json "$LIB_TMP/stb.json" 'd["streams"][0]["bytes_up"]') bytes toward the stalled client"
# Backpressure: the transfer is held by flow control, not buffered without bound (64 MB file).
# It stops: two samples 0.3 s apart agree (within 5 s) ...
b_held() {
  "$CTL" --socket "$SB" status --json >"$LIB_TMP/stb1.json" || return 1
  sleep 0.3
  "$CTL" --socket "$SB" status --json >"$LIB_TMP/stb1b.json" || return 1
  [ "$(json "$LIB_TMP/stb1.json" 'd["streams"][0]["bytes_up"]')" = \
    "$(json "$LIB_TMP/stb1b.json" 'd["streams"][0]["bytes_up"]')" ]
}
poll_until 5 b_held || fail "B keeps sending to a client that reads nothing: $(cat "$LIB_TMP/stb1b.json")"
# ... having sent at most what the buffers on the way hold: B's stream send buffer and A's
# receive buffer (4 MiB each, sst_ctx_config_default), A's pump and the client's socket buffers.
assert_range 100000 9000000 "$(json "$LIB_TMP/stb1b.json" 'd["streams"][0]["bytes_up"]')" \
  "bytes B sent to a client that reads nothing"
kill -KILL "$CLIENT"
b_reset() {
  "$CTL" --socket "$SB" status --json >"$LIB_TMP/stb2.json" 2>/dev/null &&
    [ "$(json "$LIB_TMP/stb2.json" 'd["stream_totals"]["resets_received"]')" -ge 1 ] &&
    [ "$(json "$LIB_TMP/stb2.json" 'len(d["streams"])')" = 0 ]
}
poll_until 5 b_reset || fail "B did not see a reset: $(cat "$LIB_TMP/stb2.json")"
log "ok: B counted a reset and dropped the gateway stream"

log "PROXY protocol v2 header names the SST peer"
lib_bg in_b /usr/bin/python3 "$LIB_ROOT/tests/tools/sstd_proxy_echo.py" 7070
wait_for_port "$NS_B" 7070
lib_bg in_a "$BUILD/sstd" --foreground --socket "$LIB_TMP/a2.sock" --port 8662 --keydir "$LIB_TMP/ka2" 2>/dev/null
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b2.sock" --port 8662 --keydir "$LIB_TMP/kb2" \
  --forward 7070 --proxy-protocol 2>/dev/null
poll_until 20 test -S "$LIB_TMP/a2.sock" || fail "no a2 socket"
poll_until 20 test -S "$LIB_TMP/b2.sock" || fail "no b2 socket"
out=$(in_a "$HO" "$LIB_TMP/a2.sock" "$IP_B" 7070 </dev/null 2>/dev/null) || fail "PROXY hand-off failed"
assert_eq "$IP_A 8662 127.0.0.1 7070" "$out" "PROXY v2 source and destination seen by the server"
log "PASS"
