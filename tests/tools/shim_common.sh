# Sourced by tests/integration/test_shim_*.sh: paths, loopback servers, assertions.
#
#   [ program under LD_PRELOAD=libsstshim.so ] --TCP or socketpair+pump--> [ server on 127.0.0.1 ]
#
# Servers run without the preload; only the program under test is preloaded.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
SHIM="$BUILD/libsstshim.so"
PROBE="$BUILD/tools/shim_probe"
PY=/usr/bin/python3
SERVERS="$ROOT/tests/tools/shim_servers.py"
# The caller's own settings must not leak into the tests.
unset LD_PRELOAD SST_PEERS SST_MODE SST_PORT SST_HELPER SST_LISTEN SST_SECURITY SST_KEYDIR SST_LOG SST_LOG_FILE
[ -f "$SHIM" ] && [ -x "$PROBE" ] || { echo "build first: make lib tests ($SHIM, $PROBE)"; exit 1; }

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "ok: $*"; }

# Waits (polling, no fixed sleep) for a file to appear; prints its content.
wait_file() {
  local f=$1 i
  for i in $(seq 1 200); do [ -s "$f" ] && { cat "$f"; return 0; }; sleep 0.05; done
  fail "timed out waiting for $f"
}

start_echo() {
  env -u LD_PRELOAD "$PY" "$SERVERS" echo "$TMP/echo.port" & PIDS+=($!)
  ECHO_PORT=$(wait_file "$TMP/echo.port")
}

start_echo6() {
  env -u LD_PRELOAD "$PY" "$SERVERS" echo "$TMP/echo6.port" ::1 & PIDS+=($!)
  ECHO6_PORT=$(wait_file "$TMP/echo6.port")
}

# Serves $TMP/www with files f0 (0 B), f1k (1 KiB), f10m (10 MiB).
start_http() {
  mkdir -p "$TMP/www"
  : >"$TMP/www/f0"
  head -c 1024 /dev/urandom >"$TMP/www/f1k"
  head -c $((10 * 1024 * 1024)) /dev/urandom >"$TMP/www/f10m"
  env -u LD_PRELOAD "$PY" "$SERVERS" http "$TMP/www" "$TMP/http.port" & PIDS+=($!)
  HTTP_PORT=$(wait_file "$TMP/http.port")
}

# A port nothing listens on: bind, read the number, close.
free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Runs a command under the shim with the given env assignments: shim VAR=.. VAR=.. -- cmd args
shim() {
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  timeout 120 env LD_PRELOAD="$SHIM" "${envs[@]}" "$@"
}

# expect_line FILE key=value: the probe output contains exactly that line.
expect_line() {
  grep -qx -- "$2" "$1" || { echo "--- $1:"; cat "$1"; fail "expected line '$2'"; }
}
