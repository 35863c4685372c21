#!/usr/bin/env bash
# The TCP Fast Open baseline of benchmark 4 is what it claims: bench_tcp --fastopen, with
# net.ipv4.tcp_fastopen=3 in both namespaces, carries every timed request in the SYN (the client
# counts SYN data acknowledged via TCP_INFO, the kernel's TcpExtTCPFastOpenActive/Passive agree),
# and when the server's namespace refuses Fast Open the silent fallback to a normal handshake is
# visible in the same count (0), so the report can flag it.  Bare veth; no timing assertions.
#
#   $NS_A  sst0 10.77.0.1 ====veth==== sst0 10.77.0.2  $NS_B
#          bench_tcp client --fastopen               bench_tcp server --fastopen :5204
. "$(dirname "$0")/lib.sh"
lib_init bench_tfo
need_tool nstat /usr/bin/python3
TCPB=$BUILD/tools/bench_tcp
[ -x "$TCPB" ] || env_fail "$TCPB not built (make tests)"

counter() { in_"$1" nstat -asz "$2" | awk -v k="$2" '$1 == k { print $2 }'; }
field() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

lib_net_up --link veth
in_a sysctl -qw net.ipv4.tcp_fastopen=3 || fail "tcp_fastopen in A"
in_b sysctl -qw net.ipv4.tcp_fastopen=3 || fail "tcp_fastopen in B"
lib_bg in_b "$TCPB" server --bind "$IP_B:5204" --fastopen 2>"$LIB_TMP/server.log"
wait_for_port "$NS_B" 5204 tcp 5

out=$(in_a timeout 30 "$TCPB" client "$IP_B:5204" --rr 5 --size 1000 --fastopen --timeout 20) ||
  fail "client failed: $out"
assert_eq True "$(field "$out" ok)" "ok"
assert_eq 5 "$(field "$out" transactions)" "transactions"
assert_eq True "$(field "$out" bytes_match)" "bytes_match"
assert_eq 5 "$(field "$out" fastopen_syn_data)" "transactions with SYN data acknowledged"
# The warm-up only asked for the cookie; the 5 timed connections were Fast Opens on both sides.
assert_eq 5 "$(counter a TcpExtTCPFastOpenActive)" "client TcpExtTCPFastOpenActive"
assert_eq 5 "$(counter b TcpExtTCPFastOpenPassive)" "server TcpExtTCPFastOpenPassive"
assert_eq 1 "$(counter b TcpExtTCPFastOpenCookieReqd)" "server TcpExtTCPFastOpenCookieReqd"

# Server side off (client bit only): the client still sends SYN data with its cached cookie, the
# server ignores it, the transactions succeed over normal handshakes, and the count says so.
in_b sysctl -qw net.ipv4.tcp_fastopen=1 || fail "tcp_fastopen=1 in B"
out=$(in_a timeout 30 "$TCPB" client "$IP_B:5204" --rr 5 --size 1000 --fastopen --timeout 20) ||
  fail "client failed without server Fast Open: $out"
assert_eq 5 "$(field "$out" transactions)" "transactions after fallback"
assert_eq 0 "$(field "$out" fastopen_syn_data)" "SYN data acknowledged after fallback"
log "bench_tfo: ok"
