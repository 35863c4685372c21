#!/usr/bin/env bash
# make fuzz: the fuzz targets of tests/fuzz under libFuzzer (clang, coverage-guided) with
# AddressSanitizer + UndefinedBehaviorSanitizer.  docs/fuzzing.md explains the targets.
#   FUZZ_SECONDS=N   seconds per target (default 300)
#   FUZZ_TARGETS="host stream control shimread config"   which targets
# The corpus grows in build-fuzz/corpus/TARGET (kept between runs; seeded from real traffic);
# a crash leaves build-fuzz/crash-TARGET-* and fails the run; libFuzzer's output is in
# build-fuzz/fuzz-TARGET.log.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SECONDS_PER=${FUZZ_SECONDS:-300}
TARGETS=${FUZZ_TARGETS:-host stream control shimread config}
OUT=build-fuzz
command -v clang >/dev/null || { echo "fuzz: needs clang (scripts/deps.sh install)" >&2; exit 1; }

SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
# The engine, the simulator, sstd's library and the shim's pure parts, instrumented for coverage
# (fuzzer-no-link) and the sanitizers.  Every target links them all (only what it uses is pulled in).
SHIM_PURE=($OUT/obj/shim/config.o $OUT/obj/shim/log.o $OUT/obj/shim/tcpinfo_map.o)
make --no-print-directory BUILD=$OUT CC=clang OPT="-O1 -gline-tables-only" \
  SAN="$SAN -fsanitize=fuzzer-no-link" $OUT/libsst.a $OUT/libsstsim.a $OUT/libsstd.a \
  "${SHIM_PURE[@]}" >/dev/null
CFLAGS=(-std=gnu11 -Wall -Wextra -Werror -O1 -g $SAN -Icore -Itests/sim -Itests/fuzz
        $(pkg-config --cflags libevent libsodium))
LIBS=("${SHIM_PURE[@]}" $OUT/libsstd.a $OUT/libsstsim.a $OUT/libsst.a $(pkg-config --libs libevent libsodium) -lpthread -lm)
rc=0
for t in $TARGETS; do
  [ -f "tests/fuzz/fuzz_$t.c" ] || { echo "fuzz: no target '$t'" >&2; exit 1; }
  bin=$OUT/fuzz_$t
  clang "${CFLAGS[@]}" -fsanitize=fuzzer -DFUZZ_TARGET="$t" -o "$bin" \
    "tests/fuzz/fuzz_$t.c" tests/fuzz/libfuzzer.c "${LIBS[@]}"
  corpus=$OUT/corpus/$t
  mkdir -p "$corpus"
  FUZZ_WRITE_SEEDS=$corpus "$bin"
  echo "== fuzz $t: ${SECONDS_PER}s, corpus $corpus ($(ls "$corpus" | wc -l) inputs)"
  if ! "$bin" "$corpus" -max_total_time="$SECONDS_PER" -max_len=65536 -timeout=30 \
       -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$OUT/crash-$t-" \
       >"$OUT/fuzz-$t.log" 2>&1; then
    rc=1
  fi
  grep -E '^(Done|stat::|==[0-9]+==ERROR|SUMMARY)' "$OUT/fuzz-$t.log" || true
  if ls "$OUT"/crash-"$t"-* >/dev/null 2>&1; then
    echo "fuzz $t: CRASH -- reproduce with: $bin $(ls "$OUT"/crash-"$t"-* | head -1)" >&2
    rc=1
  fi
done
exit $rc
