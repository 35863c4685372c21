/* Whether a TCP listening socket still exists, asked of the kernel (NETLINK_SOCK_DIAG): the
 * keeper's test for a listener the app holds in another process (keeper.h, server.c). */
#ifndef SHIM_SOCKDIAG_H
#define SHIM_SOCKDIAG_H

#include <stdint.h>
#include <sys/types.h>

/* 1 if a TCP socket of family (AF_INET/AF_INET6) with inode ino listens on port in this
 * network namespace, 0 if not, -1 if the kernel could not be asked (errno). */
int shim_sockdiag_listening(int family, uint16_t port, ino_t ino);

#endif
