#!/usr/bin/env bash
# sstd basics: sstctl without a daemon, daemonizing, WARM + STATUS, CAPS for a host without sstd,
# HOST given by name, SO_PEERCRED refusal of a disallowed uid, FORGET, and a clean SIGTERM shutdown.
#
#   $NS_A  sst0 10.77.0.1 ===== veth ===== sst0 10.77.0.2  $NS_B
#          sstd (daemonized)                     sstd --foreground
#          sstctl, sstctl as nobody
. "$(dirname "$0")/lib.sh"
lib_init helper_basic
need_tool setpriv /usr/bin/python3
for b in sstd sstctl; do
  [ -x "$BUILD/$b" ] || make -C "$LIB_ROOT" --no-print-directory BUILD="$BUILD" "$BUILD/$b" >/dev/null 2>&1 || true
  [ -x "$BUILD/$b" ] || env_fail "$BUILD/$b not built (make tests)"
done
SSTD=$BUILD/sstd
CTL=$BUILD/sstctl
# Other users must be able to reach the sockets' directory for the SO_PEERCRED test.
chmod 711 "$LIB_TMP"
RUN=$LIB_TMP/run
mkdir -m 755 "$RUN"
SA=$RUN/a.sock
SB=$RUN/b.sock
lib_net_up

# json FILE EXPR: evaluates a Python expression over the parsed JSON in FILE as `d`.
json() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

log "sstctl without a daemon: non-zero exit, message names the socket"
out=$("$CTL" --socket "$SA" status 2>&1) && fail "sstctl status succeeded without a daemon"
grep -q "$SA" <<<"$out" || fail "error does not name the socket path: $out"
grep -qi "is sstd running" <<<"$out" || fail "error does not say what to do: $out"
log "ok: $out"

log "start sstd in A (daemonized) and B (foreground)"
in_a "$SSTD" --socket "$SA" --keydir "$LIB_TMP/keys-a" --log info --log-file "$LIB_TMP/a.log" \
  --handshake-timeout 2 --idle 30 || fail "sstd in A did not start (exit $?)"
[ -S "$SA" ] || fail "sstd returned before its socket existed"
PID_A=$(cat "$RUN/a.pid") || fail "no pid file $RUN/a.pid"
kill -0 "$PID_A" || fail "daemon pid $PID_A not running"
# Root: 0660 (root group may connect, SO_PEERCRED still decides); other users get 0600.
assert_eq 660 "$(stat -c %a "$SA")" "control socket mode of a root daemon"
lib_bg in_b "$SSTD" --foreground --socket "$SB" --keydir "$LIB_TMP/keys-b" --log info 2>"$LIB_TMP/b.log"
poll_until 20 test -S "$SB" || fail "sstd in B did not create $SB"

log "WARM B, then STATUS --json shows one established channel with an RTT"
"$CTL" --socket "$SA" warm "$IP_B" >"$LIB_TMP/warm.out" || fail "sstctl warm failed: $(cat "$LIB_TMP/warm.out")"
"$CTL" --socket "$SA" status --json >"$LIB_TMP/st.json" || fail "status --json failed"
assert_eq 1 "$(json "$LIB_TMP/st.json" 'len(d["channels"])')" "channels in A"
assert_eq "$IP_B:8661" "$(json "$LIB_TMP/st.json" 'd["channels"][0]["peer"]')" "channel peer"
assert_eq established "$(json "$LIB_TMP/st.json" 'd["channels"][0]["state"]')" "channel state"
assert_eq strong "$(json "$LIB_TMP/st.json" 'd["channels"][0]["security"]')" "security mode"
assert_range 0.001 50 "$(json "$LIB_TMP/st.json" 'd["channels"][0]["rtt_ms"]')" "rtt_ms on veth"
assert_eq True "$(json "$LIB_TMP/st.json" 'd["channels"][0]["warm"]')" "channel is warm"
assert_eq 1 "$(json "$LIB_TMP/st.json" 'd["host"]["handshakes_completed"]')" "handshakes completed"
assert_eq sst "$(json "$LIB_TMP/st.json" '[c["sst"] for c in d["caps"] if c["host"]=="'"$IP_B"':8661"][0]')" \
  "capability cache: B speaks SST"
"$CTL" --socket "$SA" warm "$IP_B" >/dev/null || fail "second warm failed"
"$CTL" --socket "$SA" status --json >"$LIB_TMP/st2.json" || fail "status --json failed"
assert_eq 1 "$(json "$LIB_TMP/st2.json" 'd["host"]["handshakes_initiated"]')" "second WARM reuses the channel"
"$CTL" --socket "$SB" status --json >"$LIB_TMP/stb.json" || fail "status in B failed"
assert_eq False "$(json "$LIB_TMP/stb.json" 'd["channels"][0]["initiator"]')" "B sees an accepted channel"
"$CTL" --socket "$SA" status | grep -q "established" || fail "human status does not list the channel"

log "CAPS: a host without sstd is recorded as no-SST"
if "$CTL" --socket "$SA" warm "$IP_B:9999" 2>"$LIB_TMP/warm-fail.err"; then
  fail "warm to a port without sstd succeeded"
fi
# Nothing listens on B's UDP port 9999: B's kernel answers ICMP port unreachable, which ends the
# handshake at once (no 10 s timeout).
grep -q no-sst "$LIB_TMP/warm-fail.err" || fail "warm failure is not reported as no-sst: $(cat "$LIB_TMP/warm-fail.err")"
"$CTL" --socket "$SA" caps --json "$IP_B:9999" >"$LIB_TMP/caps.json" || fail "caps failed"
assert_eq no-sst "$(json "$LIB_TMP/caps.json" 'd["sst"]')" "capability of $IP_B:9999"
assert_range 500 600 "$(json "$LIB_TMP/caps.json" 'd["expires_in_s"]')" "no-SST entry expiry (s)"
"$CTL" --socket "$SA" caps --json "$IP_B" >"$LIB_TMP/caps2.json" || fail "caps failed"
assert_eq sst "$(json "$LIB_TMP/caps2.json" 'd["sst"]')" "capability of $IP_B (default port)"

log "HOST by name: sstctl resolves it (here through a private /etc/hosts: a mount namespace)"
printf '%s peer-b.sst.test\n' "$IP_B" >"$LIB_TMP/hosts"
by_name() { unshare -m sh -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"' sh "$LIB_TMP/hosts" "$@"; }
by_name "$CTL" --socket "$SA" caps --json peer-b.sst.test >"$LIB_TMP/caps3.json" ||
  fail "caps by name failed: $(cat "$LIB_TMP/caps3.json")"
assert_eq "$IP_B:8661" "$(json "$LIB_TMP/caps3.json" 'd["host"]')" "host asked about for peer-b.sst.test"
assert_eq sst "$(json "$LIB_TMP/caps3.json" 'd["sst"]')" "capability of peer-b.sst.test"
by_name "$CTL" --socket "$SA" caps --json peer-b.sst.test:9999 >"$LIB_TMP/caps4.json" ||
  fail "caps by name:port failed"
assert_eq "$IP_B:9999" "$(json "$LIB_TMP/caps4.json" 'd["host"]')" "host asked about for peer-b.sst.test:9999"
if out=$(by_name "$CTL" --socket "$SA" ping no-such-host.sst.test 2>&1); then
  fail "ping of an unresolvable name succeeded: $out"
fi
grep -q "cannot resolve 'no-such-host.sst.test'" <<<"$out" || fail "unresolvable name: unclear error: $out"
log "ok: names resolve in sstctl; $out"

log "SO_PEERCRED: nobody is refused, and cannot even open the 0660 socket"
if out=$(setpriv --reuid nobody --regid nogroup --clear-groups "$CTL" --socket "$SA" status 2>&1); then
  fail "nobody could use a private sstd: $out"
fi
grep -q "Permission denied" <<<"$out" || fail "unexpected error for nobody: $out"
log "ok: $out"
SC=$RUN/c.sock
in_a "$SSTD" --socket "$SC" --port 8662 --keydir "$LIB_TMP/keys-a" --allow-uid 4242 --log-file "$LIB_TMP/c.log" ||
  fail "sstd with --allow-uid did not start"
assert_eq 666 "$(stat -c %a "$SC")" "socket mode with --allow-uid"
if out=$(setpriv --reuid nobody --regid nogroup --clear-groups "$CTL" --socket "$SC" status 2>&1); then
  fail "uid nobody accepted though only 4242 is allowed: $out"
fi
grep -q "permission" <<<"$out" || fail "refusal does not say permission: $out"
grep -q "uid 65534" <<<"$out" || fail "refusal does not name the uid: $out"
log "ok: $out"
kill -TERM "$(cat "$RUN/c.pid")"
SD=$RUN/d.sock
in_a "$SSTD" --socket "$SD" --port 8663 --keydir "$LIB_TMP/keys-a" --allow-uid nobody --log-file "$LIB_TMP/d.log" ||
  fail "sstd with --allow-uid nobody did not start"
setpriv --reuid nobody --regid nogroup --clear-groups "$CTL" --socket "$SD" status >/dev/null ||
  fail "allowed uid nobody was refused"
log "ok: --allow-uid nobody lets nobody in"
kill -TERM "$(cat "$RUN/d.pid")"

log "started with stdin and stdout closed, sstd still logs to its --log-file after daemonizing"
# (A CI runner or supervisor may start it so: its log file took descriptor 0, and daemonizing's
# dup2 of /dev/null over 0-2 replaced it: the log stopped at start-up, no 'exited cleanly'.)
SE=$RUN/e.sock
in_a "$SSTD" --socket "$SE" --port 8664 --keydir "$LIB_TMP/keys-a" --log info --log-file "$LIB_TMP/e.log" <&- >&- ||
  fail "sstd with stdin and stdout closed did not start"
"$CTL" --socket "$SE" status >/dev/null || fail "sstd started with stdin closed does not answer"
PID_E=$(cat "$RUN/e.pid") || fail "no pid file $RUN/e.pid"
kill -TERM "$PID_E"
gone_e() { ! kill -0 "$PID_E" 2>/dev/null; }
poll_until 5 gone_e || fail "sstd e still running 5 s after SIGTERM"
grep -q "exited cleanly" "$LIB_TMP/e.log" || fail "sstd started with stdin closed lost its log: $(tail -3 "$LIB_TMP/e.log")"
log "ok: its log goes on after daemonizing ($(wc -l <"$LIB_TMP/e.log") lines, 'exited cleanly' last)"

log "FORGET removes B's pin from A's known_hosts"
grep -q "^$IP_B " "$LIB_TMP/keys-a/known_hosts" || fail "B was not pinned on first use"
"$CTL" --socket "$SA" forget --json "$IP_B" >"$LIB_TMP/forget.json" || fail "forget failed"
assert_eq 1 "$(json "$LIB_TMP/forget.json" 'd["removed"]')" "pins removed"
grep -q "^$IP_B " "$LIB_TMP/keys-a/known_hosts" && fail "pin still present after forget"

log "SIGTERM: A closes its channel cleanly and exits"
kill -TERM "$PID_A"
gone() { ! kill -0 "$PID_A" 2>/dev/null; }
poll_until 5 gone || fail "sstd in A still running 5 s after SIGTERM"
grep -q "exited cleanly" "$LIB_TMP/a.log" || fail "A's log lacks a clean exit: $(tail -5 "$LIB_TMP/a.log")"
[ ! -e "$SA" ] || fail "socket $SA left behind"
[ ! -e "$RUN/a.pid" ] || fail "pid file left behind"
# B learns of the close from the peer (graceful close: DOWN with no error), not from a timeout.
b_closed() { grep -q "channel to $IP_A:8661 down: closed" "$LIB_TMP/b.log"; }
poll_until 5 b_closed || fail "B did not see a graceful close: $(tail -5 "$LIB_TMP/b.log")"
"$CTL" --socket "$SB" status --json >"$LIB_TMP/stb2.json" || fail "status in B failed"
assert_eq 0 "$(json "$LIB_TMP/stb2.json" 'len(d["channels"])')" "channels left in B"
log "PASS"
