/* supervisor.c - one child process under a deadline (see supervisor.h). */
#include "supervisor.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double fb_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int fb_write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        c += k, n -= (size_t)k;
    }
    return 0;
}

int fb_msg_send(int fd, uint32_t type, uint32_t status, const void *payload, size_t bytes) {
    fb_msg_header h = {type, status, bytes};
    return fb_write_all(fd, &h, sizeof h) || (bytes && fb_write_all(fd, payload, bytes)) ? -1 : 0;
}

int fb_read_until(int fd, void *p, size_t n, double deadline) {
    char *c = p;
    while (n > 0) {
        double left = deadline - fb_now_s();
        if (left <= 0) return FB_CHILD_TIMED_OUT;
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, left > 1e6 ? -1 : (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return FB_CHILD_GONE;
        if (r == 0) continue; /* the loop re-checks the deadline */
        ssize_t k = read(fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return FB_CHILD_GONE;
        c += k, n -= (size_t)k;
    }
    return 0;
}

// ----------------------------------------------------------------------------
// Live children, for fb_child_kill_all (a Ctrl-C handler)

enum { MAX_LIVE = 64 };
static volatile pid_t live_pids[MAX_LIVE];

static void live_add(pid_t pid) {
    for (int i = 0; i < MAX_LIVE; i++)
        if (live_pids[i] == 0) {
            live_pids[i] = pid;
            return;
        }
}

static void live_remove(pid_t pid) {
    for (int i = 0; i < MAX_LIVE; i++)
        if (live_pids[i] == pid) live_pids[i] = 0;
}

void fb_child_kill_all(void) {
    for (int i = 0; i < MAX_LIVE; i++)
        if (live_pids[i] > 0) kill(live_pids[i], SIGKILL);
}

// ----------------------------------------------------------------------------

int fb_child_spawn(fb_child *ch, fb_child_main fn, void *arg) {
    int down[2], up[2];
    memset(ch, 0, sizeof *ch);
    if (pipe(down)) return -1;
    if (pipe(up)) {
        close(down[0]), close(down[1]);
        return -1;
    }
    fflush(NULL); /* buffered output must not be written twice */
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(down[0]), close(down[1]), close(up[0]), close(up[1]);
        errno = saved;
        return -1;
    }
    if (pid == 0) {
        close(down[1]);
        close(up[0]);
        /* Ctrl-C is the parent's to handle (it stops us); the parent's
         * handlers and its list of children are not ours. */
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_DFL);
        for (int i = 0; i < MAX_LIVE; i++) live_pids[i] = 0;
        dup2(STDERR_FILENO, STDOUT_FILENO);
        fn(arg, down[0], up[1]);
        _exit(0);
    }
    close(down[0]);
    close(up[1]);
    ch->pid = pid;
    ch->cmd_fd = down[1];
    ch->res_fd = up[0];
    ch->alive = true;
    live_add(pid);
    return 0;
}

int fb_child_receive(fb_child *ch, uint32_t type, double deadline, fb_msg_header *h, void **payload) {
    *payload = NULL;
    int rc = fb_read_until(ch->res_fd, h, sizeof *h, deadline);
    if (rc == 0 && ((type != FB_MSG_ANY && h->type != type) || h->bytes > FB_MSG_MAX_BYTES)) rc = FB_CHILD_GONE;
    if (rc == 0) {
        *payload = malloc(h->bytes ? (size_t)h->bytes : 1);
        rc = *payload ? fb_read_until(ch->res_fd, *payload, (size_t)h->bytes, deadline) : FB_CHILD_GONE;
    }
    if (rc != 0) {
        free(*payload);
        *payload = NULL;
    }
    return rc;
}

void fb_child_bury(fb_child *ch, bool kill_first, fb_child_end *end) {
    memset(end, 0, sizeof *end);
    if (!ch->alive) return;
    if (kill_first) kill(ch->pid, SIGKILL);
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(ch->pid, &status, 0, &ru) < 0 && errno == EINTR) {}
    live_remove(ch->pid);
    close(ch->cmd_fd);
    close(ch->res_fd);
    ch->alive = false;
    end->killed_at_deadline = kill_first;
    end->signaled = WIFSIGNALED(status);
    end->sig = end->signaled ? WTERMSIG(status) : 0;
    end->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
    end->rss_peak_bytes = (uint64_t)ru.ru_maxrss * 1024;
}
