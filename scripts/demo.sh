#!/usr/bin/env bash
# `make demo`: the end-to-end demonstration.  Today it narrates the engine in the deterministic
# simulator and then runs a real handshake over UDP on loopback; the shim demo (curl over SST
# between two network namespaces with TCP blocked) joins it when the shim carries SST.
set -euo pipefail
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
echo "=== sstshim demo ==="
echo
"$BUILD/tools/sim_demo"
if [ -f scripts/demo-shim.sh ]; then
  echo
  bash scripts/demo-shim.sh
fi
