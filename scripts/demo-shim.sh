#!/usr/bin/env bash
# The end-to-end demo: unmodified curl carried over SST between two hosts (network namespaces
# joined by an emulated 50 ms RTT link), with kernel TCP between them blocked.  Part of
# `make demo` (scripts/demo.sh).  Needs root (namespaces); cleans up after itself.
#
#   host A (sst-demo-a) 10.77.0.1  ==== linkemu, 25 ms each way ====  host B (sst-demo-b) 10.77.0.2
#   curl under libsstshim.so                                          python http.server :8080
#   sstd (keeps channels warm)                                        sstd --forward 8080
. "$(dirname "$0")/../tests/integration/lib.sh"
lib_init demo
SHIM=$BUILD/libsstshim.so
for b in sstd sstctl libsstshim.so tools/linkemu; do [ -e "$BUILD/$b" ] || env_fail "$BUILD/$b not built (make)"; done
ms() { /usr/bin/python3 -c 'import sys; print(int(float(sys.stdin.read()) * 1000))'; }
say() { printf '\n%s\n' "$*"; }

lib_net_up --link emu --delay 25ms --rate 100mbit --queue 640kb --seed 1
mkdir -p "$LIB_TMP/www"
printf 'hello over SST\n' >"$LIB_TMP/www/hello"
head -c 20000000 /dev/urandom >"$LIB_TMP/www/big"
lib_bg in_b /usr/bin/python3 -m http.server 8080 --bind 0.0.0.0 --directory "$LIB_TMP/www" 2>/dev/null
wait_for_port "$NS_B" 8080
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" --forward 8080 \
  --log warn 2>"$LIB_TMP/b.log"
poll_until 5 test -S "$LIB_TMP/b.sock" || fail "sstd in B did not start"

say "1. Kernel TCP from A to B (link: 100 Mbit/s, 50 ms RTT)"
t=$(in_a curl -sS -o /dev/null -w '%{time_total}\n' "http://$IP_B:8080/hello" | ms)
echo "   small GET over kernel TCP: $t ms (connect + request = 2 round trips)"
rate=$(in_a curl -sS -o /dev/null -w '%{speed_download}\n' "http://$IP_B:8080/big")
printf '   20 MB over kernel TCP (%s): %.1f Mbit/s\n' "$(in_a sysctl -n net.ipv4.tcp_congestion_control)" \
  "$(/usr/bin/python3 -c "print($rate * 8 / 1e6)")"

say "2. Block TCP between the hosts (nftables).  Plain curl now fails:"
lib_block_tcp
if in_a curl -sS -m 3 -o /dev/null "http://$IP_B:8080/hello" 2>&1 | sed 's/^/   /'; then fail "TCP not blocked"; fi

say "3. The same curl under the shim (SST_PEERS=$IP_B, SST_MODE=strict: SST or nothing)"
E=(LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_KEYDIR="$LIB_TMP/ka" SST_HELPER=off)
in_a env "${E[@]}" curl -sS "http://$IP_B:8080/hello" | sed 's/^/   B says: /'
rate=$(in_a env "${E[@]}" curl -sS -o "$LIB_TMP/big.out" -w '%{speed_download}\n' "http://$IP_B:8080/big")
cmp -s "$LIB_TMP/big.out" "$LIB_TMP/www/big" || fail "20 MB over SST differs"
printf '   20 MB over SST (byte-exact): %.1f Mbit/s\n' "$(/usr/bin/python3 -c "print($rate * 8 / 1e6)")"

say "4. With the helper daemon in A, channels outlive processes: the second curl needs no handshake"
lib_bg in_a "$BUILD/sstd" --foreground --socket "$LIB_TMP/a.sock" --keydir "$LIB_TMP/kd" --log warn 2>"$LIB_TMP/a.log"
poll_until 5 test -S "$LIB_TMP/a.sock" || fail "sstd in A did not start"
E=(LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_KEYDIR="$LIB_TMP/ka" SST_HELPER="$LIB_TMP/a.sock")
for i in 1 2 3; do
  t=$(in_a env "${E[@]}" curl -sS -o /dev/null -w '%{time_total}\n' "http://$IP_B:8080/hello" | ms)
  echo "   curl #$i through sstd: $t ms"
done
echo "   (kernel TCP needs two round trips, ~100 ms; a warm SST channel needs one, ~50 ms)"
say "5. What sstd in A sees (sstctl status):"
"$BUILD/sstctl" --socket "$LIB_TMP/a.sock" status | sed 's/^/   /'
say "Demo done: unmodified curl, real UDP, encrypted SST channel, TCP blocked."
