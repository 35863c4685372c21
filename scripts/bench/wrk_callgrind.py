#!/usr/bin/python3
"""User-space instructions per request of nginx and wrk, with and without the shim (callgrind).

    wrk_callgrind.py --nginx-conf F --nginx-prefix D --shim LIB --keydir D --seconds S
                     --connection keepalive|close --out DIR

Run inside the namespace that holds 127.0.0.1:8088 (scripts/bench.sh scenario nocarry).  For
each of nginx and wrk, and each of "no preload" / "shim preloaded": that program runs under
valgrind --tool=callgrind while the other runs natively; nginx's counters are zeroed once it
listens, and wrk runs twice (S and 2S seconds) and the difference is taken, so neither
program's start-up is charged to the requests.  The
per-request figures are callgrind's PROGRAM TOTALS (all user-space instructions) and the part
executed in the shim's own code (source files under shim/), divided by the requests wrk
reports.  Instruction counts do not depend on what else runs on the machine, unlike req/s and
CPU time; they leave out the kernel, where the shim adds nothing (test_shim_unset.sh checks
with strace that uncarried connections make the same system calls).  Prints one JSON line.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

URL = "http://127.0.0.1:8088/index.html"


def wait_port(port, secs):
    end = time.time() + secs
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def stop(p, secs=30):
    """SIGTERM and wait: valgrind writes its profile on the way out."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=secs)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def counts(path):
    """(all instructions, instructions in shim/*.c|h) of a callgrind profile."""
    out = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", path],
                         capture_output=True, text=True).stdout
    total = shim = 0
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)", line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        if "PROGRAM TOTALS" in m.group(2):
            total = n
        elif re.match(r"(\S*/)?shim/[a-z_]+\.[ch]:", m.group(2)):   # relative when run from the root
            shim += n
    return total, shim


def wrk_cmd(a, env, secs):
    hdr = ["-H", "Connection: close"] if a.connection == "close" else []
    return env + ["wrk", "-t1", "-c32", "-d%ds" % secs] + hdr + [URL]


def requests(text):
    m = re.search(r"(\d+) requests in", text)
    return int(m.group(1)) if m else 0


def run_once(a, who, preload, secs, tag):
    """One run with `who` under callgrind: (requests, all instructions, shim instructions)."""
    env = ["env"]
    if preload:
        env += ["LD_PRELOAD=" + a.shim, "SST_PEERS=192.0.2.1", "SST_HELPER=off", "SST_KEYDIR=" + a.keydir]
    prof = os.path.join(a.out, "callgrind-%s-%s-%s%s.out" % (who, a.connection, "shim" if preload else "plain", tag))
    vg = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + prof]
    ngx = ["nginx", "-c", a.nginx_conf, "-p", a.nginx_prefix]
    log = open(os.path.join(a.out, "callgrind.log"), "a")
    srv = subprocess.Popen(env + (vg if who == "nginx" else []) + ngx, stdout=log, stderr=log)
    try:
        if not wait_port(8088, 30):
            raise RuntimeError("nginx did not listen")
        if who == "nginx":
            subprocess.run(["callgrind_control", "-z", str(srv.pid)], stdout=log, stderr=log)
        cmd = wrk_cmd(a, env, secs)
        if who == "wrk":
            cmd = env + vg + cmd[len(env):]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=secs * 20 + 60)
        n = requests(r.stdout)
        if n == 0:
            raise RuntimeError("wrk: " + (r.stdout + r.stderr)[-200:])
    finally:
        stop(srv)
    total, shim = counts(prof)
    if total == 0:
        raise RuntimeError("no callgrind totals in " + prof)
    return n, total, shim


def measure(a, who, preload):
    """Per request.  nginx: counters zeroed once it listens.  wrk: two runs, S and 2S seconds,
    and the difference, so that its start-up (the loader resolving the preloaded library's
    symbols, the shim's init) is not charged to the requests."""
    n2, t2, s2 = run_once(a, who, preload, 2 * a.seconds if who == "wrk" else a.seconds, "")
    n1 = t1 = s1 = 0
    if who == "wrk":
        n1, t1, s1 = run_once(a, who, preload, a.seconds, "-short")
        if n2 <= n1:
            raise RuntimeError("wrk did no more requests in %d s than in %d s" % (2 * a.seconds, a.seconds))
    n = n2 - n1
    return {"requests": n, "instr_per_req": round((t2 - t1) / n, 1), "shim_instr_per_req": round((s2 - s1) / n, 1)}


def main():
    ap = argparse.ArgumentParser()
    for o in ("nginx-conf", "nginx-prefix", "shim", "keydir", "connection", "out"):
        ap.add_argument("--" + o, required=True)
    ap.add_argument("--seconds", type=int, default=5)
    a = ap.parse_args()
    out = {"tool": "callgrind", "mode": "nginx", "connection": a.connection, "ok": False}
    try:
        for who in ("nginx", "wrk"):
            for preload in (False, True):
                out["%s_%s" % (who, "shim" if preload else "plain")] = measure(a, who, preload)
        plain = out["nginx_plain"]["instr_per_req"] + out["wrk_plain"]["instr_per_req"]
        shim = out["nginx_shim"]["instr_per_req"] + out["wrk_shim"]["instr_per_req"]
        own = out["nginx_shim"]["shim_instr_per_req"] + out["wrk_shim"]["shim_instr_per_req"]
        out.update(ok=True, plain_instr_per_req=round(plain, 1), shim_instr_per_req=round(shim, 1),
                   shim_own_instr_per_req=round(own, 1),
                   own_cost_pct=round(100.0 * own / plain, 3),
                   total_diff_pct=round(100.0 * (shim / plain - 1), 3))
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        out["error"] = str(e)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
