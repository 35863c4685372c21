/* Process lifecycle for sstd: the socket directory, daemonizing with a readiness pipe, pid file. */
#define _GNU_SOURCE
#include "sstd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sstd_prepare_socket_dir(const char *socket_path, bool shared, char *err, size_t errlen)
{
    char dir[SSTD_PATH_MAX];
    const char *slash = strrchr(socket_path, '/');
    if (!slash || slash == socket_path)
        return 0; /* relative name in the cwd, or a file directly under / */
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - socket_path), socket_path);
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a directory", dir);
            return -1;
        }
        return 0; /* someone chose this directory and its mode: leave it */
    }
    /* Private to the user unless other uids are allowed in, then 0755 (SO_PEERCRED decides). */
    mode_t mode = shared ? 0755 : 0700;
    if (mkdir(dir, mode) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    if (chmod(dir, mode) < 0) {
        snprintf(err, errlen, "cannot chmod %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* Descriptors 0-2 open (on /dev/null) before sstd opens anything: started with one of them closed
 * (`sstd <&-`, a supervisor or CI runner without stdin), sstd got its log file or a socket as
 * descriptor 0, and daemonizing's dup2 of /dev/null over 0-2 silently replaced it -- the log
 * ended at "UDP port ..." and never said "exited cleanly". */
void sstd_stdio_open(void)
{
    int fd;
    do {
        fd = open("/dev/null", O_RDWR);
    } while (fd >= 0 && fd <= 2);
    if (fd > 2)
        close(fd);
}

/* Forks twice (the daemon is no session leader, so it can never regain a terminal).  The
 * original process stays until the daemon reports readiness through the pipe and exits with the
 * status the daemon sends, so `sstd && sstctl status` never races the socket. */
int sstd_daemonize(int *ready_fd, char *err, size_t errlen)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid > 0) {
        unsigned char status = 1;
        close(pfd[1]);
        while (read(pfd[0], &status, 1) < 0 && errno == EINTR) {
        }
        _exit(status);
    }
    close(pfd[0]);
    if (setsid() < 0)
        _exit(1);
    pid = fork();
    if (pid < 0)
        _exit(1);
    if (pid > 0)
        _exit(0);
    if (chdir("/") < 0)
        _exit(1);
    *ready_fd = pfd[1];
    return 0;
}

void sstd_daemon_ready(int ready_fd, int status)
{
    unsigned char b = (unsigned char)status;
    if (ready_fd < 0)
        return;
    if (status == 0) {
        /* Detach stdio only now, so set-up errors still reached the terminal. */
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
            dup2(nul, 2);
            if (nul > 2)
                close(nul);
        }
    }
    if (write(ready_fd, &b, 1) < 0) {
        /* the parent is gone; nothing to tell */
    }
    close(ready_fd);
}

int sstd_pidfile_write(const char *path, char *err, size_t errlen)
{
    char tmp[PATH_MAX + 8], line[32];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "pid file path too long");
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    int n = snprintf(line, sizeof line, "%d\n", (int)getpid());
    bool ok = write(fd, line, (size_t)n) == n;
    close(fd);
    if (!ok || rename(tmp, path) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
