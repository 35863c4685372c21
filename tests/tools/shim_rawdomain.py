"""Helper imported by the shim integration tests' Python snippets: what the kernel says a socket
is, bypassing the preload (raw getsockopt syscall), so a test can prove a connection really went
through the shim's socketpair ("unix") or stayed on kernel TCP ("inet")."""
import ctypes
import socket

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_getsockopt = 55  # x86_64


def raw_domain(fd):
    v = ctypes.c_int(0)
    n = ctypes.c_uint(4)
    if _libc.syscall(_SYS_getsockopt, fd, socket.SOL_SOCKET, 39, ctypes.byref(v), ctypes.byref(n)) != 0:
        return "none"
    return {socket.AF_UNIX: "unix", socket.AF_INET: "inet", socket.AF_INET6: "inet6"}.get(v.value, "other")
