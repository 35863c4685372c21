#!/usr/bin/env bash
# No fd leaks: after 100 connections through the shim (HTTP fetches and refused connects),
# once the pumps have wound down the process holds exactly the fds it held after the first.
# (SST switched off by the test knob so every connection takes the socketpair path; the SST
# path's own fd-leak check is in test_shim_sst.sh.)
source "$(dirname "$0")/../tools/shim_common.sh"
start_http
PORT_REFUSED=$(free_port)

cat >"$TMP/leak.py" <<PYEOF
import os, socket, sys, time, urllib.request
sys.path.insert(0, "$ROOT/tests/tools")
from shim_rawdomain import raw_domain

def nfds():
    return len(os.listdir("/proc/self/fd"))

def settle(target):
    # Pumps end asynchronously once both sides closed: poll, do not sleep blindly.
    for _ in range(200):
        if nfds() <= target:
            return True
        time.sleep(0.05)
    return False

def fetch():
    with urllib.request.urlopen("http://127.0.0.1:$HTTP_PORT/f1k") as r:
        assert len(r.read()) == 1024

s = socket.create_connection(("127.0.0.1", $HTTP_PORT))
assert raw_domain(s.fileno()) == "unix"
s.close()
fetch()
time.sleep(0.2)
base = nfds()
for i in range(90):
    fetch()
for i in range(10):
    try:
        socket.create_connection(("127.0.0.1", $PORT_REFUSED))
        raise SystemExit("refused port accepted")
    except ConnectionRefusedError:
        pass
if not settle(base):
    print("leak: %d fds after, %d before" % (nfds(), base), os.listdir("/proc/self/fd"))
    sys.exit(1)
print("fds-stable", base)
PYEOF
shim SST_PEERS=127.0.0.1 SST_SHIM_TEST_SST=unavailable SST_LOG_FILE="$TMP/log" SST_LOG=info -- "$PY" "$TMP/leak.py" >"$TMP/out" || { cat "$TMP/out"; fail "fd count not stable"; }
grep -q fds-stable "$TMP/out" || fail "no result"
n=$(grep -c "carrying connection" "$TMP/log")
[ "$n" -eq 102 ] || fail "expected 102 carried connections, log says $n"
pass "fd count stable after 100 connections ($(cat "$TMP/out"))"
