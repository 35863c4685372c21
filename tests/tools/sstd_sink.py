"""A TCP sink for the hand-off tests: every connection is read to EOF; its length and SHA-256
(and the error, if the read ended in one) go as one line to LOG; then "OK LEN SHA" is sent
back and the connection closed.  Usage: sstd_sink.py PORT LOG"""
import hashlib
import socket
import sys
import threading

port, log = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()


def serve(c):
    h, n, err = hashlib.sha256(), 0, ""
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            h.update(b)
            n += len(b)
    except OSError as e:
        err = repr(e)
    with lock, open(log, "a") as f:
        f.write("%d %s %s\n" % (n, h.hexdigest(), err))
    try:
        c.sendall(b"OK %d %s\n" % (n, h.hexdigest().encode()))
        c.close()
    except OSError:
        pass


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
s.listen(128)
while True:
    conn, _ = s.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
