/* Source-address lookup for getsockname on carried connections (route.h). */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "real.h"
#include "route.h"

bool shim_route_local(const struct sockaddr *peer, socklen_t peer_len, unsigned port,
                      struct sockaddr_storage *out, socklen_t *out_len)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int family = peer->sa_family;
    if (family != AF_INET && family != AF_INET6)
        return false;
    /* The real calls: this is the shim's own short-lived socket, never the app's. */
    int s = shim_real_socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return false;
    bool ok = shim_real_connect(s, peer, peer_len) == 0 &&
              shim_real_getsockname(s, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == family;
    shim_real_close(s);
    if (!ok)
        return false;
    if (port != 0) {
        if (family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
        else
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    }
    *out = ss;
    *out_len = len;
    return true;
}
