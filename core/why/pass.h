/* pass.h - the profiling pass: run in a backend's child process, separate
 * from (and never during) the timed repetitions. It creates the session,
 * prefills the prompt, runs warm-up decode steps, then records `steps`
 * decode steps: GPU kernels and copies through CUPTI (when the recorder
 * loads), the plugin's named spans (ABI 1.1 profile_spans, when offered),
 * CPU hardware counters per step, and RAPL energy; and returns the "why"
 * object (JSON, see docs/why.md). */
#ifndef FB_WHY_PASS_H
#define FB_WHY_PASS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "fairbench/plugin.h"
#include "fb_error.h"
#include "why/analyze.h"

typedef struct why_pass_config {
    const fb_plugin *api;
    const fb_host *host;
    const fb_model_view *model;
    const fb_settings *settings;  /* max_context must cover prompt + warmup + steps */
    const int32_t *prompt;
    size_t n_prompt;
    int warmup_steps;             /* untimed decode steps before recording */
    int steps;                    /* decode steps recorded */
    const char *trace_prefix;     /* NULL, or write PREFIX.gpu.trace / PREFIX.spans.trace */
} why_pass_config;

/* The pass; NULL with a sentence when the session cannot be created or a
 * call fails. A missing CUPTI, NVML, perf or RAPL is "not available" inside
 * the object, never a failure. */
cJSON *why_profile_pass(const why_pass_config *c, fb_error *err);

/* A breakdown as JSON (the "gpu" or "spans" member of the why object). */
cJSON *why_breakdown_json(const why_breakdown *b);
/* {"available": false, "why_not": why_not} */
cJSON *why_not_available_json(const char *why_not);

#endif
