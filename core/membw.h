/* membw.h - the CPU's streaming-read bandwidth, measured: the roofline
 * ceiling for CPU backends (a decode step is a streaming read of weights). */
#ifndef FB_MEMBW_H
#define FB_MEMBW_H

#include <stddef.h>

/* Bytes per second of reading `bytes` (split across `threads` threads, 0 =
 * all cores) as a sum of floats, the median of `reps` passes after one
 * warm-up pass. Returns 0 when memory or threads cannot be had. */
double fb_read_bandwidth(size_t bytes, int threads, int reps);

#endif
