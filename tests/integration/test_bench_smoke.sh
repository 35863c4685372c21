#!/usr/bin/env bash
# Smoke test of the benchmark tool: sst_perf server and client over loopback (no namespaces),
# a 10 MB bulk upload and 100 request/response transactions; the JSON must parse and the byte
# counts must match (the server confirms what it received; each answer has the asked size).
#
#   sst_perf client --(UDP, 127.0.0.1)--> sst_perf server --bind 127.0.0.1:0
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
PERF=$BUILD/tools/sst_perf
PY=/usr/bin/python3
TMP=$(mktemp -d /tmp/sst-bench-smoke.XXXXXX)
SRV=

cleanup() {
  [ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: bench_smoke: $*" >&2; [ -f "$TMP/server.log" ] && cat "$TMP/server.log" >&2; exit 1; }

[ -x "$PERF" ] || fail "$PERF not built (make tests)"
[ -x "$PY" ] || fail "$PY missing"

"$PERF" server --bind 127.0.0.1:0 2>"$TMP/server.log" &
SRV=$!
# The server prints its bound address once it listens; poll for it (no fixed sleep).
port=
for _ in $(seq 1 250); do
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/server.log")
  [ -n "$port" ] && break
  kill -0 "$SRV" 2>/dev/null || fail "server exited"
  sleep 0.02
done
[ -n "$port" ] || fail "server did not report its port"

# check_json FILE MODE KEY=VALUE...: the file is one JSON object with ok, bytes_match and the
# listed numeric fields equal to the given values.
check_json() {
  "$PY" - "$@" <<'PY' || fail "JSON check failed for $1"
import json, sys
path, mode, *want = sys.argv[1:]
with open(path) as f:
    text = f.read()
lines = [l for l in text.splitlines() if l.strip()]
assert len(lines) == 1, f"expected one JSON line, got {len(lines)}: {text!r}"
j = json.loads(lines[0])
assert j["mode"] == mode, j
assert j["ok"] is True, j
assert j["bytes_match"] is True, j
for kv in want:
    k, v = kv.split("=")
    node = j
    for part in k.split("."):
        node = node[part]
    assert str(node) == v, f"{k}: want {v}, got {node}"
assert j["cpu_s"]["user"] + j["cpu_s"]["sys"] >= 0
print(f"ok: {path}: {lines[0][:160]}")
PY
}

timeout 10 "$PERF" client "127.0.0.1:$port" --bytes 10000000 --json --timeout 8 >"$TMP/bulk.json" ||
  fail "bulk client failed: $(cat "$TMP/bulk.json")"
check_json "$TMP/bulk.json" bulk bytes=10000000 bytes_confirmed=10000000 streams=1
"$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["goodput_bps"] > 0 and j["duration_s"] > 0' \
  "$TMP/bulk.json" || fail "bulk goodput/duration not positive"

timeout 10 "$PERF" client "127.0.0.1:$port" --rr 100 --size 1000 --json --timeout 8 >"$TMP/rr.json" ||
  fail "rr client failed: $(cat "$TMP/rr.json")"
check_json "$TMP/rr.json" rr transactions=100 bytes=100000 latency_us.n=100
"$PY" -c 'import json,sys; l=json.load(open(sys.argv[1]))["latency_us"]; assert 0 < l["min"] <= l["p50"] <= l["p99"] <= l["max"], l' \
  "$TMP/rr.json" || fail "latency percentiles out of order"
echo "bench_smoke: ok"
