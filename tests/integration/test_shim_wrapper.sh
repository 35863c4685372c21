#!/usr/bin/env bash
# scripts/sstshim: options become SST_* variables, the library is appended to LD_PRELOAD,
# setuid and static programs are called out.
source "$(dirname "$0")/../tools/shim_common.sh"
start_echo
W="$ROOT/scripts/sstshim"

SSTSHIM_LIB="$SHIM" "$W" -v --log-file "$TMP/log" -p 127.0.0.1 -m auto -- "$PROBE" probe 127.0.0.1 "$ECHO_PORT" block >"$TMP/p"
expect_line "$TMP/p" raw_domain=unix
expect_line "$TMP/p" echo=ping-half-close
grep -q "info: active: SST_PEERS=127.0.0.1 SST_LOG=info SST_LOG_FILE=$TMP/log" "$TMP/log" || fail "banner"
pass "options reach the shim"

out=$(SSTSHIM_LIB="$SHIM" "$W" -p 10.0.0.1 --port 9000 --security light -l 80,443 --helper off --keydir /k \
      env | grep -E '^(SST_(PEERS|MODE|PORT|HELPER|LISTEN|SECURITY|KEYDIR|LOG|LOG_FILE)|LD_PRELOAD)=' | sort | tr '\n' ' ')
exp="LD_PRELOAD=$(readlink -f "$SHIM") SST_HELPER=off SST_KEYDIR=/k SST_LISTEN=80,443 SST_PEERS=10.0.0.1 SST_PORT=9000 SST_SECURITY=light "
[ "$out" = "$exp" ] || fail "env: '$out' != '$exp'"
out=$(LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libm.so.6 SSTSHIM_LIB="$SHIM" "$W" -p 10.0.0.1 printenv LD_PRELOAD)
[ "$out" = "/usr/lib/x86_64-linux-gnu/libm.so.6:$(readlink -f "$SHIM")" ] || fail "LD_PRELOAD not appended: $out"
pass "variables set, LD_PRELOAD appended"

# The library is found from the script's own location in a source tree.
if [ "$BUILD" = "$ROOT/build" ]; then
  out=$("$W" -p 10.0.0.1 printenv LD_PRELOAD)
  [ "$out" = "$(readlink -f "$SHIM")" ] || fail "library not found next to the script: $out"
fi

for f in /usr/bin/passwd /bin/su /usr/bin/chsh; do
  if [ -u "$f" ]; then
    SSTSHIM_LIB="$SHIM" "$W" -p 10.0.0.1 "$f" --help >/dev/null 2>"$TMP/err" || true
    grep -q "is setuid/setgid" "$TMP/err" || fail "setuid $f not reported"
    break
  fi
done
if printf 'int main(void){return 0;}' | cc -static -x c - -o "$TMP/static" 2>/dev/null; then
  SSTSHIM_LIB="$SHIM" "$W" -p 10.0.0.1 "$TMP/static" 2>"$TMP/err"
  grep -q "is statically linked" "$TMP/err" || fail "static binary not reported"
fi
rc=0; "$W" --mode 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "missing option value not rejected"
pass "setuid/static programs reported, bad usage rejected"
