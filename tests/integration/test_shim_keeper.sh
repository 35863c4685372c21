#!/usr/bin/env bash
# The keeper (docs/shim.md §5): connections of the in-process engine go on after the process
# image that pumps them ends while another process still holds them.
#
#   $NS_A 10.77.0.1 ======= veth ======= 10.77.0.2 $NS_B
#   programs under the shim                sstd --forward 9000,9001,2222:
#   (SST_HELPER=off, strict, TCP blocked)  9000 echo, 9001 "N\n" -> N bytes, 2222 sshd
#
# 1. fork, then the parent exit()s: the child echoes 1 MB over the inherited connection.
#    1b: the same for a connection relayed through sstd in A (the first to a host sstd does not
#    know yet: the shim pumps it to sstd's socket, shim/pump.c).
# 2. daemon(3) (libc's ends the parent with an internal _exit no hook sees): the same.
# 3. exec with a descriptor that survives it: bash `exec 3<>/dev/tcp/...; echo N >&3;
#    exec wc -c <&3` prints N (kernel TCP does; the shim printed at most what the socketpair
#    held at the exec: nobody pumped fd 3 afterwards).
# 4. OpenSSH's `ssh -f -N -L` (daemon() after authentication): the tunnel carries 1 MB; and
#    `ControlPersist` (the first ssh forks the master and exits when its session ends): three
#    runs share one connection (before: the master died with the first ssh, and every run
#    opened its own).
# 5. A server under SST_LISTEN that listens, then goes to the background: nginx with its
#    default `daemon on` (fork, the parent exit()s): the keeper goes on listening for SST
#    streams and bridges them to the daemon's listening socket; nginx's workers report A's
#    address; once nginx is stopped (its listening socket gone, the kernel's table says) the
#    keeper ends.  nginx started again while its UDP port is still held for a moment (as the
#    previous run's keeper may, for up to a second) gets its SST listener once the port is
#    free: SST_PORT taken is tried again for a few seconds (before: TCP only).
#    (sshd without -D calls daemon() before it listens: nothing to keep.)
# Before the keeper every one of them lost the connection (or the SST listener) with the first
# process.  Each time the keeper's pid comes from the shim's log; it must be named
# sstshim-keeper (comm and command line) and end once its connections and listeners have.
# 5b. A python server that listens, forks and exits (python closes its copy of the listener as
#    it exits: before, that close ended the SST listener although the child still listens); the
#    child sets TCP_USER_TIMEOUT on the connection it accepts, which reaches the keeper's bridge
#    through the mailbox (server_opts.c): the frozen client's connection ends 1.5-6 s later.
# 6. SST_KEEPER=0: the old way (3 prints less than N), and a bad SST_KEEPER value is refused.
. "$(dirname "$0")/lib.sh"
lib_init shim_keeper
need_tool /usr/bin/python3 ssh ssh-keygen curl nginx
[ -x /usr/sbin/sshd ] || env_fail "needs /usr/sbin/sshd (openssh-server)"
SHIM=$BUILD/libsstshim.so
[ -f "$SHIM" ] || env_fail "$SHIM not built"
[ -x "$BUILD/sstd" ] || env_fail "$BUILD/sstd not built"

lib_net_up
lib_block_tcp

lib_bg in_b /usr/bin/python3 -c '
import socket, threading
def echo(c):
    while True:
        b = c.recv(65536)
        if not b:
            break
        c.sendall(b)
    c.close()
def count(c):
    f = c.makefile("rb")
    n = int(f.readline())
    c.sendall(b"x" * n)
    c.close()
def serve(port, fn):
    s = socket.create_server(("127.0.0.1", port))
    while True:
        c, _ = s.accept()
        threading.Thread(target=fn, args=(c,), daemon=True).start()
threading.Thread(target=serve, args=(9001, count), daemon=True).start()
serve(9000, echo)' 2>"$LIB_TMP/srv.err"
wait_for_port "$NS_B" 9000
wait_for_port "$NS_B" 9001

lib_sshd_conf 127.0.0.1 "AllowTcpForwarding yes"
lib_bg in_b /usr/sbin/sshd -D -e -f "$LIB_TMP/sshd_config" 2>"$LIB_TMP/sshd.log"
wait_for_port "$NS_B" 2222

lib_bg in_b "$BUILD/sstd" --foreground --socket "$LIB_TMP/b.sock" --keydir "$LIB_TMP/kb" \
  --forward 9000,9001,2222 2>"$LIB_TMP/sstd.log"
poll_until 20 test -S "$LIB_TMP/b.sock" || fail "sstd did not start"

SHIMENV=(LD_PRELOAD="$SHIM" SST_PEERS="$IP_B" SST_MODE=strict SST_HELPER=off
         SST_KEYDIR="$LIB_TMP/ka" SST_LOG=info)

# keeper_of LOG: the keeper's pid the shim logged (empty if none).
keeper_of() { sed -n 's/.*go on in keeper pid \([0-9]*\).*/\1/p' "$1" | tail -1; }
# keeper_ends PID WHAT: the keeper must be named so, and gone within 10 s once its connections
# ended.
keeper_ends() {
  [ "$(cat /proc/"$1"/comm 2>/dev/null)" = sstshim-keeper ] || [ ! -d /proc/"$1" ] ||
    fail "$2: keeper $1 is named '$(cat /proc/"$1"/comm)'"
  if [ -r /proc/"$1"/cmdline ]; then
    cmd=$(tr '\0' ' ' </proc/"$1"/cmdline | sed 's/ *$//')
    [ -z "$cmd" ] || [ "$cmd" = sstshim-keeper ] || fail "$2: keeper $1's command line is '$cmd'"
  fi
  poll_until 10 keeper_gone "$1" || fail "$2: keeper $1 still runs after the connection ended"
}
# Gone, or a zombie waiting for init to reap it (it was reparented at once).
keeper_gone() { ! grep -q '^State:[[:space:]]*[^Z]' /proc/"$1"/status 2>/dev/null; }

# The child's part of 1 and 2: 1 MB echoed over the inherited connection once its parent is
# gone; "ok N" or the error to $OUT.
CHILD='
def child_echo(s, parent, out):
    import hashlib, os, time
    for _ in range(500):                       # the parent (the engine'"'"'s process) is gone
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            break
        time.sleep(0.01)
    data = os.urandom(1 << 20)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
        res = "ok %d" % len(got) if got == data else "bad %d" % len(got)
    except OSError as e:
        res = "%s" % e
    open(out, "w").write(res + "\n")
'

# detach_case TAG WHAT DETACH [ENV...]: a shimmed python (ENV added) connects to B:9000 and
# checks the echo, then DETACH (python) hands the connection to another process, which runs
# child_echo(s, parent, out), and ends this one.  That process must echo 1 MB once this one is
# gone, through a keeper the shim logged (its pid in $KEEPER, the log in $LIB_TMP/shimTAG.log),
# which must end afterwards.
detach_case() {
  local tag=$1 what=$2 detach=$3 out=$LIB_TMP/out$1 log=$LIB_TMP/shim$1.log
  shift 3
  rm -f "$out"
  in_a timeout 30 env "${SHIMENV[@]}" "$@" /usr/bin/python3 -c "
import ctypes, os, socket, sys
$CHILD
out = '$out'
s = socket.create_connection(('$IP_B', 9000))
s.sendall(b'p'); assert s.recv(1) == b'p'
parent = os.getpid()
$detach" 2>"$log" || fail "$what: $(tail -3 "$log")"
  KEEPER=$(keeper_of "$log")
  [ -n "$KEEPER" ] || fail "$what: no keeper logged: $(tail -3 "$log")"
  poll_until 20 test -s "$out" || fail "$what: the process holding the connection wrote no result"
  [ "$(cat "$out")" = "ok 1048576" ] || fail "$what: the process holding the connection got '$(cat "$out")'"
  keeper_ends "$KEEPER" "$what"
}
FORK_EXIT='
if os.fork() == 0:
    child_echo(s, parent, out)
    os._exit(0)
sys.exit(0)'

log "1. fork, then the parent exits: the child goes on"
detach_case 1 "fork case" "$FORK_EXIT"
log "ok: the forked child echoed 1 MB after its parent's exit (keeper $KEEPER, gone afterwards)"

log "1b. the same for a connection relayed through sstd (the shim's kernel-socket pump)"
lib_bg in_a "$BUILD/sstd" --foreground --socket "$LIB_TMP/a.sock" --keydir "$LIB_TMP/ka" 2>"$LIB_TMP/sstd-a.log"
poll_until 20 test -S "$LIB_TMP/a.sock" || fail "sstd in A did not start"
detach_case 1b "relayed case" "$FORK_EXIT" SST_LOG=debug SST_HELPER="$LIB_TMP/a.sock"
grep -q "handing the connection to the helper" "$LIB_TMP/shim1b.log" ||
  fail "relayed case: not relayed through sstd: $(tail -3 "$LIB_TMP/shim1b.log")"
log "ok: the forked child's relayed connection echoed 1 MB after its parent's exit (keeper $KEEPER)"

log "2. daemon(): the daemon child goes on"
detach_case 2 "daemon case" '
assert ctypes.CDLL(None, use_errno=True).daemon(1, 1) == 0
child_echo(s, parent, out)'
log "ok: the daemon echoed 1 MB after daemon() (keeper $KEEPER, gone afterwards)"

log "3. exec with a descriptor that survives it"
got=$(in_a timeout 30 env "${SHIMENV[@]}" bash -c \
  "exec 3<>/dev/tcp/$IP_B/9001; echo 1000000 >&3; exec wc -c <&3" 2>"$LIB_TMP/shim3.log")
[ "$got" = 1000000 ] || fail "exec case: wc read '$got' bytes, want 1000000: $(tail -3 "$LIB_TMP/shim3.log")"
k3=$(keeper_of "$LIB_TMP/shim3.log")
[ -n "$k3" ] || fail "exec case: no keeper logged"
keeper_ends "$k3" "exec case"
log "ok: the exec'd wc read all 1000000 bytes (keeper $k3, gone afterwards)"

log "4. ssh -f -N -L: the tunnel outlives ssh's daemon()"
in_a timeout 30 env "${SHIMENV[@]}" ssh -f -N -L 127.0.0.1:7001:127.0.0.1:9000 \
  -i "$LIB_TMP/userkey" -p 2222 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
  -o BatchMode=yes -o ExitOnForwardFailure=yes -o LogLevel=ERROR root@"$IP_B" 2>"$LIB_TMP/shim4.log" ||
  fail "ssh -f failed: $(tail -5 "$LIB_TMP/shim4.log")"
k4=$(keeper_of "$LIB_TMP/shim4.log")
[ -n "$k4" ] || fail "ssh -f: no keeper logged: $(tail -3 "$LIB_TMP/shim4.log")"
sshpid=$(pgrep -f -- "-i $LIB_TMP/userkey -p 2222" | head -1)
[ -n "$sshpid" ] || fail "ssh -f: no ssh left in the background"
res=$(in_a timeout 20 /usr/bin/python3 -c "
import os, socket, time
time.sleep(0.5)
data = os.urandom(1 << 20)
s = socket.create_connection(('127.0.0.1', 7001))
s.sendall(data); s.shutdown(socket.SHUT_WR)
got = b''
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
print('ok' if got == data else 'bad %d' % len(got))" 2>&1)
[ "$res" = ok ] || fail "ssh -f tunnel: '$res': $(tail -3 "$LIB_TMP/shim4.log")"
kill "$sshpid"
keeper_ends "$k4" "ssh -f"
log "ok: 1 MB through ssh -f's tunnel (keeper $k4, gone after ssh was stopped)"

log "4b. ssh ControlPersist: the master forked by the first ssh outlives it"
CP=(-i "$LIB_TMP/userkey" -p 2222 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
    -o BatchMode=yes -o LogLevel=ERROR -o ControlMaster=auto -o ControlPersist=60
    -o "ControlPath=$LIB_TMP/cm-%C")
ports=()
for i in 1 2 3; do
  got=$(in_a timeout 20 env "${SHIMENV[@]}" ssh "${CP[@]}" root@"$IP_B" 'echo $SSH_CONNECTION' \
        2>>"$LIB_TMP/shim4b.log") || fail "ssh ControlPersist run $i: $(tail -3 "$LIB_TMP/shim4b.log")"
  ports+=("$(echo "$got" | cut -d' ' -f2)")
done
[ "${ports[0]}" = "${ports[1]}" ] && [ "${ports[1]}" = "${ports[2]}" ] ||
  fail "ssh ControlPersist: three runs, connections from ports ${ports[*]} (the master died with the first ssh)"
k4b=$(keeper_of "$LIB_TMP/shim4b.log")
[ -n "$k4b" ] || fail "ssh ControlPersist: no keeper logged"
in_a ssh "${CP[@]}" -O exit root@"$IP_B" 2>/dev/null
keeper_ends "$k4b" "ssh ControlPersist"
log "ok: three ssh runs over one persisted master connection (keeper $k4b, gone after -O exit)"

log "5. a server that goes to the background after listen(): nginx (daemon on)"
lib_nginx_conf on '$remote_addr'
SRV=(LD_PRELOAD="$SHIM" SST_KEYDIR="$LIB_TMP/kb" SST_LOG=info)   # B's host key: sstd's
in_b env "${SRV[@]}" SST_LISTEN=8090 SST_PORT=8676 SST_LOG_FILE="$LIB_TMP/b-nginx.log" \
  nginx -c "$LIB_TMP/nginx.conf" -e "$LIB_TMP/nginx-error.log" || fail "nginx did not start"
wait_for_port "$NS_B" 8090
kn=$(keeper_of "$LIB_TMP/b-nginx.log")
[ -n "$kn" ] || fail "nginx: no keeper logged: $(tail -3 "$LIB_TMP/b-nginx.log")"
for i in 1 2 3; do
  got=$(in_a timeout 15 env "${SHIMENV[@]}" SST_PORT=8676 curl -sS --max-time 10 "http://$IP_B:8090/" \
        2>"$LIB_TMP/curl.err")
  [ "$got" = "$IP_A" ] || fail "nginx (daemon on) over SST: '$got', want $IP_A: $(tail -3 "$LIB_TMP/curl.err")"
done
master=$(cat "$LIB_TMP/nginx.pid")
kill "$master"
poll_until 10 sh -c "! kill -0 $master 2>/dev/null" || fail "nginx did not stop"
log "ok: nginx (daemon on) served 3 requests over SST, \$remote_addr $IP_A (keeper $kn)"
keeper_ends "$kn" "nginx"
# Started again while UDP 8676 is still held for a moment (the previous run's keeper notices
# its listening socket is gone within a second; here a process holds the port for 1.5 s):
# the listener tries the port again, in the keeper once nginx's first process has exited.
in_b /usr/bin/python3 -c '
import socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("::", 8676))
open("'"$LIB_TMP/held"'", "w").close()
time.sleep(1.5)' &
holder=$!
poll_until 10 test -e "$LIB_TMP/held" || fail "could not hold UDP 8676"
in_b env "${SRV[@]}" SST_LISTEN=8090 SST_PORT=8676 SST_LOG_FILE="$LIB_TMP/b-nginx2.log" \
  nginx -c "$LIB_TMP/nginx.conf" -e "$LIB_TMP/nginx-error.log" || fail "nginx did not start again"
wait "$holder"
wait_for_port "$NS_B" 8090
grep -q "cannot bind UDP port 8676 (Address already in use)" "$LIB_TMP/b-nginx2.log" ||
  fail "nginx again: the UDP port was not found taken: $(tail -3 "$LIB_TMP/b-nginx2.log")"
kn2=$(keeper_of "$LIB_TMP/b-nginx2.log")
[ -n "$kn2" ] || fail "nginx again: no keeper logged: $(tail -3 "$LIB_TMP/b-nginx2.log")"
poll_until 10 grep -q "port 8090 also accepts SST streams" "$LIB_TMP/b-nginx2.log" ||
  fail "nginx again: no SST listener: $(tail -3 "$LIB_TMP/b-nginx2.log")"
got=$(in_a timeout 15 env "${SHIMENV[@]}" SST_PORT=8676 curl -sS --max-time 10 "http://$IP_B:8090/" \
      2>"$LIB_TMP/curl.err")
[ "$got" = "$IP_A" ] || fail "nginx started again, over SST: '$got', want $IP_A: $(tail -3 "$LIB_TMP/curl.err")"
kill "$(cat "$LIB_TMP/nginx.pid")"
keeper_ends "$kn2" "nginx again"
log "ok: nginx started while its UDP port was held is reached over SST once it is free (keepers $kn and $kn2 gone after nginx stopped)"


log "5b. options a daemon's child sets on an accepted socket reach the keeper's bridge"
# A python server listens, forks and exits (the keeper takes the listener); the child accepts,
# sets TCP_USER_TIMEOUT 2000 (its options go to the mailbox, which the keeper holds), and writes
# to a client frozen with SIGSTOP: its read must fail 1.5-6 s later (without the option, only
# the liveness probe would end it, after ~150 s).
in_b env "${SRV[@]}" SST_LISTEN=9300 SST_PORT=8678 SST_LOG_FILE="$LIB_TMP/b-fut.log" /usr/bin/python3 -c '
import os, socket, sys, time
s = socket.create_server(("0.0.0.0", 9300))
if os.fork() != 0:
    sys.exit(0)
c, _ = s.accept()
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 2000)
c.sendall(b"ok\n")
assert c.recv(3) == b"go\n"
open("'"$LIB_TMP/fut.ready"'", "w").close()   # the client stops itself now
time.sleep(0.5)
t = time.monotonic()
try:
    c.sendall(b"x" * 1000)
    r = c.recv(10)
    res = "read %r" % r
except OSError as e:
    res = "error %d" % e.errno
open("'"$LIB_TMP/fut.out"'", "w").write("%s %.2f\n" % (res, time.monotonic() - t))' ||
  fail "the forking server did not start"
wait_for_port "$NS_B" 9300
kf=$(keeper_of "$LIB_TMP/b-fut.log")
[ -n "$kf" ] || fail "forking server: no keeper logged: $(tail -3 "$LIB_TMP/b-fut.log")"
in_a env "${SHIMENV[@]}" SST_PORT=8678 /usr/bin/python3 -c '
import os, signal, socket, time
c = socket.create_connection(("'"$IP_B"'", 9300))
assert c.recv(3) == b"ok\n"
c.sendall(b"go\n")
while not os.path.exists("'"$LIB_TMP/fut.ready"'"):   # its engine must carry "go" first
    time.sleep(0.01)
os.kill(os.getpid(), signal.SIGSTOP)' 2>"$LIB_TMP/fut-client.log" &
client=$!
poll_until 15 test -s "$LIB_TMP/fut.out" || fail "forking server: no result after 15 s (the option did not reach the keeper's bridge): $(cat "$LIB_TMP/b-fut.log" "$LIB_TMP/fut-client.log" | tail -8)"
kill -9 "$client" 2>/dev/null
read -r what err secs <"$LIB_TMP/fut.out"
[ "$what $err" = "error 104" ] || fail "forking server: '$(cat "$LIB_TMP/fut.out")', want ECONNRESET (104)"
awk -v t="$secs" 'BEGIN { exit !(t >= 1.5 && t <= 6.0) }' || fail "forking server: failed after $secs s, want 1.5-6"
keeper_ends "$kf" "forking server"
log "ok: the child's TCP_USER_TIMEOUT ended the frozen client's connection after $secs s (keeper $kf)"

log "6. SST_KEEPER=0: the old way; a bad value is refused"
got=$(in_a timeout 30 env "${SHIMENV[@]}" SST_KEEPER=0 bash -c \
  "exec 3<>/dev/tcp/$IP_B/9001; echo 1000000 >&3; exec wc -c <&3" 2>"$LIB_TMP/shim5.log")
# What reached the socketpair before the exec is all wc gets (a socket buffer at most).
[ -n "$got" ] && [ "$got" -lt 1000000 ] || fail "SST_KEEPER=0: wc read '$got' bytes, want fewer than 1000000 (no keeper)"
grep -q "keeper pid" "$LIB_TMP/shim5.log" && fail "SST_KEEPER=0 started a keeper"
msg=$(in_a timeout 10 env "${SHIMENV[@]}" SST_KEEPER=yes /bin/true 2>&1)
case $msg in *"SST_KEEPER: 'yes' is not 1 or 0"*) ;; *) fail "SST_KEEPER=yes: '$msg'" ;; esac
log "ok: no keeper with SST_KEEPER=0; SST_KEEPER=yes refused"
log "ok: fork, daemon(), exec, ssh -f and nginx in the background keep their connections and listener through the keeper"
