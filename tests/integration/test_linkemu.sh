#!/usr/bin/env bash
# Checks that linkemu emulates what it is told (model in virtual time, then delay, rate, loss
# and IPv6 on a live namespace pair) and that netns.sh block-tcp stops TCP but not UDP.
#
#   $NS_A  sst0 10.77.0.1 ==TUN== linkemu ==TUN== sst0 10.77.0.2  $NS_B
#          curl, ping, socat                     http.server, socat
. "$(dirname "$0")/lib.sh"
lib_init linkemu
need_tool curl socat ss /usr/bin/python3
lib_need_linkemu
EMU=$BUILD/tools/linkemu

# sim_field OUTPUT KEY: a key=value from linkemu --simulate output.
sim_field() { sed -n "s/.*\\b$2=\\([0-9.]*\\).*/\\1/p" <<<"$1" | head -1; }

log "model in virtual time (deterministic, no devices)"
out=$("$EMU" --seed 7 --simulate 100000 --loss 5%) || fail "simulate loss"
assert_range 0.045 0.055 "$(sim_field "$out" loss_rate)" "sim random loss 5%"
assert_range 0.95 1.10 "$(sim_field "$out" mean_burst)" "sim random loss burst length"
# Gilbert-Elliott p=5% r=50%: stationary loss p/(p+r) = 9.09%, mean burst 1/r = 2.
out=$("$EMU" --seed 7 --simulate 200000 --ge 5,50) || fail "simulate ge"
assert_range 0.085 0.097 "$(sim_field "$out" loss_rate)" "sim GE loss rate"
assert_range 1.85 2.15 "$(sim_field "$out" mean_burst)" "sim GE mean burst"
# Back-to-back 1500-byte packets into 20 Mbit/s with a 64 KiB queue: the link runs at exactly
# the rate, the queue never holds more than its limit, the excess is tail-dropped.
out=$("$EMU" --seed 7 --simulate 20000 --rate 20mbit --queue 64kb --delay 25ms) || fail "simulate rate"
assert_range 19990000 20010000 "$(sim_field "$out" throughput_bps)" "sim throughput at 20mbit"
assert_range 60000 65536 "$(sim_field "$out" backlog_max)" "sim queue high-water (64 KiB limit)"
assert_range 19000 20000 "$(sim_field "$out" drop_queue)" "sim tail drops"
# Offered 12 Mbit/s (1500 B per 1 ms) into 20 Mbit/s: nothing queues, delay is 25 ms + 0.6 ms.
out=$("$EMU" --seed 7 --simulate 5000 --sim-interval 1ms --rate 20mbit --delay 25ms) || fail "simulate delay"
assert_eq 0 "$(sim_field "$out" drop_queue)" "sim drops below the rate"
assert_range 25.59 25.61 "$(sim_field "$out" mean_delay_ms)" "sim one-way delay"
out=$("$EMU" --seed 7 --simulate 20000 --sim-interval 100us --reorder 10% --reorder-gap 1ms) ||
  fail "simulate reorder"
assert_range 1800 2200 "$(sim_field "$out" out_of_order)" "sim reordered deliveries of 20000"
# Bounded memory: 100 slots, 1000 packets inside one 50 ms delay: 900 dropped, never more held.
out=$("$EMU" --simulate 1000 --sim-interval 10us --delay 50ms --slots 100) || fail "simulate slots"
assert_eq 100 "$(sim_field "$out" inflight_max)" "sim slots high-water"
assert_eq 900 "$(sim_field "$out" drop_pool)" "sim drops when the slot pool is full"
a=$("$EMU" --seed 11 --simulate 5000 --loss 3% --reorder 2%)
b=$("$EMU" --seed 11 --simulate 5000 --loss 3% --reorder 2%)
c=$("$EMU" --seed 12 --simulate 5000 --loss 3% --reorder 2%)
[ -n "$a" ] || fail "simulate printed nothing"
assert_eq "$(md5sum <<<"$a")" "$(md5sum <<<"$b")" "same --seed gives the same run (md5)"
[ "$a" != "$c" ] || fail "different seeds gave identical runs"

log "delay: 25 ms each way = 50 ms RTT"
lib_net_up --link emu --delay 25ms --seed 1
rtt=$(in_a ping -q -c 20 -i 0.05 -W 2 "$IP_B" | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p')
assert_range 48 60 "$rtt" "ping RTT ms (IPv4)"
rtt6=$(in_a ping -q -c 10 -i 0.05 -W 2 "$IP6_B" | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p')
assert_range 48 60 "$rtt6" "ping RTT ms (IPv6)"

log "rate: kernel TCP over 20 Mbit/s, 50 ms RTT"
lib_net_up --link emu --rate 20mbit --delay 25ms --seed 2
lib_set_cc "$NS_B" cubic   # the sender: http.server in B
mkdir -p "$LIB_TMP/www"
head -c 8000000 /dev/urandom >"$LIB_TMP/www/blob"
lib_bg in_b /usr/bin/python3 -m http.server 8080 --bind "$IP_B" --directory "$LIB_TMP/www" \
  >"$LIB_TMP/http.log" 2>&1
wait_for_port "$NS_B" 8080
bps=$(in_a curl -sS -o "$LIB_TMP/got" --max-time 20 -w '%{speed_download}' "http://$IP_B:8080/blob") ||
  fail "curl over the emulated link"
cmp -s "$LIB_TMP/got" "$LIB_TMP/www/blob" || fail "downloaded file differs"
pct=$(awk -v b="$bps" 'BEGIN { printf "%.1f", b * 8 / 20e6 * 100 }')
assert_range 70 105 "$pct" "TCP goodput % of 20 Mbit/s"
assert_eq 0 "$(emu_stat ba drop_pool)" "no slot exhaustion"

log "loss: 5% a->b shows in ping"
lib_net_up --link emu --loss-ab 5% --seed 3
sent=600
ping_out=$(in_a ping -q -c $sent -i 0.002 -W 1 "$IP_B")
lossp=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' <<<"$ping_out")
# Binomial(600, 0.05): mean 30, sd 5.3; [2%, 9%] is beyond 3.5 sd on both sides.
assert_range 2 9 "$lossp" "ping loss % with 5% loss"
lost=$(sed -n 's/.*transmitted, \([0-9]*\) received.*/\1/p' <<<"$ping_out")
lost=$((sent - lost))
dropped=$(emu_stat ab drop_loss)
assert_range $((lost - 3)) $((lost + 3)) "$dropped" "linkemu drop_loss vs ping's lost count"
assert_eq 0 "$(emu_stat ba drop_loss)" "no loss configured b->a"

log "block-tcp: TCP stops, UDP still crosses"
lib_net_up --link emu --delay 1ms
lib_bg in_b /usr/bin/python3 -m http.server 8081 --bind "$IP_B" --directory "$LIB_TMP/www" \
  >"$LIB_TMP/http2.log" 2>&1
wait_for_port "$NS_B" 8081
get() { in_a curl -sS -o /dev/null --max-time "$1" "http://$IP_B:8081/blob" 2>/dev/null; }
get 10 || fail "curl before block-tcp"
lib_block_tcp
lib_block_tcp   # idempotent
get 2 && fail "curl succeeded although TCP is blocked"
# The failure must come from our rule, not from a dead server: its counter saw the SYNs.
syns=$(in_a nft list table inet sstshim_block | sed -n 's/.*oifname "sst0".*packets \([0-9]*\).*/\1/p')
assert_range 1 1000 "$syns" "TCP packets dropped by block-tcp in $NS_A"
log "ok: curl fails while TCP is blocked"
udp_check() {   # udp_check UDP4|UDP6 HOST PORT: a datagram from A to B must arrive
  local fam=$1 host=$2 port=$3 f="$LIB_TMP/udp.$3"
  : >"$f"
  lib_bg in_b timeout 10 socat -u "$fam-RECV:$port" "OPEN:$f,creat,append"
  wait_for_port "$NS_B" "$port" udp
  # Resend until it arrives: a datagram may be lost, the port must stay open.
  poll_until 5 sh -c "echo hello-$port | ip netns exec $NS_A socat -u STDIN $fam-SENDTO:$host:$port; grep -q hello-$port $f" ||
    fail "UDP to $host:$port did not arrive while TCP is blocked"
  log "ok: UDP crosses to $host:$port"
}
udp_check UDP4 "$IP_B" 9999
udp_check UDP6 "[$IP6_B]" 9998
lib_allow_tcp
lib_allow_tcp   # idempotent
get 10 || fail "curl after allow-tcp"
log "ok: curl works again after allow-tcp"

log "veth link and idempotent up/down"
lib_net_up --link veth
lib_net_up --link veth
in_a ping -q -c 2 -i 0.05 -W 2 "$IP6_B" >/dev/null || fail "ping over veth"
lib_net_down
lib_net_down
[ ! -e "/var/run/netns/$NS_A" ] || fail "namespace $NS_A left behind"
log "PASS"
