/* A listening TCP socket of this network namespace, asked of the kernel by its inode
 * (NETLINK_SOCK_DIAG).  Shared by the shim (is a listener the app holds in another process still
 * open? shim/server.c, the keeper) and sstd (is a registrant's socket one of its namespace, and
 * what is the one a keeper names by inode? helper/listen.c). */
#ifndef SST_IO_SOCKDIAG_H
#define SST_IO_SOCKDIAG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct sst_sockdiag {
    int family;                     /* AF_INET or AF_INET6 */
    bool v6only;                    /* IPV6_V6ONLY */
    uid_t uid;                      /* its owner */
    struct sockaddr_storage bound;  /* its bound address and port */
    socklen_t boundlen;
};

/* 1 if a TCP socket of family (AF_INET/AF_INET6) with inode ino listens on port in this network
 * namespace (described in *out unless out is NULL), 0 if not, -1 (errno) if the kernel could not
 * be asked. */
int sst_sockdiag_listener(int family, uint16_t port, unsigned long long ino, struct sst_sockdiag *out);

#endif
