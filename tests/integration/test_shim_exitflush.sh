#!/usr/bin/env bash
# (SST switched off by the test knob SST_SHIM_TEST_SST=unavailable: this exercises the shim's
# socketpair mechanics over kernel TCP; the same scenarios over SST are in test_shim_sst.sh.)
# A program that writes, then exits without waiting (with or without close) loses nothing: as
# the kernel does for TCP, the shim sends what was written before the process goes.
source "$(dirname "$0")/../tools/shim_common.sh"
env -u LD_PRELOAD "$PY" "$SERVERS" sink "$TMP/sink.port" "$TMP/sink.out" & PIDS+=($!)
PORT=$(wait_file "$TMP/sink.port")
N=$((4 * 1024 * 1024))

shim SST_PEERS=127.0.0.1 SST_SHIM_TEST_SST=unavailable -- "$PY" -c "
import socket, sys
sys.path.insert(0, '$ROOT/tests/tools')
from shim_rawdomain import raw_domain
s = socket.create_connection(('127.0.0.1', $PORT))
assert raw_domain(s.fileno()) == 'unix'
s.sendall(b'x' * $N)
s.close()
"
shim SST_PEERS=127.0.0.1 SST_SHIM_TEST_SST=unavailable -- "$PY" -c "
import socket
s = socket.create_connection(('127.0.0.1', $PORT))
s.sendall(b'y' * $N)
# exit with the socket still open
"
printf 'z%.0s' $(seq 1 1000) | shim SST_PEERS=127.0.0.1 SST_SHIM_TEST_SST=unavailable -- nc -N 127.0.0.1 "$PORT"
for i in $(seq 1 200); do [ "$(wc -l <"$TMP/sink.out" 2>/dev/null || echo 0)" -ge 3 ] && break; sleep 0.05; done
sort -n "$TMP/sink.out" | tr '\n' ' ' >"$TMP/got"
[ "$(cat "$TMP/got")" = "1000 $N $N " ] || fail "sink received: $(cat "$TMP/got")"
pass "write-then-exit delivers every byte (closed, left open, nc)"
