#!/usr/bin/env bash
# A program under the shim that writes and exits at once loses nothing over SST (docs/shim.md §2,
# "Exit"): the in-process engine dies with the process, so exit() waits until the peer has
# acknowledged what was written and the connection's end -- kernel TCP delivers a closed socket's
# queued bytes after the process is gone.  Over a 50 ms round trip, where 4 MiB takes ~0.5 s:
#
#   $NS_A  10.77.0.1 == linkemu 100 Mbit/s, 25 ms each way == 10.77.0.2  $NS_B
#          python / nc / iperf3 under the shim                sstd --forward SINK,5201
#          (in-process engine: SST_HELPER=off, strict)        sink, iperf3 -s :5201
#
# 1. write 4 MiB, close, exit; 2. write 4 MiB, exit with the socket open; 3. nc -N with 1 MB;
#    the sink must count every byte of each, and see each connection end.
# 4. an unmodified iperf3 client three times in a row against one long-lived iperf3 server: each
#    run's connections must end at the server (without the drain the server was often still
#    "busy running a test" from the previous client).
# 5. a dead peer (sstd in B killed) does not hold exit() beyond the drain's 2 s without progress.
. "$(dirname "$0")/lib.sh"
lib_init shim_sst_exit
need_tool nc iperf3 /usr/bin/python3
SHIM=$BUILD/libsstshim.so
[ -f "$SHIM" ] || env_fail "$SHIM not built"
[ -x "$BUILD/sstd" ] || env_fail "$BUILD/sstd not built"

lib_net_up --link emu --rate 100mbit --delay 25ms --queue 625000
lib_block_tcp

# The sink (tests/tools/shim_servers.py): one line per connection at its end, the byte count.
lib_bg in_b /usr/bin/python3 "$LIB_ROOT/tests/tools/shim_servers.py" sink "$LIB_TMP/sink.port" "$LIB_TMP/sink.out"
poll_until 20 test -s "$LIB_TMP/sink.port" || fail "sink did not start"
SINK=$(cat "$LIB_TMP/sink.port")
lib_bg in_b iperf3 -s -p 5201 >"$LIB_TMP/iperf-server.log" 2>&1
wait_for_port "$NS_B" 5201
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" \
  --forward "$SINK",5201 --log info 2>"$LIB_TMP/sstd.log"
SSTD_B=$LIB_BG_PID
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "sstd did not start"

ENVS=(LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER=off SST_KEYDIR="$LIB_TMP/ka")
shimmed() { in_a timeout 60 env "${ENVS[@]}" "$@"; }

# sink_lines N: waits (10 s at most) until the sink reported N connections; prints them sorted.
sink_lines() {
  poll_until 10 test "$(cat "$LIB_TMP/sink.out" 2>/dev/null | wc -l)" -ge "$1" || true
  sort -n "$LIB_TMP/sink.out" 2>/dev/null | tr '\n' ' '
}

N=$((4 * 1024 * 1024))
log "write 4 MiB then exit: closed, and left open"
for how in close open; do
  shimmed /usr/bin/python3 -c "
import socket
s = socket.create_connection(('$IP_B', $SINK))
s.sendall(b'x' * $N)
if '$how' == 'close':
    s.close()
" || fail "python ($how) failed"
done
printf 'z%.0s' $(seq 1 1000) | head -c 1000 >"$LIB_TMP/1k"
for i in $(seq 1 1000); do cat "$LIB_TMP/1k"; done >"$LIB_TMP/1m"
shimmed nc -N "$IP_B" "$SINK" <"$LIB_TMP/1m" || fail "nc failed"
got=$(sink_lines 3)
[ "$got" = "1000000 $N $N " ] || fail "sink received: '$got' (want 1000000 $N $N)"
log "ok: every byte and every end arrived ($got)"

log "iperf3 three times in a row against one server"
for i in 1 2 3; do
  out=$(shimmed iperf3 -c "$IP_B" -p 5201 -t 1 2>&1) || fail "iperf3 run $i: $(echo "$out" | tail -2)"
done
log "ok: the server took each run"

log "a dead peer does not hold exit()"
shimmed /usr/bin/python3 -c "
import os, socket, time
s = socket.create_connection(('$IP_B', $SINK))
s.sendall(b'a')
open('$LIB_TMP/connected', 'w').close()
while not os.path.exists('$LIB_TMP/killed'):
    time.sleep(0.01)
s.sendall(b'b' * 65536)
open('$LIB_TMP/written', 'w').close()
" &
PY=$!
poll_until 10 test -e "$LIB_TMP/connected" || fail "no connection"
{ kill -KILL "$SSTD_B" && wait "$SSTD_B"; } 2>/dev/null
touch "$LIB_TMP/killed"
poll_until 10 test -e "$LIB_TMP/written" || fail "the write did not complete"
t0=$(date +%s%N)
wait "$PY"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" = 0 ] || fail "python exited $rc"
# 2 s without progress, plus the checks' granularity and a loaded machine's slack.
[ "$ms" -le 5000 ] || fail "exit took $ms ms with a dead peer"
log "ok: exit $ms ms after the last write with the peer dead"
log "ok: write-then-exit over SST delivers every byte and end; iperf3 x3; dead peer bounded"
