/* Resolves the real libc functions behind the hooks (dlsym RTLD_NEXT); the wrappers are in real.h. */
#define _GNU_SOURCE
#include "real.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

int (*shim_p_socket)(int, int, int);
int (*shim_p_socketpair)(int, int, int, int *);
int (*shim_p_connect)(int, const struct sockaddr *, socklen_t);
int (*shim_p_close)(int);
int (*shim_p_close_range)(unsigned, unsigned, int);
void (*shim_p_closefrom)(int);
int (*shim_p_shutdown)(int, int);
int (*shim_p_getpeername)(int, struct sockaddr *, socklen_t *);
int (*shim_p_getsockname)(int, struct sockaddr *, socklen_t *);
int (*shim_p_getsockopt)(int, int, int, void *, socklen_t *);
int (*shim_p_setsockopt)(int, int, int, const void *, socklen_t);
int (*shim_p_fcntl)(int, int, ...);
int (*shim_p_dup)(int);
int (*shim_p_dup2)(int, int);
int (*shim_p_dup3)(int, int, int);
int (*shim_p_accept4)(int, struct sockaddr *, socklen_t *, int);
int (*shim_p_accept)(int, struct sockaddr *, socklen_t *);
int (*shim_p_listen)(int, int);
int (*shim_p_pipe2)(int *, int);
int (*shim_p_pipe)(int *);
int (*shim_p_epoll_create1)(int);
int (*shim_p_epoll_create)(int);
int (*shim_p_eventfd)(unsigned, int);
int (*shim_p_epoll_ctl)(int, int, int, struct epoll_event *);
ssize_t (*shim_p_sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);

/* dlsym(RTLD_NEXT) returns the next definition after this library: libc's.  A NULL means a
 * symbol this libc lacks (closefrom, close_range on old glibc): the syscall fallback serves. */
#define RESOLVE(name) (shim_p_##name = (__typeof__(shim_p_##name))dlsym(RTLD_NEXT, #name))

int shim_real_init(void)
{
    RESOLVE(socket);
    RESOLVE(socketpair);
    RESOLVE(connect);
    RESOLVE(close);
    RESOLVE(close_range);
    RESOLVE(closefrom);
    RESOLVE(shutdown);
    RESOLVE(getpeername);
    RESOLVE(getsockname);
    RESOLVE(getsockopt);
    RESOLVE(setsockopt);
    RESOLVE(fcntl);
    RESOLVE(dup);
    RESOLVE(dup2);
    RESOLVE(dup3);
    RESOLVE(accept4);
    RESOLVE(accept);
    RESOLVE(listen);
    RESOLVE(pipe2);
    RESOLVE(pipe);
    RESOLVE(epoll_create1);
    RESOLVE(epoll_create);
    RESOLVE(eventfd);
    RESOLVE(epoll_ctl);
    RESOLVE(sendto);
    if (!shim_p_socket || !shim_p_connect || !shim_p_close || !shim_p_fcntl || !shim_p_dup3 ||
        !shim_p_getsockopt)
        return -1;
    return 0;
}
