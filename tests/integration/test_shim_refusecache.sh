#!/usr/bin/env bash
# Auto mode's refusal cache (docs/shim.md §6d): a port an SST host refuses over SST but kernel TCP
# serves costs one extra round trip (the refusal) before the TCP fallback; once TCP reached it,
# later connections go straight to kernel TCP for SST_REFUSAL_CACHE seconds -- in the same
# process (the negative cache) and in other processes (sstd's capability file, TCPONLY) -- and a
# port that starts answering over SST is picked up again (at once through sstd, after the TTL
# in the process).
#
#   $NS_A  10.77.0.1 ==TUN== linkemu (25 ms each way) ==TUN== 10.77.0.2  $NS_B
#          sstd (client side)                         sstd --forward 8080,8084
#          shimmed python clients                     "tcp" on 10.77.0.2:8084 only (the gateway's
#                                                     loopback connect is refused); later "sst"
#                                                     on 127.0.0.1:8084 (the gateway reaches it)
. "$(dirname "$0")/lib.sh"
lib_init shim_refusecache
need_tool /usr/bin/python3
SHIM=$BUILD/libsstshim.so
for b in sstd sstctl libsstshim.so; do [ -e "$BUILD/$b" ] || env_fail "$BUILD/$b not built"; done
SA=$LIB_TMP/a.sock
CAPS=$LIB_TMP/a.caps

lib_net_up --link emu --delay 25ms --seed 5
# serve ADDR PORT WORD: answers every connection with WORD and closes.
serve() {
  lib_bg in_b /usr/bin/python3 -c '
import socket, sys
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], int(sys.argv[2])))
l.listen(64)
while True:
    c, _ = l.accept()
    c.sendall(sys.argv[3].encode())
    c.close()' "$1" "$2" "$3"
  wait_for_port "$NS_B" "$2"
}
serve 0.0.0.0 8080 warm
serve "$IP_B" 8084 tcp
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" --forward 8080,8084 \
  --log info 2>"$LIB_TMP/b.log"
lib_bg in_a "$BUILD/sstd" --foreground --socket "$SA" --keydir "$LIB_TMP/ka" --log info 2>"$LIB_TMP/a.log"
poll_until 20 test -S "$SA" || fail "no socket $SA"
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "no socket in B"
wait_for_port "$NS_B" 8661 udp

# One client: connects to each PORT in turn, prints "PORT CONNECT_MS REPLY" per connection.
cat >"$LIB_TMP/client.py" <<EOF
import socket, sys, time
for a in sys.argv[1:]:
    if a.startswith('sleep'):
        time.sleep(float(a[5:]))
        continue
    s = socket.socket()
    s.settimeout(10)
    t0 = time.monotonic()
    s.connect(('$IP_B', int(a)))
    t1 = time.monotonic()
    data = b''
    while True:
        b = s.recv(100)
        if not b:
            break
        data += b
    s.close()
    print(a, '%.1f' % ((t1 - t0) * 1000), data.decode() or 'EOF', flush=True)
EOF
# client MODE HELPER LOGFILE [VAR=VALUE...] -- PORTS...
client() {
  local mode=$1 helper=$2 logf=$3
  shift 3
  local vars=()
  while [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE="$mode" SST_HELPER="$helper" SST_KEYDIR="$LIB_TMP/kshim" \
    SST_LOG=debug SST_LOG_FILE="$logf" "${vars[@]}" /usr/bin/python3 "$LIB_TMP/client.py" "$@"
}
refusals() { grep -c ">8084: Connection refused; refusing the stream" "$LIB_TMP/b.log" || true; }
ms_of() { awk -v p="$1" '$1 == p { print $2 }'; }

log "through sstd: the first connection to 8084 is refused over SST, then served by TCP"
client auto "$SA" "$LIB_TMP/p0.log" -- 8080 >"$LIB_TMP/o0" || fail "warm-up client failed"
assert_eq "8080 warm" "$(awk '{ print $1, $3 }' "$LIB_TMP/o0")" "warm-up over SST"
poll_until 5 grep -q "^$IP_B:8661/8080 " "$CAPS" || fail "8080 not learnt: $(cat "$CAPS")"
r0=$(refusals)
client auto "$SA" "$LIB_TMP/p1.log" -- 8084 >"$LIB_TMP/o1" || fail "first client failed"
assert_eq "8084 tcp" "$(awk '{ print $1, $3 }' "$LIB_TMP/o1")" "first connection's server"
grep -q "falling back to TCP: SST peer has no service on this port" "$LIB_TMP/p1.log" ||
  fail "the first connection did not try SST: $(cat "$LIB_TMP/p1.log")"
assert_eq $((r0 + 1)) "$(refusals)" "refusals by B's gateway after the first connection"
poll_until 5 grep -q "^!$IP_B:8661/8084 [0-9]*$" "$CAPS" || fail "capability file does not list 8084 as TCP only: $(cat "$CAPS")"
"$BUILD/sstctl" --socket "$SA" caps "$IP_B" 8084 >"$LIB_TMP/c84" || fail "sstctl caps failed"
grep -q "port 8084 refused over SST, served by TCP (auto mode: kernel TCP for [0-9]* s)" "$LIB_TMP/c84" ||
  fail "sstctl caps 8084: $(cat "$LIB_TMP/c84")"
log "ok: $(cat "$LIB_TMP/c84")"

log "other processes go straight to kernel TCP: no SST, one round trip less"
: >"$LIB_TMP/o2"
for i in 1 2 3; do
  client auto "$SA" "$LIB_TMP/p2.log" -- 8084 >>"$LIB_TMP/o2" || fail "cached client $i failed"
done
assert_eq "tcp tcp tcp" "$(awk '{ print $3 }' "$LIB_TMP/o2" | paste -sd' ')" "cached connections' server"
assert_eq 3 "$(grep -c "8084 refused over SST lately and is served by TCP (sstd's capability file): kernel TCP" "$LIB_TMP/p2.log")" \
  "connections that skipped SST on the capability file"
grep -q "falling back\|handing the connection to the helper" "$LIB_TMP/p2.log" && fail "a cached connection asked SST: $(cat "$LIB_TMP/p2.log")"
assert_eq $((r0 + 1)) "$(refusals)" "refusals by B's gateway after the cached connections"
first=$(ms_of 8084 <"$LIB_TMP/o1")
best=$(awk '{ print $2 }' "$LIB_TMP/o2" | sort -n | head -1)
log "connect() to 8084: first (SST refusal + TCP) $first ms; cached (kernel TCP) best of 3 $best ms"
assert_range 90 2000 "$first" "first connect ms (refusal round trip + TCP handshake)"
assert_range 45 "$(echo "$first - 35" | bc)" "$best" "cached connect ms (one round trip less)"

log "in one process without sstd: the second connection skips SST"
r0=$(refusals)
# 8080 first: the channel comes up (the race lets TCP carry that one); 8084 twice on it.
client auto off "$LIB_TMP/p3.log" -- 8080 sleep0.5 8084 8084 8084 >"$LIB_TMP/o3" || fail "in-process client failed"
assert_eq "8080 8084 8084 8084" "$(awk '{ print $1 }' "$LIB_TMP/o3" | paste -sd' ')" "in-process ports"
assert_eq "tcp tcp tcp" "$(awk '$1 == 8084 { print $3 }' "$LIB_TMP/o3" | paste -sd' ')" "in-process 8084 server"
assert_eq 1 "$(grep -c "falling back to TCP: SST peer has no service on this port" "$LIB_TMP/p3.log")" "in-process SST refusals"
assert_eq 2 "$(grep -c "destination cached as without SST, plain TCP" "$LIB_TMP/p3.log")" "in-process connections that skipped SST"
assert_eq $((r0 + 1)) "$(refusals)" "refusals by B's gateway in that process"
mapfile -t t < <(awk '$1 == 8084 { print $2 }' "$LIB_TMP/o3")
log "connect() to 8084 in one process: ${t[0]} ms (SST refusal + TCP), then ${t[1]} and ${t[2]} ms (kernel TCP)"
assert_range 90 2000 "${t[0]}" "in-process first connect ms"
second=$(printf '%s\n' "${t[1]}" "${t[2]}" | sort -n | head -1)
assert_range 45 "$(echo "${t[0]} - 35" | bc)" "$second" "in-process cached connect ms"

log "the port starts answering over SST: picked up again"
serve 127.0.0.1 8084 sst
SST_SERVER=$LIB_BG_PID
# A new process has no refusal of its own: SST carries 8084 now (the gateway reaches it).
client auto off "$LIB_TMP/p4.log" -- 8080 sleep0.5 8084 >"$LIB_TMP/o4" || fail "in-process client failed"
assert_eq "sst" "$(awk '$1 == 8084 { print $3 }' "$LIB_TMP/o4")" "in-process 8084 once served over SST"
# Through sstd the TCP-only entry (60 s) gives way as soon as the port answers over SST: a
# strict-mode process (which never uses the cache) gets the answer, sstd lists the port as
# answering, and the next auto-mode process uses SST.
client strict "$SA" "$LIB_TMP/p5.log" -- 8084 >"$LIB_TMP/o5" || fail "strict client failed"
assert_eq "8084 sst" "$(awk '{ print $1, $3 }' "$LIB_TMP/o5")" "strict client over SST"
poll_until 5 grep -q "^$IP_B:8661/8084 [0-9]*$" "$CAPS" || fail "8084 not listed as answering: $(cat "$CAPS")"
grep -q "^!$IP_B:8661/8084 " "$CAPS" && fail "8084 still listed as TCP only: $(cat "$CAPS")"
client auto "$SA" "$LIB_TMP/p6.log" -- 8084 >"$LIB_TMP/o6" || fail "auto client after the answer failed"
assert_eq "8084 sst" "$(awk '{ print $1, $3 }' "$LIB_TMP/o6")" "auto client after the port answered over SST"

log "in one process, SST_REFUSAL_CACHE=2: a refusal is cached 2 s, then SST is asked again"
kill "$SST_SERVER" 2>/dev/null
poll_until 5 sh -c "! ip netns exec $NS_B ss -H -ltn 'src 127.0.0.1 and sport = :8084' | grep -q ." ||
  fail "the loopback 8084 server still listens"
client auto off "$LIB_TMP/p7.log" SST_REFUSAL_CACHE=2 -- 8080 sleep0.5 8084 8084 sleep2.5 8084 >"$LIB_TMP/o7" ||
  fail "TTL client failed"
assert_eq "tcp tcp tcp" "$(awk '$1 == 8084 { print $3 }' "$LIB_TMP/o7" | paste -sd' ')" "8084 servers (TTL run)"
assert_eq 2 "$(grep -c "falling back to TCP: SST peer has no service on this port" "$LIB_TMP/p7.log")" \
  "SST refusals: the first connection and the one after the 2 s TTL"
assert_eq 1 "$(grep -c "destination cached as without SST, plain TCP" "$LIB_TMP/p7.log")" "connections inside the TTL that skipped SST"
log "PASS"
