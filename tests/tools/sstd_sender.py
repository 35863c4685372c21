"""Connects to HOST PORT, prints "LEN SHA" of N random bytes, writes them and ends as MODE says:
exit (sys.exit at once), _exit (os._exit), kill (SIGKILL itself), close (close, then exit),
shut (shutdown(SHUT_WR), print the server's one-line reply).  Usage: sstd_sender.py HOST PORT N MODE"""
import hashlib
import os
import signal
import socket
import sys

host, port, n, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
data = os.urandom(n)
print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
s = socket.create_connection((host, port))
s.sendall(data)
if mode == "exit":
    sys.exit(0)
if mode == "_exit":
    os._exit(0)
if mode == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "close":
    s.close()
    sys.exit(0)
s.shutdown(socket.SHUT_WR)
print(s.makefile().readline().strip(), flush=True)
