/* supervisor.h - one child process under a deadline: fork, a pair of pipes,
 * framed messages, waiting with a time-out, and burial (reaping, with how the
 * child ended).
 *
 * Used by the main job (runner.c: one child per backend) and meant for
 * `fairbench conformance` (one child per check). The supervisor knows no
 * backend and no result type: it says how a child ended, and the caller
 * decides what that means ("crashed", "out of memory", a failed check).
 *
 *   fb_child ch;
 *   fb_child_spawn(&ch, my_child_main, &ctx);          // child runs my_child_main
 *   fb_msg_header h; void *payload;
 *   int rc = fb_child_receive(&ch, MSG_X, fb_now_s() + timeout_s, &h, &payload);
 *   if (rc) { fb_child_end end; fb_child_bury(&ch, rc == FB_CHILD_TIMED_OUT, &end); ... }
 *
 * Threads: the parent's calls are made from one thread. Nothing here prints. */
#ifndef FB_SUPERVISOR_H
#define FB_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Monotonic seconds: every deadline is on this clock. */
double fb_now_s(void);

/* A message: this header, then `bytes` of payload. */
typedef struct fb_msg_header {
    uint32_t type;   /* the caller's message kind */
    uint32_t status; /* the caller's status (fb_status of the call, for the runner) */
    uint64_t bytes;
} fb_msg_header;

/* The largest payload fb_child_receive accepts (a corrupt header is not an allocation). */
#define FB_MSG_MAX_BYTES ((uint64_t)1 << 34)

int fb_write_all(int fd, const void *p, size_t n);                 /* 0, or -1 (the reader is gone) */
int fb_msg_send(int fd, uint32_t type, uint32_t status, const void *payload, size_t bytes);

enum { FB_CHILD_GONE = -1, FB_CHILD_TIMED_OUT = -2 };

/* Read n bytes, waiting at most until `deadline` (fb_now_s clock; INFINITY:
 * no limit). 0, FB_CHILD_GONE on end of file or error, FB_CHILD_TIMED_OUT. */
int fb_read_until(int fd, void *p, size_t n, double deadline);

typedef struct fb_child {
    pid_t pid;
    int cmd_fd; /* parent writes commands here */
    int res_fd; /* parent reads results here */
    bool alive; /* spawned and not yet buried */
} fb_child;

/* The child's side: reads commands from cmd_fd, writes results to res_fd.
 * It should end with _exit(); if it returns, the child exits with status 0. */
typedef void (*fb_child_main)(void *arg, int cmd_fd, int res_fd);

/* Fork a child that runs fn(arg, ...). Its stdout is joined to stderr, so
 * nothing a plugin prints can reach the parent's report. 0, or -1 with errno. */
int fb_child_spawn(fb_child *ch, fb_child_main fn, void *arg);

/* Any type, for fb_child_receive (the caller tells the kinds apart). */
#define FB_MSG_ANY 0u

/* Receive one message of `type` (or FB_MSG_ANY) by `deadline`; *payload is malloc'd (the
 * caller frees it). 0; FB_CHILD_TIMED_OUT; FB_CHILD_GONE when the child
 * closed its pipe (died), sent another type, or a size past FB_MSG_MAX_BYTES.
 * The child is not buried: the caller does that with the cause. */
int fb_child_receive(fb_child *ch, uint32_t type, double deadline, fb_msg_header *h, void **payload);

/* How a child ended. */
typedef struct fb_child_end {
    bool killed_at_deadline; /* the supervisor killed it (fb_child_bury with kill_first) */
    bool signaled;           /* it died on a signal (sig below) */
    int sig;
    int exit_status;         /* when it exited */
    uint64_t rss_peak_bytes; /* its resident-set high-water mark (getrusage of the child) */
} fb_child_end;

/* Reap the child (first SIGKILL it when kill_first), close its pipes and say
 * how it ended. A child that was not alive leaves *end zeroed. */
void fb_child_bury(fb_child *ch, bool kill_first, fb_child_end *end);

/* Stop every child spawned by this process that is still alive (SIGKILL):
 * for a signal handler on Ctrl-C. Async-signal-safe. */
void fb_child_kill_all(void);

#endif
