/* timing.h - what the main job times, in one place a reviewer can audit:
 * one repetition (prefill, then n decode steps, each step timed alone) and
 * the harness's own cost per token. Runs in the backend's child process. */
#ifndef FB_TIMING_H
#define FB_TIMING_H

#include <stddef.h>
#include <stdint.h>

#include "fairbench/plugin.h"

/* reset, then prefill(prompt) timed as a whole into *prefill_s, then n
 * decode steps, each timed alone into latency_ms[i], with the greedy token
 * fed to step i in tokens[i]. Stops at the first error and returns it. */
fb_status fb_timed_repetition(const fb_plugin *api, fb_session *s, const int32_t *prompt, uint32_t n_prompt,
                              uint32_t n, double *prefill_s, double *latency_ms, int32_t *tokens);

/* The harness's cost per token, ns: the timed loop around decode with the
 * call taken out (two clock reads and a store). */
double fb_harness_overhead_ns(void);

#endif
