#!/usr/bin/env bash
# SST_MODE=strict proves SST is in use: a selected destination without SST (nothing on its UDP
# port 8661: the ICMP port unreachable ends the attempt at once) is refused with ECONNREFUSED
# (documented in docs/shim.md); other destinations are untouched.
source "$(dirname "$0")/../tools/shim_common.sh"
start_http
start_echo
E=(SST_PEERS=127.0.0.1 SST_MODE=strict)

for mode in block nonblock; do
  shim "${E[@]}" -- "$PROBE" probe 127.0.0.1 "$ECHO_PORT" $mode >"$TMP/p" 2>"$TMP/err"
  if [ $mode = block ]; then
    expect_line "$TMP/p" connect=ECONNREFUSED
  else  # as kernel TCP: the attempt runs, then POLLOUT with SO_ERROR
    for l in connect=EINPROGRESS poll=1 so_error=ECONNREFUSED; do expect_line "$TMP/p" "$l"; done
  fi
  grep -q "SST_MODE=strict and SST unusable (SST peer does not speak SST" "$TMP/err" ||
    { cat "$TMP/err"; fail "no reason logged"; }
done
pass "probe refused with ECONNREFUSED and a logged reason"

rc=0
shim "${E[@]}" -- curl -sS -o /dev/null "http://127.0.0.1:$HTTP_PORT/f1k" 2>/dev/null || rc=$?
[ "$rc" -eq 7 ] || fail "curl exit $rc, expected 7 (couldn't connect)"
shim "${E[@]}" -- "$PY" -c "
import socket
try:
    socket.create_connection(('127.0.0.1', $ECHO_PORT))
except ConnectionRefusedError:
    print('refused')
" >"$TMP/out" 2>/dev/null
expect_line "$TMP/out" refused
pass "curl and python see a refused connection"

# Not selected: strict changes nothing.
shim SST_PEERS=10.0.0.0/8 SST_MODE=strict -- "$PROBE" probe 127.0.0.1 "$ECHO_PORT" block >"$TMP/p"
expect_line "$TMP/p" connect=OK
expect_line "$TMP/p" raw_domain=inet
pass "strict leaves unselected destinations alone"
