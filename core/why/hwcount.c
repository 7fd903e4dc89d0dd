/* hwcount.c - perf_event_open counters (hwcount.h). Linux only. */
#include "why/hwcount.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/perf_event.h>
#include <sys/syscall.h>
#endif

const char *why_hwcount_name(int i) {
    static const char *const names[WHY_HW_N] = {"cycles", "instructions", "llc_misses"};
    return i >= 0 && i < WHY_HW_N ? names[i] : "?";
}

int why_hwcount_open(why_hwcount *h) {
    int opened = 0;
    for (int i = 0; i < WHY_HW_N; i++) {
        h->fd[i] = -1;
        h->why_not[i][0] = '\0';
#ifdef __linux__
        struct perf_event_attr a;
        memset(&a, 0, sizeof a);
        a.size = sizeof a;
        if (i == WHY_HW_LLC_MISSES) {
            a.type = PERF_TYPE_HW_CACHE;
            a.config = PERF_COUNT_HW_CACHE_LL | (PERF_COUNT_HW_CACHE_OP_READ << 8) |
                       (PERF_COUNT_HW_CACHE_RESULT_MISS << 16);
        } else {
            a.type = PERF_TYPE_HARDWARE;
            a.config = i == WHY_HW_CYCLES ? PERF_COUNT_HW_CPU_CYCLES : PERF_COUNT_HW_INSTRUCTIONS;
        }
        a.exclude_kernel = 1;
        a.exclude_hv = 1;
        a.inherit = 1;
        long fd = syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
        if (fd < 0) {
            snprintf(h->why_not[i], sizeof h->why_not[i], "not available: perf_event_open(%s) refused: %s",
                     why_hwcount_name(i), strerror(errno));
            continue;
        }
        h->fd[i] = (int)fd;
        opened++;
#else
        snprintf(h->why_not[i], sizeof h->why_not[i], "not available: perf_event_open is Linux only");
#endif
    }
    return opened;
}

void why_hwcount_read(const why_hwcount *h, uint64_t v[WHY_HW_N]) {
    for (int i = 0; i < WHY_HW_N; i++) {
        v[i] = 0;
        if (h->fd[i] >= 0 && read(h->fd[i], &v[i], sizeof v[i]) != (ssize_t)sizeof v[i]) v[i] = 0;
    }
}

void why_hwcount_close(why_hwcount *h) {
    for (int i = 0; i < WHY_HW_N; i++)
        if (h->fd[i] >= 0) close(h->fd[i]), h->fd[i] = -1;
}
