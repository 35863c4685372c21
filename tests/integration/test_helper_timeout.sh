#!/usr/bin/env bash
# A connection handed to sstd whose channel dies for lack of connectivity (the peer's sstd frozen
# with data outstanding: no ack, no ICMP) fails as kernel TCP's does after its retries: the
# program's write says ETIMEDOUT (then a read, 0: the error is taken and the socket shut, as
# kernel TCP's after tcp_write_err), within sstd's --migrate-timeout of the
# channel being declared down (15 s without progress).  Before 2026-11-22 the wait after that was
# the engine's fixed 30 s and this path had no test.
#
#   $NS_A  sst0 10.77.0.1 ===== veth ===== sst0 10.77.0.2  $NS_B
#          sstd --migrate-timeout 1                  sstd --forward 8080 (SIGSTOPped)
#          python writer under the shim, SST_HELPER    sink on 8080
. "$(dirname "$0")/lib.sh"
lib_init helper_timeout
need_tool /usr/bin/python3
SHIM=$BUILD/libsstshim.so
for b in sstd libsstshim.so; do [ -e "$BUILD/$b" ] || env_fail "$BUILD/$b not built"; done
SA=$LIB_TMP/a.sock

lib_net_up
lib_block_tcp
lib_bg in_b /usr/bin/python3 -c '
import socket, threading
def sink(c):
    try:
        while c.recv(1 << 16):
            pass
    except OSError:
        pass
l = socket.create_server(("0.0.0.0", 8080))
while True:
    c, _ = l.accept()
    threading.Thread(target=sink, args=(c,), daemon=True).start()'
wait_for_port "$NS_B" 8080
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" --forward 8080 \
  --log info 2>"$LIB_TMP/b.log"
PID_B=$LIB_BG_PID
lib_bg in_a "$BUILD/sstd" --foreground --socket "$SA" --keydir "$LIB_TMP/ka" --migrate-timeout 1 \
  --handshake-timeout 2 --log info 2>"$LIB_TMP/a.log"
poll_until 20 test -S "$SA" || fail "no socket $SA"
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "no socket in B"

cat >"$LIB_TMP/writer.py" <<'PY'
import errno, os, select, socket, sys, time
s = socket.create_connection((sys.argv[1], 8080))
s.setblocking(False)
chunk = b"w" * 65536
sent, frozen_at = 0, None
deadline = time.time() + 60
while time.time() < deadline:
    if frozen_at is None and sent >= 1 << 20:
        os.kill(int(sys.argv[2]), 19)          # SIGSTOP B's sstd: silence, no ICMP
        frozen_at = time.time()
        print("frozen after", sent, flush=True)
    select.select([], [s], [], 0.2)
    try:
        sent += s.send(chunk)
    except BlockingIOError:
        pass
    except OSError as e:
        if frozen_at is None:
            print("failed before the freeze:", errno.errorcode.get(e.errno)); sys.exit(1)
        print("write", errno.errorcode.get(e.errno), "after %.1f s" % (time.time() - frozen_at))
        try:
            r = s.recv(10)
            print("read", repr(r))
        except OSError as e2:
            print("read", errno.errorcode.get(e2.errno))
        sys.exit(0)
print("no error within 60 s")
sys.exit(1)
PY
log "a writer through sstd; B's sstd frozen after 1 MiB"
in_a env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER="$SA" SST_KEYDIR="$LIB_TMP/kshim" \
  /usr/bin/python3 "$LIB_TMP/writer.py" "$IP_B" "$PID_B" >"$LIB_TMP/out" 2>&1
rc=$?
kill -CONT "$PID_B" 2>/dev/null
cat "$LIB_TMP/out"
[ "$rc" = 0 ] || fail "writer: $(tail -2 "$LIB_TMP/out"); A: $(tail -3 "$LIB_TMP/a.log")"
grep -q "^write ETIMEDOUT after" "$LIB_TMP/out" || fail "the failing write did not say ETIMEDOUT"
grep -qx "read b''" "$LIB_TMP/out" || fail "the read after it did not return 0 (kernel TCP's answer once the error was taken)"
secs=$(sed -n 's/^write ETIMEDOUT after \([0-9]*\).*/\1/p' "$LIB_TMP/out")
# 15 s without progress declares the channel down, then --migrate-timeout 1 (and a 2 s handshake
# attempt); 30 s more would be the engine's default wait.
assert_range 14 26 "$secs" "seconds from the freeze to ETIMEDOUT"
log "PASS"
