#!/usr/bin/env bash
# Stress the shim -> sstd -> SST -> sstd --forward -> TCP path with rounds of parallel curls and
# count bodies that arrive damaged or short (a hunt for a rare "Empty reply" / "transfer closed
# with N bytes remaining").  Not part of `make test`: it loops for as long as asked.
#   ROUNDS=10 PAR=30 SIZE=1000 PROTO=HTTP/1.0 EMU="--loss 2%" STOP=0.3 SLOG=debug \
#     scripts/stress_shim_helper.sh
# STOP=S freezes sstd A (SIGSTOP) for S seconds while a round starts, so the shim's 100 ms CAPS
# wait inside connect() times out and the asynchronous hand-off (filler, event thread) is used.
# Failed curls' shim logs are copied to $OUT (default /tmp/stress_shim_helper).
cd "$(dirname "$0")/../tests/integration" || exit 1
. ./lib.sh
lib_init stress_shim_helper
OUT=${OUT:-/tmp/stress_shim_helper}; mkdir -p "$OUT"
SHIM=$BUILD/libsstshim.so
SA=$LIB_TMP/a.sock
ROUNDS=${ROUNDS:-10}; PAR=${PAR:-30}; SIZE=${SIZE:-1000}; PROTO=${PROTO:-HTTP/1.0}
lib_net_up --link ${LINK:-emu} --delay ${DELAY:-25ms} --seed 5 ${EMU:-}
mkdir -p "$LIB_TMP/www"
head -c $SIZE /dev/urandom >"$LIB_TMP/www/f"
lib_bg in_b /usr/bin/python3 -c '
import functools, http.server, sys
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = sys.argv[2]
    def log_message(self,*a): pass
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
handler = functools.partial(H, directory=sys.argv[1])
Server(("0.0.0.0", 8080), handler).serve_forever()' "$LIB_TMP/www" "$PROTO" 2>/dev/null
wait_for_port "$NS_B" 8080
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" --forward 8080 --log ${BLOG:-info} 2>"$LIB_TMP/b.log"
lib_bg in_a "$BUILD/sstd" --foreground --socket "$SA" --keydir "$LIB_TMP/ka" --log ${ALOG:-info} 2>"$LIB_TMP/a.log"
poll_until 5 test -S "$SA" || fail "no socket"
lib_block_tcp
get() { in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER="$SA" SST_KEYDIR="$LIB_TMP/kshim" SST_LOG=${SLOG:-warn} SST_LOG_FILE="$1.slog" \
    curl -sS -m 20 -o "$1" "http://$IP_B:8080/f" 2>"$1.err"; echo $? > "$1.rc"; }
get $LIB_TMP/warm
bad=0; tot=0
for r in $(seq $ROUNDS); do
  pids=(); for i in $(seq $PAR); do get "$LIB_TMP/p$i" & pids+=($!); done; if [ -n "${STOP:-}" ]; then apid=$(pgrep -f -- "--socket $SA"); kill -STOP $apid; sleep $STOP; kill -CONT $apid; fi; wait "${pids[@]}"
  for i in $(seq $PAR); do tot=$((tot+1)); if ! cmp -s "$LIB_TMP/www/f" "$LIB_TMP/p$i"; then bad=$((bad+1)); echo "round $r #$i rc=$(cat $LIB_TMP/p$i.rc) size=$(stat -c %s $LIB_TMP/p$i 2>/dev/null) $(cat $LIB_TMP/p$i.err)"; cp $LIB_TMP/p$i.slog $OUT/bad-$r-$i.slog; fi; done
done
echo "last round: direct=$(cat $LIB_TMP/p*.slog 2>/dev/null | grep -c "inside connect()") async=$(cat $LIB_TMP/p*.slog 2>/dev/null | grep -c "pumps the app.s socket itself") relay=$(cat $LIB_TMP/p*.slog 2>/dev/null | grep -c "helper carries the connection")"
echo "RESULT size=$SIZE par=$PAR bad=$bad/$tot"
[ $bad -gt 0 ] && mkdir -p $OUT && cp $LIB_TMP/*.log $OUT/ 2>/dev/null
[ "$bad" -eq 0 ]
