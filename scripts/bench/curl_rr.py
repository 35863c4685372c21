"""Times N sequential curl GETs of one URL and prints one JSON line in sst_perf's vocabulary.

usage: curl_rr.py --n N --url URL --size BYTES --transport NAME [-- VAR=VALUE ...]

The VAR=VALUE pairs are added to curl's environment only (e.g. LD_PRELOAD=libsstshim.so), so
this script's own process is never preloaded.  The latency of one transaction is curl's
time_total: connect (TCP handshake, or the shim's hand-off to a warm SST channel), request,
response to the last byte.  One untimed GET first warms the path (ARP, sstd's channel).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, required=True)
ap.add_argument("--url", required=True)
ap.add_argument("--size", type=int, required=True)
ap.add_argument("--transport", required=True)
ap.add_argument("env", nargs="*")
a = ap.parse_args()

env = dict(os.environ)
for kv in a.env:
    k, _, v = kv.partition("=")
    env[k] = v
cmd = ["curl", "-sS", "-m", "60", "-o", "/dev/null", "-w", "%{time_total} %{size_download} %{http_code}\\n", a.url]


def once():
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("curl exit %d: %s" % (p.returncode, p.stderr.strip()[:200]))
    t, n, code = p.stdout.split()
    if code != "200" or int(n) != a.size:
        raise RuntimeError("HTTP %s, %s bytes (expected %d)" % (code, n, a.size))
    return float(t) * 1e6


out = {"tool": "curl", "transport": a.transport, "mode": "rr", "size": a.size, "ok": False}
try:
    once()
    lat = sorted(once() for _ in range(a.n))
except (RuntimeError, OSError, ValueError) as e:
    out["error"] = str(e)
    print(json.dumps(out))
    sys.exit(1)


def pct(p):
    return lat[min(len(lat) - 1, int(round(p / 100.0 * (len(lat) - 1))))]


out.update(ok=True, bytes_match=True, transactions=len(lat), bytes=len(lat) * a.size,
           latency_us={"n": len(lat), "p50": statistics.median(lat), "p90": pct(90), "p99": pct(99),
                       "min": lat[0], "max": lat[-1], "mean": statistics.fmean(lat)})
print(json.dumps(out))
