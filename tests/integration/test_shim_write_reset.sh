#!/usr/bin/env bash
# A write after a peer's reset answers as kernel TCP's: the first failing call after the RST
# fails with ECONNRESET and raises no SIGPIPE, the next with EPIPE and SIGPIPE; a read that took
# the reset first leaves EPIPE (and SIGPIPE) to the write (docs/shim.md §2 "A peer's reset",
# shim/hook_write.c); sendfile, splice and sendmmsg too (since 2026-11-22: before, EPIPE and
# SIGPIPE at once).  Before, under the shim, the first write already failed with EPIPE and
# SIGPIPE -- which kills a program that does not ignore it, where TCP gave it ECONNRESET.
# The reference is measured: the same client against the same server over kernel TCP.
#
#   $NS_A 10.77.0.1 ======= veth (TCP dropped) ======= 10.77.0.2 $NS_B
#   client under the shim: in-process engine,           sstd --forward 9000
#   and handed to sstd (a.sock)                        python server :9000 ("RST n": n bytes,
#                                                       then SO_LINGER {1, 0} close)
#                                                       client over kernel TCP and over the
#                                                       shim's TCP fallback, on loopback
. "$(dirname "$0")/lib.sh"
lib_init shim_write_reset
need_tool /usr/bin/python3
SHIM=$BUILD/libsstshim.so
[ -f "$SHIM" ] || env_fail "$SHIM not built"
[ -x "$BUILD/sstd" ] || env_fail "$BUILD/sstd not built"

lib_net_up
lib_block_tcp

cat >"$LIB_TMP/server.py" <<'PY'
import socket, struct, threading, time
def serve(c):
    n = int(c.makefile("rb").readline().split()[1])
    c.sendall(b"d" * n)
    time.sleep(0.2)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
s = socket.create_server(("0.0.0.0", 9000))
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY

# client.py HOST OPS: reads the 1000 bytes, waits for the reset, then runs OPS (comma list of
# send, write, sendmsg, recv, sendfile, splice, sendmmsg -- the last three not in the shim's
# write hooks until 2026-11-22; sendmmsg through ctypes, libc's as the program would call it)
# and prints "OP:RESULT sigpipe=N" for each.
cat >"$LIB_TMP/client.py" <<'PY'
import ctypes, errno, os, signal, socket, sys, tempfile, time
host, ops = sys.argv[1], sys.argv[2].split(",")
libc = ctypes.CDLL(None, use_errno=True)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(iovec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]
def sendmmsg(fd):
    buf = ctypes.create_string_buffer(b"x")
    iov = iovec(ctypes.cast(buf, ctypes.c_void_p), 1)
    m = mmsghdr()
    m.hdr.iov = ctypes.pointer(iov)
    m.hdr.iovlen = 1
    if libc.sendmmsg(fd, ctypes.byref(m), 1, 0) < 0:
        raise OSError(ctypes.get_errno(), "sendmmsg")
src = tempfile.TemporaryFile()
src.write(b"x" * 16)
src.flush()
pipes = [0]
signal.signal(signal.SIGPIPE, lambda *a: pipes.__setitem__(0, pipes[0] + 1))
s = socket.create_connection((host, 9000))
s.sendall(b"RST 1000\n")
got = 0
while got < 1000:
    got += len(s.recv(65536))
time.sleep(1)
out = []
for op in ops:
    try:
        if op == "send":
            s.send(b"x")
        elif op == "write":
            os.write(s.fileno(), b"x")
        elif op == "sendmsg":
            s.sendmsg([b"x"])
        elif op == "sendfile":
            os.sendfile(s.fileno(), src.fileno(), 0, 1)
        elif op == "splice":
            r, w = os.pipe()
            os.write(w, b"x")
            os.splice(r, s.fileno(), 1)
        elif op == "sendmmsg":
            sendmmsg(s.fileno())
        else:
            if s.recv(10) == b"":
                raise EOFError
        r = "ok"
    except OSError as e:
        r = errno.errorcode[e.errno]
    except EOFError:
        r = "EOF"
    time.sleep(0.05)   # a SIGPIPE's handler has run
    out.append(f"{op}:{r} sigpipe={pipes[0]}")
print(" ".join(out))
PY

lib_bg in_b /usr/bin/python3 "$LIB_TMP/server.py" 2>"$LIB_TMP/srv.err"
wait_for_port "$NS_B" 9000
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" --forward 9000 \
  2>"$LIB_TMP/sstd-b.log"
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "sstd in B did not start"
lib_bg in_a "$BUILD/sstd" --foreground --socket "$LIB_TMP/a.sock" --keydir "$LIB_TMP/ka" 2>"$LIB_TMP/sstd-a.log"
poll_until 20 test -S "$LIB_TMP/a.sock" || fail "sstd in A did not start"

shimmed() {
  local ns=$1 peer=$2
  shift 2
  ip netns exec "$ns" timeout 20 env LD_PRELOAD="$SHIM" SST_PEERS="$peer" SST_KEYDIR="$LIB_TMP/k$ns" "$@"
}

W1="send:ECONNRESET sigpipe=0 send:EPIPE sigpipe=1"
W2="write:ECONNRESET sigpipe=0 sendmsg:EPIPE sigpipe=1"
W3="recv:ECONNRESET sigpipe=0 send:EPIPE sigpipe=1 recv:EOF sigpipe=1"
W4="sendfile:ECONNRESET sigpipe=0 sendfile:EPIPE sigpipe=1"
W5="splice:ECONNRESET sigpipe=0 sendmmsg:EPIPE sigpipe=1"
W6="sendmmsg:ECONNRESET sigpipe=0 splice:EPIPE sigpipe=1 recv:EOF sigpipe=1"
# check WHAT RUNNER...: the sequences, each against what kernel TCP answered.
check() {
  local what=$1 ops want got
  shift
  for ops in send,send write,sendmsg recv,send,recv sendfile,sendfile splice,sendmmsg sendmmsg,splice,recv; do
    case $ops in
      send,send) want=$W1 ;; write,sendmsg) want=$W2 ;; recv,send,recv) want=$W3 ;;
      sendfile,sendfile) want=$W4 ;; splice,sendmmsg) want=$W5 ;; *) want=$W6 ;;
    esac
    got=$("$@" /usr/bin/python3 "$LIB_TMP/client.py" "$HOST" "$ops" 2>&1)
    [ "$got" = "$want" ] || fail "$what: $ops after a reset: got '$got', want '$want' (kernel TCP's)"
    log "ok: $what: $got"
  done
}

HOST=127.0.0.1
log "reference: kernel TCP (no shim)"
check "kernel TCP" in_b
check "TCP fallback" shimmed "$NS_B" 127.0.0.1 SST_SHIM_TEST_SST=unavailable SST_HELPER=off
HOST=$IP_B
check "in-process engine" shimmed "$NS_A" "$IP_B" SST_MODE=strict SST_HELPER=off
shimmed "$NS_A" "$IP_B" SST_MODE=strict SST_HELPER="$LIB_TMP/a.sock" /usr/bin/python3 -c "
import socket; s = socket.create_connection(('$IP_B', 9000)); s.sendall(b'RST 10\n'); s.recv(10)" ||
  fail "warm-up through sstd failed"
check "sstd hand-off" shimmed "$NS_A" "$IP_B" SST_MODE=strict SST_HELPER="$LIB_TMP/a.sock" \
  SST_LOG=debug SST_LOG_FILE="$LIB_TMP/now.log"
grep -q "handed to the helper inside connect()" "$LIB_TMP/now.log" || fail "not handed over inside connect()"
log "ok: the first write after a reset fails with ECONNRESET without SIGPIPE, as TCP's"
