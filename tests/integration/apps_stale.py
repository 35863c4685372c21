# test_shim_apps.sh: fd numbers a carried connection leaves behind when the program closes it
# with a raw system call, as libuv (node) does: the shim never sees that close, its entry for
# the number stays, and the next holder of the number must not be taken for the connection.
import array, ctypes, errno, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
host = sys.argv[1]
def raw_close(s):
    libc.syscall(3, s.detach())   # close(2) as libuv does it: a raw system call the shim never sees
def conn(shut):
    s = socket.create_connection((host, 7000), timeout=10)
    s.sendall(b"q")
    if shut:
        s.shutdown(socket.SHUT_WR)
    assert s.recv(10) == b"q"
    return s
# 1. Two connections shut for writing and closed behind the shim's back: the next connect's
#    socket takes the first number, the shim's own control socket to sstd the second.
a, b = conn(True), conn(True)
raw_close(a); raw_close(b)
try:
    s = socket.create_connection((host, 7000), timeout=10)
    s.sendall(b"again"); s.shutdown(socket.SHUT_WR)
    print("next connection:", s.recv(10).decode())
    s.close()
except OSError as e:
    print("next connection:", errno.errorcode[e.errno])
# 2. A UDP socket arriving over SCM_RIGHTS (no hook sees it) on a number a connection left
#    behind: sendto and sendmsg with an address must keep it.
rcv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rcv.bind(("127.0.0.1", 0)); rcv.settimeout(5)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
pa, pb = socket.socketpair()
for shut in (False, True):
    c = conn(shut)
    n = c.fileno()
    raw_close(c)
    pa.sendmsg([b"f"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [udp.fileno()]))])
    msg, anc, flags, addr = pb.recvmsg(1, socket.CMSG_LEN(4))
    fd = array.array("i", anc[0][2])[0]
    # Straight to libc with the raw number (a python socket object would ask getsockopt
    # first, which drops the stale entry).
    port = rcv.getsockname()[1]
    sin = struct.pack("=HH4s8x", socket.AF_INET, socket.htons(port), socket.inet_aton("127.0.0.1"))
    got = []
    r = libc.sendto(fd, b"d", 1, 0, sin, len(sin))
    got.append("sendto " + (rcv.recv(10).decode() if r == 1 else errno.errorcode[ctypes.get_errno()]))
    iov = (ctypes.c_char_p * 2)(b"m", ctypes.cast(1, ctypes.c_char_p))
    class MsgHdr(ctypes.Structure):
        _fields_ = [("name", ctypes.c_char_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.c_void_p),
                    ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                    ("flags", ctypes.c_int)]
    mh = MsgHdr(sin, len(sin), ctypes.addressof(iov), 1, None, 0, 0)
    r = libc.sendmsg(fd, ctypes.byref(mh), 0)
    got.append("sendmsg " + (rcv.recv(10).decode() if r == 1 else errno.errorcode[ctypes.get_errno()]))
    print("udp on a left-behind number (shut %s, same number %s):" % (shut, fd == n), *got)
    os.close(fd)
