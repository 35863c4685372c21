/* The real libc functions behind every hook, resolved once with dlsym(RTLD_NEXT); until then
 * (hooks called by other libraries' constructors) each falls back to the raw system call. */
#ifndef SHIM_REAL_H
#define SHIM_REAL_H

#include <sys/socket.h>
#include <sys/types.h>

#define SHIM_EXPORT __attribute__((visibility("default")))

/* Resolves every symbol; called from the constructor.  Returns 0 or -1 if one is missing. */
int shim_real_init(void);

int shim_real_socket(int domain, int type, int proto);
int shim_real_socketpair(int domain, int type, int proto, int sv[2]);
int shim_real_connect(int fd, const struct sockaddr *sa, socklen_t len);
int shim_real_close(int fd);
int shim_real_close_range(unsigned first, unsigned last, int flags);
void shim_real_closefrom(int lowfd);
int shim_real_shutdown(int fd, int how);
int shim_real_getpeername(int fd, struct sockaddr *sa, socklen_t *len);
int shim_real_getsockname(int fd, struct sockaddr *sa, socklen_t *len);
int shim_real_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
int shim_real_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
int shim_real_fcntl(int fd, int cmd, unsigned long arg);
int shim_real_dup(int fd);
int shim_real_dup2(int fd, int fd2);
int shim_real_dup3(int fd, int fd2, int flags);
int shim_real_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);
int shim_real_accept(int fd, struct sockaddr *sa, socklen_t *len);
int shim_real_listen(int fd, int backlog);
int shim_real_pipe2(int fds[2], int flags);
int shim_real_pipe(int fds[2]);
int shim_real_epoll_create1(int flags);
int shim_real_epoll_create(int size);
int shim_real_eventfd(unsigned initval, int flags);
struct epoll_event;
int shim_real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
ssize_t shim_real_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa, socklen_t len);

#endif
