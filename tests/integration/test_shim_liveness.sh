#!/usr/bin/env bash
# A peer process that dies abruptly (kill -9) never leaves the other side hanging
# (docs/shim.md §9, docs/protocol-streams.md §2c).  Both sides use the shim's in-process engine
# with SST_LIVENESS=2: channels close after 2 s of silence and dormant connections probe the
# peer every 2 s, so the documented bound is 2 x 2 + 30 = 34 s; each case asserts the survivor,
# blocked in recv(), sees EOF or an error within twice that (this asserts "no hang", not a speed).
#
#   $NS_A  10.77.0.1 ===== veth (TCP dropped) ===== 10.77.0.2  $NS_B
#          python client under the shim               python server under the shim
#          (ephemeral UDP port)                       SST_LISTEN=9000, UDP 8661
#
# 1. client killed: the server's probe draws an ICMP port unreachable from A's kernel;
# 2. server killed: the client's probe draws an ICMP port unreachable from B's kernel;
# 3. server killed and restarted at once on the same UDP port with the same key: the new
#    process does not know the stream (stateless Reset for its USID);
#    (If the client's probe came before the new process bound the port, an ICMP ends it
#    instead; either way the client must not hang.)
# control: with SST_LIVENESS=0 (no probe, and the default 60 s channel idle timeout) the server
#    of case 1 is still blocked 4N s after the kill: the cases above end by the probe.
. "$(dirname "$0")/lib.sh"
lib_init shim_liveness
need_tool /usr/bin/python3
SHIM=$BUILD/libsstshim.so
[ -f "$SHIM" ] || env_fail "$SHIM not built"

LIVENESS=2
BOUND=$((2 * (2 * LIVENESS + 30)))

lib_net_up
lib_block_tcp

# The server: greets each client, then reads until EOF or an error and reports how it ended.
SRV_PY='
import socket, sys, threading, time
def serve(c):
    c.sendall(b"hello\n")
    how = "EOF"
    try:
        while c.recv(65536):
            pass
    except OSError as e:
        how = "ERR:" + (e.__class__.__name__)
    err = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    print("END %s so_error=%d t=%.3f" % (how, err, time.time()), flush=True)
    c.close()
s = socket.create_server(("0.0.0.0", 9000))
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()'

# The client: reads the greeting, says so, then blocks in recv until the stream ends.
CLI_PY='
import socket, sys, time
s = socket.create_connection((sys.argv[1], 9000), timeout=20)
assert s.recv(6) == b"hello\n"
s.settimeout(None)
print("CONNECTED", flush=True)
how = "EOF"
try:
    while s.recv(65536):
        pass
except OSError as e:
    how = "ERR:" + (e.__class__.__name__)
err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
print("END %s so_error=%d t=%.3f" % (how, err, time.time()), flush=True)'

SRV_ENVS=(LD_PRELOAD="$SHIM" SST_HELPER=off SST_LISTEN=9000 SST_LIVENESS=$LIVENESS SST_KEYDIR="$LIB_TMP/kb"
          SST_LOG=debug)
CLI_ENVS=(LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER=off SST_LIVENESS=$LIVENESS
          SST_KEYDIR="$LIB_TMP/ka" SST_LOG=debug)

start_server() {  # start_server TAG
  lib_bg in_b env "${SRV_ENVS[@]}" SST_LOG_FILE="$LIB_TMP/srv-$1.log" \
    /usr/bin/python3 -c "$SRV_PY" >"$LIB_TMP/srv-$1.out" 2>&1
  SRV_PID=$LIB_BG_PID
  wait_for_port "$NS_B" 9000 || fail "server $1 did not listen"
  wait_for_port "$NS_B" 8661 udp || fail "server $1 did not bind UDP 8661"
}

start_client() {  # start_client TAG
  lib_bg in_a env "${CLI_ENVS[@]}" SST_LOG_FILE="$LIB_TMP/cli-$1.log" \
    /usr/bin/python3 -c "$CLI_PY" "$IP_B" >"$LIB_TMP/cli-$1.out" 2>&1
  CLI_PID=$LIB_BG_PID
  poll_until 20 grep -q CONNECTED "$LIB_TMP/cli-$1.out" ||
    fail "client $1 did not connect: $(cat "$LIB_TMP/cli-$1.out"; tail -5 "$LIB_TMP/cli-$1.log")"
}

# expect_end FILE WHAT T_KILL: FILE must report END within BOUND s of T_KILL, with EOF or a reset.
expect_end() {
  local f=$1 what=$2 t_kill=$3
  poll_until "$BOUND" grep -q '^END' "$f" ||
    fail "$what: still waiting ${BOUND} s after the peer was killed: $(cat "$f")"
  local line t
  line=$(grep '^END' "$f" | head -1)
  case $line in
    "END EOF "* | "END ERR:ConnectionResetError "* | "END ERR:TimeoutError "*) ;;
    *) fail "$what: unexpected end: $line" ;;
  esac
  t=${line##*t=}
  local took
  took=$(/usr/bin/python3 -c "print('%.1f' % ($t - $t_kill))")
  log "ok: $what: '$line' ${took} s after kill -9 (bound ${BOUND} s)"
  /usr/bin/python3 -c "import sys; sys.exit(0 if 0 <= $t - $t_kill <= $BOUND else 1)" ||
    fail "$what: ended ${took} s after the kill, outside 0..${BOUND} s"
}

kill9() { kill -KILL "$1"; wait "$1" 2>/dev/null; }

log "1. client killed while the server reads"
start_server 1
start_client 1
sleep 1
t_kill=$(date +%s.%N)
kill9 "$CLI_PID"
expect_end "$LIB_TMP/srv-1.out" "server after client kill -9" "$t_kill"

log "2. server killed while the client reads (port closed: ICMP)"
start_client 2
sleep 1
t_kill=$(date +%s.%N)
kill9 "$SRV_PID"
expect_end "$LIB_TMP/cli-2.out" "client after server kill -9" "$t_kill"

log "3. server killed and restarted on the same port with the same key (stream unknown)"
start_server 3
start_client 3
sleep 1
t_kill=$(date +%s.%N)
kill9 "$SRV_PID"
start_server 3b
expect_end "$LIB_TMP/cli-3.out" "client after server kill -9 and restart" "$t_kill"

log "control: with SST_LIVENESS=0 (no probe) the same kill leaves the server waiting"
kill9 "$SRV_PID"
SRV_ENVS=("${SRV_ENVS[@]/SST_LIVENESS=$LIVENESS/SST_LIVENESS=0}")
CLI_ENVS=("${CLI_ENVS[@]/SST_LIVENESS=$LIVENESS/SST_LIVENESS=0}")
start_server 4
start_client 4
sleep 1
kill9 "$CLI_PID"
sleep $((4 * LIVENESS))
if grep -q '^END' "$LIB_TMP/srv-4.out"; then
  fail "control: the server's read ended without the probe ($(cat "$LIB_TMP/srv-4.out")): the cases above do not prove it"
fi
log "ok: without the probe the server still waits $((4 * LIVENESS)) s after the kill (cases 1-3 ended in ~$((LIVENESS + 1)) s)"

log "ok: no survivor hung"
