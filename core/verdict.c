/* verdict.c - the fairness audit, the ranking and the lines under the table
 * (see verdict.h). */
#include "verdict.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb_version.h"

static void append(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t size, const char *fmt, ...) {
    size_t len = strlen(buf);
    if (len + 1 >= size) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

/* A reason, "; "-separated from the ones before. */
static void reason(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reason(char *buf, size_t size, const char *fmt, ...) {
    if (buf[0]) append(buf, size, "; ");
    size_t len = strlen(buf);
    if (len + 1 >= size) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

/* The value of fairness key k (in fb_profile_fairness_keys order) as a number. */
static int fairness_value(const fb_fairness *f, int k) {
    switch (k) {
    case 0: return (int)f->weight_precision;
    case 1: return (int)f->accumulate_precision;
    case 2: return f->allow_jit;
    case 3: return f->allow_graphs;
    case 4: return (int)f->jit_cache;
    default: return f->threads;
    }
}

/* An override matters when it leaves this entry's setting different from
 * another entry's; the same override on every entry is a common setting. */
static bool override_differs(const fb_run_result *out, int i, int k) {
    int v = fairness_value(&out->entries[i].entry->fairness, k);
    for (int j = 0; j < out->n_entries; j++)
        if (j != i && fairness_value(&out->entries[j].entry->fairness, k) != v) return true;
    return false;
}

enum { KEY_WEIGHT_PRECISION = 0, KEY_THREADS = 5 };

void fb_audit(const fb_profile *p, fb_run_result *out) {
    int n_keys;
    const char *const *keys = fb_profile_fairness_keys(&n_keys);
    char reasons[2048] = "";
    uint32_t varied = 0; /* vary keys in which the entries did differ */
    const fb_entry_result *first = NULL;
    int measured = 0;
    for (int i = 0; i < out->n_entries; i++) {
        const fb_entry_result *r = &out->entries[i];
        const fb_entry *e = r->entry;
        measured += r->state == FB_ENTRY_OK && !r->wrong;
        for (int k = 0; k < n_keys; k++) {
            if (!(e->overridden & (1u << k)) || !override_differs(out, i, k)) continue;
            if (p->vary & (1u << k)) varied |= 1u << k;
            else
                reason(reasons, sizeof reasons, "%s overrides %s", e->label, keys[k]);
        }
        if (!r->has_effective) continue;
        /* What it was asked for against what it did: never by design. */
        const fb_effective_settings *eff = &r->effective;
        if (eff->weight_precision != e->fairness.weight_precision)
            reason(reasons, sizeof reasons, "%s was asked for %s weights but ran %s", e->label,
                   fb_precision_name(e->fairness.weight_precision), fb_precision_name(eff->weight_precision));
        if (eff->accumulate_precision != e->fairness.accumulate_precision)
            reason(reasons, sizeof reasons, "%s accumulated in %s, not %s", e->label,
                   fb_precision_name(eff->accumulate_precision), fb_precision_name(e->fairness.accumulate_precision));
        if (eff->jit && !e->fairness.allow_jit)
            reason(reasons, sizeof reasons, "%s used JIT compilation, which the profile forbids", e->label);
        if (eff->graphs && !e->fairness.allow_graphs)
            reason(reasons, sizeof reasons, "%s replayed graphs, which the profile forbids", e->label);
        if (e->fairness.threads > 0 && eff->threads > 0 && eff->threads != e->fairness.threads)
            reason(reasons, sizeof reasons, "%s was asked for %d thread%s but ran %d", e->label, e->fairness.threads,
                   e->fairness.threads == 1 ? "" : "s", eff->threads);
        /* Entries against one another. */
        if (!first) {
            first = r;
        } else if (eff->weight_precision != first->effective.weight_precision) {
            if (p->vary & (1u << KEY_WEIGHT_PRECISION)) varied |= 1u << KEY_WEIGHT_PRECISION;
            else
                reason(reasons, sizeof reasons, "weight precision differs: %s %s, %s %s", first->entry->label,
                       fb_precision_name(first->effective.weight_precision), e->label,
                       fb_precision_name(eff->weight_precision));
        } else if (eff->threads && first->effective.threads && eff->threads != first->effective.threads) {
            if (p->vary & (1u << KEY_THREADS)) varied |= 1u << KEY_THREADS;
            else
                reason(reasons, sizeof reasons, "CPU threads differ: %s %d, %s %d", first->entry->label,
                       first->effective.threads, e->label, eff->threads);
        }
    }
    /* A comparison needs two backends measured and correct. */
    if (out->n_entries >= 2 && measured < 2) {
        char missing[1024] = "";
        for (int i = 0; i < out->n_entries; i++)
            if (out->entries[i].state != FB_ENTRY_OK || out->entries[i].wrong)
                append(missing, sizeof missing, "%s%s %s", missing[0] ? ", " : "", out->entries[i].entry->label,
                       out->entries[i].wrong ? "WRONG" : fb_entry_state_name(out->entries[i].state));
        reason(reasons, sizeof reasons, "no comparison was made: %d of %d backends were measured and correct (%s)",
               measured, out->n_entries, missing);
    }
    if (strcmp(out->reference_status, "ok") != 0)
        reason(reasons, sizeof reasons, "no backend's results were checked: the reference %s did not run",
               out->reference_label);
    out->fair = reasons[0] == '\0';
    if (!out->fair) {
        snprintf(out->verdict, sizeof out->verdict, "unfair: %.2030s", reasons);
        return;
    }
    char by_design[256] = "";
    for (int k = 0; k < n_keys; k++)
        if (varied & (1u << k)) append(by_design, sizeof by_design, "%s%s", by_design[0] ? ", " : "", keys[k]);
    if (by_design[0]) snprintf(out->verdict, sizeof out->verdict, "fair (varies by design: %s)", by_design);
    else
        snprintf(out->verdict, sizeof out->verdict, "fair");
}

// ----------------------------------------------------------------------------
// Ranking and the lines under the table

static void add_line(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add_line(char *buf, size_t size, const char *fmt, ...) {
    size_t len = strlen(buf);
    if (len + 2 >= size) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
    len = strlen(buf);
    if (len + 1 < size) buf[len] = '\n', buf[len + 1] = '\0';
}

/* Ranked: measured and correct. A WRONG backend's speed is no achievement. */
static bool ranked(const fb_entry_result *r) { return r->state == FB_ENTRY_OK && !r->wrong && r->n_latency > 0; }

void fb_rank_and_warn(const fb_profile *p, fb_run_result *out) {
    /* Advantage: throughput against the slowest ranked backend, with a 95%
     * bootstrap interval of the ratio of mean latencies over repetitions: the
     * resampled unit is a repetition's mean step, since consecutive steps of
     * one repetition are not independent (a busy stretch slows them all). With
     * equal repetitions the ratio of their means is the ratio of step means. */
    const fb_entry_result *slowest = NULL;
    for (int i = 0; i < out->n_entries; i++)
        if (ranked(&out->entries[i]) && (!slowest || out->entries[i].decode.mean > slowest->decode.mean))
            slowest = &out->entries[i];
    for (int i = 0; i < out->n_entries; i++) {
        fb_entry_result *r = &out->entries[i];
        if (!ranked(r)) continue;
        r->advantage = slowest->decode.mean / r->decode.mean;
        size_t gen = (size_t)p->gen_tokens;
        double *a = malloc((slowest->n_latency / gen + 1) * sizeof *a),
               *b = malloc((r->n_latency / gen + 1) * sizeof *b);
        size_t na = a ? fb_block_means(slowest->latency_ms, slowest->n_latency, gen, a) : 0;
        size_t nb = b ? fb_block_means(r->latency_ms, r->n_latency, gen, b) : 0;
        fb_ratio_ci(a, na, b, nb, p->seed, 1000, &r->advantage_low, &r->advantage_high);
        free(a);
        free(b);
    }
    /* Warnings: reasons to doubt a figure. */
    for (int i = 0; i < out->n_entries; i++) {
        const fb_entry_result *r = &out->entries[i];
        if (r->state != FB_ENTRY_OK || r->n_latency == 0) continue;
        if (r->decode.cv > p->cv_warn)
            add_line(out->warnings, sizeof out->warnings,
                     "%s: decode latency varies (coefficient of variation %.1f%% > %.1f%%): other load on the "
                     "machine, frequency scaling, or too few tokens per repetition",
                     r->entry->label, 100 * r->decode.cv, 100 * p->cv_warn);
        if (r->decode.n_outliers)
            add_line(out->warnings, sizeof out->warnings,
                     "%s: %zu of %zu decode steps are outliers (robust z-score > 3.5 on the median absolute deviation)",
                     r->entry->label, r->decode.n_outliers, r->decode.n);
        if (r->roofline_pct > 100)
            add_line(out->warnings, sizeof out->warnings,
                     "%s: above its measured ceiling (%.0f%%): %.1f MB per step likely fits in the CPU's caches, so "
                     "the roofline share against memory bandwidth does not apply",
                     r->entry->label, r->roofline_pct, (double)r->bytes_per_step / 1e6);
        if (r->harness_overhead_ns > 1000)
            add_line(out->warnings, sizeof out->warnings,
                     "%s: the harness costs %.0f ns per token, above the 1 us goal", r->entry->label,
                     r->harness_overhead_ns);
    }
    if (strcmp(FB_BUILD_FLAVOUR, "release") != 0)
        add_line(out->warnings, sizeof out->warnings,
                 "this fairbench is a %s build: its timings are not representative", FB_BUILD_FLAVOUR);
    /* Notes: information, not doubt. Break-even: a backend that starts
     * slower but decodes faster repays its start after (start difference) /
     * (per-token saving) tokens. */
    for (int i = 0; i < out->n_entries; i++)
        for (int j = 0; j < out->n_entries; j++) {
            const fb_entry_result *a = &out->entries[i], *b = &out->entries[j];
            if (i == j || !ranked(a) || !ranked(b)) continue;
            double start_a = a->load_s + a->cold_start_s, start_b = b->load_s + b->cold_start_s;
            double saving_ms = b->decode.mean - a->decode.mean;
            if (start_a > start_b && saving_ms > 0)
                add_line(out->notes, sizeof out->notes,
                         "break-even: %s starts %.0f ms slower than %s but decodes %.3f ms/token faster: it repays "
                         "its start after %.0f tokens",
                         a->entry->label, (start_a - start_b) * 1e3, b->entry->label, saving_ms,
                         ceil((start_a - start_b) * 1e3 / saving_ms));
        }
}
