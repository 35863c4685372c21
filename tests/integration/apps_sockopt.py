# test_shim_apps.sh: getsockopt answers on a connection, IPv4 and IPv6, for TCP/IP options the
# program never set -- what kernel TCP says (iperf3 prints TCP_CONGESTION, programs read IP_TTL
# or IP_MTU to size or copy them).  Options that depend on the connection's own progress
# (TCP_MAXSEG after the handshake, TCP_INFO's counters) are not compared.
import socket, sys

def show(fam, host):
    s = socket.socket(fam)
    s.connect((host, 7000))
    ip = socket.IPPROTO_IP if fam == socket.AF_INET else socket.IPPROTO_IPV6
    opts = [("TCP_CONGESTION", socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16),
            ("TCP_SYNCNT", socket.IPPROTO_TCP, socket.TCP_SYNCNT, None),
            ("TCP_QUICKACK", socket.IPPROTO_TCP, socket.TCP_QUICKACK, None),
            ("TCP_KEEPINTVL", socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, None),
            ("TCP_NODELAY", socket.IPPROTO_TCP, socket.TCP_NODELAY, None)]
    if fam == socket.AF_INET:
        opts += [("IP_TTL", ip, socket.IP_TTL, None), ("IP_MTU", ip, 14, None)]
    else:
        opts += [("IPV6_UNICAST_HOPS", ip, socket.IPV6_UNICAST_HOPS, None), ("IPV6_MTU", ip, 24, None)]
    out = []
    for name, level, opt, size in opts:
        try:
            v = s.getsockopt(level, opt, size) if size else s.getsockopt(level, opt)
            out.append("%s=%s" % (name, v.rstrip(b"\0").decode() if isinstance(v, bytes) else v))
        except OSError as e:
            out.append("%s=errno %d" % (name, e.errno))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out.append("TCP_NODELAY after set=%d" % s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    print("sockopt %s:" % host, " ".join(out))
    s.close()

show(socket.AF_INET, sys.argv[1])
show(socket.AF_INET6, sys.argv[2])
