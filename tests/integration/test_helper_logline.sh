#!/usr/bin/env bash
# sstd's log lines are one printable line each, whatever they quote (docs/helper.md "Logging"):
# a message that carries a local client's word, an argument or an environment value (an
# autostarted sstd gets SST_KEYDIR as --keydir) had its newline forge a log line and its
# terminal escapes reach whoever reads the log.  Now control bytes are written as \n, \xHH
# (the shim's rule, sst_log_one_line).
#
#   $NS_A: sstd (UDP 8679, its own socket), a python control client
#
# - --bind with a newline and an escape: the error is one line, escaped.
# - a control client while sstd is at its descriptor limit (its soft RLIMIT_NOFILE lowered to
#   its lowest free descriptor number with prlimit): CONNECT's address word, holding escapes
#   (ESC [1A ESC [2K: cursor up and erase the line; VT and FF: a line feed on a terminal), is
#   quoted in the "out of descriptors" warning: one line, escaped; the log holds no control
#   byte but the newlines; sstd still answers once the limit is back.
. "$(dirname "$0")/lib.sh"
lib_init helper_logline
need_tool /usr/bin/python3
[ -x "$BUILD/sstd" ] || env_fail "$BUILD/sstd not built"
lib_net_up

# no_ctl FILE: the file holds no control byte but newlines.
no_ctl() {
  ! LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$1"
}

in_a timeout 10 "$BUILD/sstd" --foreground --socket "$LIB_TMP/bind.sock" --port 8679 --keydir "$LIB_TMP/k" \
  --bind $'nope\nsstd[1] error: forged\e[2J' --log-file "$LIB_TMP/bind.log" 2>"$LIB_TMP/bind.err"
[ $? -ne 0 ] || fail "sstd started with a bad --bind"
[ "$(wc -l <"$LIB_TMP/bind.log")" = 1 ] || fail "--bind: not one log line: $(cat -A "$LIB_TMP/bind.log")"
grep -qF "error: --bind: 'nope\\nsstd[1] error: forged\\x1b[2J' is not an IPv4/IPv6 address" "$LIB_TMP/bind.log" ||
  fail "--bind: not escaped: $(cat -A "$LIB_TMP/bind.log")"
no_ctl "$LIB_TMP/bind.log" || fail "--bind: control bytes in the log: $(cat -A "$LIB_TMP/bind.log")"
log "ok: --bind with a newline and an escape: one line, escaped"

lib_bg in_a "$BUILD/sstd" --foreground --socket "$LIB_TMP/s.sock" --port 8679 --keydir "$LIB_TMP/k" \
  --log-file "$LIB_TMP/sstd.log"
poll_until 20 test -S "$LIB_TMP/s.sock" || fail "sstd did not start"
SSTD=$LIB_BG_PID   # ip netns exec execs sstd: the same process

in_a timeout 20 /usr/bin/python3 - "$LIB_TMP/s.sock" "$SSTD" >"$LIB_TMP/client.out" 2>&1 <<'PY' ||
import array, os, resource, socket, sys
path, pid = sys.argv[1], int(sys.argv[2])
c = socket.socket(socket.AF_UNIX)
c.connect(path)
f = c.makefile("rb")
def ask(line, fds=()):
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    c.sendmsg([line], anc)
    return f.readline().decode()
assert '"ok":true' in ask(b"STATUS\n")   # accepted: this connection holds its descriptor
used = {int(x) for x in os.listdir(f"/proc/{pid}/fd")}
low = min(set(range(len(used) + 1)) - used)
soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
resource.prlimit(pid, resource.RLIMIT_NOFILE, (low, hard))   # no number left for a new one
a, b = socket.socketpair()
try:
    r = ask(b"CONNECT 10.77.0.2\x1b[1A\x1b[2Ksstd[1]\x0berror:\x0cforged 80\n", [a.fileno()])
finally:
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
assert '"error":"fd-limit"' in r, r
assert '"ok":true' in ask(b"STATUS\n")
print("ok")
PY
  fail "control client: $(cat "$LIB_TMP/client.out")"
[ "$(grep -c "out of descriptors" "$LIB_TMP/sstd.log")" = 1 ] ||
  fail "CONNECT at the limit: not one warning: $(cat -A "$LIB_TMP/sstd.log")"
grep -qF 'warn: CONNECT 10.77.0.2\x1b[1A\x1b[2Ksstd[1]\x0berror:\x0cforged 80: out of descriptors' "$LIB_TMP/sstd.log" ||
  fail "CONNECT at the limit: the address is not escaped: $(cat -A "$LIB_TMP/sstd.log")"
no_ctl "$LIB_TMP/sstd.log" || fail "control bytes in sstd's log: $(cat -A "$LIB_TMP/sstd.log")"
log "ok: CONNECT's address with escapes, quoted at the descriptor limit: one line, escaped"
log "PASS"
