/* membw.h - the CPU's streaming-read bandwidth, measured: the roofline
 * ceiling for CPU backends (a decode step is a streaming read of weights). */
#ifndef FB_MEMBW_H
#define FB_MEMBW_H

#include <stddef.h>

/* Bytes per second of reading `bytes` (split across `threads` threads, 0 =
 * all cores) as a sum of floats: the best of `passes` timed passes after one
 * warm-up pass. The best, not the median: other load on the machine only
 * ever slows a pass down, and a ceiling measured low would put a backend
 * "above its ceiling". Returns 0 when memory or threads cannot be had. */
/* The CPUs this process may run on (its affinity mask), as threads = 0
 * means; at least 1. */
long fb_usable_cpus(void);

/* The buffer the CPU ceiling streams over: 1 GiB, far past any cache; the
 * environment variable FAIRBENCH_CEILING_MB sets another size (the test
 * suite uses a small one: it checks behaviour, not the ceiling's figure). */
size_t fb_ceiling_bytes(void);

double fb_read_bandwidth(size_t bytes, int threads, int passes);

/* The CPU roofline ceiling of a run: measured once per thread count before
 * any backend loads, with a buffer far larger than any CPU cache. */
#define FB_CEILING_PASSES 5

/* The ceiling for `threads` threads (0 = all cores), as measured above. */
double fb_cpu_ceiling(int threads);

/* One sentence saying how fb_cpu_ceiling measures, for the report:
 * "a streaming read of 1024 MiB, best of 5 passes after a warm-up, per thread count". */
void fb_cpu_ceiling_method(char *buf, size_t n);

#endif
