#!/usr/bin/env bash
# Smoke test of the benchmark tools: sst_perf server and client over loopback (no namespaces),
# a 10 MB bulk upload and 100 request/response transactions; the JSON must parse and the byte
# counts must match (the server confirms what it received; each answer has the asked size), and
# the server's progress counts during the upload must be rate-limited.
# Then the page loader of benchmark 5 against a python HTTP/1.1 server on loopback.
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
# The server's progress counts are rate-limited (one per 256 KiB read or per ms, plus the final
# one), not one per read: at most bytes/256 KiB + duration in ms + 2 of them.
"$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); n=j["count_records"]
bound = j["bytes"] // 262144 + int(j["duration_s"] * 1000) + 2
assert 1 <= n <= bound, (n, bound); print("ok: %d count records (bound %d)" % (n, bound))' \
  "$TMP/bulk.json" || fail "too many (or no) upload count records"

timeout 10 "$PERF" client "127.0.0.1:$port" --rr 100 --size 1000 --json --timeout 8 >"$TMP/rr.json" ||
  fail "rr client failed: $(cat "$TMP/rr.json")"
check_json "$TMP/rr.json" rr transactions=100 bytes=100000 latency_us.n=100
"$PY" -c 'import json,sys; l=json.load(open(sys.argv[1]))["latency_us"]; assert 0 < l["min"] <= l["p50"] <= l["p99"] <= l["max"], l' \
  "$TMP/rr.json" || fail "latency percentiles out of order"
# The page-load client of benchmark 5 (tests/tools/page_load.py): a small synthetic site served
# by an HTTP/1.1 python server on loopback; every mode must load every page with the right byte
# counts and open exactly the connections its model says.
PL="$ROOT/tests/tools/page_load.py"
"$PY" "$PL" gen --dir "$TMP/www" --objects 3,12 --pages 1 >/dev/null || fail "page_load gen failed"
"$PY" "$PL" gen --dir "$TMP/www2" --objects 3,12 --pages 1 >/dev/null || fail "page_load gen (2) failed"
cmp -s "$TMP/www/p12-1/o11.bin" "$TMP/www2/p12-1/o11.bin" && cmp -s "$TMP/www/pages.json" "$TMP/www2/pages.json" ||
  fail "page_load gen is not reproducible with the same seed"
"$PY" -u - "$TMP/www" >"$TMP/http.log" 2>&1 <<'PY' &
import functools, http.server, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, Content-Length
    def log_message(self, *a):
        pass
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
s = Server(("127.0.0.1", 0), functools.partial(Handler, directory=sys.argv[1]))
print("port", s.server_address[1], flush=True)
s.serve_forever()
PY
HTTP=$!
hport=
for _ in $(seq 1 250); do
  hport=$(sed -n 's/^port \([0-9]*\)$/\1/p' "$TMP/http.log")
  [ -n "$hport" ] && break
  kill -0 "$HTTP" 2>/dev/null || fail "http server exited: $(cat "$TMP/http.log")"
  sleep 0.02
done
[ -n "$hport" ] || fail "http server did not report its port"
# page_check MODE PARALLEL KEEP WANT_CONNECTIONS: 2 repetitions of the two pages (3 and 12 objects).
page_check() {
  timeout 60 "$PY" "$PL" load --base "http://127.0.0.1:$hport" --manifest "$TMP/www/pages.json" --mode "$1" \
    --parallel "$2" $3 --reps 2 --timeout 20 >"$TMP/pl.json" || fail "page_load $*: $(cat "$TMP/pl.json")"
  "$PY" - "$TMP/pl.json" "$4" <<'PY' || fail "page_load $* output check failed"
import json, sys
j = json.loads(open(sys.argv[1]).read())
assert j["ok"] is True, j
assert [(p["name"], p["objects"], len(p["load_ms"])) for p in j["pages"]] == [("p3-1", 3, 2), ("p12-1", 12, 2)], j
assert all(t > 0 for p in j["pages"] for t in p["load_ms"]), j
assert j["requests"] == 2 * (4 + 13), j
assert j["connections"] == int(sys.argv[2]), (j["connections"], sys.argv[2])
assert j["cpu_s"]["user"] >= 0 and j["cpu_s"]["sys"] >= 0 and j["cpu_s"]["user"] + j["cpu_s"]["sys"] > 0, j
print("ok: page_load", j["mode"], j["parallel"], j["keep"], j["connections"], "connections")
PY
}
# persistent: the HTML's connection plus one more per object up to 6 (3 objects: 2 more, 12
# objects: 5 more), 2 repetitions; --keep: the warm-up page (3 objects) opened 3, the first
# 12-object page opens the other 3, then none.
page_check persistent 6 "" 18
page_check persistent 6 --keep 3
page_check perconn 6 "" 34          # one per request
page_check perconn 0 "" 34          # all objects at once
kill "$HTTP" 2>/dev/null
wait "$HTTP" 2>/dev/null
echo "bench_smoke: ok"
