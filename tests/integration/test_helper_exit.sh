#!/usr/bin/env bash
# A program that hands its connection to sstd, writes and then goes at once (exit, _exit,
# SIGKILL, close) loses nothing: sstd delivers what it had read from the client and the
# stream's queue, as the kernel does for a closed TCP socket.  Until 2026-11-21 sstd reset the
# stream when the client's end hung up before the peer's FIN: of 4 MB written that way over a
# lossy 50 ms link, 11-59 KB arrived and the server read ECONNRESET.
#
#   $NS_A  sst0 10.77.0.1 ==TUN== linkemu (25 ms each way, 1% loss, 1% reordering) ==TUN== sst0 10.77.0.2  $NS_B
#          sstd; python senders under the shim (SST_HELPER)          sstd --forward 9000; sstd_sink.py :9000
. "$(dirname "$0")/lib.sh"
lib_init helper_exit
need_tool nc /usr/bin/python3
SHIM=$BUILD/libsstshim.so
for b in sstd sstctl libsstshim.so; do [ -e "$BUILD/$b" ] || env_fail "$BUILD/$b not built"; done
SA=$LIB_TMP/a.sock
SINK=$LIB_TMP/sink.log

lib_net_up --link emu --rate 100mbit --delay 25ms --queue 625000 --loss 1 --reorder 1 --seed 11
lib_bg in_b /usr/bin/python3 "$LIB_ROOT/tests/tools/sstd_sink.py" 9000 "$SINK"
wait_for_port "$NS_B" 9000
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" --forward 9000 \
  --log info 2>"$LIB_TMP/b.log"
lib_bg in_a "$BUILD/sstd" --foreground --socket "$SA" --keydir "$LIB_TMP/ka" --log info 2>"$LIB_TMP/a.log"
poll_until 20 test -S "$SA" || fail "no socket $SA"
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "no socket in B"
lib_block_tcp
shimmed() {
  in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER="$SA" SST_KEYDIR="$LIB_TMP/kshim" \
    SST_LOG=info SST_LOG_FILE="$LIB_TMP/shim.log" "$@"
}
"$BUILD/sstctl" --socket "$SA" warm "$IP_B" >/dev/null || fail "warm failed"

# sent MODE BYTES: a sender under the shim; the sink must log the same length and hash.
sent() {
  : >"$SINK"
  local out
  out=$(shimmed timeout 20 /usr/bin/python3 "$LIB_ROOT/tests/tools/sstd_sender.py" "$IP_B" 9000 "$2" "$1" 2>&1 | head -1)
  poll_until 15 test -s "$SINK" || fail "$1: the sink saw no end of the connection (sent $out)"
  [ "$(cut -d' ' -f1,2 "$SINK")" = "$out" ] && ! grep -q Error "$SINK" ||
    fail "$1: sent '$out', the sink read '$(cat "$SINK")'"
  log "ok: $1: $2 bytes byte-exact"
}
sent shut 2000000
for mode in exit _exit kill close; do sent "$mode" 2000000; done

log "nc -N uploads a file and ends at its EOF"
head -c 1500000 /dev/urandom >"$LIB_TMP/up"
: >"$SINK"
shimmed timeout 20 nc -N "$IP_B" 9000 <"$LIB_TMP/up" >"$LIB_TMP/nc.reply" || fail "nc failed"
want="OK 1500000 $(sha256sum <"$LIB_TMP/up" | cut -d' ' -f1)"
assert_eq "$want" "$(cat "$LIB_TMP/nc.reply")" "the sink's reply to nc"

log "every hand-off stream ended in sstd (no pump left behind)"
poll_until 10 sh -c "'$BUILD/sstctl' --socket '$SA' status --json >'$LIB_TMP/st.json' &&
  [ \"\$(/usr/bin/python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))[\"streams\"]))' '$LIB_TMP/st.json')\" = 0 ]" ||
  fail "streams left in sstd: $(cat "$LIB_TMP/st.json")"
log "PASS"
