#!/usr/bin/env bash
# (SST switched off by the test knob SST_SHIM_TEST_SST=unavailable: this exercises the shim's
# socketpair mechanics over kernel TCP; the same scenarios over SST are in test_shim_sst.sh.)
# 50 concurrent connections from one process through the shim, each moving 256 KiB both ways
# with half-close, byte-exact; then 10 processes at once, 5 connections each.
source "$(dirname "$0")/../tools/shim_common.sh"
start_echo

cat >"$TMP/conc.py" <<PYEOF
import socket, sys, threading
sys.path.insert(0, "$ROOT/tests/tools")
from shim_rawdomain import raw_domain
N = 50
barrier = threading.Barrier(N)
errors = []

def worker(i):
    try:
        payload = bytes([i]) * (256 * 1024)
        barrier.wait()
        c = socket.create_connection(("127.0.0.1", $ECHO_PORT), timeout=60)
        assert raw_domain(c.fileno()) == "unix"
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            b = c.recv(65536)
            if not b:
                break
            got += b
        c.close()
        if bytes(got) != payload:
            errors.append("conn %d: %d bytes back" % (i, len(got)))
    except Exception as e:
        errors.append("conn %d: %r" % (i, e))

ts = [threading.Thread(target=worker, args=(i,)) for i in range(N)]
for t in ts:
    t.start()
for t in ts:
    t.join()
if errors:
    print("\n".join(errors))
    sys.exit(1)
print("concurrent-ok")
PYEOF
shim SST_PEERS=127.0.0.1 SST_SHIM_TEST_SST=unavailable -- "$PY" "$TMP/conc.py" >"$TMP/out" || { cat "$TMP/out"; fail "concurrent connections"; }
expect_line "$TMP/out" concurrent-ok
pass "50 concurrent connections, byte-exact"

# 10 processes at once, each with its own event thread.
cat >"$TMP/proc.py" <<PYEOF
import socket, sys
sys.path.insert(0, "$ROOT/tests/tools")
from shim_rawdomain import raw_domain
tag = sys.argv[1].encode()
for i in range(5):
    c = socket.create_connection(("127.0.0.1", $ECHO_PORT), timeout=60)
    assert raw_domain(c.fileno()) == "unix"
    payload = tag * 50000
    c.sendall(payload)
    c.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        got += b
    assert got == payload, (tag, len(got))
    c.close()
PYEOF
pids=()
for i in 0 1 2 3 4 5 6 7 8 9; do
  shim SST_PEERS=127.0.0.1 SST_SHIM_TEST_SST=unavailable -- "$PY" "$TMP/proc.py" "p$i" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "process $p failed"; done
pass "10 processes at once"
