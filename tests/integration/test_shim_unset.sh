#!/usr/bin/env bash
# Shim loaded but SST_PEERS unset (or not matching): programs behave exactly as without it,
# the shim prints nothing and leaves every socket a kernel TCP socket.
source "$(dirname "$0")/../tools/shim_common.sh"
start_http
start_echo

# curl, byte-exact, silent.
shim -- curl -sS -o "$TMP/out" "http://127.0.0.1:$HTTP_PORT/f1k" 2>"$TMP/err"
cmp "$TMP/out" "$TMP/www/f1k" || fail "curl body differs"
[ ! -s "$TMP/err" ] || { cat "$TMP/err"; fail "shim printed something while inactive"; }
pass "curl unchanged"

# python urllib, byte-exact.
shim -- "$PY" -c "import urllib.request,sys; sys.stdout.buffer.write(urllib.request.urlopen('http://127.0.0.1:$HTTP_PORT/f10m').read())" >"$TMP/out"
cmp "$TMP/out" "$TMP/www/f10m" || fail "urllib body differs"
pass "python urllib unchanged"

# nc with half-close against the echo server.
printf 'hello-nc' | shim -- nc -N 127.0.0.1 "$ECHO_PORT" >"$TMP/out"
[ "$(cat "$TMP/out")" = "hello-nc" ] || fail "nc echo: '$(cat "$TMP/out")'"
pass "nc unchanged"

# The probe sees a kernel TCP socket, the same answers as without the preload.
for mode in block nonblock; do
  "$PROBE" probe 127.0.0.1 "$ECHO_PORT" $mode >"$TMP/plain"
  shim -- "$PROBE" probe 127.0.0.1 "$ECHO_PORT" $mode >"$TMP/shim"
  diff "$TMP/plain" "$TMP/shim" || fail "probe ($mode) differs under the inactive shim"
  expect_line "$TMP/shim" raw_domain=inet
  shim SST_PEERS=10.0.0.0/8 SST_LOG=debug -- "$PROBE" probe 127.0.0.1 "$ECHO_PORT" $mode >"$TMP/shim2"
  diff "$TMP/plain" "$TMP/shim2" || fail "probe ($mode) differs with a non-matching SST_PEERS"
done
pass "probe unchanged (unset and non-matching SST_PEERS)"

# SST_MODE=off with a matching SST_PEERS: inactive.
shim SST_PEERS=127.0.0.1 SST_MODE=off -- "$PROBE" probe 127.0.0.1 "$ECHO_PORT" block >"$TMP/shim"
expect_line "$TMP/shim" raw_domain=inet
pass "SST_MODE=off inactive"

# The preloaded library exports its hooks and nothing else: libsst inside it is private, so it
# cannot clash with a program's own symbols.
leaked=$(nm -D --defined-only "$SHIM" | awk '$2 ~ /^[TDBW]$/ {print $3}' | grep -E '^(sst_|shim_|event_|sodium_)' || true)
[ -z "$leaked" ] || fail "libsstshim.so exports internal symbols: $(echo $leaked | head -c 300)"
nm -D --defined-only "$SHIM" | awk '{print $3}' | grep -qx connect || fail "connect hook not exported"
pass "only the hooks are exported"

# Connections the shim does not carry cost no system call: with a non-matching SST_PEERS (the
# shim active), bash opening and closing N connections (/dev/tcp: socket, fcntl, connect,
# close) makes, per connection, exactly the calls it makes without the preload.  The difference
# between N=40 and N=20 cancels the start-up (the loader mapping the library, the shim's init).
command -v strace >/dev/null 2>&1 || fail "needs strace (scripts/deps.sh)"
conn_calls() {   # conn_calls N [strace -E VAR=value...]: "name calls" lines, sorted
  local n=$1 out="$TMP/strace.$BASHPID"
  shift
  strace -f -qq -c -U name,calls -o "$out" "$@" bash -c \
    "for ((i = 0; i < $n; i++)); do exec 3<>/dev/tcp/127.0.0.1/$ECHO_PORT; exec 3>&-; done"
  awk 'NR > 2 && $1 != "total" && $1 !~ /^-/ {print $1, $2}' "$out" | sort
}
per_conn() {   # per_conn [strace -E...]: calls(40) - calls(20), one "name delta" line each
  join -a1 -a2 -e 0 -o 0,1.2,2.2 <(conn_calls 40 "$@") <(conn_calls 20 "$@") |
    awk '$2 != $3 {print $1, $2 - $3}'
}
per_conn >"$TMP/calls.plain"
per_conn -E LD_PRELOAD="$SHIM" -E SST_PEERS=10.0.0.0/8 >"$TMP/calls.shim"
grep -q "^connect 20$" "$TMP/calls.plain" || { cat "$TMP/calls.plain"; fail "strace did not count the connects"; }
diff "$TMP/calls.plain" "$TMP/calls.shim" || fail "uncarried connections make extra system calls under the shim"
pass "no extra system call per uncarried connection ($(tr '\n' ' ' <"$TMP/calls.shim"))"
