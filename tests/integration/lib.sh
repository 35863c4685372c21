# Shared helpers for integration tests: source it, call lib_init, then lib_net_up.
#
#   namespace $NS_A ("a")                          namespace $NS_B ("b")
#   +-------------------------+                    +-------------------------+
#   | lo 127.0.0.1            |    veth pair, or   | lo 127.0.0.1            |
#   | sst0 10.77.0.1/24       |====================| sst0 10.77.0.2/24       |
#   |      fd77::1/64         |  TUN + linkemu     |      fd77::2/64         |
#   +-------------------------+  (root namespace)  +-------------------------+
#
# Each test gets its own namespace names (prefix "st<pid>-<random>"), so tests can run in
# parallel; the addresses are the same in every test because they never leave the pair.
# lib_init installs an EXIT/INT/TERM trap that removes the namespaces, stops linkemu and
# kills every background process started with lib_bg.  A wrong environment (not root, no
# netns, no /dev/net/tun, missing tool) FAILS the test with a message: it never passes silently.
# shellcheck shell=bash

set -uo pipefail

LIB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$LIB_ROOT/$BUILD ;; esac
export BUILD
NETNS_SH=$LIB_ROOT/scripts/netns.sh
IP_A=10.77.0.1
IP_B=10.77.0.2
IP6_A=fd77::1
IP6_B=fd77::2
LIB_BG_PIDS=()
LIB_TMP=
LIB_NAME=

log() { printf '[%s %s] %s\n' "${LIB_NAME:-test}" "$(date +%T)" "$*"; }

# Fails the test: prints the message and the linkemu log (if any), then exits 1 (the trap cleans up).
fail() {
  echo "FAIL: ${LIB_NAME:-test}: $*" >&2
  if [ -n "${NS_A:-}" ] && [ -f "/run/sstshim-netns/$NS_A+$NS_B/linkemu.log" ]; then
    echo "--- linkemu log" >&2
    tail -20 "/run/sstshim-netns/$NS_A+$NS_B/linkemu.log" >&2
  fi
  exit 1
}

# The environment is wrong: fail loudly, never skip to a pass.
env_fail() { echo "ENVIRONMENT: ${LIB_NAME:-test}: $* -- test FAILED, not skipped" >&2; exit 1; }

need_tool() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || env_fail "needs '$t' (scripts/deps.sh install)"
  done
}

# Checks root, namespaces, TUN and the tools every network test uses.
lib_require_env() {
  [ "$(id -u)" -eq 0 ] || env_fail "must run as root (network namespaces)"
  need_tool ip nft ping timeout
  [ -c /dev/net/tun ] || env_fail "/dev/net/tun missing (no TUN support)"
  local probe="${LIB_PREFIX}-probe"
  ip netns add "$probe" 2>/dev/null || env_fail "cannot create network namespaces"
  ip netns del "$probe"
}

lib_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local pid
  for pid in "${LIB_BG_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${LIB_BG_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "${NS_A:-}" ]; then
    "$NETNS_SH" down >/dev/null 2>&1 || echo "warning: netns.sh down failed for $NS_A" >&2
  fi
  [ -n "$LIB_TMP" ] && rm -rf "$LIB_TMP"
  exit "$rc"
}

# lib_init NAME: unique namespace names, a temp dir ($LIB_TMP), the cleanup trap, env checks.
lib_init() {
  LIB_NAME=$1
  LIB_PREFIX="st$$-$RANDOM"
  export NS_A="$LIB_PREFIX-a" NS_B="$LIB_PREFIX-b"
  LIB_TMP=$(mktemp -d "/tmp/sst-$LIB_NAME.XXXXXX")
  trap lib_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  lib_require_env
}

# Makes sure build/tools/linkemu exists, building it if needed.
lib_need_linkemu() {
  if [ ! -x "$BUILD/tools/linkemu" ]; then
    make -C "$LIB_ROOT" --no-print-directory BUILD="$BUILD" "$BUILD/tools/linkemu" >/dev/null 2>&1 || true
  fi
  [ -x "$BUILD/tools/linkemu" ] || env_fail "$BUILD/tools/linkemu not built (make tests)"
}

# lib_net_up [--link veth|emu] [linkemu options...]: (re)creates this test's namespace pair.
lib_net_up() {
  [ "${1:-}" = --link ] && [ "${2:-}" = emu ] && lib_need_linkemu
  "$NETNS_SH" up "$@" || fail "netns.sh up $* failed"
}
lib_net_down() { "$NETNS_SH" down || fail "netns.sh down failed"; }
lib_block_tcp() { "$NETNS_SH" block-tcp || fail "netns.sh block-tcp failed"; }
lib_allow_tcp() { "$NETNS_SH" allow-tcp || fail "netns.sh allow-tcp failed"; }
# Prints the current linkemu counter lines (one per direction, key=value).
lib_emu_stats() { "$NETNS_SH" stats; }
# emu_stat DIR KEY: one counter from lib_emu_stats, e.g. emu_stat ab drop_loss
emu_stat() {
  lib_emu_stats | sed -n "s/^linkemu stats dir=$1 .*\\b$2=\\([0-9]*\\).*/\\1/p"
}

# LIB_ASK_PY: python that connects to HOST PORT (its arguments) and prints the server's first
# line ("EOF" if none), or the errno name of the failure (ECONNREFUSED, ...).
# shellcheck disable=SC2034  # used by the scripts that source this file
LIB_ASK_PY='
import errno, socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    print(s.makefile().readline().strip() or "EOF")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))'

# lib_nginx_http DAEMON HTTP: $LIB_TMP/nginx.conf for an nginx with a master and two workers
# (`daemon DAEMON`), pid in $LIB_TMP/nginx.pid, errors in $LIB_TMP/nginx-error.log, no access
# log, temporary files under $LIB_TMP/ntmp, and HTTP (directives and servers) in its http block.
lib_nginx_http() {
  mkdir -p "$LIB_TMP/ntmp"
  cat >"$LIB_TMP/nginx.conf" <<CONF
worker_processes 2;
daemon $1;
master_process on;
user root;
pid $LIB_TMP/nginx.pid;
error_log $LIB_TMP/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $LIB_TMP/ntmp/body;
  proxy_temp_path $LIB_TMP/ntmp/proxy;
  fastcgi_temp_path $LIB_TMP/ntmp/fastcgi;
  uwsgi_temp_path $LIB_TMP/ntmp/uwsgi;
  scgi_temp_path $LIB_TMP/ntmp/scgi;
$2
}
CONF
}

# lib_nginx_conf DAEMON BODY: lib_nginx_http's nginx, no keep-alive, whose server on port 8090
# answers every request with BODY and a newline (nginx variables allowed, e.g. '$remote_addr').
lib_nginx_conf() {
  lib_nginx_http "$1" "  server {
    listen 8090;
    keepalive_timeout 0;
    location / { return 200 \"$2\\n\"; }
  }"
}

# lib_sshd_conf ADDRESS [LINE...]: a host key and a user key ($LIB_TMP/userkey, authorized for
# root) and $LIB_TMP/sshd_config for an sshd on ADDRESS port 2222 (pid in $LIB_TMP/sshd.pid),
# public keys only, plus the sshd_config LINEs given.
lib_sshd_conf() {
  local addr=$1
  shift
  ssh-keygen -q -t ed25519 -N '' -f "$LIB_TMP/hostkey" || env_fail "ssh-keygen failed"
  ssh-keygen -q -t ed25519 -N '' -f "$LIB_TMP/userkey" || env_fail "ssh-keygen failed"
  cp "$LIB_TMP/userkey.pub" "$LIB_TMP/authorized_keys"
  cat >"$LIB_TMP/sshd_config" <<CONF
Port 2222
ListenAddress $addr
HostKey $LIB_TMP/hostkey
PidFile $LIB_TMP/sshd.pid
AuthorizedKeysFile $LIB_TMP/authorized_keys
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
CONF
  local line
  for line in "$@"; do
    echo "$line" >>"$LIB_TMP/sshd_config"
  done
  mkdir -p /run/sshd
}

in_a() { ip netns exec "$NS_A" "$@"; }
in_b() { ip netns exec "$NS_B" "$@"; }

# lib_bg CMD...: runs CMD in the background, killed by the cleanup trap.  $LIB_BG_PID is its pid.
lib_bg() {
  # in_a/in_b are functions; a backgrounded function is a bash subshell whose kill would
  # orphan the real process, so expand them to the ip command that execs it.
  case $1 in
    in_a) shift; set -- ip netns exec "$NS_A" "$@" ;;
    in_b) shift; set -- ip netns exec "$NS_B" "$@" ;;
  esac
  "$@" &
  LIB_BG_PID=$!
  LIB_BG_PIDS+=("$LIB_BG_PID")
}

# poll_until SECONDS CMD...: retries CMD every 20 ms until it succeeds; 1 on timeout.
# A start-up wait (a daemon's socket, a server's port file: `poll_until 20 test -S ...`) gives
# 20 s: it only bounds a failure, and a loaded 2-core machine took over 5 s to start python.
poll_until() {
  local limit=$1; shift
  local deadline=$((SECONDS + limit + 1))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.02
  done
}

port_listening() {
  local ns=$1 proto=$2 port=$3 flag=-ltn
  [ "$proto" = udp ] && flag=-lun
  ip netns exec "$ns" ss -H "$flag" "sport = :$port" 2>/dev/null | grep -q .
}

# port_free NS PROTO PORT: nothing listens on PORT in NS (poll_until's negation of the above).
port_free() { ! port_listening "$@"; }

# wait_for_port NS PORT [tcp|udp] [SECONDS]: waits until something listens on PORT in NS.
wait_for_port() {
  local ns=$1 port=$2 proto=${3:-tcp} limit=${4:-10}
  poll_until "$limit" port_listening "$ns" "$proto" "$port" ||
    fail "nothing listening on $proto port $port in $ns after ${limit}s"
}

assert_eq() {
  local want=$1 got=$2 what=${3:-value}
  [ "$want" = "$got" ] || fail "$what: expected '$want', got '$got'"
  log "ok: $what = $got"
}

# assert_range LO HI VALUE WHAT: LO <= VALUE <= HI, decimals allowed.
assert_range() {
  local lo=$1 hi=$2 v=$3 what=${4:-value}
  [[ $v =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]] || fail "$what: '$v' is not a number"
  awk -v lo="$lo" -v hi="$hi" -v v="$v" 'BEGIN { exit !(v >= lo && v <= hi) }' ||
    fail "$what: $v not within [$lo, $hi]"
  log "ok: $what = $v (within [$lo, $hi])"
}

# Kernel TCP congestion control.  net.ipv4.tcp_allowed_congestion_control is global (root
# namespace) and limits what unprivileged sockets may pick; tcp_congestion_control is per
# namespace.  lib_allow_cc adds names to the allowed list (never removes any).
lib_allow_cc() {
  local cc have avail
  have=$(cat /proc/sys/net/ipv4/tcp_allowed_congestion_control)
  for cc in "$@"; do
    avail=$(cat /proc/sys/net/ipv4/tcp_available_congestion_control)
    if ! grep -qw "$cc" <<<"$avail"; then
      modprobe "tcp_$cc" 2>/dev/null || true
      avail=$(cat /proc/sys/net/ipv4/tcp_available_congestion_control)
      grep -qw "$cc" <<<"$avail" || env_fail "congestion control '$cc' not available ($avail)"
    fi
    grep -qw "$cc" <<<"$have" || have="$have $cc"
  done
  sysctl -qw net.ipv4.tcp_allowed_congestion_control="$have" ||
    env_fail "cannot set tcp_allowed_congestion_control"
}

# lib_set_cc NS CC: the default TCP congestion control inside namespace NS.
lib_set_cc() {
  local ns=$1 cc=$2
  lib_allow_cc "$cc"
  ip netns exec "$ns" sysctl -qw net.ipv4.tcp_congestion_control="$cc" ||
    fail "cannot select $cc in $ns"
  assert_eq "$cc" "$(ip netns exec "$ns" cat /proc/sys/net/ipv4/tcp_congestion_control)" "cc in $ns"
}
