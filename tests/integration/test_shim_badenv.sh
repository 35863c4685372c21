#!/usr/bin/env bash
# A bad SST_* value is reported clearly (stderr, or SST_LOG_FILE) and the shim stays inert:
# the program still works, on plain kernel TCP.
source "$(dirname "$0")/../tools/shim_common.sh"
start_echo

check_bad() {
  local var=$1 val=$2
  shim SST_PEERS=127.0.0.1 "$var=$val" -- "$PROBE" probe 127.0.0.1 "$ECHO_PORT" block >"$TMP/p" 2>"$TMP/err"
  grep -q "error: $var: .*the shim stays inactive" "$TMP/err" || { cat "$TMP/err"; fail "$var=$val not reported"; }
  expect_line "$TMP/p" connect=OK
  expect_line "$TMP/p" raw_domain=inet
  expect_line "$TMP/p" echo=ping-half-close
}
check_bad SST_MODE fast
check_bad SST_PORT 70000
check_bad SST_HELPER relative
check_bad SST_LISTEN yes
check_bad SST_SECURITY weak
check_bad SST_CC vegas
check_bad SST_LOG loud
check_bad SST_PEERS 10.0.0.0/40
check_bad SST_PEERS "1.2.3.4:http"
check_bad SST_LOG_FILE /nonexistent-dir/log
pass "bad values reported on stderr, shim inert, program unaffected"

# With a usable SST_LOG_FILE the report goes there, not to stderr.
shim SST_PEERS=127.0.0.1 SST_MODE=bogus SST_LOG_FILE="$TMP/log" -- "$PROBE" probe 127.0.0.1 "$ECHO_PORT" block >"$TMP/p" 2>"$TMP/err"
grep -q "error: SST_MODE: 'bogus' is not one of auto|strict|off" "$TMP/log" || fail "not in the log file"
[ ! -s "$TMP/err" ] || fail "stderr should stay clean when SST_LOG_FILE works"
expect_line "$TMP/p" raw_domain=inet
pass "report goes to SST_LOG_FILE"

# An unresolvable hostname is reported and dropped; the other entries still apply.
shim SST_PEERS=no-such-host.invalid,127.0.0.1 -- "$PROBE" probe 127.0.0.1 "$ECHO_PORT" block >"$TMP/p" 2>"$TMP/err"
grep -q "cannot resolve 'no-such-host.invalid'" "$TMP/err" || { cat "$TMP/err"; fail "no resolve warning"; }
expect_line "$TMP/p" raw_domain=unix
# A resolvable one is expanded at init.
shim SST_PEERS=localhost:"$ECHO_PORT" -- "$PROBE" probe 127.0.0.1 "$ECHO_PORT" block >"$TMP/p"
expect_line "$TMP/p" raw_domain=unix
expect_line "$TMP/p" echo=ping-half-close
pass "hostnames in SST_PEERS"

# Names are resolved at the first connect() that needs them, not at start: a process that
# connects nowhere never asks the resolver (under `sstshim bash` every ls and grep did, and
# waited for a slow DNS server) and says nothing about a name it never needed.
command -v strace >/dev/null || fail "needs strace (scripts/deps.sh install)"
strace -f -qq -E LD_PRELOAD="$SHIM" -E SST_PEERS=localhost,no-such-host.invalid -e trace=openat,connect \
  -o "$TMP/st" /bin/true 2>"$TMP/err" || fail "/bin/true under the shim failed"
if grep -E '/etc/(hosts|resolv.conf|nsswitch.conf|host.conf)|nscd|sin_port=htons\(53\)' "$TMP/st"; then
  fail "a process that made no connection asked the resolver"
fi
[ ! -s "$TMP/err" ] || { cat "$TMP/err"; fail "a process that made no connection printed: $(cat "$TMP/err")"; }
grep -q 'openat(.*libsstshim' "$TMP/st" || fail "the shim was not loaded (strace -E)"
pass "no resolver at start: names wait for the first connect()"
