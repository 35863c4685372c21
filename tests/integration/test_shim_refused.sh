#!/usr/bin/env bash
# A refused port gives ECONNREFUSED through the shim, exactly as with kernel TCP: blocking
# connect fails with it, non-blocking connect reports it once through SO_ERROR.
source "$(dirname "$0")/../tools/shim_common.sh"
PORT=$(free_port)
E=(SST_PEERS=127.0.0.1 SST_MODE=auto)

shim "${E[@]}" -- "$PROBE" probe 127.0.0.1 "$PORT" block >"$TMP/p"
expect_line "$TMP/p" connect=ECONNREFUSED
expect_line "$TMP/p" raw_domain=unix
"$PROBE" probe 127.0.0.1 "$PORT" block >"$TMP/plain"
expect_line "$TMP/plain" connect=ECONNREFUSED
pass "blocking connect: ECONNREFUSED, as kernel TCP"

shim "${E[@]}" -- "$PROBE" probe 127.0.0.1 "$PORT" nonblock >"$TMP/p"
"$PROBE" probe 127.0.0.1 "$PORT" nonblock >"$TMP/plain"
for l in connect=EINPROGRESS poll=1 so_error=ECONNREFUSED so_error_again=OK peer=ENOTCONN; do
  expect_line "$TMP/p" "$l"
  expect_line "$TMP/plain" "$l"
done
expect_line "$TMP/p" raw_domain=unix
# connect() again after the failure: whatever this kernel answers (ECONNABORTED on Linux 6).
[ "$(grep ^reconnect= "$TMP/p")" = "$(grep ^reconnect= "$TMP/plain")" ] || fail "second connect differs from kernel TCP"
pass "non-blocking connect: EINPROGRESS, POLLOUT, SO_ERROR=ECONNREFUSED once, as kernel TCP"

rc=0
shim "${E[@]}" -- curl -sS -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null || rc=$?
[ "$rc" -eq 7 ] || fail "curl exit $rc, expected 7"
shim "${E[@]}" -- "$PY" -c "
import asyncio
async def main():
    try:
        await asyncio.open_connection('127.0.0.1', $PORT)
    except ConnectionRefusedError:
        print('refused')
asyncio.run(main())
" >"$TMP/out"
expect_line "$TMP/out" refused
pass "curl and asyncio see the refusal"
