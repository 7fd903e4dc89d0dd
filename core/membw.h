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
double fb_read_bandwidth(size_t bytes, int threads, int passes);

/* The CPU roofline ceiling of a run: measured once per thread count before
 * any backend loads, with a buffer far larger than any CPU cache. */
#define FB_CEILING_BYTES ((size_t)1 << 30)
#define FB_CEILING_PASSES 5

/* The ceiling for `threads` threads (0 = all cores), as measured above. */
double fb_cpu_ceiling(int threads);

/* One sentence saying how fb_cpu_ceiling measures, for the report:
 * "a streaming read of 1024 MiB, best of 5 passes after a warm-up, per thread count". */
void fb_cpu_ceiling_method(char *buf, size_t n);

#endif
