#!/usr/bin/env bash
# The example client and server (examples/, docs/api.md) talk over real UDP on loopback:
# 1 MB of random bytes echoed byte-exact over IPv4 and IPv6, each peer seen by the server.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
TMP=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$TMP"; }
trap cleanup EXIT
fail() { echo "FAIL: examples: $*" >&2; exit 1; }
for b in sst_echo_server sst_echo_client; do [ -x "$BUILD/$b" ] || fail "$BUILD/$b not built"; done
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::",0)); print(s.getsockname()[1])')

"$BUILD/sst_echo_server" "[::]:$port" >"$TMP/server.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do grep -q listening "$TMP/server.log" && break; sleep 0.1; done
grep -q listening "$TMP/server.log" || fail "server did not start: $(cat "$TMP/server.log")"

head -c 1000000 /dev/urandom >"$TMP/in"
for addr in "127.0.0.1:$port" "[::1]:$port"; do
  timeout 20 "$BUILD/sst_echo_client" "$addr" <"$TMP/in" >"$TMP/out" 2>"$TMP/client.err" ||
    fail "client to $addr failed: $(cat "$TMP/client.err")"
  cmp -s "$TMP/in" "$TMP/out" || fail "echo over $addr differs ($(stat -c %s "$TMP/out") bytes back)"
  echo "ok: 1 MB echoed byte-exact via $addr"
done
grep -q "stream from 127.0.0.1" "$TMP/server.log" || fail "server did not see the IPv4 peer"
grep -q "stream from \[::1\]" "$TMP/server.log" || fail "server did not see the IPv6 peer"
echo "PASS"
