/* Hooks the exec family: a new program image ends the event thread and the in-process engine,
 * as exit() does, so what the program wrote is delivered first (evthread.h,
 * shim_ev_flush_at_exec; docs/shim.md §5 "exec").  Kernel TCP closes a FD_CLOEXEC socket at
 * exec and sends its queued bytes; without this the shim lost them and the peer was never told.
 * Every variant is hooked because libc's execv/execvp/execl* call its internal execve, not
 * ours. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "evthread.h"
#include "fdtable.h"
#include "real.h"
#include "server.h"
#include "shim.h"

typedef int (*exec3_fn)(const char *, char *const[], char *const[]);
typedef int (*fexec_fn)(int, char *const[], char *const[]);

/* Whether exec would find `file` to run: as execvp searches, through PATH (libc's default
 * when unset) for a name without '/' when search is set; else the path itself. */
static bool exec_finds(const char *file, bool search)
{
    if (!search || strchr(file, '/'))
        return access(file, X_OK) == 0;
    const char *dirs = getenv("PATH");
    if (dirs == NULL)
        dirs = "/bin:/usr/bin";
    char path[4096];
    for (const char *d = dirs;; ) {
        const char *end = strchrnul(d, ':');
        size_t n = (size_t)(end - d);
        if (snprintf(path, sizeof path, "%.*s%s%s", (int)n, d, n ? "/" : "", file) <
                (int)sizeof path && access(path, X_OK) == 0)
            return true;                 /* an empty entry is the current directory */
        if (*end == '\0')
            return false;
        d = end + 1;
    }
}

/* path: the file to run when known; search: execvp-style PATH search for a bare name. */
static void before_exec(const char *path, bool search)
{
    /* A vfork child (posix_spawn, subprocess) shares our memory: the event thread is the
     * parent's, which goes on. */
    if (!shim_engaged() || shim_fd_foreign_process())
        return;
    if (path && !exec_finds(path, search))
        return;   /* the exec will fail: this image, and its connections, go on */
    int saved = errno;
    shim_tls_guard++;
    shim_ev_flush_at_exec();
    shim_tls_guard--;
    errno = saved;
}

/* The environment for the new image: envp plus SST_SHIM_ACCEPTED, the SST peers of the
 * accepted connections that survive the exec (server.c; sshd re-executes itself with the
 * connection on stdin and logs getpeername's answer).  envp itself when there is nothing to
 * pass; else a malloc'ed copy in *own (the caller frees it if the exec returns). */
static char *const *exec_env(char *const envp[], char **own, char *var, size_t cap)
{
    *own = NULL;
    if (!shim_server_engaged() || shim_fd_foreign_process() || !shim_server_exec_env(var, cap))
        return envp;
    size_t n = 0, klen = strlen(SHIM_SERVER_ENV);
    while (envp && envp[n])
        n++;
    char **e = malloc((n + 2) * sizeof(*e));
    if (!e)
        return envp;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(envp[i], SHIM_SERVER_ENV, klen) != 0 || envp[i][klen] != '=')
            e[k++] = envp[i];
    e[k++] = var;
    e[k] = NULL;
    *own = (char *)e;
    return e;
}

#define ACCEPTED_ENV_MAX 4096

static void *next(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (!p)
        errno = ENOSYS;
    return p;
}

/* The exit drain, then libc's execve or execvpe (name) with envp and the accepted connections'
 * variable (exec_env).  execv and execvp are those two with environ, as libc defines them. */
static int exec_via(const char *name, const char *file, char *const argv[], char *const envp[], bool search)
{
    exec3_fn f = (exec3_fn)next(name);
    if (!f)
        return -1;
    before_exec(file, search);
    char var[ACCEPTED_ENV_MAX], *own;
    int rc = f(file, argv, exec_env(envp, &own, var, sizeof(var)));
    free(own);
    return rc;
}

SHIM_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    return exec_via("execve", path, argv, envp, false);
}

SHIM_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    return exec_via("execvpe", file, argv, envp, true);
}

SHIM_EXPORT int execv(const char *path, char *const argv[])
{
    return exec_via("execve", path, argv, environ, false);
}

SHIM_EXPORT int execvp(const char *file, char *const argv[])
{
    return exec_via("execvpe", file, argv, environ, true);
}

SHIM_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    fexec_fn f = (fexec_fn)next("fexecve");
    if (!f)
        return -1;
    before_exec(NULL, false);
    char var[ACCEPTED_ENV_MAX], *own;
    int rc = f(fd, argv, exec_env(envp, &own, var, sizeof(var)));
    free(own);
    return rc;
}

/* execl, execlp, execle: the argument list as an array on the stack, as libc builds it. */
static size_t count_args(const char *arg, va_list ap)
{
    size_t n = 1;
    while (arg && va_arg(ap, const char *))
        n++;
    return n;
}

#define COLLECT_ARGS(argv, arg, ap)                                                                \
    do {                                                                                           \
        argv[0] = (char *)(arg);                                                                   \
        for (size_t i_ = 1; argv[i_ - 1]; i_++)                                                    \
            argv[i_] = va_arg(ap, char *);                                                         \
    } while (0)

SHIM_EXPORT int execl(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    size_t n = count_args(arg, ap);
    va_end(ap);
    char *argv[n + 1];
    va_start(ap, arg);
    COLLECT_ARGS(argv, arg, ap);
    va_end(ap);
    return execv(path, argv);
}

SHIM_EXPORT int execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    size_t n = count_args(arg, ap);
    va_end(ap);
    char *argv[n + 1];
    va_start(ap, arg);
    COLLECT_ARGS(argv, arg, ap);
    va_end(ap);
    return execvp(file, argv);
}

SHIM_EXPORT int execle(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    size_t n = count_args(arg, ap);
    va_end(ap);
    char *argv[n + 1];
    va_start(ap, arg);
    COLLECT_ARGS(argv, arg, ap);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return execve(path, argv, envp);
}
