#!/usr/bin/env bash
# Runs the test suites and prints one closing line "N passed, N failed".
#   SST_TESTS=unit          only the Check unit/simulator tests
#   SST_TESTS=integration   only tests/integration/*.sh
#   (default)               both
#   SST_TEST_FILTER=regex   only test programs whose name matches
set -uo pipefail
BUILD=${BUILD:-build}
which=${SST_TESTS:-all}
filter=${SST_TEST_FILTER:-.}
passed=0; failed=0; failures=()

run_check_binary() {
  local bin=$1 out rc
  out=$(mktemp)
  "$bin" >"$out" 2>&1; rc=$?
  # Check prints "NN%: Checks: C, Failures: F, Errors: E"
  local line c f e
  line=$(grep -E '^[0-9]+%: Checks: ' "$out" | tail -1)
  if [ -n "$line" ]; then
    c=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
    f=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
    e=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
    passed=$((passed + c - f - e)); failed=$((failed + f + e))
    [ $((f + e)) -eq 0 ] && [ $rc -eq 0 ] || { failures+=("$(basename "$bin")"); cat "$out"; }
    [ $((f + e)) -eq 0 ] && [ $rc -ne 0 ] && failed=$((failed + 1))
    printf '  %-32s %s\n' "$(basename "$bin")" "$line"
  else
    failed=$((failed + 1)); failures+=("$(basename "$bin")")
    cat "$out"; printf '  %-32s CRASHED (exit %d)\n' "$(basename "$bin")" "$rc"
  fi
  rm -f "$out"
}

if [ "$which" = all ] || [ "$which" = unit ]; then
  echo "== unit and simulator tests ($BUILD)"
  for bin in "$BUILD"/tests/test_*; do
    [ -x "$bin" ] || continue
    [[ "$(basename "$bin")" =~ $filter ]] || continue
    run_check_binary "$bin"
  done
fi

if [ "$which" = all ] || [ "$which" = integration ]; then
  echo "== integration tests"
  for t in tests/integration/test_*.sh; do
    [ -f "$t" ] || continue
    [[ "$(basename "$t")" =~ $filter ]] || continue
    out=$(mktemp)
    start=$(date +%s)
    if BUILD=$BUILD timeout 600 bash "$t" >"$out" 2>&1; then
      passed=$((passed + 1)); res=ok
    else
      failed=$((failed + 1)); failures+=("$(basename "$t")"); res=FAILED; cat "$out"
    fi
    printf '  %-32s %s (%ss)\n' "$(basename "$t")" "$res" "$(( $(date +%s) - start ))"
    rm -f "$out"
  done
fi

[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
