#!/usr/bin/env bash
# Runs the benchmark suite (issue [bench]) and writes docs/benchmarks.md with PNG plots in
# docs/bench/.  Native SST (build/tools/sst_perf) and kernel TCP (iperf3, build/tools/bench_tcp)
# cross the very same emulated link in the same run; every row is repeated and reported as
# median and min-max.  How it works: docs/benchmarking.md.
#
#   namespace A (clients)                          namespace B (servers)
#   +-----------------------+   TUN + linkemu    +-----------------------+
#   | sst_perf client       |  100 Mbit/s, 25 ms | sst_perf server :5201 |
#   | iperf3 -c / bench_tcp |==== each way =====>| iperf3 -s :5202       |
#   | 10.77.0.1             |  1-BDP queue, loss | bench_tcp server :5203|
#   | iperf3/curl under the |                    | sstd :8661 --forward  |
#   | shim (+ sstd: warm)   |                    | 5202,8080; http :8080 |
#   +-----------------------+   (or bare veth)   +-----------------------+
#   Loopback rows (stream creation rate, memory, nginx + wrk) run inside namespace A on 127.0.0.1.
#
# Environment:
#   BENCH_QUICK=1       ~3 minute smoke run (1 repetition, short runs, small counts)
#   BENCH_REPS=N        repetitions per row (default 3; quick 1)
#   BENCH_ONLY=REGEX    only scenarios whose name matches (bulk, veth, loss, fair, txn, pages,
#                       hol, rate, mem, handshake, nocarry)
#   BENCH_OUT=DIR       raw results (default $BUILD/bench); docs are written from them
#   BENCH_NO_DOCS=1     keep results in BENCH_OUT, do not touch docs/
# Needs root (namespaces), iperf3, gnuplot (scripts/deps.sh), /usr/bin/python3.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
# shellcheck source=tests/integration/lib.sh
source "$ROOT/tests/integration/lib.sh"
# shellcheck source=scripts/bench/common.sh
source "$ROOT/scripts/bench/common.sh"

QUICK=${BENCH_QUICK:-0}
ONLY=${BENCH_ONLY:-.}
OUT=${BENCH_OUT:-$BUILD/bench}
if [ "$QUICK" = 1 ]; then
  REPS=${BENCH_REPS:-1}; BULK_S=5; VETH_S=3; LOSS_S=5; FAIR_S=10; HOL_S=5; TXN_N=5
  RATE_N=10000; IDLE_STREAMS=5000; IDLE_CHANNELS=200; HS_N=500; WRK_S=3
  NG_BULK_BYTES=50000000; NG_VETH_BYTES=200000000
else
  REPS=${BENCH_REPS:-3}; BULK_S=10; VETH_S=5; LOSS_S=10; FAIR_S=20; HOL_S=10; TXN_N=30
  RATE_N=50000; IDLE_STREAMS=60000; IDLE_CHANNELS=1000; HS_N=3000; WRK_S=10
  NG_BULK_BYTES=100000000; NG_VETH_BYTES=400000000
fi
# ngtcp2's example server answers "/N" with N bytes, so its rows move a fixed amount: about the
# seconds of the other rows at 100 Mbit/s (emulated link) or ~1 Gbit/s (veth).
# 100 Mbit/s x 50 ms RTT = 625 000 bytes: the 1-BDP drop-tail queue of the issue.
LINK=(--rate 100mbit --delay 25ms --queue 625000)
# Per-stream buffers (= flow-control window) large enough for the BDP; see docs/benchmarking.md.
BUF=4m
TXN_SIZES=(32 1024 32768 262144 2097152)
HOL_SIZE=16384

mkdir -p "$OUT"
RES=$OUT/results.tsv
: >"$RES"
bench_meta >"$OUT/meta.txt"

lib_init bench
need_tool iperf3 gnuplot curl nginx wrk
[ -x /usr/bin/python3 ] || env_fail "needs /usr/bin/python3"
for t in sst_perf bench_tcp bench_handshake linkemu; do
  [ -x "$BUILD/tools/$t" ] || env_fail "$BUILD/tools/$t not built (make tests)"
done
[ -x "$BUILD/sstd" ] && [ -f "$SHIM_LIB" ] || env_fail "$BUILD/sstd or $SHIM_LIB not built (make)"
lib_allow_cc cubic bbr
log "results in $OUT (reps=$REPS quick=$QUICK only=$ONLY)"
T_START=$SECONDS

want() { [[ $1 =~ $ONLY ]]; }
if want bulk || want veth; then need_tool gtlsserver gtlsclient kcptun-server kcptun-client openssl; fi

# ---- (1) bulk over the emulated link and bare veth; (2) random loss ------------------------
# bulk_rows SCENARIO SECONDS [NGTCP2_BYTES]: every variant REPS times on the link that is up now;
# with NGTCP2_BYTES also ngtcp2 (a download of that many bytes) and kcptun (SECONDS of iperf3).
bulk_rows() {
  local scen=$1 secs=$2 ngbytes=${3:-} rep v peers=()
  [ -n "$ngbytes" ] && peers=("ngtcp2 cubic" "kcptun fast")
  for rep in $(seq 1 "$REPS"); do
    for v in "sst strong cubic" "sst light $(engine_default_cc)" "sst strong bbr" "tcp cubic" "tcp bbr" "${peers[@]}"; do
      set -- $v
      case $1 in
        sst)
          sst_server "$2" "$3"
          c0=$(proc_cpu_s "$SST_SRV_PID")
          j=$(sst_client --time "$secs" --security "$2" --cc "$3")
          record "$scen" "SST $2 $3" "$rep" "$(with_server_cpu "$j" "$c0" "$(proc_cpu_s "$SST_SRV_PID")")" ;;
        tcp) record "$scen" "TCP $2" "$rep" "$(iperf_client "$secs" "$2")" ;;
        ngtcp2) record "$scen" "ngtcp2 (HTTP/3, AES-256-GCM) $2" "$rep" "$(ngtcp2_client "$ngbytes" "$2")" ;;
        kcptun) record "$scen" "kcptun $2 (aes-cfb) + iperf3" "$rep" "$(kcptun_client "$secs")" ;;
      esac
    done
  done
  stop_peers
}

if want bulk; then
  log "(1) bulk, 100 Mbit/s x 50 ms, 1-BDP queue"
  net_up --link emu "${LINK[@]}"
  bulk_rows bulk "$BULK_S" "$NG_BULK_BYTES"
  # The engine's default stream buffers (no --buffer), which is what the shim and sstd use.
  dcc=$(engine_default_cc)
  sst_server strong "$dcc"
  record bulk "SST strong $dcc, engine default buffers" 1 \
    "$(SST_BUF=0 sst_client --time "$BULK_S" --security strong --cc "$dcc")"
  # (1) through the shim: an unmodified iperf3 upload, SST engine in the iperf3 process.
  shim_servers
  for rep in $(seq 1 "$REPS"); do
    for cc in cubic bbr; do
      # A fresh one-test iperf3 server on its own port each time, so no run can depend on the
      # previous one's end (until the shim's exit drain, docs/shim.md §2, a shimmed iperf3 that
      # exited often left the server "busy running a test"; test_shim_sst_exit.sh now checks
      # three runs against one server).
      shim_iperf_server
      record bulk "SST via shim (iperf3) strong $cc" "$rep" "$(shim_iperf_client "$BULK_S" "$cc")"
    done
  done
fi
if want veth; then
  log "(1) bulk, bare veth"
  net_up --link veth
  bulk_rows veth "$VETH_S" "$NG_VETH_BYTES"
  # Where the SST sender's CPU goes when nothing but CPU limits it.
  if command -v perf >/dev/null 2>&1; then
    sst_server strong cubic
    ip netns exec "$NS_A" perf record -q -o "$OUT/perf-veth.data" -- "$PERF" client "$IP_B:5201" \
      --time "$VETH_S" --buffer "$BUF" --json --timeout 60 >/dev/null 2>>"$OUT/stderr.log"
    perf report -i "$OUT/perf-veth.data" --no-children --stdio --sort dso,symbol 2>/dev/null |
      grep -v '^#' | grep '%' | head -15 >"$OUT/perf-sst-client-veth.txt"
  fi
fi
if want loss; then
  for loss in 0.1 1 5; do
    log "(2) bulk with $loss% random loss"
    net_up --link emu "${LINK[@]}" --loss "$loss%"
    for rep in $(seq 1 "$REPS"); do
      for v in "sst strong cubic" "sst strong bbr" "tcp cubic" "tcp bbr"; do
        set -- $v
        if [ "$1" = sst ]; then
          sst_server "$2" "$3"
          record "loss$loss" "SST $2 $3" "$rep" "$(sst_client --time "$LOSS_S" --security "$2" --cc "$3")"
        else
          record "loss$loss" "TCP $2" "$rep" "$(iperf_client "$LOSS_S" "$2")"
        fi
      done
    done
  done
fi

# ---- (3) fairness: one SST flow and one kernel cubic flow share the bottleneck -------------
if want fair; then
  for loss in 0 1; do
    log "(3) fairness, SST cubic or bbr (and kernel bbr for reference) + TCP cubic, $loss% loss"
    if [ "$loss" = 0 ]; then net_up --link emu "${LINK[@]}"; else net_up --link emu "${LINK[@]}" --loss "$loss%"; fi
    ns_cc "$NS_A" cubic
    ns_cc "$NS_B" cubic
    for rep in $(seq 1 "$REPS"); do
      for cc in cubic bbr; do
        scen=fair; [ "$cc" = cubic ] || scen=fair-$cc
        [ "$loss" = 0 ] || scen=$scen-loss$loss
        # Both start orders in every repetition, alternating which goes first (common.sh).
        if [ $((rep % 2)) = 1 ]; then orders="sst tcp"; else orders="tcp sst"; fi
        for first in $orders; do
          sst_server strong "$cc"
          fair_pair "$rep" "$FAIR_S" "$cc" "$scen" "$first"
        done
      done
      scen=fair-tcpbbr; [ "$loss" = 0 ] || scen=$scen-loss$loss
      tcp_fair_pair "$rep" "$FAIR_S" "$scen"
    done
  done
fi

# ---- (4) transaction latency vs response size ---------------------------------------------
if want txn; then
  log "(4) transactions, 32 B .. 2 MB"
  net_up --link emu "${LINK[@]}"
  ns_cc "$NS_A" cubic
  ns_cc "$NS_B" cubic
  sst_server strong cubic
  tcp_server
  tfo_server
  shim_servers
  for size in "${TXN_SIZES[@]}"; do
    record "txn$size" "TCP cubic, new connection" 1 \
      "$(in_a timeout 300 "$BUILD/tools/bench_tcp" client "$IP_B:5203" --rr "$TXN_N" --size "$size" --timeout 280)"
    record "txn$size" "TCP cubic, Fast Open" 1 "$(tfo_client "$TXN_N" "$size")"
    record "txn$size" "SST cold channel" 1 "$(sst_client --rr "$TXN_N" --size "$size" --cold)"
    record "txn$size" "SST warm channel" 1 "$(sst_client --rr "$TXN_N" --size "$size")"
    # curl, an unmodified client: kernel TCP, and through the shim with sstd in A keeping the
    # channel warm (nginx behind sstd --forward 8080 in B).
    record "txn$size" "curl, kernel TCP" 1 "$(curl_rr "$TXN_N" "$size")"
    record "txn$size" "curl via shim, warm sstd" 1 "$(curl_rr "$TXN_N" "$size" shim)"
  done
  stop_pid "$TFO_SRV_PID"
  stop_shim_servers
fi

# ---- (5) web-style page loads (paper §5.5, Figure 8, simplified) ---------------------------
# Every page of the synthetic site once per repetition and variant; see docs/benchmarking.md.
if want pages; then
  log "(5) page loads, 100 Mbit/s x 50 ms"
  net_up --link emu "${LINK[@]}"
  ns_cc "$NS_A" cubic
  ns_cc "$NS_B" cubic
  pages_server
  for rep in $(seq 1 "$REPS"); do
    record pages "TCP, 6 persistent connections" "$rep" "$(page_load tcp persistent 6)"
    record pages "TCP, 6 persistent connections kept open across pages" "$rep" "$(page_load tcp persistent 6 --keep)"
    record pages "TCP, new connection per request, 6 in parallel" "$rep" "$(page_load tcp perconn 6)"
    record pages "SST via shim, new stream per request, all in parallel" "$rep" "$(page_load shim perconn 0)"
    record pages "SST via shim, new stream per request, 6 in parallel" "$rep" "$(page_load shim perconn 6)"
    record pages "SST via shim, 6 persistent connections" "$rep" "$(page_load shim persistent 6)"
  done
  stop_pid "$PAGES_NGINX_PID"
  stop_shim_servers
fi

# ---- (6) head-of-line blocking: 1 bulk + 7 request/response streams ------------------------
# Each controller in turn (SST and kernel TCP alike); with bbr also the request streams' opt-ins
# (sst_perf --hol-prio: higher priority at both ends; --hol-redundant: every packet of a request
# stream sent twice, docs/protocol-streams.md §5a).
hol_tcp() {
  record "hol$1" "TCP $2, one connection" "$3" \
    "$(in_a timeout 120 "$BUILD/tools/bench_tcp" client "$IP_B:5203" --hol --time "$HOL_S" --size "$HOL_SIZE" --timeout 100)"
}
if want hol; then
  for loss in 0 2; do
    log "(6) head-of-line, $loss% loss"
    if [ "$loss" = 0 ]; then net_up --link emu "${LINK[@]}"; else net_up --link emu "${LINK[@]}" --loss "$loss%"; fi
    for cc in cubic bbr; do
      ns_cc "$NS_A" "$cc"
      ns_cc "$NS_B" "$cc"
      # The listener's controller is fixed when it is created: a new server per controller.
      stop_pid "$TCP_SRV_PID"; TCP_SRV_PID=
      sst_server strong "$cc"
      tcp_server
      for rep in $(seq 1 "$REPS"); do
        if [ "$cc" = cubic ]; then
          record "hol$loss" "SST, 8 streams on one channel" "$rep" \
            "$(sst_client --hol --time "$HOL_S" --size "$HOL_SIZE" --cc cubic)"
        else
          record "hol$loss" "SST bbr, 8 streams on one channel" "$rep" \
            "$(sst_client --hol --time "$HOL_S" --size "$HOL_SIZE" --cc bbr)"
          record "hol$loss" "SST bbr, requests prioritised" "$rep" \
            "$(sst_client --hol --time "$HOL_S" --size "$HOL_SIZE" --cc bbr --hol-prio)"
          record "hol$loss" "SST bbr, requests prioritised + redundant" "$rep" \
            "$(sst_client --hol --time "$HOL_S" --size "$HOL_SIZE" --cc bbr --hol-prio --hol-redundant)"
        fi
        hol_tcp "$loss" "$cc" "$rep"
      done
    done
  done
fi

# ---- (7) stream creation rate vs TCP connect/request/close, loopback ----------------------
if want rate; then
  log "(7) creation rate on loopback"
  net_up --link veth
  ns_cc "$NS_A" cubic
  for rep in $(seq 1 "$REPS"); do
    sst_server strong cubic 127.0.0.1 A
    record rate "SST streams on a warm channel" "$rep" \
      "$(SST_TARGET=127.0.0.1:5201 sst_client --rate "$RATE_N" --size 1 --window 64)"
    tcp_server 127.0.0.1 A
    record rate "TCP connect/request/close" "$rep" \
      "$(in_a timeout 120 "$BUILD/tools/bench_tcp" client 127.0.0.1:5203 --rate "$RATE_N" --size 1 --window 64 --timeout 100)"
  done
  # Through the shim: the same unmodified bench_tcp client under LD_PRELOAD in A, its server in B
  # behind sstd --forward 5203, across the namespace pair (veth, no delay); kernel TCP over the
  # same veth for comparison.  sstd in A is warmed first, and one untimed connection to the
  # measured port teaches it that 5203 answers, so the measured connections take the direct
  # (0-RTT) hand-off (docs/shim.md 6b: only a port that answered before is handed over before
  # the peer's answer; the first window of connections would otherwise wait for it).
  tcp_server 0.0.0.0 B
  shim_servers
  "$BUILD/sstctl" --socket "$LIB_TMP/sstd-a.sock" warm "$IP_B" >/dev/null 2>>"$OUT/stderr.log"
  # shellcheck disable=SC2046
  ip netns exec "$NS_A" env $(shim_env SST_HELPER="$LIB_TMP/sstd-a.sock") timeout 30 "$TCPB" client "$IP_B:5203" \
    --rate 1 --size 1 --window 1 --timeout 20 >/dev/null 2>>"$OUT/stderr.log"
  for rep in $(seq 1 "$REPS"); do
    record rate "TCP connect/request/close, A to B over the veth" "$rep" \
      "$(in_a timeout 120 "$BUILD/tools/bench_tcp" client "$IP_B:5203" --rate "$RATE_N" --size 1 --window 64 --timeout 100)"
    record rate "through the shim, in-process engine" "$rep" "$(shim_rate "$RATE_N" inproc)"
    record rate "through the shim, via sstd" "$rep" "$(shim_rate "$RATE_N" sstd)"
  done
  stop_shim_servers
fi

# ---- (8) memory per idle stream and channel; handshake CPU --------------------------------
if want mem; then
  log "(8) idle memory"
  net_up --link veth
  sst_server strong cubic 127.0.0.1 A
  record mem "idle streams" 1 "$(SST_TARGET=127.0.0.1:5201 sst_client --idle-streams "$IDLE_STREAMS")"
  sst_server_kill
  sst_server strong cubic 127.0.0.1 A
  record mem "idle channels" 1 "$(SST_TARGET=127.0.0.1:5201 sst_client --idle-channels "$IDLE_CHANNELS")"
  sst_server_kill
fi
if want handshake; then
  log "(8) handshake CPU"
  for sec in strong light; do
    record handshake "$sec" 1 "$("$BUILD/tools/bench_handshake" --count "$HS_N" --security "$sec" --json)"
  done
fi

# ---- (9) the shim's cost on sockets it does not carry: nginx + wrk on loopback ------------------
# A 1 % question on a shared 2-core machine: at least 5 interleaved pairs, even in a quick run.
NOCARRY_REPS=$((REPS > 5 ? REPS : 5))
if want nocarry; then
  log "(9) nginx + wrk on loopback, with and without the shim preloaded"
  net_up --link veth
  nginx_conf
  for conn in keepalive close; do
    for rep in $(seq 1 "$NOCARRY_REPS"); do
      # Alternate the order so drift (CPU frequency, caches) does not favour one variant.
      if [ $((rep % 2)) = 1 ]; then order="0 1"; else order="1 0"; fi
      for pre in $order; do
        if [ "$pre" = 1 ]; then v="shim preloaded"; else v="no preload"; fi
        record "nocarry-$conn" "$v" "$rep" "$(wrk_run "$WRK_S" "$pre" "$conn")"
      done
    done
    # The robust number: user-space instructions per request (callgrind), with and without.
    if command -v valgrind >/dev/null 2>&1; then
      record "nocarry-$conn" "callgrind" 1 "$(capture ip netns exec "$NS_A" /usr/bin/python3 \
        "$ROOT/scripts/bench/wrk_callgrind.py" --nginx-conf "$LIB_TMP/nginx.conf" --nginx-prefix "$LIB_TMP/nginx" \
        --shim "$SHIM_LIB" --keydir "$LIB_TMP/keys-shim" --connection "$conn" --seconds 3 --out "$OUT")"
    fi
  done
fi

stop_servers
stop_shim_servers
stop_peers
log "measurements done in $((SECONDS - T_START)) s"
bench_meta_duration $((SECONDS - T_START)) >>"$OUT/meta.txt"

if [ "${BENCH_NO_DOCS:-0}" = 1 ]; then
  /usr/bin/python3 "$ROOT/scripts/bench/report.py" "$OUT" "$OUT/benchmarks.md" "$OUT/plots" || fail "report failed"
  log "report in $OUT/benchmarks.md"
else
  /usr/bin/python3 "$ROOT/scripts/bench/report.py" "$OUT" "$ROOT/docs/benchmarks.md" "$ROOT/docs/bench" ||
    fail "report failed"
  # Keep the raw results next to the report: report.py docs/bench docs/benchmarks.md docs/bench
  # regenerates it.
  cp "$RES" "$OUT/meta.txt" "$ROOT/docs/bench/"
  rm -f "$ROOT"/docs/bench/perf-*.txt
  cp "$OUT"/perf-*.txt "$ROOT/docs/bench/" 2>/dev/null || true
  log "wrote docs/benchmarks.md, docs/bench/*.png and the raw results in docs/bench/"
fi
