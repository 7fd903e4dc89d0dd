/* runner.h - the main job: every entry of a profile in a child process of its
 * own, one timing harness, the agreement check against the reference, and
 * the results the report is written from. */
#ifndef FB_RUNNER_H
#define FB_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "fairbench/plugin.h"
#include "fb_error.h"
#include "profile.h"
#include "stats.h"

typedef enum fb_entry_state {
    FB_ENTRY_OK = 0,
    FB_ENTRY_SKIPPED,   /* not run: plugin absent or unusable, hardware unavailable */
    FB_ENTRY_FAILED,    /* create or a call returned an error */
    FB_ENTRY_CRASHED,   /* the child died on a signal */
    FB_ENTRY_TIMED_OUT, /* a call ran past timeout_s; the child was killed */
    FB_ENTRY_OUT_OF_MEMORY,
    FB_ENTRY_INTERRUPTED /* Ctrl-C stopped the run before it finished */
} fb_entry_state;

typedef struct fb_entry_result {
    const fb_entry *entry;
    fb_entry_state state;
    char reason[512];             /* why not OK, or why WRONG; one sentence */
    char plugin_version[32];
    char device[128];             /* from probe */
    fb_effective_settings effective;
    bool has_effective;
    double load_s;                /* create() wall time */
    double cold_start_s;          /* first prefill + first decode after create */
    double *prefill_s;            /* per timed repetition */
    double *latency_ms;           /* every timed decode step, all repetitions */
    size_t n_prefill, n_latency;
    fb_summary decode;            /* summary of latency_ms */
    double prefill_tok_s;         /* prompt tokens / median prefill time */
    double throughput_tok_s;      /* 1000 / mean latency */
    uint64_t bytes_per_step;      /* weights at the storage precision + KV cache at the middle position */
    double bandwidth_gb_s;        /* bytes_per_step / median latency */
    double ceiling_gb_s;          /* streaming read (CPU) or copy probe (GPU) */
    double roofline_pct;
    uint64_t device_peak_bytes, host_rss_peak_bytes;
    double harness_overhead_ns;   /* per token, measured in the child */
    int32_t *tokens;              /* greedy tokens of the first timed repetition */
    size_t n_tokens;
    /* agreement with the reference, teacher-forced on the reference's tokens */
    bool agreement_checked;
    bool wrong;                   /* below the bar for its precision (agreement.h); reason says how */
    double top1, max_abs_diff, mean_kl;
    char agreement_note[160];
    double advantage, advantage_low, advantage_high; /* throughput / slowest's, with 95% CI */
} fb_entry_result;

typedef struct fb_run_result {
    fb_entry_result entries[FB_MAX_ENTRIES];
    int n_entries;
    char reference_label[64];
    char reference_status[256];   /* "ok" or why the reference could not run */
    int32_t *reference_tokens;
    size_t n_reference_tokens;
    int32_t *prompt;
    size_t n_prompt;
    char prompt_text[4096];
    char model_sha256[65];
    uint64_t model_bytes;
    char profile_sha256[65];
    char verdict[2048];           /* "fair" or "unfair: reason; reason" */
    bool fair;
    char warnings[4096];          /* reasons to doubt a figure, one per line */
    char notes[4096];             /* information (break-even), one per line */
    bool interrupted;             /* Ctrl-C: the results are partial */
    char order[512];              /* what was run in which order, e.g. "interleaved, seed 1" */
    double wall_s;
} fb_run_result;

typedef struct fb_run_options {
    const char *const *plugin_dirs;
    size_t n_plugin_dirs;
    bool progress;                /* progress lines on stderr */
} fb_run_options;

/* Run the profile. Returns 0 when the run happened (whatever the entries'
 * outcomes), -1 with err when it could not start (model unreadable, ...). */
int fb_run(const fb_profile *p, const fb_run_options *opt, fb_run_result *out, fb_error *err);
void fb_run_result_free(fb_run_result *r);

/* True when any entry failed, crashed, timed out, ran out of memory,
 * computed wrong results, or (unless allow_skips) was skipped, or the
 * reference did not run (exit status 1). */
bool fb_run_has_failures(const fb_run_result *r, bool allow_skips);

/* Stop the run (Ctrl-C): every child is killed, fb_run finishes with what
 * it has and sets interrupted. Async-signal-safe: call it from a handler. */
void fb_run_interrupt(void);

const char *fb_entry_state_name(fb_entry_state s);

#endif
