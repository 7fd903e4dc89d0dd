/* analyze.h - from a profiling trace (trace.h) to the "why" breakdown of a
 * decode step: launches per token, busy vs idle time (the bubbles), time by
 * class of kernel or span, and the top kernels with their share and, where
 * the plugin says what bytes a kernel moves, the bandwidth it reached.
 *
 * Classes come from a name-to-class table: the plugin's own entries first
 * (ABI 1.1 kernel_classes, which refines the host's), then the host's
 * default table below (why_default_classes), first match wins; a name no
 * entry matches is "other". Copies and sets are class "copy" whatever their
 * name. Matching is by substring, case-insensitive. */
#ifndef FB_WHY_ANALYZE_H
#define FB_WHY_ANALYZE_H

#include <stddef.h>
#include <stdint.h>

#include "fairbench/plugin.h"
#include "why/trace.h"

typedef enum why_class {
    WHY_CLASS_MATVEC = 0, /* matvec / GEMM */
    WHY_CLASS_ATTENTION,
    WHY_CLASS_NORM,
    WHY_CLASS_ROPE_KV,
    WHY_CLASS_ELEMENTWISE,
    WHY_CLASS_ARGMAX,
    WHY_CLASS_COPY,
    WHY_CLASS_OTHER,
    WHY_N_CLASSES
} why_class;

/* "matvec", "attention", "norm", "rope_kv", "elementwise", "argmax", "copy", "other". */
const char *why_class_name(why_class c);
/* The class of that name; -1 when it is none of them. */
int why_class_parse(const char *name);

/* The host's default table (n entries), in match order. */
const fb_kernel_class *why_default_classes(size_t *n);

/* The class of a kernel or span name: plugin entries (may be NULL, n_plugin
 * 0) first, then the default table. *bytes (may be NULL) gets the matched
 * plugin entry's bytes per launch, 0 when unknown. An entry whose class is
 * not a known name is skipped. */
why_class why_classify(const char *name, const fb_kernel_class *plugin, size_t n_plugin, uint64_t *bytes);

#define WHY_TOP_MAX 16

typedef struct why_top_kernel {
    char name[WHY_NAME_MAX];
    why_class cls;
    double calls_per_step;
    double ms_per_step;     /* summed duration per step */
    double share;           /* of the summed duration of all records, 0..1 */
    double avg_us;          /* per call */
    double gb_per_s;        /* bytes per launch / duration; < 0 when the bytes are unknown */
} why_top_kernel;

typedef struct why_breakdown {
    int source_gpu;               /* 1: kernels and copies (CUPTI); 0: spans (a CPU plugin) */
    size_t n_steps;
    double step_ms;               /* mean host-side duration of a decode step */
    double busy_ms, idle_ms;      /* per step: union of the records' intervals inside the step, and the rest */
    double busy_fraction;         /* busy_ms / step_ms */
    double busy_fraction_median;  /* the median over steps of each step's busy / duration (robust to one
                                   * step the OS preempted outside any record) */
    double kernels_per_token, copies_per_token, launches_per_token; /* launches = kernels + copies + sets */
    double spans_per_token;
    double gaps_per_step;         /* idle gaps between records inside a step (the bubbles) */
    double max_gap_us;            /* the longest of them, over all steps */
    double recorded_ms;           /* per step: summed duration of all records (overlaps counted twice) */
    double class_ms[WHY_N_CLASSES]; /* per step, by class */
    why_top_kernel top[WHY_TOP_MAX];
    size_t n_top;
    size_t n_outside;             /* records in no step's window (ignored) */
} why_breakdown;

/* Analyse t. Returns -1 with a sentence when t has no step. */
int why_analyze(const why_trace *t, const fb_kernel_class *plugin, size_t n_plugin, why_breakdown *out, fb_error *err);

#endif
