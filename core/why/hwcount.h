/* hwcount.h - per-step CPU hardware counters through perf_event_open(2):
 * cycles, instructions and last-level-cache read misses of this process
 * (all its threads, counted from the moment of opening). Many VMs and
 * containers refuse them; then each counter says why and the rest goes on. */
#ifndef FB_WHY_HWCOUNT_H
#define FB_WHY_HWCOUNT_H

#include <stddef.h>
#include <stdint.h>

enum { WHY_HW_CYCLES = 0, WHY_HW_INSTRUCTIONS, WHY_HW_LLC_MISSES, WHY_HW_N };

typedef struct why_hwcount {
    int fd[WHY_HW_N];            /* -1 when refused */
    char why_not[WHY_HW_N][160]; /* "not available: ..." when refused */
} why_hwcount;

/* Open the counters (any may fail; the failure is recorded, not returned).
 * Returns how many opened. Threads started later are counted (inherit). */
int why_hwcount_open(why_hwcount *h);
/* Read every open counter into v (those refused: 0). */
void why_hwcount_read(const why_hwcount *h, uint64_t v[WHY_HW_N]);
void why_hwcount_close(why_hwcount *h);
const char *why_hwcount_name(int i); /* "cycles", "instructions", "llc_misses" */

#endif
