#!/usr/bin/env bash
# (SST switched off by the test knob SST_SHIM_TEST_SST=unavailable: this exercises the shim's
# socketpair mechanics over kernel TCP; the same scenarios over SST are in test_shim_sst.sh.)
# fork and exec with an open connection: an exec'd child writes through the inherited fd, the
# parent keeps using it; a forked child (no exec) restarts the event thread for its own new
# connection; the parent's loop keeps working afterwards.
source "$(dirname "$0")/../tools/shim_common.sh"
start_echo

cat >"$TMP/fork.py" <<PYEOF
import os, socket, subprocess, sys
sys.path.insert(0, "$ROOT/tests/tools")
from shim_rawdomain import raw_domain

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

s = socket.create_connection(("127.0.0.1", $ECHO_PORT))
assert raw_domain(s.fileno()) == "unix"
s.sendall(b"parent1;")

# fork + exec: the child (itself under the preload) writes through the inherited fd.
fd = s.fileno()
subprocess.run([sys.executable, "-c", "import os; os.write(%d, b'exec-child;')" % fd],
               pass_fds=[fd], check=True)

# subprocess spawns with vfork and closes every fd in the child (close_fds): that child shares
# our memory, and must not have edited the parent's records.
subprocess.run(["true"], close_fds=True, check=True)
assert s.getpeername() == ("127.0.0.1", $ECHO_PORT), s.getpeername()
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == socket.AF_INET

# fork without exec: the child opens its own connection (its own event thread).
pid = os.fork()
if pid == 0:
    ok = echo_once(b"forked-child" * 1000) == b"forked-child" * 1000
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
assert os.WEXITSTATUS(status) == 0, "forked child's connection failed"

# The parent's loop still works, and the shared connection carries all three writes.
assert echo_once(b"after-fork") == b"after-fork"
s.sendall(b"parent2")
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
assert got == b"parent1;exec-child;parent2", got
print("fork-ok")
PYEOF
shim SST_PEERS=127.0.0.1 SST_SHIM_TEST_SST=unavailable -- "$PY" "$TMP/fork.py" >"$TMP/out" || { cat "$TMP/out"; fail "fork/exec scenario"; }
expect_line "$TMP/out" fork-ok
pass "fork/exec with an open connection; vfork+close_fds child harmless; event thread restarted in a forked child"
