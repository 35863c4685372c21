#!/usr/bin/python3
"""Test server for sstd --proxy-protocol: accepts TCP on 127.0.0.1:PORT, parses the PROXY v2
header each connection must start with, answers "src_ip src_port dst_ip dst_port\n", closes.
A connection without a valid header is answered "BAD\n"."""
import socket
import struct
import sys

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def recv_exact(c, n):
    b = b""
    while len(b) < n:
        chunk = c.recv(n - len(b))
        if not chunk:
            return None
        b += chunk
    return b


def main():
    port = int(sys.argv[1])
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    while True:
        c, _ = s.accept()
        hdr = recv_exact(c, 16)
        out = b"BAD\n"
        if hdr and hdr[:12] == SIG and hdr[12] == 0x21:
            fam, length = hdr[13], struct.unpack("!H", hdr[14:16])[0]
            body = recv_exact(c, length)
            if body and fam == 0x11 and length == 12:
                src, dst = socket.inet_ntoa(body[0:4]), socket.inet_ntoa(body[4:8])
                sp, dp = struct.unpack("!HH", body[8:12])
                out = f"{src} {sp} {dst} {dp}\n".encode()
            elif body and fam == 0x21 and length == 36:
                src = socket.inet_ntop(socket.AF_INET6, body[0:16])
                dst = socket.inet_ntop(socket.AF_INET6, body[16:32])
                sp, dp = struct.unpack("!HH", body[32:36])
                out = f"{src} {sp} {dst} {dp}\n".encode()
        c.sendall(out)
        c.close()


if __name__ == "__main__":
    main()
