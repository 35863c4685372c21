#!/usr/bin/env bash
# A multi-homed SST host bound to a wildcard address is reachable on every address, as with
# kernel TCP (which answers from the address it was reached at):
#
#   $NS_A  sst0 10.77.0.1 fd77::1 ====veth====  sst0 10.77.0.2 fd77::2 + 10.77.0.3 fd77::3  $NS_B
#          shimmed curl (in-process engine,            sstd --forward 8089 --port 8971 (bind ::)
#          or through sstd in A)                         http.server :8089 (::, dual-stack)
#
# Servers bound to one of B's addresses only, under SST_LISTEN (in-process engine, and handed to
# B's sstd), are reached at that address and refused at the other, as with TCP, and accept()
# names the client.  Servers on a wildcard address (in-process and through sstd) see in
# getsockname() of an accepted connection the address the client reached -- in the accepting
# process, a pre-forked child's accept, after exec, and nginx's $server_addr in its workers -- as
# with TCP (before: a route guess, 10.77.0.2 for a client of 10.77.0.3).
#
# Before: B's answers left from the kernel's choice of source toward A (10.77.0.2 / fd77::2), A's
# engine dropped them, and curl to 10.77.0.3 failed after 3 s ("no SST at 10.77.0.3:8971 (peer
# not responding)"); and the listeners chose a bound socket by a route lookup (B's address toward
# A: 10.77.0.2), so a server bound to 10.77.0.3 refused its clients and one bound to 10.77.0.2
# took those sent to 10.77.0.3.  TCP is blocked between the namespaces: every answer is SST.
. "$(dirname "$0")/lib.sh"
lib_init multihome
need_tool curl nginx /usr/bin/python3
SHIM=$BUILD/libsstshim.so
for b in sstd libsstshim.so; do [ -e "$BUILD/$b" ] || env_fail "$BUILD/$b not built"; done
PORT=8971      # B's sstd
LPORT=8972     # B's SST_LISTEN server (in-process engine)
IP_B3=10.77.0.3
IP6_B3=fd77::3
SA=$LIB_TMP/a.sock

lib_net_up
ip -n "$NS_B" addr add "$IP_B3/24" dev sst0 || fail "cannot add $IP_B3"
ip -n "$NS_B" addr add "$IP6_B3/64" dev sst0 nodad || fail "cannot add $IP6_B3"
lib_block_tcp

mkdir -p "$LIB_TMP/www"
head -c 3000 /dev/urandom >"$LIB_TMP/www/f"
HTTP_PY='
import functools, http.server, socket, sys
class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
Server(("::", int(sys.argv[2])), handler).serve_forever()'
lib_bg in_b /usr/bin/python3 -c "$HTTP_PY" "$LIB_TMP/www" 8089 2>/dev/null
wait_for_port "$NS_B" 8089
lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" --forward 8089 \
  --port "$PORT" --log info 2>"$LIB_TMP/b.log"
lib_bg in_a "$BUILD/sstd" --foreground --socket "$SA" --keydir "$LIB_TMP/ka" --port "$PORT" --log info \
  2>"$LIB_TMP/a.log"
poll_until 20 test -S "$SA" || fail "no socket $SA"
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "no socket in B"
# B's SST_LISTEN server (the shim's in-process engine on UDP $LPORT, bound to ::).
lib_bg in_b env LD_PRELOAD="$SHIM" SST_HELPER=off SST_LISTEN=8090 SST_PORT="$LPORT" SST_KEYDIR="$LIB_TMP/kb" \
  SST_LOG=debug SST_LOG_FILE="$LIB_TMP/b-listen.log" /usr/bin/python3 -c "$HTTP_PY" "$LIB_TMP/www" 8090 \
  2>/dev/null
wait_for_port "$NS_B" 8090
wait_for_port "$NS_B" "$LPORT" udp 20

# get HOW SSTPORT HOST PORT: the HTTP status of a GET of /f (body checked), curl's error if none.
get() {
  local how=$1 sport=$2 host=$3 port=$4 helper=off rc=0 url
  [ "$how" = sstd ] && helper=$SA
  case $host in *:*) url="http://[$host]:$port/f" ;; *) url="http://$host:$port/f" ;; esac
  in_a env LD_PRELOAD="$SHIM" SST_PEERS=10.77.0.0/24,fd77::/64 SST_PORT="$sport" SST_MODE=strict \
    SST_HELPER="$helper" SST_KEYDIR="$LIB_TMP/kshim" SST_LOG=debug SST_LOG_FILE="$LIB_TMP/shim-$how.log" \
    curl -sS -m 10 -o "$LIB_TMP/body" -w '%{http_code}' "$url" >"$LIB_TMP/code" 2>"$LIB_TMP/curl.err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "curl-exit-$rc: $(tr '\n' ' ' <"$LIB_TMP/curl.err")"
  elif ! cmp -s "$LIB_TMP/www/f" "$LIB_TMP/body"; then
    echo "body-differs"
  else
    cat "$LIB_TMP/code"
  fi
}

for how in engine sstd; do
  for host in "$IP_B" "$IP_B3" "$IP6_B" "$IP6_B3"; do
    assert_eq 200 "$(get "$how" "$PORT" "$host" 8089)" "$how -> sstd --forward at $host"
    r=$(get "$how" "$LPORT" "$host" 8090); [ "$r" = 200 ] || { tail -20 "$LIB_TMP/b-listen.log"; tail -20 "$LIB_TMP/shim.log"; }
    assert_eq 200 "$r" "$how -> SST_LISTEN at $host"
  done
done

log "servers bound to one address only: reached there, refused on the other address (as TCP), accept() names the client"
# Each ADDR/FAMILY/PORT listens and answers "ADDR peer=PEERADDR" to each client.
SERVE='
import socket, sys, threading
def serve(s, name):
    while True:
        c, addr = s.accept()
        c.sendall(b"%s peer=%s\n" % (name.encode(), addr[0].encode())); c.close()
for spec in sys.argv[1:]:
    addr, fam, port = spec.split("/")
    s = socket.socket(socket.AF_INET6 if fam == "6" else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port))); s.listen(16)
    threading.Thread(target=serve, args=(s, addr), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()'
# specs BASE: SPECS, the four servers of ports BASE1..BASE4.
specs() { SPECS=("$IP_B3/4/${1}1" "$IP_B/4/${1}2" "$IP6_B3/6/${1}3" "$IP6_B/6/${1}4"); }
# In-process engine (its own UDP port $EPORT) for 930x; handed to B's sstd (SST_PORT taken) for 931x.
EPORT=8973
specs 930
lib_bg in_b env LD_PRELOAD="$SHIM" SST_HELPER=off SST_LISTEN=9301,9302,9303,9304 SST_PORT="$EPORT" \
  SST_KEYDIR="$LIB_TMP/kb" SST_LOG=debug SST_LOG_FILE="$LIB_TMP/b-930x.log" /usr/bin/python3 -c "$SERVE" "${SPECS[@]}" \
  >"$LIB_TMP/930x.out" 2>&1
specs 931
lib_bg in_b env LD_PRELOAD="$SHIM" SST_HELPER="$LIB_TMP/b.sock" SST_LISTEN=9311,9312,9313,9314 SST_PORT="$PORT" \
  SST_KEYDIR="$LIB_TMP/kb" SST_LOG=debug SST_LOG_FILE="$LIB_TMP/b-931x.log" /usr/bin/python3 -c "$SERVE" "${SPECS[@]}" \
  >"$LIB_TMP/931x.out" 2>&1
poll_until 20 grep -qs ready "$LIB_TMP/930x.out" || fail "930x server: $(cat "$LIB_TMP/930x.out")"
poll_until 20 grep -qs ready "$LIB_TMP/931x.out" || fail "931x server: $(cat "$LIB_TMP/931x.out")"
for p in 9311 9312 9313 9314; do
  poll_until 10 grep -qs "port $p also accepts SST streams, through sstd" "$LIB_TMP/b-931x.log" ||
    fail "port $p not registered with sstd: $(tail -3 "$LIB_TMP/b-931x.log")"
done
wait_for_port "$NS_B" "$EPORT" udp 20

# ask SSTPORT HOST PORT: the server's line over SST, or the errno name of the failure.
ask() {
  local sport=$1; shift
  in_a timeout 20 env LD_PRELOAD="$SHIM" SST_PEERS=10.77.0.0/24,fd77::/64 SST_PORT="$sport" SST_MODE=strict \
    SST_HELPER=off SST_KEYDIR="$LIB_TMP/kshim" SST_LOG=debug SST_LOG_FILE="$LIB_TMP/ask.log" \
    /usr/bin/python3 -c "$LIB_ASK_PY" "$@" 2>>"$LIB_TMP/ask.err"
}
for base in 930 931; do
  sport=$EPORT; [ $base = 931 ] && sport=$PORT
  assert_eq "$IP_B3 peer=$IP_A" "$(ask $sport "$IP_B3" ${base}1)" "$IP_B3:${base}1 bound to $IP_B3, reached there"
  assert_eq ECONNREFUSED "$(ask $sport "$IP_B" ${base}1)" "$IP_B:${base}1 (bound to $IP_B3 only)"
  assert_eq "$IP_B peer=$IP_A" "$(ask $sport "$IP_B" ${base}2)" "$IP_B:${base}2 bound to $IP_B, reached there"
  assert_eq ECONNREFUSED "$(ask $sport "$IP_B3" ${base}2)" "$IP_B3:${base}2 (bound to $IP_B only)"
  assert_eq "$IP6_B3 peer=$IP6_A" "$(ask $sport "$IP6_B3" ${base}3)" "[$IP6_B3]:${base}3 bound to $IP6_B3, reached there"
  assert_eq ECONNREFUSED "$(ask $sport "$IP6_B" ${base}3)" "[$IP6_B]:${base}3 (bound to $IP6_B3 only)"
  assert_eq "$IP6_B peer=$IP6_A" "$(ask $sport "$IP6_B" ${base}4)" "[$IP6_B]:${base}4 bound to $IP6_B, reached there"
  assert_eq ECONNREFUSED "$(ask $sport "$IP6_B3" ${base}4)" "[$IP6_B3]:${base}4 (bound to $IP6_B only)"
done


log "servers on a wildcard address: getsockname() of the accepted connection is the address the client reached"
# Each ADDR/FAMILY/PORT/MODE listens (:: dual-stack) and answers "sock=ADDR:PORT" from
# getsockname() of the accepted connection: in the accepting process (direct), in a child forked
# before accept() that accepts (prefork: the shared slot), or in a program exec'd with the
# connection on descriptor 3 after accept (exec: SST_SHIM_ACCEPTED).
SOCKNAME='
import os, socket, sys, threading
EXEC = "import socket; c = socket.socket(fileno=3); a = c.getsockname(); c.sendall(b\"sock=%s:%d\\n\" % (a[0].encode(), a[1]))"
def answer(c):
    a = c.getsockname()
    c.sendall(b"sock=%s:%d\n" % (a[0].encode(), a[1])); c.close()
def serve(s, mode):
    while True:
        c, _ = s.accept()
        if mode == "direct":
            answer(c)
            continue
        if os.fork() == 0:
            os.dup2(c.fileno(), 3)
            os.execv(sys.executable, [sys.executable, "-c", EXEC])
        c.close()
        os.wait()
for spec in sys.argv[1:]:
    addr, fam, port, mode = spec.split("/")
    s = socket.socket(socket.AF_INET6 if fam == "6" else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == "6":
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((addr, int(port))); s.listen(16)
    if mode == "prefork":
        if os.fork() == 0:
            while True:
                c, _ = s.accept()
                answer(c)
        continue
    threading.Thread(target=serve, args=(s, mode), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()'
# wspecs BASE: SPECS, the four servers of ports BASE1..BASE4.
wspecs() { SPECS=("0.0.0.0/4/${1}1/direct" "::/6/${1}2/direct" "::/6/${1}3/prefork" "0.0.0.0/4/${1}4/exec"); }
WPORT=8974
wspecs 940
lib_bg in_b env LD_PRELOAD="$SHIM" SST_HELPER=off SST_LISTEN=9401,9402,9403,9404 SST_PORT="$WPORT" \
  SST_KEYDIR="$LIB_TMP/kb" SST_LOG=debug SST_LOG_FILE="$LIB_TMP/b-940x.log" /usr/bin/python3 -c "$SOCKNAME" \
  "${SPECS[@]}" >"$LIB_TMP/940x.out" 2>&1
wspecs 941
lib_bg in_b env LD_PRELOAD="$SHIM" SST_HELPER="$LIB_TMP/b.sock" SST_LISTEN=9411,9412,9413,9414 SST_PORT="$PORT" \
  SST_KEYDIR="$LIB_TMP/kb" SST_LOG=debug SST_LOG_FILE="$LIB_TMP/b-941x.log" /usr/bin/python3 -c "$SOCKNAME" \
  "${SPECS[@]}" >"$LIB_TMP/941x.out" 2>&1
poll_until 20 grep -qs ready "$LIB_TMP/940x.out" || fail "940x server: $(cat "$LIB_TMP/940x.out")"
poll_until 20 grep -qs ready "$LIB_TMP/941x.out" || fail "941x server: $(cat "$LIB_TMP/941x.out")"
for p in 9411 9412 9413 9414; do
  poll_until 10 grep -qs "port $p also accepts SST streams, through sstd" "$LIB_TMP/b-941x.log" ||
    fail "port $p not registered with sstd: $(tail -3 "$LIB_TMP/b-941x.log")"
done
wait_for_port "$NS_B" "$WPORT" udp 20
for base in 940 941; do
  sport=$WPORT; how="own engine"
  [ $base = 941 ] && { sport=$PORT; how="through sstd"; }
  assert_eq "sock=$IP_B3:${base}1" "$(ask $sport "$IP_B3" ${base}1)" "$how: 0.0.0.0:${base}1 reached at $IP_B3"
  assert_eq "sock=$IP_B:${base}1" "$(ask $sport "$IP_B" ${base}1)" "$how: 0.0.0.0:${base}1 reached at $IP_B"
  assert_eq "sock=::ffff:$IP_B3:${base}2" "$(ask $sport "$IP_B3" ${base}2)" "$how: [::]:${base}2 reached at $IP_B3"
  assert_eq "sock=$IP6_B3:${base}2" "$(ask $sport "$IP6_B3" ${base}2)" "$how: [::]:${base}2 reached at $IP6_B3"
  assert_eq "sock=$IP6_B:${base}2" "$(ask $sport "$IP6_B" ${base}2)" "$how: [::]:${base}2 reached at $IP6_B"
  assert_eq "sock=::ffff:$IP_B3:${base}3" "$(ask $sport "$IP_B3" ${base}3)" "$how: pre-forked child's accept, $IP_B3"
  assert_eq "sock=$IP6_B3:${base}3" "$(ask $sport "$IP6_B3" ${base}3)" "$how: pre-forked child's accept, $IP6_B3"
  assert_eq "sock=$IP_B3:${base}4" "$(ask $sport "$IP_B3" ${base}4)" "$how: exec'd after accept, $IP_B3"
done

log "nginx (2 workers, listen 9420 and [::]:9420): \$server_addr is the address the client reached"
# 9420 with its own engine (UDP $NPORT), 9421 handed to B's sstd.
NPORT=8975
# shellcheck disable=SC2016 # nginx's variables, for nginx to expand
lib_nginx_conf off 'server_addr=$server_addr:$server_port'
for n in 9420 9421; do
  sed -e "s/listen 8090;/listen $n; listen [::]:$n;/" -e "s#$LIB_TMP/nginx.pid#$LIB_TMP/nginx-$n.pid#" \
    -e "s#$LIB_TMP/nginx-error.log#$LIB_TMP/nginx-$n.log#" "$LIB_TMP/nginx.conf" >"$LIB_TMP/nginx-$n.conf"
done
lib_bg in_b env LD_PRELOAD="$SHIM" SST_HELPER=off SST_LISTEN=9420 SST_PORT="$NPORT" SST_KEYDIR="$LIB_TMP/kb" \
  SST_LOG=debug SST_LOG_FILE="$LIB_TMP/b-nginx-9420.log" nginx -c "$LIB_TMP/nginx-9420.conf" \
  -e "$LIB_TMP/nginx-9420.log"
lib_bg in_b env LD_PRELOAD="$SHIM" SST_HELPER="$LIB_TMP/b.sock" SST_LISTEN=9421 SST_PORT="$PORT" \
  SST_KEYDIR="$LIB_TMP/kb" SST_LOG=debug SST_LOG_FILE="$LIB_TMP/b-nginx-9421.log" nginx -c "$LIB_TMP/nginx-9421.conf" \
  -e "$LIB_TMP/nginx-9421.log"
wait_for_port "$NS_B" "$NPORT" udp 20
poll_until 10 grep -qs "port 9421 also accepts SST streams, through sstd" "$LIB_TMP/b-nginx-9421.log" ||
  fail "nginx 9421 not registered with sstd: $(tail -3 "$LIB_TMP/b-nginx-9421.log")"
# nget SSTPORT HOST PORT: nginx's answer over SST, curl's error if none.
nget() {
  local url="http://$2:$3/"
  case $2 in *:*) url="http://[$2]:$3/" ;; esac
  in_a env LD_PRELOAD="$SHIM" SST_PEERS=10.77.0.0/24,fd77::/64 SST_PORT="$1" SST_MODE=strict SST_HELPER=off \
    SST_KEYDIR="$LIB_TMP/kshim" SST_LOG=debug SST_LOG_FILE="$LIB_TMP/nget.log" curl -sS -m 10 "$url" 2>&1
}
for n in 9420 9421; do
  sport=$NPORT; [ $n = 9421 ] && sport=$PORT
  for i in 1 2 3; do   # either worker may take each one
    assert_eq "server_addr=$IP_B3:$n" "$(nget $sport "$IP_B3" $n)" "nginx $n at $IP_B3 ($i)"
    assert_eq "server_addr=$IP6_B3:$n" "$(nget $sport "$IP6_B3" $n)" "nginx $n at [$IP6_B3] ($i)"
  done
  assert_eq "server_addr=$IP_B:$n" "$(nget $sport "$IP_B" $n)" "nginx $n at $IP_B"
  assert_eq "server_addr=$IP6_B:$n" "$(nget $sport "$IP6_B" $n)" "nginx $n at [$IP6_B]"
done

# The sstd runs went through A's sstd, the engine runs did not.
n=$(grep -c "helper carries the connection" "$LIB_TMP/shim-sstd.log" || true)
assert_eq 8 "$n" "connections A's sstd carried"
n=$(grep -c "helper carries the connection" "$LIB_TMP/shim-engine.log" || true)
assert_eq 0 "$n" "connections the in-process runs handed to a helper"
log "PASS"
