#!/usr/bin/env bash
# The negative cache, with a real destination that lacks SST (nothing on 127.0.0.1's UDP port
# 8661: the HELLO draws an ICMP port unreachable).  auto: the first connection races SST against
# kernel TCP and ends up on TCP through the same socketpair, after EINPROGRESS; the host is then
# cached as without SST, and the next connection skips the socketpair (plain kernel TCP).
# strict: refused, the first time after the attempt, later straight from the cache.
source "$(dirname "$0")/../tools/shim_common.sh"
start_echo
E=(SST_PEERS=127.0.0.1 SST_LOG=debug SST_LOG_FILE="$TMP/log")

cat >"$TMP/neg.py" <<PYEOF
import asyncio, socket, sys
sys.path.insert(0, "$ROOT/tests/tools")
from shim_rawdomain import raw_domain

async def once(expect):
    r, w = await asyncio.open_connection("127.0.0.1", $ECHO_PORT)
    kind = raw_domain(w.get_extra_info("socket").fileno())
    assert kind == expect, (kind, expect)
    w.write(b"x" * 100000)
    w.write_eof()
    assert await r.read() == b"x" * 100000
    w.close()

asyncio.run(once("unix"))   # SST tried, no SST there, TCP over the same socketpair
import time
for _ in range(100):        # the ICMP answer is handled on the shim's event thread
    if "cached, later connects use TCP" in open("$TMP/log").read(): break
    time.sleep(0.02)
asyncio.run(once("inet"))   # cached: plain kernel TCP
print("negcache-ok")
PYEOF
shim "${E[@]}" -- "$PY" "$TMP/neg.py" >"$TMP/out" || { cat "$TMP/out" "$TMP/log"; fail "auto fallback"; }
expect_line "$TMP/out" negcache-ok
grep -q "carrying connection over sst" "$TMP/log" || fail "sst was not tried"
grep -q "no SST at 127.0.0.1:8661" "$TMP/log" || fail "the missing SST endpoint was not noticed"
grep -q "destination cached as without SST, plain TCP" "$TMP/log" || fail "negative cache not used"
pass "auto: fallback after EINPROGRESS, then the negative cache skips the socketpair"

shim "${E[@]}" SST_MODE=strict -- "$PROBE" probe 127.0.0.1 "$ECHO_PORT" nonblock >"$TMP/p"
for l in connect=EINPROGRESS poll=1 so_error=ECONNREFUSED raw_domain=unix; do expect_line "$TMP/p" "$l"; done
shim "${E[@]}" SST_MODE=strict -- "$PROBE" probe 127.0.0.1 "$ECHO_PORT" block >"$TMP/p"
expect_line "$TMP/p" connect=ECONNREFUSED
shim "${E[@]}" SST_MODE=strict -- "$PY" -c "
import socket
for i in range(2):
    try:
        socket.create_connection(('127.0.0.1', $ECHO_PORT))
        raise SystemExit('strict connection %d succeeded' % i)
    except ConnectionRefusedError:
        pass
print('strict-refused-twice')
" >"$TMP/out"
expect_line "$TMP/out" strict-refused-twice
grep -q "seen without SST: connect refused" "$TMP/log" || fail "cached destination not refused in strict mode"
pass "strict: an SST attempt without answer is refused (ECONNREFUSED via SO_ERROR)"
