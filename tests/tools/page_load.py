"""Web-style page loads for the benchmark (issue [bench] 5; SST paper §5.5, Figure 8, simplified).

usage:
  page_load.py gen  --dir DIR [--seed S] [--objects 10,30,100] [--pages K]
  page_load.py load --base http://HOST:PORT --manifest DIR/pages.json --mode persistent|perconn
                    [--parallel P] [--keep] [--reps R] [--transport NAME] [--timeout S]

gen writes a synthetic site: for every object count N and page k, DIR/pN-k/index.html naming N
embedded objects (<img src=...>) and the objects themselves, plus DIR/pages.json (the manifest:
page names, object counts and every size).  Sizes are drawn with a fixed seed from lognormal
distributions, the heavy tail of web object sizes: objects median 8 KiB (sigma 1.0: about one in
six above 22 KiB, one in a hundred above 80 KiB), clipped to [100 B, 1 MiB]; HTML median 16 KiB
(sigma 0.5).  The same seed gives the same site byte for byte.

load is the client, an ordinary HTTP/1.1 program (asyncio streams, no SST awareness) that is run
as it is or under LD_PRELOAD=libsstshim.so.  One page load, as a browser without a cache does it:
GET the HTML, read it to the last byte, take the object list from its src attributes (the paper
pessimistically assumes the same: no secondary request before the primary one is complete), then
GET every object with at most P requests in flight (P = 0: all at once).  The page load time runs
from the start of the HTML request (its connect included) to the last byte of the last object.
  persistent  P keep-alive connections (browsers: 6 per host); the HTML's connection is reused
              and the others are opened when the objects are requested; each connection takes
              the next object when its previous answer is complete (no pipelining).
  perconn     a new connection per request ("Connection: close"), HTTP/1.0 style.
  --keep      persistent connections stay open from page to page (a browser's idle pool);
              without it every page starts with no connection.
An untimed warm-up load of the first page comes first (ARP, a helper's channel, --keep's pool).
Every body must have the manifest's size and its Content-Length.  Prints one JSON line:
per page its object count, bytes and load times (ms, one per repetition), connections opened,
requests, and the client's CPU time (user, sys: all its threads, the shim's included) over the
timed loads; ok=false with the error if any request failed.
"""
import argparse
import asyncio
import json
import math
import os
import random
import re
import resource
import sys
import time
import urllib.parse

OBJ_MEDIAN, OBJ_SIGMA, OBJ_MIN, OBJ_MAX = 8192, 1.0, 100, 1 << 20
HTML_MEDIAN, HTML_SIGMA = 16384, 0.5


def lognormal(rng, median, sigma):
    return int(round(math.exp(rng.gauss(math.log(median), sigma))))


def gen(a):
    rng = random.Random(a.seed)
    pages = []
    for n in [int(x) for x in a.objects.split(",")]:
        for k in range(1, a.pages + 1):
            name = "p%d-%d" % (n, k)
            d = os.path.join(a.dir, name)
            os.makedirs(d, exist_ok=True)
            sizes = [min(OBJ_MAX, max(OBJ_MIN, lognormal(rng, OBJ_MEDIAN, OBJ_SIGMA))) for _ in range(n)]
            for i, size in enumerate(sizes):
                with open(os.path.join(d, "o%d.bin" % i), "wb") as f:
                    f.write(rng.randbytes(size))
            refs = "".join('<img src="/%s/o%d.bin">\n' % (name, i) for i in range(n))
            html_size = max(len(refs) + 64, lognormal(rng, HTML_MEDIAN, HTML_SIGMA))
            # Padding after the references: a page is mostly text the parser must read first.
            body = "<html><body>\n" + refs
            body += "<p>" + "x" * (html_size - len(body) - len("</p></body></html>\n") - 3) + "</p></body></html>\n"
            assert len(body) == html_size
            with open(os.path.join(d, "index.html"), "w") as f:
                f.write(body)
            pages.append({"name": name, "objects": n, "html_bytes": html_size, "object_bytes": sizes,
                          "total_bytes": html_size + sum(sizes)})
    with open(os.path.join(a.dir, "pages.json"), "w") as f:
        json.dump({"seed": a.seed, "object_median": OBJ_MEDIAN, "object_sigma": OBJ_SIGMA,
                   "html_median": HTML_MEDIAN, "html_sigma": HTML_SIGMA, "pages": pages}, f, indent=1)
    print("page_load: %d pages, %d objects, %d bytes in %s" % (
        len(pages), sum(p["objects"] for p in pages), sum(p["total_bytes"] for p in pages), a.dir))


class Conn:
    """One HTTP/1.1 connection: requests one after another, responses read by Content-Length."""

    def __init__(self, loader):
        self.loader = loader
        self.reader = self.writer = None
        self.usable = False

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(self.loader.host, self.loader.port)
        self.usable = True
        self.loader.connections += 1

    def close(self):
        if self.writer:
            self.writer.close()
        self.reader = self.writer = None
        self.usable = False

    async def get(self, path, close):
        if not self.usable:
            await self.open()
        req = "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: page_load\r\nAccept: */*\r\n%s\r\n" % (
            path, self.loader.hostport, "Connection: close\r\n" if close else "")
        self.writer.write(req.encode())
        status = await self.reader.readline()
        parts = status.split()
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise RuntimeError("%s: bad status line %r" % (path, status[:80]))
        if parts[1] != b"200":
            raise RuntimeError("%s: HTTP %s" % (path, parts[1].decode(errors="replace")))
        length, keep = None, parts[0] == b"HTTP/1.1"
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            k, v = k.strip().lower(), v.strip().lower()
            if k == "content-length":
                length = int(v)
            elif k == "connection":
                keep = v == "keep-alive" or (keep and v != "close")
        if length is None:
            raise RuntimeError("%s: no Content-Length" % path)
        body = await self.reader.readexactly(length)
        self.loader.requests += 1
        if close or not keep:
            self.close()  # the server closes too; a later request opens a new connection
        return body


class Loader:
    def __init__(self, a):
        u = urllib.parse.urlsplit(a.base)
        self.host, self.port = u.hostname, u.port or 80
        self.hostport = u.netloc
        self.a = a
        self.pool = []  # --keep: the persistent connections between pages
        self.connections = self.requests = 0

    async def page(self, p):
        a = self.a
        persistent = a.mode == "persistent"
        par = a.parallel if a.parallel > 0 else p["objects"]
        if persistent:
            while len(self.pool) < max(1, par):
                self.pool.append(Conn(self))
            conns = self.pool[:max(1, par)]
        t0 = time.monotonic_ns()
        first = conns[0] if persistent else Conn(self)
        html = await first.get("/%s/index.html" % p["name"], not persistent)
        if len(html) != p["html_bytes"]:
            raise RuntimeError("%s: HTML has %d bytes, expected %d" % (p["name"], len(html), p["html_bytes"]))
        paths = re.findall(rb'src="([^"]+)"', html)
        if len(paths) != p["objects"]:
            raise RuntimeError("%s: %d objects in the HTML, expected %d" % (p["name"], len(paths), p["objects"]))
        want = dict(("/%s/o%d.bin" % (p["name"], i), s) for i, s in enumerate(p["object_bytes"]))

        def check(path, body):
            if len(body) != want[path]:
                raise RuntimeError("%s: %d bytes, expected %d" % (path, len(body), want[path]))

        if persistent:
            queue = [x.decode() for x in paths]
            queue.reverse()

            async def worker(c):
                while queue:
                    path = queue.pop()
                    check(path, await c.get(path, False))

            await asyncio.gather(*(worker(c) for c in conns))
        else:
            sem = asyncio.Semaphore(par)

            async def one(path):
                async with sem:
                    check(path, await Conn(self).get(path, True))

            await asyncio.gather(*(one(x.decode()) for x in paths))
        t1 = time.monotonic_ns()
        if not a.keep:
            for c in self.pool:
                c.close()
        return (t1 - t0) / 1e6


async def load_all(a, manifest, out):
    ld = Loader(a)
    pages = manifest["pages"]
    res = [{"name": p["name"], "objects": p["objects"], "bytes": p["total_bytes"], "load_ms": []} for p in pages]
    await asyncio.wait_for(ld.page(pages[0]), a.timeout)  # warm-up, untimed
    ld.connections = ld.requests = 0
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(a.reps):
        for p, r in zip(pages, res):
            r["load_ms"].append(await asyncio.wait_for(ld.page(p), a.timeout))
    for c in ld.pool:
        c.close()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    # The client's CPU over the timed loads, all threads: under the shim that includes its event
    # thread and the hand-off to sstd.
    out.update(connections=ld.connections, requests=ld.requests,
               cpu_s={"user": round(ru1.ru_utime - ru0.ru_utime, 4), "sys": round(ru1.ru_stime - ru0.ru_stime, 4)})
    return res


def load(a):
    with open(a.manifest) as f:
        manifest = json.load(f)
    out = {"tool": "page_load", "transport": a.transport, "mode": a.mode, "parallel": a.parallel,
           "keep": a.keep, "reps": a.reps, "seed": manifest["seed"], "ok": False}
    try:
        out["pages"] = asyncio.run(load_all(a, manifest, out))
        out["ok"] = True
    except (OSError, RuntimeError, ValueError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
        out["error"] = "%s: %s" % (type(e).__name__, e)
    print(json.dumps(out))
    return 0 if out["ok"] else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--dir", required=True)
    g.add_argument("--seed", type=int, default=2007)
    g.add_argument("--objects", default="10,30,100")
    g.add_argument("--pages", type=int, default=3)
    ld = sub.add_parser("load")
    ld.add_argument("--base", required=True)
    ld.add_argument("--manifest", required=True)
    ld.add_argument("--mode", choices=("persistent", "perconn"), required=True)
    ld.add_argument("--parallel", type=int, default=6)
    ld.add_argument("--keep", action="store_true")
    ld.add_argument("--reps", type=int, default=1)
    ld.add_argument("--transport", default="tcp")
    ld.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()
    if a.cmd == "gen":
        gen(a)
        return 0
    if a.mode == "persistent" and a.parallel < 1:
        ap.error("persistent needs --parallel >= 1")
    return load(a)


if __name__ == "__main__":
    sys.exit(main())
