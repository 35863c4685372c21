#!/usr/bin/python3
"""Loopback servers for the shim integration tests.

  shim_servers.py echo PORTFILE [HOST]   echo-until-EOF-then-close server on HOST (default
                                   127.0.0.1; "::1" for IPv6), threaded; writes its port to
                                   PORTFILE once listening.
  shim_servers.py sink PORTFILE OUTFILE   counts each connection's bytes until EOF and appends
                                   the count as a line to OUTFILE.
  shim_servers.py http DIR PORTFILE   http.server for DIR on 127.0.0.1, port to PORTFILE.
Both run until killed.  Run them WITHOUT the preload: they are the far side.
"""
import functools
import http.server
import os
import socket
import socketserver
import sys
import threading


def write_port(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.rename(tmp, path)


def echo(portfile, host="127.0.0.1"):
    ls = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, 0))
    ls.listen(128)
    write_port(portfile, ls.getsockname()[1])

    def serve(c):
        data = b""
        while True:
            b = c.recv(65536)
            if not b:
                break
            data += b
        c.sendall(data)
        c.close()

    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def sink(portfile, outfile):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(128)
    write_port(portfile, ls.getsockname()[1])
    lock = threading.Lock()

    def serve(c):
        n = 0
        while True:
            b = c.recv(65536)
            if not b:
                break
            n += len(b)
        c.close()
        with lock, open(outfile, "a") as f:
            f.write("%d\n" % n)

    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def http_serve(directory, portfile):
    handler = functools.partial(QuietHandler, directory=directory)
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as srv:
        srv.request_queue_size = 128
        write_port(portfile, srv.server_address[1])
        srv.serve_forever()


if __name__ == "__main__":
    if sys.argv[1] == "echo":
        echo(sys.argv[2], *sys.argv[3:4])
    elif sys.argv[1] == "sink":
        sink(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "http":
        http_serve(sys.argv[2], sys.argv[3])
    else:
        sys.exit("unknown mode")
