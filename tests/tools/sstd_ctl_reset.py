#!/usr/bin/python3
"""A control client that vanishes with sstd's reply unread must not disturb other hand-offs.

X hands a socketpair end to sstd (CONNECT with SCM_RIGHTS) and keeps its control connection.  Y then
asks STATUS and closes without reading the answer, so sstd's next read on Y fails with
ECONNRESET.  sstd once parsed the control-message buffer of that failed recvmsg anyway: it still
held X's SCM_RIGHTS header from an earlier call, so sstd "closed Y's passed fd" -- X's socket.
Then X's request and answer must still flow: prints the body length X received.

usage: sstd_ctl_reset.py SOCK ADDR PORT PATH"""
import socket
import sys
import time

sock_path, addr, port, path = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]

app, passed = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
x = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
x.connect(sock_path)
socket.send_fds(x, [("CONNECT %s %s\n" % (addr, port)).encode()], [passed.fileno()])
passed.close()
x.settimeout(10)
reply = b""
while not reply.endswith(b"\n"):
    chunk = x.recv(4096)
    if not chunk:
        break
    reply += chunk
if b'"CONNECTED"' not in reply:
    sys.exit("no CONNECTED reply: %r" % reply)

for _ in range(3):   # a few times: the stale buffer is the same stack slot each call
    y = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    y.connect(sock_path)
    y.sendall(b"STATUS\n")
    time.sleep(0.3)   # sstd answers; we never read it
    y.close()
    time.sleep(0.1)

app.settimeout(10)
data = b""
try:
    app.sendall(("GET /%s HTTP/1.0\r\n\r\n" % path).encode())
    while True:
        chunk = app.recv(65536)
        if not chunk:
            break
        data += chunk
except OSError as e:
    sys.exit("hand-off broken after the other client's reset: %s (%d bytes so far)" % (e, len(data)))
head, _, body = data.partition(b"\r\n\r\n")
print(len(body))
