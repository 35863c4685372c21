#!/usr/bin/env bash
# getsockopt(TCP_INFO) on a carried connection tells the truth (docs/shim.md §3 "getsockopt"):
# the state, RTT, congestion window, segment size and byte counters of the SST stream and
# channel that carry it, not zeros (before 2026-11-22 everything but tcpi_state was 0).
#
#   $NS_A  10.77.0.1 == linkemu 50 Mbit/s, 10 ms each way == 10.77.0.2  $NS_B
#          iperf3 -c, python (shimmed, strict)                  iperf3 -s :5201, python :9100
#          in-process engine, then sstd in A (SST_HELPER)      under the shim, SST_LISTEN, UDP 8671 / 8672
#
# 1. an unmodified iperf3 client (-J): every interval's rtt (from TCP_INFO) within 19-300 ms and
#    snd_cwnd > 0; the run's min_rtt not below the link's 20 ms.
# 2. python: TCP_INFO while established (state 1, RTT, cwnd, MSS, path MTU), then after
#    500000 bytes up and 200000 down and the server's close: state CLOSE_WAIT (8), bytes_acked
#    500000, bytes_received 200000; an 8-byte optlen gets 8 bytes (the kernel's truncation).
# Both in-process and through sstd (relayed hand-off, then one inside connect()).
. "$(dirname "$0")/lib.sh"
lib_init shim_tcpinfo
need_tool iperf3 /usr/bin/python3
SHIM=$BUILD/libsstshim.so
[ -f "$SHIM" ] || env_fail "$SHIM not built"
[ -x "$BUILD/sstd" ] || env_fail "$BUILD/sstd not built"

lib_net_up --link emu --rate 50mbit --delay 10ms
lib_block_tcp

SRV=(LD_PRELOAD="$SHIM" SST_HELPER=off SST_LISTEN=5201,9100,9101 SST_KEYDIR="$LIB_TMP/kb")
# One UDP port per process: iperf3 on 8671, python on 8672.
lib_bg in_b env "${SRV[@]}" SST_PORT=8671 SST_LOG_FILE="$LIB_TMP/b-shim.log" iperf3 -s -p 5201 >"$LIB_TMP/iperf-s.log" 2>&1
wait_for_port "$NS_B" 5201
# :9100 reads 500000 bytes, answers 200000, closes: the client is then in CLOSE_WAIT.
# :9101 reads 100000 bytes and answers the TCP_INFO of the socket it accepted (server side).
lib_bg in_b env "${SRV[@]}" SST_PORT=8672 /usr/bin/python3 -c '
import socket, struct, threading
def report():
    ls = socket.create_server(("0.0.0.0", 9101))
    while True:
        c, _ = ls.accept()
        n = 0
        while n < 100000:
            b = c.recv(65536)
            if not b:
                break
            n += len(b)
        b = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        u32 = lambda off: struct.unpack_from("I", b, off)[0]
        c.sendall(("%d %d %d %d %d %d\n" % (b[0], u32(68), u32(148), u32(16), struct.unpack_from("Q", b, 128)[0],
                                             u32(80))).encode())
        c.close()
threading.Thread(target=report, daemon=True).start()
ls = socket.create_server(("0.0.0.0", 9100))
def serve(c):
    n = 0
    while n < 500000:
        b = c.recv(65536)
        if not b:
            break
        n += len(b)
    c.sendall(b"y" * 200000)
    c.close()
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'
wait_for_port "$NS_B" 9100

# sstd dials its peers on its own --port: one sstd in A per server port.
for port in 8671 8672; do
  lib_bg in_a "$BUILD/sstd" --foreground --socket "$LIB_TMP/a$port.sock" --port "$port" \
    --keydir "$LIB_TMP/kh" --log debug 2>"$LIB_TMP/sstd-a$port.log"
  poll_until 20 test -S "$LIB_TMP/a$port.sock" || fail "sstd in A (:$port) did not start"
done

# shimmed HELPER PORT CMD...: a client in A under the shim (strict), SST_HELPER=HELPER, SST_PORT=PORT.
shimmed() {
  local helper=$1 port=$2; shift 2
  in_a timeout 30 env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_PORT="$port" \
    SST_HELPER="$helper" SST_KEYDIR="$LIB_TMP/ka" SST_LOG_FILE="$LIB_TMP/a-shim.log" "$@"
}

# check_iperf JSON: every interval's rtt and snd_cwnd are TCP_INFO's, from the SST channel.
check_iperf() {
  /usr/bin/python3 - "$1" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
if "error" in j:
    sys.exit("iperf3 error: " + j["error"])
iv = [s for i in j["intervals"] for s in i["streams"]]
snd = j["end"]["streams"][0]["sender"]
print("rtt us per interval:", [s.get("rtt") for s in iv], "snd_cwnd:", [s.get("snd_cwnd") for s in iv],
      "min_rtt:", snd.get("min_rtt"), "max_snd_cwnd:", snd.get("max_snd_cwnd"))
bad = [s for s in iv if not (19000 <= s.get("rtt", 0) <= 300000) or s.get("snd_cwnd", 0) <= 0]
if not iv or bad:
    sys.exit("intervals with an rtt outside 19-300 ms or no cwnd: %r" % bad)
if not 19000 <= snd.get("min_rtt", 0) <= 100000:
    sys.exit("min_rtt %r us: the link's round trip is 20 ms" % snd.get("min_rtt"))
EOF
}

# The python client's checks (offsets of the kernel's struct tcp_info, linux/tcp.h).
PY_CHECK='
import socket, struct, sys, time
def info(s, n=256):
    b = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, n)
    if len(b) < 232:
        sys.exit("TCP_INFO gave %d bytes, the kernel struct has 232" % len(b))
    u32 = lambda off: struct.unpack_from("I", b, off)[0]
    u64 = lambda off: struct.unpack_from("Q", b, off)[0]
    return dict(state=b[0], snd_mss=u32(16), pmtu=u32(60), rtt=u32(68), rttvar=u32(72),
                snd_cwnd=u32(80), total_retrans=u32(100), bytes_acked=u64(120),
                bytes_received=u64(128), segs_out=u32(136), segs_in=u32(140), min_rtt=u32(148),
                bytes_sent=u64(200))
s = socket.create_connection(("'"$IP_B"'", 9100))
s.sendall(b"x" * 1000)
time.sleep(0.2)                       # a few round trips: the RTT is sampled
i = info(s)
print("established:", i)
if i["state"] != 1:
    sys.exit("state %d, want 1 (ESTABLISHED)" % i["state"])
if not 19000 <= i["rtt"] <= 300000 or not 19000 <= i["min_rtt"] <= 100000:
    sys.exit("rtt %d / min_rtt %d us: the link round trip is 20 ms" % (i["rtt"], i["min_rtt"]))
if i["snd_cwnd"] <= 0 or not 500 <= i["snd_mss"] < i["pmtu"] <= 1500:
    sys.exit("snd_cwnd %d snd_mss %d pmtu %d" % (i["snd_cwnd"], i["snd_mss"], i["pmtu"]))
if i["segs_out"] <= 0 or i["segs_in"] <= 0:
    sys.exit("segs_out %d segs_in %d" % (i["segs_out"], i["segs_in"]))
s.sendall(b"x" * 499000)
got = 0
while True:
    b = s.recv(65536)
    if not b:
        break
    got += len(b)
if got != 200000:
    sys.exit("read %d bytes" % got)
deadline = time.time() + 2
while True:                           # the last acknowledgment may still be on its way
    i = info(s)
    if i["bytes_acked"] == 500000 or time.time() > deadline:
        break
    time.sleep(0.02)
print("after the server closed:", i)
if i["state"] != 8:
    sys.exit("state %d, want 8 (CLOSE_WAIT)" % i["state"])
if (i["bytes_acked"], i["bytes_sent"], i["bytes_received"]) != (500000, 500000, 200000):
    sys.exit("bytes acked/sent/received %d/%d/%d, want 500000/500000/200000"
             % (i["bytes_acked"], i["bytes_sent"], i["bytes_received"]))
short = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
if len(short) != 8 or short[0] != 8:
    sys.exit("an 8-byte TCP_INFO gave %d bytes, state %d" % (len(short), short[0]))
s.close()
'

for mode in engine sstd; do
  h1=off h2=off
  [ $mode = sstd ] && h1="$LIB_TMP/a8671.sock" h2="$LIB_TMP/a8672.sock"
  log "$mode: iperf3 -J, 3 s"
  shimmed "$h1" 8671 iperf3 -c "$IP_B" -p 5201 -t 3 -J >"$LIB_TMP/iperf-$mode.json" 2>&1 ||
    fail "iperf3 ($mode) failed: $(tail -5 "$LIB_TMP/iperf-$mode.json")"
  out=$(check_iperf "$LIB_TMP/iperf-$mode.json" 2>&1) || fail "iperf3 ($mode): $out"
  log "ok: $out"
  runs=1
  [ $mode = sstd ] && runs=2   # the second is handed over inside connect() (the port answered)
  for r in $(seq 1 $runs); do
    out=$(shimmed "$h2" 8672 /usr/bin/python3 -c "$PY_CHECK" 2>&1) || fail "python TCP_INFO ($mode, run $r): $out"
    log "ok ($mode, run $r): $(echo "$out" | tr '\n' ' ' | cut -c1-400)"
  done
done
# The TCP fallback (a selected destination without SST: the shim's pump runs kernel TCP): the
# pump's kernel socket answers, as the program's own socket would have.
log "TCP fallback: the kernel socket's own TCP_INFO"
out=$(in_a timeout 30 env LD_PRELOAD="$SHIM" SST_PEERS=127.0.0.1 SST_SHIM_TEST_SST=unavailable \
  SST_HELPER=off SST_LOG_FILE="$LIB_TMP/a-fallback.log" /usr/bin/python3 -c '
import socket, struct, sys, threading, time
ls = socket.create_server(("127.0.0.1", 0))
def serve():
    c, _ = ls.accept()
    while c.recv(65536):
        pass
threading.Thread(target=serve, daemon=True).start()
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # any option: the shim copies them
s.connect(ls.getsockname())
import os
ino = os.fstat(s.fileno()).st_ino
if not any(l.split()[6] == str(ino) for l in open("/proc/net/unix").readlines()[1:]):
    sys.exit("the fd is not the shim'"'"'s socketpair: the test would not prove anything")
s.sendall(b"z" * 100000)
time.sleep(0.2)
b = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
st, mss, rtt, cwnd = b[0], struct.unpack_from("I", b, 16)[0], struct.unpack_from("I", b, 68)[0], struct.unpack_from("I", b, 80)[0]
acked = struct.unpack_from("Q", b, 120)[0]
print("state", st, "snd_mss", mss, "rtt", rtt, "snd_cwnd", cwnd, "bytes_acked", acked, "len", len(b))
# Loopback MSS is ~65000: 524 was the unconnected TCP_MAXSEG default (536) copied onto the
# socket of the fallback as if the app had set it (with any option set, as TCP_NODELAY here).
if st != 1 or mss < 16000 or rtt == 0 or cwnd < 10 or acked not in (100000, 100001):   # the kernel counts its SYN
    sys.exit("not the kernel socket'"'"'s numbers")
' 2>&1) || fail "TCP fallback: $out"
log "ok: TCP fallback: $out"

# The server side: a socket accepted under SST_LISTEN answers its SST stream'"'"'s numbers, not
# the loopback bridge'"'"'s (rtt of microseconds, MSS of 65483).
log "server side: TCP_INFO of an accepted SST connection"
out=$(shimmed off 8672 /usr/bin/python3 -c '
import socket, sys
s = socket.create_connection(("'"$IP_B"'", 9101))
s.sendall(b"z" * 100000)
st, rtt, min_rtt, mss, received, cwnd = map(int, s.makefile().readline().split())
print("server: state", st, "rtt", rtt, "min_rtt", min_rtt, "snd_mss", mss, "bytes_received", received, "snd_cwnd", cwnd)
if st != 1 or not 19000 <= rtt <= 300000 or not 19000 <= min_rtt <= 100000 or not 500 <= mss <= 1500 \
        or received != 100000 or cwnd <= 0:
    sys.exit("not the SST stream'"'"'s numbers")
' 2>&1) || fail "server side: $out"
log "ok: $out"

# The sstd runs really went through sstd: each answered INFO for its hand-offs.
for port in 8671 8672; do
  grep -q "INFO .* answered" "$LIB_TMP/sstd-a$port.log" || fail "sstd (:$port) was never asked INFO: $(tail -5 "$LIB_TMP/sstd-a$port.log")"
done
log "ok: TCP_INFO carries the SST channel's RTT, cwnd and the stream's counters (engine and sstd)"
