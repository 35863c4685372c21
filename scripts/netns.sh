#!/usr/bin/env bash
# Creates, tears down and firewalls the two-namespace test network used by integration tests.
#
#   netns.sh up [--link veth|emu] [linkemu options...]   (re)create the namespaces
#   netns.sh down                                        remove them (and stop linkemu)
#   netns.sh block-tcp                                   drop TCP crossing the link, both sides
#   netns.sh allow-tcp                                   remove that rule
#   netns.sh stats                                       print fresh linkemu counters
#   netns.sh status                                      say what is up
#
#      namespace $NS_A (default sst-a)            namespace $NS_B (default sst-b)
#   +------------------------------+          +------------------------------+
#   | lo                           |          | lo                           |
#   | sst0 10.77.0.1/24 fd77::1/64 |==link====| sst0 10.77.0.2/24 fd77::2/64 |
#   +------------------------------+          +------------------------------+
#   link = a veth pair, or two TUN devices joined by build/tools/linkemu (a process in the
#   root namespace that applies rate, queue, delay, loss and reordering; see docs/linkemu.md).
#
# Environment: NS_A, NS_B (namespace names; tests use unique ones so they can run in
# parallel), BUILD (build dir, default build), LINKEMU (path to the linkemu binary).
# These addresses exist only inside the namespaces created here; nothing leaves them.
# Every subcommand is idempotent: "up" twice rebuilds, "down" with nothing up succeeds.
set -euo pipefail

NS_A=${NS_A:-sst-a}
NS_B=${NS_B:-sst-b}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
LINKEMU=${LINKEMU:-$BUILD/tools/linkemu}
STATE=/run/sstshim-netns/$NS_A+$NS_B
DEV=sst0
NFT_TABLE=sstshim_block

die() { echo "netns.sh: $*" >&2; exit 1; }

ns_exists() { [ -e "/var/run/netns/$1" ]; }

# Polls "$@" every 20 ms for up to $1 seconds; no fixed sleeps.
poll() {
  local limit=$1; shift
  local deadline=$((SECONDS + limit + 1))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.02
  done
}

# The pid of our linkemu, if it is still that process (guards against pid reuse).
emu_pid() {
  local pid
  [ -f "$STATE/pid" ] || return 1
  pid=$(cat "$STATE/pid")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q linkemu || return 1
  echo "$pid"
}

ns_empty() { [ -z "$(ip netns pids "$1" 2>/dev/null)" ]; }

pid_gone() { ! kill -0 "$1" 2>/dev/null; }

cmd_down() {
  local pid
  if pid=$(emu_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    poll 3 pid_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
    poll 2 pid_gone "$pid" || die "linkemu $pid does not exit"
  fi
  local ns pids
  for ns in "$NS_A" "$NS_B"; do
    if ns_exists "$ns"; then
      # Processes left inside would keep the namespace alive after its name is gone.
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      if [ -n "$pids" ]; then
        kill -TERM $pids 2>/dev/null || true
        poll 2 ns_empty "$ns" || kill -KILL $(ip netns pids "$ns" 2>/dev/null) 2>/dev/null || true
      fi
      ip netns del "$ns" 2>/dev/null || true
    fi
    # A namespace whose mount point went stale still has a file; remove it.
    rm -f "/var/run/netns/$ns" 2>/dev/null || true
  done
  rm -rf "$STATE"
}

addr_setup() {
  local ns=$1 v4=$2 v6=$3
  ip -n "$ns" link set "$DEV" mtu 1500
  ip -n "$ns" addr add "$v4/24" dev "$DEV"
  # nodad: the address is usable at once, so tests need not wait for duplicate detection.
  ip -n "$ns" addr add "$v6/64" dev "$DEV" nodad
  ip -n "$ns" link set "$DEV" up
}

carrier_up() { ! ip -n "$1" -o link show "$DEV" | grep -q -e NO-CARRIER -e 'state DOWN'; }

emu_ready() {
  [ -s "$STATE/ready" ] && return 0
  kill -0 "$(cat "$STATE/pid")" 2>/dev/null || { cat "$STATE/linkemu.log" >&2; die "linkemu exited during start-up"; }
  return 1
}

cmd_up() {
  local link=veth
  if [ "${1:-}" = --link ]; then
    [ $# -ge 2 ] || die "--link needs veth or emu"
    link=$2; shift 2
  fi
  case $link in veth|emu) ;; *) die "unknown link type '$link' (veth or emu)" ;; esac
  [ "$link" = emu ] || [ $# -eq 0 ] || die "link options ($*) need --link emu"
  [ "$(id -u)" -eq 0 ] || die "must be root to create namespaces"

  cmd_down
  mkdir -p "$STATE"
  ip netns add "$NS_A"
  ip netns add "$NS_B"
  local ns
  for ns in "$NS_A" "$NS_B"; do
    ip -n "$ns" link set lo up
    # No duplicate detection for link-local addresses either: otherwise the first IPv6
    # packets wait about a second for it.  No router solicitations on a two-host link.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0 \
      net.ipv6.conf.default.router_solicitations=0 net.ipv6.conf.default.accept_ra=0
  done

  if [ "$link" = veth ]; then
    # Created directly inside the namespaces, so the root namespace never sees the name.
    ip link add "$DEV" netns "$NS_A" type veth peer name "$DEV" netns "$NS_B"
  else
    [ -x "$LINKEMU" ] || die "$LINKEMU not built (run: make tests)"
    setsid "$LINKEMU" --ns-a "$NS_A" --ns-b "$NS_B" --tun-a "$DEV" --tun-b "$DEV" \
      --ready-file "$STATE/ready" --stats-file "$STATE/stats" "$@" \
      </dev/null >"$STATE/linkemu.log" 2>&1 &
    echo $! >"$STATE/pid"
    poll 5 emu_ready || die "linkemu not ready after 5 s"
  fi
  addr_setup "$NS_A" 10.77.0.1 fd77::1
  addr_setup "$NS_B" 10.77.0.2 fd77::2
  # The kernel reports carrier asynchronously (linkwatch, up to ~1 s); a packet sent before
  # that is dropped and IPv6 neighbour discovery then waits a full retransmit interval.
  poll 5 carrier_up "$NS_A" || die "$DEV in $NS_A has no carrier"
  poll 5 carrier_up "$NS_B" || die "$DEV in $NS_B has no carrier"
  echo "$link" >"$STATE/link"
}

need_up() {
  ns_exists "$NS_A" && ns_exists "$NS_B" || die "namespaces $NS_A/$NS_B are not up (netns.sh up)"
}

# "table X; delete table X" makes both commands idempotent in one atomic nft transaction.
cmd_block_tcp() {
  need_up
  local ns
  for ns in "$NS_A" "$NS_B"; do
    ip netns exec "$ns" nft -f - <<EOF
table inet $NFT_TABLE
delete table inet $NFT_TABLE
table inet $NFT_TABLE {
  chain output {
    type filter hook output priority 0; policy accept;
    oifname "$DEV" meta l4proto tcp counter drop
  }
  chain input {
    type filter hook input priority 0; policy accept;
    iifname "$DEV" meta l4proto tcp counter drop
  }
}
EOF
  done
}

cmd_allow_tcp() {
  need_up
  local ns
  for ns in "$NS_A" "$NS_B"; do
    printf 'table inet %s\ndelete table inet %s\n' "$NFT_TABLE" "$NFT_TABLE" |
      ip netns exec "$ns" nft -f -
  done
}

stats_gen() { sed -n 's/^linkemu gen=\([0-9]*\)$/\1/p' "$STATE/stats" 2>/dev/null || true; }

cmd_stats() {
  local pid old
  pid=$(emu_pid) || die "no linkemu running for $NS_A/$NS_B"
  old=$(stats_gen)
  kill -USR1 "$pid"
  poll 3 eval '[ "$(stats_gen)" != "$old" ]' || die "linkemu did not answer SIGUSR1"
  grep '^linkemu stats' "$STATE/stats"
}

cmd_status() {
  if ns_exists "$NS_A" && ns_exists "$NS_B"; then
    echo "up: $NS_A $NS_B link $(cat "$STATE/link" 2>/dev/null || echo unknown)"
  else
    echo "down: $NS_A $NS_B"
  fi
}

sub=${1:-}
[ $# -gt 0 ] && shift
case $sub in
  up) cmd_up "$@" ;;
  down) cmd_down ;;
  block-tcp) cmd_block_tcp ;;
  allow-tcp) cmd_allow_tcp ;;
  stats) cmd_stats ;;
  status) cmd_status ;;
  *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
