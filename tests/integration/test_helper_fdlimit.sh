#!/usr/bin/env bash
# sstd and its descriptor limit (RLIMIT_NOFILE).  Every hand-off and gateway stream holds a
# descriptor in sstd, so it takes its hard limit at start (docs/helper.md).  Where it cannot
# (soft == hard) and runs out, it must not spin: a pending control connection stays in the
# listen backlog, and a level-triggered accept that fails with EMFILE was called again at once,
# at full CPU, starving every pump for as long as it lasted (1.8 s of CPU in 2 s, before).
#
#   sstd under prlimit --nofile=32:32, then 32:4096; 40 control connections held 2 s.
. "$(dirname "$0")/lib.sh"
lib_init helper_fdlimit
need_tool prlimit /usr/bin/python3
for b in sstd sstctl; do
  [ -x "$BUILD/$b" ] || env_fail "$BUILD/$b not built (make tests)"
done
UDP=$(/usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
S=$LIB_TMP/s.sock

# hold N SECONDS: N control connections to sstd, held open.
hold() {
  /usr/bin/python3 -c '
import socket, sys, time
cs = []
for _ in range(int(sys.argv[2])):
    c = socket.socket(socket.AF_UNIX)
    c.connect(sys.argv[1])
    cs.append(c)
time.sleep(float(sys.argv[3]))' "$S" "$1" "$2"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for lim in 32:32 32:4096; do
  log "sstd with RLIMIT_NOFILE $lim"
  rm -f "$LIB_TMP/sstd.log"
  lib_bg prlimit --nofile="$lim" "$BUILD/sstd" --foreground --socket "$S" --port "$UDP" \
    --keydir "$LIB_TMP/k" --log info 2>"$LIB_TMP/sstd.log"
  PID=$LIB_BG_PID
  poll_until 20 test -S "$S" || fail "sstd did not start: $(cat "$LIB_TMP/sstd.log")"
  poll_until 5 "$BUILD/sstctl" --socket "$S" status >/dev/null || fail "sstd does not answer"
  soft=$(awk '/^Max open files/ {print $4}' "/proc/$PID/limits")
  t0=$(cpu_ticks "$PID")
  hold 40 2
  used=$(( $(cpu_ticks "$PID") - t0 ))
  log "CPU while 40 connections were held: $used ticks (of 100 per second)"
  [ "$used" -lt 30 ] || fail "sstd used $used ticks of CPU in 2 s holding 40 connections (spinning)"
  "$BUILD/sstctl" --socket "$S" status >/dev/null || fail "sstd does not answer after the clients left"
  if [ "$lim" = 32:32 ]; then
    assert_eq 32 "$soft" "soft limit (no room to raise)"
    grep -q "cannot accept (Too many open files)" "$LIB_TMP/sstd.log" ||
      fail "no warning about the descriptor shortage: $(cat "$LIB_TMP/sstd.log")"
    grep -q "accepting again" "$LIB_TMP/sstd.log" || fail "no note that accepting resumed"
  else
    assert_eq 4096 "$soft" "soft limit raised to the hard one"
    grep -q "descriptor limit raised from 32 to 4096" "$LIB_TMP/sstd.log" || fail "raise not logged"
    grep -q "cannot accept" "$LIB_TMP/sstd.log" && fail "ran out of descriptors with room to raise"
  fi
  kill "$PID"
  poll_until 5 bash -c "! kill -0 $PID 2>/dev/null" || fail "sstd did not exit on SIGTERM"
done
log "ok: sstd takes its hard limit, and out of descriptors it rests instead of spinning"
