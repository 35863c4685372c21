#!/usr/bin/env bash
# Listeners handed to sstd behave as kernel TCP (docs/helper.md "LISTEN", docs/shim.md §6c):
# every listening socket of a port is registered -- an IPv4 and an IPv6 one -- and each SST
# stream goes to the socket TCP would connect its peer to, with the peer's true address in
# accept(); where TCP would refuse the peer (an IPv6 peer on an IPv4-only port, a port bound to
# another local address) the stream is refused.  sstd refuses a listening socket of another
# network namespace, and a keeper (nginx with `daemon on`) registers its port again with a
# restarted sstd.
#
#   $NS_A 10.77.0.1 / fd77::1 ====== veth (TCP dropped) ====== 10.77.0.2 / fd77::2 $NS_B
#   python / curl under the shim                                 sstd (UDP 8661, own socket)
#   (SST_MODE=strict, SST_HELPER=off)                            servers under SST_LISTEN
#
# Before (main up to 2026-11-22): one registration per port -- the IPv6 client of the
# two-socket server was connected to its IPv4 socket and accept() said 127.0.0.1; an IPv6
# client of an IPv4-only port, and any client of a port bound to 127.0.0.1 only, was connected;
# a socket from another namespace was registered; nginx's keeper left its port TCP only after
# sstd's restart.
. "$(dirname "$0")/lib.sh"
lib_init shim_listen_sstd_family
need_tool /usr/bin/python3 curl nginx
SHIM=$BUILD/libsstshim.so
for b in sstd sstctl libsstshim.so; do [ -e "$BUILD/$b" ] || env_fail "$BUILD/$b not built"; done

lib_net_up
lib_block_tcp

SOCK=$LIB_TMP/b.sock
start_sstd() {
  lib_bg in_b "$BUILD/sstd" --foreground --socket "$SOCK" --keydir "$LIB_TMP/kb" --log info 2>>"$LIB_TMP/sstd.log"
  SSTD=$LIB_BG_PID
  poll_until 20 test -S "$SOCK" || fail "sstd did not start: $(tail -3 "$LIB_TMP/sstd.log")"
}
start_sstd

SRV=(LD_PRELOAD="$SHIM" SST_HELPER="$SOCK" SST_KEYDIR="$LIB_TMP/ks" SST_LOG=info)
SHIMENV=(LD_PRELOAD="$SHIM" SST_PEERS="$IP_B,$IP6_B" SST_MODE=strict SST_HELPER=off
         SST_KEYDIR="$LIB_TMP/ka" SST_LOG=info)

# listeners: STATUS's registered sockets, "PORT>TO ..." sorted.
listeners() {
  in_b "$BUILD/sstctl" --socket "$SOCK" status --json | /usr/bin/python3 -c '
import json, sys
print(" ".join(sorted("%d>%s" % (l["port"], l["to"]) for l in json.load(sys.stdin)["listeners"])))'
}
# regs_are PORT N: STATUS lists N registered sockets of PORT.
regs_are() { [ "$(listeners | tr ' ' '\n' | grep -c "^$1>")" = "$2" ]; }

# ask HOST PORT: one line from the server over SST, or the errno name of the failure.
ask() { in_a timeout 20 env "${SHIMENV[@]}" /usr/bin/python3 -c "$LIB_ASK_PY" "$@" 2>>"$LIB_TMP/ask.err"; }

# A server under SST_LISTEN: each ADDR:FAMILY[:v6only] listens on PORT and answers
# "ADDR peer=PEERADDR" to each client.
SERVE='
import socket, sys, threading
port = int(sys.argv[1])
def serve(s, name):
    while True:
        c, addr = s.accept()
        c.sendall(b"%s peer=%s\n" % (name.encode(), addr[0].encode())); c.close()
for spec in sys.argv[2:]:
    addr, fam, *opt = spec.split("/")
    s = socket.socket(socket.AF_INET6 if fam == "6" else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == "6":
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if opt else 0)
    s.bind((addr, port)); s.listen(16)
    threading.Thread(target=serve, args=(s, addr), daemon=True).start()
threading.Event().wait()'
NSERVE=0
serve() {
  local port=$1 lf="$LIB_TMP/b-$1-$((++NSERVE)).log"
  shift
  lib_bg in_b env "${SRV[@]}" SST_LISTEN="$port" SST_LOG_FILE="$lf" /usr/bin/python3 -c "$SERVE" "$port" "$@"
  poll_until 10 grep -qs "port $port also accepts SST streams, through sstd" "$lf" ||
    fail "server of $port: not registered with sstd: $(tail -3 "$lf")"
}
expect() {   # expect WHAT GOT WANT
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3' (sstd: $(tail -2 "$LIB_TMP/sstd.log"))"
}

log "1. one server, an IPv4 socket and an IPv6-only socket on :9200: each family reaches its own, with its address"
serve 9200 0.0.0.0/4 ::/6/v6only
poll_until 5 regs_are 9200 2 ||
  fail "9200: not both sockets registered: $(listeners)"
expect "IPv4 client of 9200" "$(ask "$IP_B" 9200)" "0.0.0.0 peer=$IP_A"
expect "IPv6 client of 9200" "$(ask "$IP6_B" 9200)" ":: peer=$IP6_A"
expect "IPv4 client of 9200, again" "$(ask "$IP_B" 9200)" "0.0.0.0 peer=$IP_A"
log "ok: $(listeners)"

log "2. where TCP refuses, so does SST: IPv6 to an IPv4-only port, IPv4 to an IPv6-only one, a port bound to 127.0.0.1"
serve 9201 0.0.0.0/4
expect "IPv6 client of IPv4-only 9201" "$(ask "$IP6_B" 9201)" ECONNREFUSED
expect "IPv4 client of IPv4-only 9201" "$(ask "$IP_B" 9201)" "0.0.0.0 peer=$IP_A"
serve 9202 ::/6/v6only
expect "IPv4 client of IPv6-only 9202" "$(ask "$IP_B" 9202)" ECONNREFUSED
expect "IPv6 client of IPv6-only 9202" "$(ask "$IP6_B" 9202)" ":: peer=$IP6_A"
serve 9203 127.0.0.1/4
expect "remote client of 127.0.0.1:9203" "$(ask "$IP_B" 9203)" ECONNREFUSED
serve 9204 "$IP_B/4" 127.0.0.1/4
expect "client of $IP_B:9204 (and 127.0.0.1:9204)" "$(ask "$IP_B" 9204)" "$IP_B peer=$IP_A"
in_b "$BUILD/sstctl" --socket "$SOCK" status | grep -Eq "^  9204 +LISTEN  -> 127\.0\.0\.1:9204 \(pid [0-9]+\)$" ||
  fail "sstctl status does not list 127.0.0.1:9204: $(listeners)"
log "ok: refused where TCP refuses; the bound address chosen"

log "3. two servers on one port (IPv4 and IPv6-only), and a socket registered twice: in-use"
serve 9205 0.0.0.0/4
serve 9205 ::/6/v6only
expect "IPv6 client of 9205 (second server)" "$(ask "$IP6_B" 9205)" ":: peer=$IP6_A"
expect "IPv4 client of 9205 (first server)" "$(ask "$IP_B" 9205)" "0.0.0.0 peer=$IP_A"
ans=$(in_b /usr/bin/python3 -c '
import socket, sys
l = socket.create_server(("127.0.0.1", 9206))
out, conns = [], []
for i in range(2):
    c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1]); conns.append(c)
    socket.send_fds(c, [b"LISTEN 9206\n"], [l.fileno()])
    out.append(c.makefile().readline().strip())
print(" ".join(out))' "$SOCK")
case $ans in *'"ok":true'*'"error":"in-use"'*) ;; *) fail "the same socket registered twice: $ans" ;; esac
log "ok: both servers reached; in-use for a second registration of a socket"

log "4. a listening socket of another network namespace (sstd's socket reached by its path): other-netns"
ans=$(in_a /usr/bin/python3 -c '
import socket, sys
l = socket.create_server(("0.0.0.0", 9207))
c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1])
socket.send_fds(c, [b"LISTEN 9207\n"], [l.fileno()])
print(c.makefile().readline().strip())' "$SOCK")
case $ans in *'"error":"other-netns"'*) ;; *) fail "LISTEN with a socket of another namespace: $ans" ;; esac
# LISTEN PORT INODE names a socket of this namespace only.
ans=$(in_b /usr/bin/python3 -c '
import os, socket, sys
l = socket.create_server(("0.0.0.0", 9208))
c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1])
f = c.makefile()
c.sendall(b"LISTEN 9208 %d\n" % os.fstat(l.fileno()).st_ino); ok = f.readline().strip()
c.sendall(b"LISTEN 9208 %d\n" % (os.fstat(l.fileno()).st_ino + 1)); bad = f.readline().strip()
print(ok, bad)' "$SOCK")
case $ans in *'"ok":true'*'"error":"not-listening"'*) ;; *) fail "LISTEN PORT INODE: $ans" ;; esac
log "ok: other-netns refused; LISTEN by inode taken for a listening socket of the port, refused for another"

log "5. nginx (daemon on, listen 9210 and [::]:9210) through its keeper; sstd restarted: registered again"
lib_nginx_conf on 'nginx $remote_addr'
sed -i 's/listen 8090;/listen 9210; listen [::]:9210;/' "$LIB_TMP/nginx.conf"
in_b env "${SRV[@]}" SST_LISTEN=9210 SST_LOG_FILE="$LIB_TMP/b-nginx.log" \
  nginx -c "$LIB_TMP/nginx.conf" -e "$LIB_TMP/nginx-error.log" || fail "nginx did not start"
wait_for_port "$NS_B" 9210
poll_until 10 grep -q "port 9210 also accepts SST streams, through sstd" "$LIB_TMP/b-nginx.log" ||
  fail "nginx: not registered with sstd: $(cat "$LIB_TMP/b-nginx.log")"
kn=$(sed -n 's/.*go on in keeper pid \([0-9]*\).*/\1/p' "$LIB_TMP/b-nginx.log" | tail -1)
[ -n "$kn" ] || fail "nginx: no keeper logged: $(tail -3 "$LIB_TMP/b-nginx.log")"
curl_sst() { in_a timeout 15 env "${SHIMENV[@]}" curl -sS --max-time 10 "$1" 2>>"$LIB_TMP/curl.err"; }
expect "nginx over IPv4" "$(curl_sst "http://$IP_B:9210/")" "nginx $IP_A"
expect "nginx over IPv6" "$(curl_sst "http://[$IP6_B]:9210/")" "nginx $IP6_A"
kill "$SSTD"
wait "$SSTD" 2>/dev/null
start_sstd
poll_until 10 grep -q "sstd ended: port 9210" "$LIB_TMP/b-nginx.log" ||
  fail "nginx's keeper: the end of sstd not logged: $(tail -3 "$LIB_TMP/b-nginx.log")"
poll_until 10 regs_are 9210 2 ||
  fail "nginx's keeper did not register 9210 again with the new sstd: $(listeners); $(tail -3 "$LIB_TMP/b-nginx.log")"
expect "nginx over IPv4 through the new sstd" "$(curl_sst "http://$IP_B:9210/")" "nginx $IP_A"
expect "nginx over IPv6 through the new sstd" "$(curl_sst "http://[$IP6_B]:9210/")" "nginx $IP6_A"
kill "$(cat "$LIB_TMP/nginx.pid")"
poll_until 10 regs_are 9210 0 || fail "9210 still registered after nginx stopped: $(listeners)"
poll_until 10 sh -c "! grep -q '^State:[[:space:]]*[^Z]' /proc/$kn/status 2>/dev/null" ||
  fail "nginx's keeper $kn still runs"
log "ok: the keeper registered both of nginx's sockets again with the restarted sstd"
