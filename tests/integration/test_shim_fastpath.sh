#!/usr/bin/env bash
# A connection the shim does not carry stays on the hooks' pass-through path: with the shim
# active (SST_PEERS set, not matching), every call an event-loop client and server make per
# connection (tests/tools/shim_conn_loop.c: socket, fcntl, setsockopt, connect, epoll_ctl,
# accept4, getsockopt, close) runs only the exported hook itself -- no out-of-line slow path,
# no helper, no lock (docs/shim.md, "The pass-through path").  Not a timing test: callgrind
# reports which of the shim's functions executed, and those run once per connection are the
# ones whose counts grow between a run with N and one with 2N connections.  Positive control:
# registering the socket with epoll before connect() must be recorded (the shim cannot know
# yet that the connection will not be carried), and the check must see that slow path.
source "$(dirname "$0")/../tools/shim_common.sh"
command -v valgrind >/dev/null 2>&1 || fail "needs valgrind (scripts/deps.sh)"
LOOP="$BUILD/tools/shim_conn_loop"
[ -x "$LOOP" ] || fail "build first: $LOOP"

# shim_funcs N [args]: "function instructions" for every function in the shim's sources.
shim_funcs() {
  local n=$1 out="$TMP/cg.$1.${2:-plain}"
  shift
  env LD_PRELOAD="$SHIM" SST_PEERS="${PEERS:-10.0.0.0/8}" SST_HELPER=off \
    valgrind -q --tool=callgrind --callgrind-out-file="$out" "$LOOP" "$n" "$@" >"$out.txt" ||
    fail "shim_conn_loop $n $* failed under callgrind"
  grep -qx "ok $n" "$out.txt" || fail "shim_conn_loop $n: $(cat "$out.txt")"
  callgrind_annotate --threshold=100 --auto=no --tree=none "$out" |
    awk 'match($0, /shim\/[a-z_0-9]+\.[ch]:[A-Za-z0-9_.]+/) {
           f = substr($0, RSTART, RLENGTH); sub(/.*:/, "", f); n = $1; gsub(/,/, "", n); sum[f] += n }
         END { for (f in sum) print f, sum[f] }' | sort
}

# per_conn [args]: the shim functions whose instruction count grows with the connections.
per_conn() {
  shim_funcs 20 "$@" >"$TMP/funcs.20"
  shim_funcs 40 "$@" >"$TMP/funcs.40"
  join -a2 -e 0 -o 0,1.2,2.2 "$TMP/funcs.20" "$TMP/funcs.40" | awk '$3 > $2 {print $1}'
}

# The hooks' own symbols: what a pass-through may execute (inlined helpers are attributed to
# the header they come from, under the hook's name).
ALLOWED="^(socket|connect|close|accept|accept4|epoll_ctl|setsockopt|getsockopt|fcntl|fcntl64|write|writev|send|sendto|sendmsg)$"

per_conn >"$TMP/fast"
for h in socket connect close accept4 epoll_ctl setsockopt getsockopt fcntl; do
  grep -qx "$h" "$TMP/fast" || { cat "$TMP/fast"; fail "hook $h did not run per connection"; }
done
slow=$(grep -Ev "$ALLOWED" "$TMP/fast" || true)
[ -z "$slow" ] || fail "uncarried connections left the pass-through path: $(echo $slow)"
pass "uncarried connections run only the hooks' pass-through ($(echo $(cat "$TMP/fast")))"

per_conn --epoll-before-connect >"$TMP/early"
slow=$(grep -Ev "$ALLOWED" "$TMP/early" || true)
[ -n "$slow" ] || { cat "$TMP/early"; fail "an epoll registration before connect() was not recorded"; }
pass "positive control: registration before connect() takes the recording path ($(echo $slow))"

# The inline IPv4 test is one masked compare (the bits all entries share); an address that passes
# it goes to connect_general, which walks the entries: here the loopback address itself with
# another port.  It must still connect over kernel TCP (shim_conn_loop checks its echoes), and the
# check must see that path.
PEERS=127.0.0.1:9 per_conn >"$TMP/port"
grep -qx connect_general "$TMP/port" || { cat "$TMP/port"; fail "a destination sharing the entries' bits did not take connect_general"; }
pass "positive control: same address, other port: connect_general walks the entries, kernel TCP connects"
