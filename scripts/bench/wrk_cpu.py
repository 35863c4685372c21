#!/usr/bin/python3
"""Runs wrk against a running server and reports requests per second and CPU time per request.

    wrk_cpu.py --server-pid PID --preload 0|1 --connection keepalive|close -- wrk ARGS...

CPU per request = (server CPU during the run, from /proc/PID/stat) + (wrk's own CPU, from
wait4's rusage) divided by the requests wrk completed.  On a shared machine this is much
steadier than req/s: time the two processes spend waiting for a core does not count.  Prints
one JSON line (scripts/bench.sh scenario nocarry).
"""
import argparse
import json
import os
import re
import subprocess
import sys

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """(utime, stime) of a process (all threads), seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server-pid", type=int, required=True)
    ap.add_argument("--preload", type=int, choices=(0, 1), required=True)
    ap.add_argument("--connection", required=True)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    out = {"tool": "wrk", "mode": "nginx", "preload": a.preload == 1, "connection": a.connection,
           "ok": False}
    try:
        u0, y0 = proc_cpu(a.server_pid)
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        raw = p.stdout.read().decode(errors="replace")
        _pid, status, ru = os.wait4(p.pid, 0)
        u1, y1 = proc_cpu(a.server_pid)
        s0, s1 = u0 + y0, u1 + y1
    except OSError as e:
        out["error"] = str(e)
        print(json.dumps(out))
        return 1
    m = re.search(r"Requests/sec:\s+([0-9.]+)", raw)
    n = re.search(r"(\d+) requests in", raw)
    e = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", raw)
    out["ok"] = bool(m and n) and not e and os.waitstatus_to_exitcode(status) == 0
    if m:
        out["rate_per_s"] = float(m.group(1))
    if n:
        req = int(n.group(1))
        wrk_cpu = ru.ru_utime + ru.ru_stime
        out["requests"] = req
        out["cpu_s"] = {"server": round(s1 - s0, 3), "client": round(wrk_cpu, 3),
                        "server_user": round(u1 - u0, 3), "server_sys": round(y1 - y0, 3),
                        "client_user": round(ru.ru_utime, 3), "client_sys": round(ru.ru_stime, 3)}
        if req > 0:
            out["cpu_us_per_req"] = round(1e6 * (s1 - s0 + wrk_cpu) / req, 3)
            out["server_cpu_us_per_req"] = round(1e6 * (s1 - s0) / req, 3)
            out["client_cpu_us_per_req"] = round(1e6 * wrk_cpu / req, 3)
    if e:
        out["error"] = e.group(0)
    elif not out["ok"]:
        out["error"] = "no wrk result: " + raw[-200:]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
