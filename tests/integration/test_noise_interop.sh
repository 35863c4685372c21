#!/usr/bin/env bash
# Noise XX interop between our implementation and an independent one (Debian python3-dissononce).
#
#   noise_interop.py (dissononce) --stdin/stdout hex lines--> build/tools/noise_peer (core/noise.c)
#
# Full handshake in both roles, transport messages both ways, tampering rejected on both sides.
# No network, no namespaces.  A missing tool or library FAILS the test, never skips it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
PEER=$BUILD/tools/noise_peer
[ -x "$PEER" ] || { echo "FAIL: $PEER not built (make tests)" >&2; exit 1; }
[ -x /usr/bin/python3 ] || { echo "FAIL: /usr/bin/python3 missing" >&2; exit 1; }
/usr/bin/python3 -c 'import dissononce' 2>/dev/null ||
  { echo "FAIL: python3-dissononce not installed (scripts/deps.sh install)" >&2; exit 1; }
exec /usr/bin/python3 "$ROOT/tests/integration/noise_interop.py" "$PEER"
