#!/usr/bin/env bash
# (SST switched off by the test knob SST_SHIM_TEST_SST=unavailable: this exercises the shim's
# socketpair mechanics over kernel TCP; the same scenarios over SST are in test_shim_sst.sh.)
# Programs that close every fd (close_range / closefrom / close loops, as ssh and daemons do)
# do not take the shim's own fds with them: connections keep working afterwards.
source "$(dirname "$0")/../tools/shim_common.sh"
start_echo

cat >"$TMP/closeall.py" <<PYEOF
import ctypes, os, socket, sys
sys.path.insert(0, "$ROOT/tests/tools")
from shim_rawdomain import raw_domain
libc = ctypes.CDLL(None, use_errno=True)

def echo_once(payload):
    c = socket.create_connection(("127.0.0.1", $ECHO_PORT))
    assert raw_domain(c.fileno()) == "unix"
    c.sendall(payload)
    c.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        got += b
    c.close()
    return got

assert echo_once(b"one") == b"one"          # starts the event thread
os.closerange(3, 1 << 20)                    # close_range(2) through libc
assert echo_once(b"two") == b"two"
libc.closefrom(3)                            # glibc closefrom
assert echo_once(b"three") == b"three"
for fd in range(3, os.sysconf("SC_OPEN_MAX")):   # the old-fashioned loop
    try:
        os.close(fd)
    except OSError:
        pass
assert echo_once(b"four") == b"four"
# dup2 onto a shim fd is refused rather than silently breaking the shim.
own = [int(f) for f in os.listdir("/proc/self/fd") if int(f) > 100]
assert own, "expected the shim's fds at high numbers"
try:
    os.dup2(0, own[0])
    raise SystemExit("dup2 onto a shim fd succeeded")
except OSError as e:
    assert e.errno == 16, e   # EBUSY
assert echo_once(b"five") == b"five"
print("closeall-ok")
PYEOF
shim SST_PEERS=127.0.0.1 SST_SHIM_TEST_SST=unavailable SST_LOG=debug SST_LOG_FILE="$TMP/log" -- "$PY" "$TMP/closeall.py" >"$TMP/out" || { cat "$TMP/out"; cat "$TMP/log"; fail "close-all scenario"; }
expect_line "$TMP/out" closeall-ok
grep -q "close_range: shim-owned fd .* kept open" "$TMP/log" || fail "close_range never reached the hook"
grep -q "close([0-9]*): shim-owned fd kept open" "$TMP/log" || fail "the close() loop never hit a shim fd (test not exercising it)"
pass "close_range, closefrom and close loops leave the shim working"
