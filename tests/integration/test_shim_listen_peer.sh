#!/usr/bin/env bash
# SST_LISTEN: the address a server sees for an SST client is the client's, on every descriptor
# of the accepted socket and across fork and exec, with a port of its own per connection
# (docs/shim.md §6c).  Before 2026-11-22 the peer was recorded for the fd number accept()
# returned only: a dup, a forked child or an exec'd image (sshd re-executes itself with the
# connection on stdin) saw the loopback bridge (127.0.0.1) at both ends, and accept() gave
# every connection from a host the same port (the SST peer's UDP port).
#
#   $NS_A  10.77.0.1 ===== veth ===== 10.77.0.2  $NS_B
#          shimmed python, ssh (strict)          python server and sshd under the shim,
#          in-process engine                     SST_LISTEN=9200 (UDP 8673), 2222 (UDP 8674)
#
# 1. python: accept(), fork, the child dup2()s the connection onto stdin and execs a new
#    python that reports getpeername/getsockname of fd 0: three concurrent clients each get
#    A's address, the port accept() reported, three distinct ports, and the server's
#    address toward A (not loopback).
# 2. nginx with two worker processes (the master listens, the workers accept): $remote_addr
#    and $remote_port of four requests are A's address and four distinct ports (the workers
#    had no pending table of their own: 127.0.0.1 before).
# 3. OpenSSH's sshd: `echo $SSH_CONNECTION` over two ssh logins names 10.77.0.1 and two
#    different ports, and sshd logs "from 10.77.0.1".
. "$(dirname "$0")/lib.sh"
lib_init shim_listen_peer
need_tool /usr/bin/python3 ssh ssh-keygen curl nginx
SHIM=$BUILD/libsstshim.so
[ -f "$SHIM" ] || env_fail "$SHIM not built"
[ -x /usr/sbin/sshd ] || env_fail "needs /usr/sbin/sshd (openssh-server)"

lib_net_up
lib_block_tcp

SRV=(LD_PRELOAD="$SHIM" SST_HELPER=off SST_KEYDIR="$LIB_TMP/kb" SST_LOG=debug)
cat >"$LIB_TMP/child.py" <<'EOF'
import os, socket, sys
s = socket.socket(fileno=0)          # the connection, on stdin of a new image
peer, local = s.getpeername(), s.getsockname()
s.sendall(("%s|%s|%s|%d\n" % (sys.argv[1], "%s %d" % peer[:2], "%s %d" % local[:2], os.getpid())).encode())
s.close()
EOF
lib_bg in_b env "${SRV[@]}" SST_LISTEN=9200 SST_PORT=8673 SST_LOG_FILE="$LIB_TMP/b-py.log" \
  /usr/bin/python3 -c '
import os, signal, socket, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
ls = socket.create_server(("0.0.0.0", 9200))
while True:
    c, addr = ls.accept()
    if os.fork() == 0:
        ls.close()
        os.dup2(c.fileno(), 0)
        c.close()
        os.execv(sys.executable, [sys.executable, sys.argv[1], "%s %d" % addr])
    c.close()
' "$LIB_TMP/child.py"
wait_for_port "$NS_B" 9200

shimmed() {
  local port=$1; shift
  in_a timeout 30 env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_PORT="$port" SST_HELPER=off \
    SST_KEYDIR="$LIB_TMP/ka" SST_LOG_FILE="$LIB_TMP/a-shim.log" "$@"
}

log "python: accept, fork, dup2 onto stdin, exec: what the new image sees"
out=$(shimmed 8673 /usr/bin/python3 -c '
import socket, sys
conns = [socket.create_connection(("'"$IP_B"'", 9200)) for _ in range(3)]
lines = []
for c in conns:
    f = c.makefile("r")
    lines.append(f.readline().strip())
ports = set()
for l in lines:
    print(l)
    acc, peer, local, pid = l.split("|")
    if acc != peer:
        sys.exit("accept() said %r, getpeername after exec %r" % (acc, peer))
    ip, port = peer.split()
    if ip != "'"$IP_A"'":
        sys.exit("the exec'"'"'d server sees %r, not A (%s)" % (ip, "'"$IP_A"'"))
    if local != "'"$IP_B"' 9200":
        sys.exit("getsockname after exec %r, want the server'"'"'s address toward A" % local)
    ports.add(port)
if len(ports) != 3:
    sys.exit("three connections, ports %r: not distinct" % sorted(ports))
' 2>&1) || fail "python: $out"
log "ok: $(echo "$out" | tr '\n' ' ')"

log "nginx: the master listens, two workers accept"
lib_nginx_conf off '$remote_addr $remote_port $pid'
lib_bg in_b env "${SRV[@]}" SST_LISTEN=8090 SST_PORT=8675 SST_LOG_FILE="$LIB_TMP/b-nginx.log" \
  nginx -c "$LIB_TMP/nginx.conf" -e "$LIB_TMP/nginx-error.log"
wait_for_port "$NS_B" 8090
pids=()
for i in 1 2 3 4; do
  shimmed 8675 curl -sS --max-time 10 "http://$IP_B:8090/" >"$LIB_TMP/nginx.$i" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"
cat "$LIB_TMP"/nginx.? >"$LIB_TMP/nginx.all"
log "nginx saw: $(tr '\n' ';' <"$LIB_TMP/nginx.all")"
[ "$(grep -c "^$IP_A [0-9]* [0-9]*\$" "$LIB_TMP/nginx.all")" = 4 ] || fail "nginx \$remote_addr is not A's for every request"
[ "$(cut -d' ' -f2 "$LIB_TMP/nginx.all" | sort -u | wc -l)" = 4 ] || fail "four connections, not four ports"
master=$(cat "$LIB_TMP/nginx.pid")
grep -q " $master\$" "$LIB_TMP/nginx.all" && fail "the master answered: the test would not prove the workers' case"
log "ok: nginx workers report $IP_A and a port per connection"

log "sshd under SST_LISTEN: \$SSH_CONNECTION and its log"
lib_sshd_conf 0.0.0.0 "LogLevel VERBOSE"
lib_bg in_b env "${SRV[@]}" SST_LISTEN=2222 SST_PORT=8674 SST_LOG_FILE="$LIB_TMP/b-sshd.log" \
  /usr/sbin/sshd -D -e -f "$LIB_TMP/sshd_config" 2>"$LIB_TMP/sshd.log"
wait_for_port "$NS_B" 2222
SSH=(ssh -i "$LIB_TMP/userkey" -p 2222 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
     -o BatchMode=yes -o LogLevel=ERROR root@"$IP_B")
c1=$(shimmed 8674 "${SSH[@]}" 'echo $SSH_CONNECTION' 2>&1) || fail "ssh: $c1 / $(tail -5 "$LIB_TMP/sshd.log")"
c2=$(shimmed 8674 "${SSH[@]}" 'echo $SSH_CONNECTION' 2>&1) || fail "ssh: $c2"
log "SSH_CONNECTION: '$c1', '$c2'"
read -r ip1 port1 sip1 sport1 <<<"$c1"
read -r ip2 port2 _ _ <<<"$c2"
[ "$ip1" = "$IP_A" ] && [ "$ip2" = "$IP_A" ] || fail "sshd saw the client as '$ip1' / '$ip2', not $IP_A"
[ "$sip1 $sport1" = "$IP_B 2222" ] || fail "sshd's own end '$sip1 $sport1', want '$IP_B 2222'"
[ "$port1" != "$port2" ] || fail "two ssh connections, one port ($port1)"
grep -q "Accepted publickey for root from $IP_A port $port1" "$LIB_TMP/sshd.log" ||
  fail "sshd did not log the SST client's address: $(grep -i accepted "$LIB_TMP/sshd.log")"
# Control: the logins really came over SST (TCP between the namespaces is blocked).
grep -q "SST_LISTEN: stream from $IP_A" "$LIB_TMP/b-sshd.log" || fail "sshd's shim logged no SST stream"
log "ok: sshd logs and reports $IP_A with a port per connection ($port1, $port2)"
