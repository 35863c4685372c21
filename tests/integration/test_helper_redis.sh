#!/usr/bin/env bash
# An unmodified redis-server behind sstd's gateway, queried by a shimmed redis-cli from the other
# host, with TCP between the hosts blocked: only SST carries the queries.
#
#   $NS_A  sst0 10.77.0.1 ===== veth (TCP dropped) ===== sst0 10.77.0.2  $NS_B
#          redis-cli under libsstshim.so                    sstd --forward 6379
#          (SST_MODE=strict, in-process engine)             redis-server 0.0.0.0:6379 (no preload)
. "$(dirname "$0")/lib.sh"
lib_init helper_redis
need_tool redis-server redis-cli /usr/bin/python3
SHIM=$BUILD/libsstshim.so
for b in sstd libsstshim.so; do [ -e "$BUILD/$b" ] || env_fail "$BUILD/$b not built"; done

lib_net_up
lib_block_tcp
lib_bg in_b redis-server --port 6379 --bind 0.0.0.0 --protected-mode no --save "" --appendonly no \
  --dir "$LIB_TMP" --logfile "$LIB_TMP/redis.log"
wait_for_port "$NS_B" 6379
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" --forward 6379 \
  --log info 2>"$LIB_TMP/sstd.log"
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "sstd did not start"

cli() {
  in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER=off SST_KEYDIR="$LIB_TMP/ka" \
    SST_LOG=info SST_LOG_FILE="$LIB_TMP/shim.log" timeout 20 redis-cli -h "$IP_B" -p 6379 "$@"
}

log "control: redis-cli without the shim cannot reach B (TCP blocked)"
if in_a timeout 5 redis-cli -h "$IP_B" -p 6379 PING >/dev/null 2>&1; then fail "TCP is not blocked"; fi

log "PING, SET, GET, INCR through sstd's gateway"
assert_eq PONG "$(cli PING)" "PING"
assert_eq OK "$(cli SET greeting "hello over SST")" "SET"
assert_eq "hello over SST" "$(cli GET greeting)" "GET"
for i in 1 2 3; do cli INCR counter >/dev/null || fail "INCR $i"; done
assert_eq 3 "$(cli GET counter)" "counter after three INCRs"

log "a 1 MB value round trip, byte-exact"
head -c 750000 /dev/urandom | base64 -w0 >"$LIB_TMP/big"
cli -x SET big <"$LIB_TMP/big" >/dev/null || fail "SET big"
cli --raw GET big | tr -d '\n' >"$LIB_TMP/big.out"
cmp -s "$LIB_TMP/big" "$LIB_TMP/big.out" || fail "1 MB value differs"

log "pipelined commands in one connection (redis-cli --pipe)"
for i in $(seq 1000); do printf 'SET k%d v%d\r\n' "$i" "$i"; done >"$LIB_TMP/pipe.txt"
cli --pipe <"$LIB_TMP/pipe.txt" >"$LIB_TMP/pipe.out" 2>&1 || fail "pipe: $(cat "$LIB_TMP/pipe.out")"
grep -q "errors: 0, replies: 1000" "$LIB_TMP/pipe.out" || fail "pipe: $(cat "$LIB_TMP/pipe.out")"
assert_eq v777 "$(cli GET k777)" "a pipelined key"

log "sstd's pumps make no wasted system calls (counted, not timed)"
# Per request, the gateway reads the request off the stream, writes it to redis, reads the
# answer and writes it to the stream: one read and one write.  A read() tried at every step
# (EAGAIN) and events deleted and added again at every wake-up (epoll_ctl) cost 2.7 failed reads
# and 1.3 epoll_ctl per request; a recvmmsg batch that emptied the socket was followed by
# another recvmmsg and an error-queue recvmsg, both failing.
need_tool strace redis-benchmark
sstd_b=$(pgrep -f "sstd --foreground --socket $LIB_TMP/b.sock" | head -1)
[ -n "$sstd_b" ] || fail "no sstd pid"
strace -qq -f -c -e trace=read,epoll_ctl,recvmsg -o "$LIB_TMP/strace.txt" -p "$sstd_b" &
strace_pid=$!
sleep 0.5
reqs=3000
in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER=off SST_KEYDIR="$LIB_TMP/ka" \
  timeout 60 redis-benchmark -h "$IP_B" -p 6379 -c 4 -n $reqs -t ping_mbulk -q >"$LIB_TMP/bench.out" 2>&1 ||
  fail "redis-benchmark: $(tail -3 "$LIB_TMP/bench.out")"
sleep 0.3
kill -INT $strace_pid; wait $strace_pid 2>/dev/null
cat "$LIB_TMP/strace.txt"
# strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall
count() { awk -v sc="$1" -v col="$2" '$NF == sc { if (col == "errors") print (NF == 6 ? $5 : 0); else print $4 }' "$LIB_TMP/strace.txt"; }
failed_reads=$(count read errors); epoll_ctls=$(count epoll_ctl calls); errq=$(count recvmsg calls)
log "per $reqs requests: ${failed_reads:-0} failed reads, ${epoll_ctls:-0} epoll_ctl, ${errq:-0} error-queue reads"
[ "${failed_reads:-0}" -le $((reqs / 5)) ] || fail "failed reads: ${failed_reads} for $reqs requests"
[ "${epoll_ctls:-0}" -le $((reqs / 5)) ] || fail "epoll_ctl calls: ${epoll_ctls} for $reqs requests"
[ "${errq:-0}" -le $((reqs / 5)) ] || fail "error-queue reads: ${errq} for $reqs requests"

grep -q "connection carried over SST" "$LIB_TMP/shim.log" 2>/dev/null ||
  grep -q "carrying connection over sst" "$LIB_TMP/shim.log" || fail "the shim log shows no SST connection"
log "PASS"
