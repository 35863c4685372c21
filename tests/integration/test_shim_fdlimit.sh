#!/usr/bin/env bash
# A program at its descriptor limit (RLIMIT_NOFILE) gets the connections kernel TCP would give
# it.  A carried connection needs descriptors of the shim's own in the program's process (the
# pump's end of the socketpair; the event loop's), and RLIMIT_NOFILE bounds descriptor numbers:
# the shim takes numbers above the program's soft limit, raising it to the hard one only while
# it creates or moves its own (docs/shim.md §4).  Where soft == hard there is no such room: in
# auto mode a connection the shim cannot carry for want of descriptors goes over kernel TCP,
# in strict mode connect() fails with EMFILE.
#
#   python (soft limit 64, every number below it taken but N)  --SST, loopback-->  echo server
#   under LD_PRELOAD=libsstshim.so, SST_HELPER=off                                 under the shim,
#                                                                                  SST_LISTEN=1
source "$(dirname "$0")/../tools/shim_common.sh"
UDP=$("$PY" -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# An echo server that answers each read at once (shim_servers.py's echoes at EOF).
cat >"$TMP/echo.py" <<'PYEOF'
import os, socket, sys, threading
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(128)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(ls.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
def serve(c):
    while True:
        b = c.recv(65536)
        if not b:
            break
        c.sendall(b)
    c.close()
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PYEOF
timeout 120 env LD_PRELOAD="$SHIM" SST_LISTEN=1 SST_PORT="$UDP" SST_KEYDIR="$TMP/kb" \
  "$PY" "$TMP/echo.py" "$TMP/echo.port" & PIDS+=($!)
ECHO_PORT=$(wait_file "$TMP/echo.port")

cat >"$TMP/atlimit.py" <<'PYEOF'
# argv: port, free (numbers left below the limit), n (connections), hard ("keep" or "soft")
import os, resource, socket, sys
port, free, n, hard = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (64, h if hard == "keep" else 64))
fill = []
while True:
    try:
        fill.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        break
for _ in range(free):
    os.close(fill.pop())
socks, ok = [], 0
for i in range(n):
    try:
        socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
    except OSError as e:
        print("connect-error", e.errno)
        break
for i, c in enumerate(socks):
    c.sendall(b"hello %d" % i)
    ok += c.recv(100) == b"hello %d" % i
print("echoed", ok, "of", n, "limit", resource.getrlimit(resource.RLIMIT_NOFILE)[0])
PYEOF
E=(SST_PEERS=127.0.0.1 SST_PORT="$UDP" SST_HELPER=off SST_KEYDIR="$TMP/ka")

# Control: kernel TCP, no shim.
"$PY" "$TMP/atlimit.py" "$ECHO_PORT" 10 10 keep >"$TMP/tcp"
expect_line "$TMP/tcp" "echoed 10 of 10 limit 64"

# Room above the soft limit: all ten carried over SST (strict: SST or nothing), the program's
# own limit unchanged afterwards.
shim "${E[@]}" SST_MODE=strict -- "$PY" "$TMP/atlimit.py" "$ECHO_PORT" 10 10 keep >"$TMP/room" 2>"$TMP/room.err" ||
  { cat "$TMP/room" "$TMP/room.err"; fail "strict run with room failed"; }
expect_line "$TMP/room" "echoed 10 of 10 limit 64"
pass "at its limit, a program gets as many connections over SST as over kernel TCP"

# No room (soft == hard), one number left: the program's socket takes it.  Auto: kernel TCP for
# that connection, said once on stderr; strict: EMFILE at once, not a hang.
shim "${E[@]}" -- "$PY" "$TMP/atlimit.py" "$ECHO_PORT" 1 1 soft >"$TMP/auto" 2>"$TMP/auto.err" ||
  { cat "$TMP/auto" "$TMP/auto.err"; fail "auto run without room failed"; }
expect_line "$TMP/auto" "echoed 1 of 1 limit 64"
grep -q "kernel TCP instead" "$TMP/auto.err" || { cat "$TMP/auto.err"; fail "no fallback notice"; }
shim "${E[@]}" SST_MODE=strict -- "$PY" "$TMP/atlimit.py" "$ECHO_PORT" 1 1 soft >"$TMP/strict" 2>"$TMP/strict.err" ||
  { cat "$TMP/strict" "$TMP/strict.err"; fail "strict run without room crashed"; }
expect_line "$TMP/strict" "connect-error 24"
pass "no room: auto falls back to kernel TCP, strict says EMFILE"

# The shim's numbers are high (above the soft limit, or in the top quarter of it), and the
# kernel grows a process's descriptor table to reach them.  In a multithreaded process growing
# waits for an RCU grace period (expand_fdtable: synchronize_rcu, 8-10 ms here), and the first
# such number used to come from a shim thread: a shimmed curl's exit waited for it.  The shim
# grows the table in its constructor instead, while the process is single-threaded; a carried
# connection made later from a multithreaded program must find it large enough.  Read from
# /proc/self/status (FDSize: the table's size), not timed.
cat >"$TMP/fdsize.py" <<'PYEOF'
import socket, sys, threading
def fdsize():
    for line in open("/proc/self/status"):
        if line.startswith("FDSize:"):
            return int(line.split()[1])
start = fdsize()
threading.Thread(target=lambda: None).start()   # a multithreaded program
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
c.sendall(b"ping")
assert c.recv(100) == b"ping"
print("fdsize", start, fdsize())
PYEOF
fdsizes() {   # SOFT HARD: prints "START AFTER" of a carried connection under these limits
  prlimit --nofile="$1:$2" env LD_PRELOAD="$SHIM" "${E[@]}" SST_MODE=strict "$PY" "$TMP/fdsize.py" "$ECHO_PORT" \
    >"$TMP/fdsize" 2>"$TMP/fdsize.err" || { cat "$TMP/fdsize" "$TMP/fdsize.err"; fail "fdsize.py $1:$2 failed"; }
  awk '/^fdsize/ { print $2, $3 }' "$TMP/fdsize"
}
big=$(ulimit -Hn)
[ "$big" = unlimited ] || [ "$big" -ge 16384 ] || fail "hard RLIMIT_NOFILE $big: this check needs 16384"
big=16384
for lim in "1024 4096" "1024 1024" "$big $big"; do
  read -r soft hard <<<"$lim"
  read -r start after <<<"$(fdsizes "$soft" "$hard")"
  echo "limits $soft/$hard: FDSize $start at start, $after after a carried connection"
  [ "$after" = "$start" ] || fail "limits $soft/$hard: the table grew from $start to $after after start"
  # Room above the soft limit (hard > soft): numbers from the soft limit up; else the top
  # quarter of it, at most from 3072 (a 16 K limit must not cost a 128 KiB table).
  if [ "$hard" -gt "$soft" ]; then min=$((soft + 1)); else min=$((soft * 3 / 4)); fi
  [ "$min" -le 3072 ] || min=3072
  [ "$start" -gt "$min" ] || fail "limits $soft/$hard: FDSize $start at start, not above $min"
  [ "$start" -le 4096 ] || fail "limits $soft/$hard: FDSize $start: the shim's numbers sit too high"
done
pass "the descriptor table is grown once at start, not by a shim thread later"
