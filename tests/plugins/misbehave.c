/* misbehave.c - correct backends with one deliberate fault each, for the
 * main job's verdict and fault-isolation tests (tests/test_verdict.sh).
 * Compiled once per variant with -DDEFECT=<n> or -DFAULT=<kind> -DPHASE=<p>
 * and -DPLUGIN_NAME="..." (tests/CMakeLists.txt).
 *
 * Each is the SDK's worked example (examples/plugin/example_naive.c, which
 * agrees with cpu_ref at f32) with one call wrapped to misbehave, so the
 * verdict's reason for it is the only thing wrong with it:
 *
 *   DEFECT               what it does                         the verdict must say
 *   OK                   nothing (the control)                fair, ranked
 *   WRONG_PRECISION      reports f16 weights, holds f32       "was asked for f32 weights but ran f16"
 *   ACCUMULATES_F16      reports f16 accumulation             "accumulated in f16, not f32"
 *   JIT_WHEN_FORBIDDEN   reports JIT on                       "used JIT compilation, which the profile forbids"
 *   GRAPHS_WHEN_FORBIDDEN reports graphs on                   "replayed graphs, which the profile forbids"
 *   THREADS_97           reports 97 threads                   "asked for N threads but ran 97" / "CPU threads differ"
 *   WRONG_ARGMAX         returns argmax + 1                   WRONG: "not the argmax of its own logits"
 *   LOGITS_OFF_LITTLE    one logit moved by 0.5% of the largest: top-1 and KL pass
 *                                                            WRONG: "largest |logit diff|"
 *   LOGITS_OFF_LOT       logits halved (a temperature of 2)   WRONG: "mean KL"
 *   LOGITS_SWAPPED       the top two logits swapped           WRONG: "top-1 agreement"
 *   UNAVAILABLE          probe says its device is absent      skipped (the run fails unless --allow-skips)
 *
 *   FAULT (kind) in PHASE: CRASH (SIGSEGV), HANG (sleeps), ERROR (returns
 *   FB_ERR_INTERNAL with a sentence), CANCELLABLE (create loops until
 *   host->is_cancelled(), then returns FB_ERR_CANCELLED); phases CREATE,
 *   PREFILL (the second prefill: the first repetition), AGREEMENT (the first
 *   call that asks for logits), DESTROY. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define fb_plugin_entry example_plugin_entry_unused
#include "example_naive.c"
#undef fb_plugin_entry

#define OK 0
#define WRONG_PRECISION 1
#define ACCUMULATES_F16 2
#define JIT_WHEN_FORBIDDEN 3
#define GRAPHS_WHEN_FORBIDDEN 4
#define THREADS_97 5
#define WRONG_ARGMAX 6
#define LOGITS_OFF_LITTLE 7
#define LOGITS_OFF_LOT 8
#define LOGITS_SWAPPED 9
#define UNAVAILABLE 10

#define CRASH 1
#define HANG 2
#define ERROR 3
#define CANCELLABLE 4

#define CREATE 1
#define PREFILL 2
#define AGREEMENT 3
#define DESTROY 4

#ifndef DEFECT
#define DEFECT OK
#endif
#ifndef FAULT
#define FAULT 0
#define PHASE 0
#endif

static fb_plugin plugin;
static int prefills;

/* The fault, when this is its phase; returns the status to give (FB_OK: go on). */
static fb_status fault(int phase, fb_session *s) {
    if (phase != PHASE) return FB_OK;
#if FAULT == CRASH
    (void)s;
    raise(SIGSEGV);
#elif FAULT == HANG
    for (;;) sleep(1);
#elif FAULT == ERROR
    if (s) snprintf(s->error, sizeof s->error, "%s: a deliberate error in this phase", PLUGIN_NAME);
    return FB_ERR_INTERNAL;
#endif
    (void)s;
    return FB_OK;
}

/* One row of logits changed as the defect says. */
static void perturb(float *row, int n) {
#if DEFECT == LOGITS_OFF_LITTLE || DEFECT == LOGITS_SWAPPED
    int top = 0, second = -1;
    float max_abs = 0;
    for (int v = 0; v < n; v++) {
        if (row[v] > row[top]) top = v;
        if (row[v] > max_abs || -row[v] > max_abs) max_abs = row[v] > 0 ? row[v] : -row[v];
    }
    for (int v = 0; v < n; v++)
        if (v != top && (second < 0 || row[v] > row[second])) second = v;
#if DEFECT == LOGITS_OFF_LITTLE
    int other = (top + n / 2) % n; /* a token far from the top: moving it does not change the argmax */
    row[other] -= 0.005f * max_abs;
#else
    float t = row[top];
    row[top] = row[second], row[second] = t;
#endif
#elif DEFECT == LOGITS_OFF_LOT
    for (int v = 0; v < n; v++) row[v] *= 0.5f;
#else
    (void)row, (void)n;
#endif
}

static fb_status mb_probe(const fb_host *host, fb_probe_result *out) {
    fb_status st = example_probe(host, out);
#if DEFECT == UNAVAILABLE
    out->available = 0;
    snprintf(out->reason, sizeof out->reason, "its device is absent (deliberately)");
#endif
    return st;
}

static fb_status mb_create(const fb_host *host, const fb_model_view *mv, const fb_settings *settings,
                           fb_session **out, char *message, size_t message_size) {
#if FAULT == CANCELLABLE && PHASE == CREATE
    /* A long load that checks for cancellation, as a plugin should. */
    while (!host->is_cancelled(host)) usleep(10000);
    snprintf(message, message_size, "%s: stopped loading when asked", PLUGIN_NAME);
    *out = NULL;
    return FB_ERR_CANCELLED;
#endif
    fb_status st = fault(CREATE, NULL);
    if (st != FB_OK) {
        snprintf(message, message_size, "%s: a deliberate error in create", PLUGIN_NAME);
        return st;
    }
    return example_create(host, mv, settings, out, message, message_size);
}

static fb_status mb_prefill(fb_session *s, const int32_t *tokens, uint32_t n, uint32_t flags, float *logits,
                            int32_t *next) {
    fb_status st = ++prefills == 2 ? fault(PREFILL, s) : FB_OK;
    if (st == FB_OK && logits) st = fault(AGREEMENT, s);
    if (st != FB_OK) return st;
    st = example_prefill(s, tokens, n, flags, logits, next);
    if (st == FB_OK && (flags & FB_LOGITS_ALL))
        for (uint32_t i = 0; i < n; i++) perturb(logits + (size_t)i * s->c.vocab_size, s->c.vocab_size);
    else if (st == FB_OK && (flags & FB_LOGITS_LAST)) perturb(logits, s->c.vocab_size);
#if DEFECT == WRONG_ARGMAX
    if (st == FB_OK) *next = (*next + 1) % s->c.vocab_size;
#endif
    return st;
}

static fb_status mb_decode(fb_session *s, int32_t token, float *logits, int32_t *next) {
    fb_status st = logits ? fault(AGREEMENT, s) : FB_OK;
    if (st != FB_OK) return st;
    st = example_decode(s, token, logits, next);
    if (st == FB_OK && logits) perturb(logits, s->c.vocab_size);
#if DEFECT == WRONG_ARGMAX
    if (st == FB_OK) *next = (*next + 1) % s->c.vocab_size;
#endif
    return st;
}

static fb_status mb_effective(fb_session *s, fb_effective_settings *out) {
    fb_status st = example_effective_settings(s, out);
#if DEFECT == WRONG_PRECISION
    out->weight_precision = FB_PRECISION_F16;
#elif DEFECT == ACCUMULATES_F16
    out->accumulate_precision = FB_PRECISION_F16;
#elif DEFECT == JIT_WHEN_FORBIDDEN
    out->jit = 1;
#elif DEFECT == GRAPHS_WHEN_FORBIDDEN
    out->graphs = 1;
#elif DEFECT == THREADS_97
    out->threads = 97;
#endif
    return st;
}

static void mb_destroy(fb_session *s) {
    fault(DESTROY, s);
    example_destroy(s);
}

FB_PLUGIN_EXPORT const fb_plugin *fb_plugin_entry(void) {
    plugin = example_plugin;
    plugin.name = PLUGIN_NAME;
    plugin.description = "the example with one deliberate fault, for the main job's tests";
#if DEFECT == JIT_WHEN_FORBIDDEN
    plugin.capabilities |= FB_CAP_JIT;
#elif DEFECT == GRAPHS_WHEN_FORBIDDEN
    plugin.capabilities |= FB_CAP_GRAPHS;
#endif
    plugin.probe = mb_probe;
    plugin.create = mb_create;
    plugin.prefill = mb_prefill;
    plugin.decode = mb_decode;
    plugin.effective_settings = mb_effective;
    plugin.destroy = mb_destroy;
    return &plugin;
}
