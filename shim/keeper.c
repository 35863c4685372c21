/* The keeper (keeper.h): a double fork from the event thread.  The copy of the loop, the
 * engine and the pumps in the keeper is the live one from then on: the process that forked it
 * stops its event thread and ends (or execs) without touching the shared descriptors again. */
#define _GNU_SOURCE
#include "keeper.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdtable.h"
#include "real.h"

bool shim_keeper_forking;

/* The app's signal handlers are the app's code: not run here.  Default actions (SIGTERM ends
 * the keeper and the connections it carries), every signal unblocked (the event thread that
 * became this process had all blocked), SIGPIPE ignored (pumps see EPIPE). */
static void reset_signals(void)
{
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &dfl, NULL);   /* glibc's internal signals refuse: fine */
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
}

/* ps and pgrep -f, pidof, init scripts read the command line: the app's, copied into the keeper
 * (`pidof nginx` listed it, `pkill -f nginx` killed it).  Rewritten in place where the kernel
 * reads it (arg_start..arg_end, fields 48-49 of /proc/self/stat), as setproctitle does: that
 * memory is the keeper's own copy. */
static void rename_cmdline(void)
{
    char st[4096];                 /* 52 numbers: well under this */
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, st, sizeof(st) - 1);
    shim_real_close(fd);
    if (n <= 0)
        return;
    st[n] = '\0';
    char *p = strrchr(st, ')');   /* the name before it may hold anything */
    unsigned long start = 0, end = 0;
    int field = 2;
    for (char *tok = p ? strtok(p + 1, " ") : NULL; tok; tok = strtok(NULL, " ")) {
        field++;
        if (field == 48)
            start = strtoul(tok, NULL, 10);
        else if (field == 49) {
            end = strtoul(tok, NULL, 10);
            break;
        }
    }
    static const char name[] = "sstshim-keeper";
    if (start == 0 || end < start + sizeof(name) || end - start > 65536)
        return;
    memset((void *)(uintptr_t)start, 0, end - start);
    memcpy((void *)(uintptr_t)start, name, sizeof(name));
}

/* The keeper's own set-up; then it tells the forking process its pid through ready (one of
 * the shim's own fds).  Every fd but the shim's own (the loop, pump ends, transport sockets,
 * the log file) closes: the app's files, pipes, listeners and its ends of the connections stay
 * with the app (a pipe held here would keep `$(prog)` waiting for the keeper). */
static void settle(int ready)
{
    shim_fd_close_range_app(0, ~0U, 0);
    int null = open("/dev/null", O_RDWR);
    if (null == 0) {
        shim_real_dup2(0, 1);
        shim_real_dup2(0, 2);
    }
    if (chdir("/") != 0) {
        /* stays where it is: only a mount point it pins */
    }
    reset_signals();
    prctl(PR_SET_NAME, "sstshim-keeper", 0, 0, 0);
    rename_cmdline();
    pid_t me = getpid();
    ssize_t w = shim_real_write(ready, &me, sizeof(me));
    (void)w;
    shim_fd_close_own(ready);
}

pid_t shim_keeper_fork(void)
{
    int ready[2];
    if (shim_real_pipe2(ready, O_CLOEXEC) < 0)
        return -1;
    shim_fd_set(ready[1], SHIM_FD_ENGINE);   /* the keeper's settle keeps it */
    shim_keeper_forking = true;
    pid_t mid = fork();
    if (mid == 0) {
        /* The middle process: a session of its own (no terminal, not in the app's process
         * group), then the keeper, whose parent is gone at once -- nobody has to reap it. */
        shim_real_close(ready[0]);
        if (setsid() < 0)
            _exit(1);
        pid_t k = fork();
        if (k != 0)
            _exit(k < 0 ? 1 : 0);
        shim_keeper_forking = false;
        settle(ready[1]);
        return 0;
    }
    int saved = errno;
    shim_keeper_forking = false;
    shim_fd_close_own(ready[1]);
    pid_t keeper = -1;
    if (mid > 0) {
        ssize_t n;
        do
            n = read(ready[0], &keeper, sizeof(keeper));
        while (n < 0 && errno == EINTR);
        if (n != (ssize_t)sizeof(keeper))
            keeper = -1;
        /* The middle process exits at once; the app may reap it first (ECHILD). */
        while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
            ;
        saved = keeper > 0 ? 0 : ECHILD;
    }
    shim_real_close(ready[0]);
    errno = saved;
    return keeper;
}
