"""Reduces iperf3 -J output (stdin) to one JSON line in sst_perf's vocabulary (stdout)."""
import json
import sys

raw = sys.stdin.read()
try:
    j = json.loads(raw)
except ValueError:
    print(json.dumps({"tool": "iperf3", "transport": "tcp", "ok": False,
                      "error": "iperf3 printed no JSON: " + raw[:200]}))
    sys.exit(0)
if "error" in j or "end" not in j:
    print(json.dumps({"tool": "iperf3", "transport": "tcp", "ok": False,
                      "error": j.get("error", "no end section")}))
    sys.exit(0)
end = j["end"]
rx = end.get("sum_received", {})
tx = end.get("sum_sent", {})
cpu = end.get("cpu_utilization_percent", {})
print(json.dumps({
    "tool": "iperf3", "transport": "tcp", "mode": "bulk", "ok": True,
    "cc": end.get("sender_tcp_congestion", ""),
    "duration_s": rx.get("seconds", 0.0),
    "bytes": rx.get("bytes", 0),
    "goodput_bps": rx.get("bits_per_second", 0.0),
    "retransmits": {"segments": tx.get("retransmits", 0)},
    "cpu_percent": {"sender": cpu.get("host_total", 0.0), "receiver": cpu.get("remote_total", 0.0)},
}))
