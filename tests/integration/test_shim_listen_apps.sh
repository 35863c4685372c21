#!/usr/bin/env bash
# Unmodified servers under SST_LISTEN (docs/shim.md §6c, §8a), reached by shimmed clients across
# two namespaces with TCP between them blocked, compared with kernel TCP: redis (redis-cli,
# redis-benchmark -c 50, -P 16), postgres (psql, pgbench -C and -c 8 -j 2, as user postgres),
# node http (alone and as a cluster of 2 workers), Java com.sun.net.httpserver, python asyncio
# (0.0.0.0 and [::] V6ONLY: two sockets of one port), openssl s_server -WWW, git daemon (clone,
# push), iperf3 -s (-P 4, -R, --bidir) and nginx (2 workers, reuseport, sendfile, a 20 MB file).
# Both server cases -- each server's own engine on its own SST_PORT (SST_HELPER a path where no
# sstd runs: the shim's default on a host without sstd), and sstd holding SST_PORT so every
# listener is handed to it -- and, for each, clients with the in-process engine and through
# sstd (strict).  Each client's output is the one it gave over kernel TCP: the data byte-exact,
# the exit codes, and the peer each server reports (accept/getpeername: A's address).  Then
# the servers' descriptors and threads after hundreds of connections are what they were, each
# server stops at SIGTERM or SIGINT (postgres: pg_ctl stop) within 3 s with no keeper left and
# no registration in sstd, and redis started again on its port is reached over SST again, at
# once also by a client whose sstd still had a channel to the old one.
#
#   $NS_A 10.77.0.1 fd77::1 ====== veth (TCP dropped) ====== 10.77.0.2 fd77::2 $NS_B
#   clients under the shim (strict)                           the servers under the shim
#   sstd (client side, SST_HELPER of the sstd clients)        sstd on UDP 8770 (second case)
#
# Before (main up to 2026-11-22): iperf3 -s exited at its third test ("unable to start
# listener: Address already in use"): the shim kept a duplicate of a listening socket made
# again while the port had its SST listener, and a keeper then served that dead port forever.
# The restarted redis answered an sstd client after 18 s: its stream had moved to the dead
# channel of another server with the same host key (all servers here share B's key, as
# processes of one user do).  And through sstd, postgres, git daemon, nginx's `listen [::]:P`
# and asyncio saw IPv4 clients as ::ffff:10.77.0.1 on their IPV6_V6ONLY socket (postgres's
# pg_hba.conf refused them; sstd's LISTEN took one socket per port, fixed the same day,
# test_shim_listen_sstd_family.sh).
. "$(dirname "$0")/lib.sh"
lib_init shim_listen_apps
SHIM=$BUILD/libsstshim.so
HERE=$(cd "$(dirname "$0")" && pwd)
for b in sstd sstctl libsstshim.so; do [ -e "$BUILD/$b" ] || env_fail "$BUILD/$b not built"; done
need_tool /usr/bin/python3 curl sha256sum su
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$PGBIN" ] && PATH=$PATH:$PGBIN

# The programs; one missing is skipped with its reason (they are in scripts/deps.sh).
declare -A HAVE
for p in "redis-server redis-cli redis-benchmark" "postgres initdb pg_ctl psql pgbench" node "java javac" openssl git \
         iperf3 nginx; do
  name=${p%% *}
  HAVE[$name]=1
  for t in $p; do
    command -v "$t" >/dev/null 2>&1 || { HAVE[$name]=; log "SKIP $name: '$t' is not installed"; break; }
  done
done
have() { [ -n "${HAVE[$1]:-}" ]; }
id postgres >/dev/null 2>&1 || { have postgres && log "SKIP postgres: no user 'postgres'"; HAVE[postgres]=; }

if have java; then   # compiled once, meanwhile
  mkdir -p "$LIB_TMP/java"
  javac -d "$LIB_TMP/java" "$HERE/AppsServer.java" 2>"$LIB_TMP/javac.log" &
  JAVAC=$!
fi
lib_net_up
chmod 755 "$LIB_TMP"
SP=8770                                   # sstd's UDP port (second case), and the clients'
declare -A PORT=([redis-server]=6379 [postgres]=5432 [node]=8081 [cluster]=8082 [java]=8083
                 [asyncio]=8084 [openssl]=4433 [git]=9418 [iperf3]=5201 [nginx]=8090)
declare -A OWNSP=([redis-server]=8771 [postgres]=8772 [node]=8773 [cluster]=8774 [java]=8775
                  [asyncio]=8776 [openssl]=8777 [git]=8778 [iperf3]=8779 [nginx]=8780)
SB=$LIB_TMP/b.sock
SA=$LIB_TMP/a.sock
NOSSTD=$LIB_TMP/no-sstd.sock              # nothing listens there

# ---- fixtures --------------------------------------------------------------------------------
head -c 1000000 /dev/urandom >"$LIB_TMP/up.bin"
mkdir -p "$LIB_TMP/www" "$LIB_TMP/git/srv"
head -c 5000000 /dev/urandom >"$LIB_TMP/www/f5m"
head -c 20000000 /dev/urandom >"$LIB_TMP/www/f20m"
if have openssl; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$LIB_TMP/key.pem" -out "$LIB_TMP/cert.pem" -days 2 \
    -subj /CN=srvapps >/dev/null 2>&1 || env_fail "openssl req failed"
fi
if have git; then
  git init -q --bare "$LIB_TMP/git/srv/repo.git"
  git -C "$LIB_TMP/git/srv/repo.git" symbolic-ref HEAD refs/heads/main
  git init -q -b main "$LIB_TMP/git/src"
  head -c 2000000 /dev/urandom >"$LIB_TMP/git/src/blob"
  git -C "$LIB_TMP/git/src" add blob
  git -C "$LIB_TMP/git/src" -c user.email=t@t -c user.name=t commit -qm one
  git -C "$LIB_TMP/git/src" push -q "$LIB_TMP/git/srv/repo.git" main || env_fail "git push (local) failed"
fi
if have nginx; then
  lib_nginx_http off "  sendfile on;
  server {
    listen 8090 reuseport;
    listen [::]:8090 reuseport;
    root $LIB_TMP/www;
    location /who { return 200 \"\$remote_addr\\n\"; }
  }"
fi
if have postgres; then
  mkdir -p "$LIB_TMP/pg" "$LIB_TMP/pgsock"
  touch "$LIB_TMP/sstd-postgres.log" "$LIB_TMP/own-postgres.log"   # the shim's logs, written as postgres
  chown postgres: "$LIB_TMP/pg" "$LIB_TMP/pgsock" "$LIB_TMP/sstd-postgres.log" "$LIB_TMP/own-postgres.log"
  su postgres -s /bin/sh -c "initdb -N -D '$LIB_TMP/pg/data' -A trust -U postgres" >"$LIB_TMP/initdb.log" 2>&1 ||
    env_fail "initdb failed: $(tail -3 "$LIB_TMP/initdb.log")"
  cat >>"$LIB_TMP/pg/data/postgresql.conf" <<CONF
listen_addresses = '*'
port = 5432
unix_socket_directories = '$LIB_TMP/pgsock'
fsync = off
CONF
  echo "host all all 10.77.0.0/24 trust" >>"$LIB_TMP/pg/data/pg_hba.conf"
fi

if have java; then
  wait "$JAVAC" || env_fail "javac AppsServer.java failed: $(tail -3 "$LIB_TMP/javac.log")"
fi
log "fixtures ready"

# ---- servers ---------------------------------------------------------------------------------
# start_servers CASE: every server in B under the shim; CASE own (each its own engine and
# SST_PORT) or sstd (SST_PORT 8770 held by B's sstd: each registers its port with it).
declare -A SPID
srv_env() {   # srv_env NAME -> the server's environment, one word a line
  local sp=$SP helper=$SB
  [ "$CASE" = own ] && { sp=${OWNSP[$1]}; helper=$NOSSTD; }
  printf '%s\n' LD_PRELOAD="$SHIM" SST_PORT="$sp" SST_HELPER="$helper" SST_LISTEN="${PORT[$1]}" \
    SST_KEYDIR="$LIB_TMP/kb" SST_LOG=info SST_LOG_FILE="$LIB_TMP/$CASE-$1.log"
}
# start_one NAME CMD...: in B, under the shim; its pid in SPID[NAME], killed at the end as
# lib_bg's.  A background job of this shell would start with SIGINT ignored: the servers get it
# as from a terminal (^C).
start_one() {
  local name=$1
  shift
  local -a e
  mapfile -t e < <(srv_env "$name")
  ( trap - INT; exec ip netns exec "$NS_B" env "${e[@]}" "$@" ) &
  SPID[$name]=$!
  LIB_BG_PIDS+=("$!")
}
start_redis() {
  start_one redis-server redis-server --port 6379 --bind '0.0.0.0 ::' --protected-mode no --save '' \
    --appendonly no --dir "$LIB_TMP" --logfile "$LIB_TMP/redis.log"
}
start_servers() {
  have redis-server && start_redis
  if have postgres; then
    local -a e
    mapfile -t e < <(srv_env postgres)
    e=("${e[@]/SST_KEYDIR=*/SST_KEYDIR=$LIB_TMP/kp}")
    in_b su postgres -s /bin/sh -c "env ${e[*]} pg_ctl -D '$LIB_TMP/pg/data' -l '$LIB_TMP/pg/log' -w start" \
      >/dev/null 2>&1 || fail "postgres did not start: $(tail -3 "$LIB_TMP/pg/log")"
    if [ ! -e "$LIB_TMP/pgbench.init" ]; then   # pgbench's tables, over the unix socket
      in_b su postgres -s /bin/sh -c "pgbench -h '$LIB_TMP/pgsock' -i -s 1 postgres" >"$LIB_TMP/pgbench.init" 2>&1 ||
        fail "pgbench -i failed: $(tail -3 "$LIB_TMP/pgbench.init")"
    fi
  fi
  have node && start_one node node "$HERE/apps_server.js" 8081 0
  have node && start_one cluster node "$HERE/apps_server.js" 8082 2
  have java && start_one java java -XX:TieredStopAtLevel=1 -cp "$LIB_TMP/java" AppsServer 8083
  start_one asyncio /usr/bin/python3 "$HERE/apps_server.py" 8084
  # -WWW serves the files of its working directory
  have openssl && start_one openssl sh -c "cd '$LIB_TMP/www' && exec openssl s_server -accept 4433 \
    -cert '$LIB_TMP/cert.pem' -key '$LIB_TMP/key.pem' -WWW -quiet >/dev/null 2>&1"
  have git && start_one git git daemon --reuseaddr --base-path="$LIB_TMP/git/srv" --export-all \
    --enable=receive-pack --port=9418 --informative-errors 2>"$LIB_TMP/git-daemon.log"
  have iperf3 && start_one iperf3 iperf3 -s -p 5201 --logfile "$LIB_TMP/$CASE-iperf3.out"
  have nginx && start_one nginx nginx -c "$LIB_TMP/nginx.conf" -e "$LIB_TMP/nginx-error.log"
  local n
  for n in "${!PORT[@]}"; do
    srv_up "$n" || continue
    wait_for_port "$NS_B" "${PORT[$n]}" tcp 30
    poll_until 20 grep -qs "port ${PORT[$n]} also accepts SST streams" "$LIB_TMP/$CASE-$n.log" ||
      fail "$CASE: $n: port ${PORT[$n]} takes no SST streams: $(tail -3 "$LIB_TMP/$CASE-$n.log")"
  done
  [ -n "${SPID[postgres]:-}" ] || { have postgres && SPID[postgres]=$(head -1 "$LIB_TMP/pg/data/postmaster.pid"); }
  log "$CASE: servers up (${!SPID[*]})"
}
srv_up() {   # srv_up NAME: the server runs in this test
  case $1 in cluster) have node ;; asyncio) true ;; *) have "$1" ;; esac
}

# ---- clients: one line of output per check, the same over kernel TCP and over SST -------------
# cli NAME CMD...: CMD in A, with the current client environment for server NAME; killed after
# CLI_LIMIT seconds (a server that is gone while its port still listens leaves it waiting).
CLI_LIMIT=30
cli() {
  local name=$1 sp=$SP
  shift
  [ "$CASE" = own ] && sp=${OWNSP[$name]}
  if [ "$CMODE" = tcp ]; then
    in_a timeout "$CLI_LIMIT" "$@"
  else
    local helper=off
    [ "$CMODE" = sstd ] && helper=$SA
    in_a timeout "$CLI_LIMIT" env LD_PRELOAD="$SHIM" SST_PEERS="$IP_B,$IP6_B" SST_MODE=strict SST_PORT="$sp" \
      SST_HELPER="$helper" SST_KEYDIR="$LIB_TMP/ka" SST_LOG=warn "$@"
  fi
}
sha() { sha256sum | cut -c1-16; }
PYCLI='
import socket, sys
data = open(sys.argv[1], "rb").read()
for fam, host in ((socket.AF_INET, sys.argv[2]), (socket.AF_INET6, sys.argv[3])):
    s = socket.socket(fam); s.settimeout(20); s.connect((host, int(sys.argv[4])))
    s.sendall(data); s.shutdown(socket.SHUT_WR)
    f = s.makefile("rb")
    print(f.readline().decode().strip(), "back:", "same" if f.read() == data else "DIFFERENT")'
# MANY HOST N PORT...: N connections to each port, one after the other, each with one request
# (redis: PING; the asyncio echo: a byte and EOF; else HTTP GET /who), answered.
MANY='
import socket, sys
host, n, out = sys.argv[1], int(sys.argv[2]), []
for port in map(int, sys.argv[3:]):
    req = {6379: b"PING\r\n", 8084: b"x"}.get(port, b"GET /who HTTP/1.0\r\nHost: b\r\n\r\n")
    ok = 0
    for i in range(n):
        s = socket.create_connection((host, port), timeout=20)
        s.sendall(req)
        if port == 8084: s.shutdown(socket.SHUT_WR)
        ok += len(s.recv(100)) > 0
        s.close()
    out.append("%d:%d" % (port, ok))
print(" ".join(out))'
checks() {
  if have redis-server; then
    echo "redis: $(cli redis-server redis-cli -h "$IP_B" set k v) $(cli redis-server redis-cli -h "$IP_B" get k)" \
      "$(cli redis-server redis-cli -h "$IP_B" client list | sed -n 's/.* addr=\([0-9.]*\):.*/\1/p')"
    local p
    for p in 1 16; do
      out=$(cli redis-server redis-benchmark -h "$IP_B" -c 50 -n 20000 -P $p -t set,get --csv 2>&1)
      echo "redis-benchmark -P $p: rc=$? $(echo "$out" | cut -d, -f1 | tr -d '"' | tr '\n' ' ')"
    done
  fi
  if have postgres; then
    echo "psql: $(cli postgres psql -h "$IP_B" -U postgres -At -c \
      'select inet_client_addr(), sum(x) from generate_series(1, 200000) x' postgres 2>&1)"
    echo "pgbench -C: $(cli postgres pgbench -h "$IP_B" -U postgres -C -c 4 -j 2 -t 25 -S postgres 2>&1 |
      grep -E '^number of (transactions actually processed|failed)' | tr '\n' ' ')"
    echo "pgbench -c 8: $(cli postgres pgbench -h "$IP_B" -U postgres -c 8 -j 2 -t 25 postgres 2>&1 |
      grep -E '^number of (transactions actually processed|failed)' | tr '\n' ' ')"
  fi
  if have node; then
    local n
    for n in node cluster; do
      out=$(cli $n curl -sS --data-binary @"$LIB_TMP/up.bin" "http://$IP_B:${PORT[$n]}/")
      # A cluster's worker gets each connection from the primary over its IPC channel
      # (SCM_RIGHTS), which no peer record follows (docs/shim.md §6c "Limits"): it reports the
      # loopback bridge's address, not compared.
      [ $n = cluster ] && out=${out#peer=* }
      echo "$n: $out big $(cli $n curl -sS "http://$IP_B:${PORT[$n]}/big" | sha)"
    done
  fi
  have java && echo "java: $(cli java curl -sS --data-binary @"$LIB_TMP/up.bin" "http://$IP_B:8083/")"
  echo "asyncio: $(cli asyncio /usr/bin/python3 -c "$PYCLI" "$LIB_TMP/up.bin" "$IP_B" "$IP6_B" 8084 | tr '\n' ' ')"
  if have openssl; then
    cli openssl curl -sSk -o "$LIB_TMP/got" "https://$IP_B:4433/f5m"
    echo "openssl: rc=$? $(sha <"$LIB_TMP/got")"
  fi
  if have git; then
    local d=$LIB_TMP/git/c-$CASE-$CMODE
    cli git git clone -q "git://$IP_B/repo.git" "$d" 2>/dev/null
    echo "git clone: rc=$? $(sha <"$d/blob")"
    echo "$CASE $CMODE" >"$d/f" && git -C "$d" add f && git -C "$d" -c user.email=t@t -c user.name=t commit -qm "$CASE $CMODE"
    (cd "$d" && cli git git push -q origin main 2>/dev/null)
    echo "git push: rc=$? ls-remote missing: $(cli git git ls-remote "git://$IP_B/missing.git" >/dev/null 2>&1; echo $?)"
  fi
  if have iperf3; then
    local o
    for o in "-P 4" -R --bidir; do
      # shellcheck disable=SC2086
      out=$(CLI_LIMIT=10 cli iperf3 iperf3 -c "$IP_B" -p 5201 -n 1M $o 2>&1)
      echo "iperf3 $o: rc=$? $(echo "$out" | grep -c 'receiver$') streams"
    done
  fi
  if have nginx; then
    cli nginx curl -sS -o "$LIB_TMP/got" "http://$IP_B:8090/f20m"
    echo "nginx: rc=$? $(sha <"$LIB_TMP/got") $(cli nginx curl -sS "http://$IP_B:8090/who")" \
      "$(cli nginx curl -sS "http://$IP_B:8090/who")"
  fi
}

# ---- the run ---------------------------------------------------------------------------------
sha <"$LIB_TMP/www/f20m" >/dev/null
lib_bg in_a "$BUILD/sstd" --foreground --socket "$SA" --port "$SP" --keydir "$LIB_TMP/ka-sstd" --log info \
  2>"$LIB_TMP/sstd-a.log"
poll_until 20 test -S "$SA" || fail "client-side sstd did not start: $(tail -3 "$LIB_TMP/sstd-a.log")"

fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
thr() { ls "/proc/$1/task" 2>/dev/null | wc -l; }
keepers() { local p; for p in $(ip netns pids "$NS_B"); do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = sstshim-keeper ] && echo "$p"; done; }

# B's host key, made once: every server's engine, postgres's and B's sstd have it (one host).
lib_bg in_b "$BUILD/sstd" --foreground --socket "$SB" --port "$SP" --keydir "$LIB_TMP/kb" --log info \
  2>"$LIB_TMP/sstd-b0.log"
poll_until 20 test -s "$LIB_TMP/kb/host_key.pub" || fail "sstd in B made no host key"
kill -TERM "$LIB_BG_PID"
mkdir -p "$LIB_TMP/kp"
cp "$LIB_TMP/kb/host_key" "$LIB_TMP/kb/host_key.pub" "$LIB_TMP/kp/" && chown -R postgres: "$LIB_TMP/kp"
poll_until 5 sh -c "! kill -0 $LIB_BG_PID 2>/dev/null" || fail "sstd in B did not stop"

for CASE in own sstd; do
  if [ "$CASE" = sstd ]; then
    lib_bg in_b "$BUILD/sstd" --foreground --socket "$SB" --port "$SP" --keydir "$LIB_TMP/kb" --allow-uid postgres \
      --log info 2>"$LIB_TMP/sstd-b.log"
    SSTDB=$LIB_BG_PID
    poll_until 20 test -S "$SB" || fail "sstd in B did not start: $(tail -3 "$LIB_TMP/sstd-b.log")"
  fi
  SPID=()
  start_servers
  if [ -z "${BASE:-}" ]; then
    CMODE=tcp
    lib_allow_tcp
    BASE=$(checks)
    lib_block_tcp
    log "kernel TCP:"$'\n'"$BASE"
    in_a timeout 5 /usr/bin/python3 -c "import socket; socket.create_connection(('$IP_B', 8084), timeout=1)" \
      2>/dev/null && fail "TCP is not blocked"
  fi
  for CMODE in engine sstd; do
    got=$(checks)
    [ "$got" = "$BASE" ] || fail "$CASE servers, $CMODE clients: not what kernel TCP gave:"$'\n'"$(diff <(echo "$BASE") <(echo "$got"))"
    log "ok: $CASE servers, $CMODE clients: the same output as over kernel TCP"
  done
  # Hundreds of connections more, then descriptors and threads as before them.
  declare -A F0 T0
  for n in "${!SPID[@]}"; do F0[$n]=$(fds "${SPID[$n]}"); T0[$n]=$(thr "${SPID[$n]}"); done
  CMODE=engine
  for n in redis-server node cluster java asyncio nginx; do
    srv_up $n || continue
    got=$(cli $n /usr/bin/python3 -c "$MANY" "$IP_B" 150 "${PORT[$n]}")
    [ "$got" = "${PORT[$n]}:150" ] || fail "$CASE: 150 connections to $n: $got"
  done
  have postgres && { cli postgres pgbench -h "$IP_B" -U postgres -C -c 2 -t 100 -S postgres >/dev/null 2>&1 ||
    fail "$CASE: pgbench -C -c 2 -t 100 failed"; }
  for n in "${!SPID[@]}"; do
    poll_until 5 test "$(fds "${SPID[$n]}")" -le "${F0[$n]}" ||
      fail "$CASE: $n (pid ${SPID[$n]}) has $(fds "${SPID[$n]}") descriptors after the connections, ${F0[$n]} before"
    [ "$n" = java ] && continue   # the JVM starts and ends compiler threads as it likes
    poll_until 5 test "$(thr "${SPID[$n]}")" -le "${T0[$n]}" ||
      fail "$CASE: $n (pid ${SPID[$n]}) has $(thr "${SPID[$n]}") threads after the connections, ${T0[$n]} before"
  done
  log "ok: $CASE: descriptors and threads unchanged after hundreds of connections"

  # Stop: every server within 3 s of its signal, no keeper, nothing registered.
  have postgres && { in_b su postgres -s /bin/sh -c "pg_ctl -D '$LIB_TMP/pg/data' -w -t 3 stop -m fast" >/dev/null 2>&1 ||
    fail "$CASE: postgres did not stop within 3 s"; }
  for n in "${!SPID[@]}"; do
    case $n in
      postgres) ;;
      asyncio|iperf3|node) kill -INT "${SPID[$n]}" ;;   # as ^C in their terminal
      *) kill -TERM "${SPID[$n]}" ;;
    esac
  done
  for n in "${!SPID[@]}"; do
    poll_until 3 sh -c "! kill -0 ${SPID[$n]} 2>/dev/null || grep -qs '^State:.*Z' /proc/${SPID[$n]}/status" ||
      fail "$CASE: $n (pid ${SPID[$n]}) still runs 3 s after its SIGTERM / SIGINT:" \
        "$(ps -o pid,stat,wchan:24,cmd -p "${SPID[$n]}" | tail -1); $(tail -3 "$LIB_TMP/$CASE-$n.log")"
  done
  poll_until 3 test -z "$(keepers)" || fail "$CASE: keepers left after the servers stopped: $(keepers)"
  if [ "$CASE" = sstd ]; then
    st=$(in_b "$BUILD/sstctl" --socket "$SB" status --json)
    echo "$st" | grep -q '"listeners":\[\]' || fail "sstd still has registrations: $st"
  fi
  log "ok: $CASE: every server stopped at its SIGTERM / SIGINT, no keeper left"

  # Restarted on the same port, a server takes SST streams again.
  if have redis-server; then
    SPID=()
    mv "$LIB_TMP/$CASE-redis-server.log" "$LIB_TMP/$CASE-redis-server.1.log"
    start_redis
    poll_until 20 grep -qs "port 6379 also accepts SST streams" "$LIB_TMP/$CASE-redis-server.log" ||
      fail "$CASE: redis restarted: no SST listener: $(tail -3 "$LIB_TMP/$CASE-redis-server.log")"
    log "$CASE: redis restarted"
    # sstd's channel to the old redis is stale: reset by the new one, the stream goes on a new
    # channel -- not the dead channel of another server with the same key (18 s before).
    for CMODE in engine sstd; do
      t0=$(date +%s%N)
      got=$(cli redis-server redis-cli -h "$IP_B" ping 2>&1)
      ms=$((($(date +%s%N) - t0) / 1000000))
      [ "$got" = PONG ] || fail "$CASE: redis restarted on 6379, $CMODE client: '$got'"
      [ "$ms" -lt 5000 ] || fail "$CASE: redis restarted on 6379, $CMODE client: PONG after $ms ms"
    done
    kill -TERM "${SPID[redis-server]}"
    poll_until 3 sh -c "! kill -0 ${SPID[redis-server]} 2>/dev/null" || fail "$CASE: redis did not stop again"
    log "ok: $CASE: redis restarted on its port is reached over SST again"
  fi
  if [ "$CASE" = sstd ]; then
    kill -TERM "$SSTDB"
    poll_until 5 sh -c "! kill -0 $SSTDB 2>/dev/null" || fail "sstd in B did not stop"
  fi
done
