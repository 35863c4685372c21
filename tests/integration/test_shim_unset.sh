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
