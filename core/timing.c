/* timing.c - the timed loop (see timing.h). */
#include "timing.h"

#include "supervisor.h"

fb_status fb_timed_repetition(const fb_plugin *api, fb_session *s, const int32_t *prompt, uint32_t n_prompt,
                              uint32_t n, double *prefill_s, double *latency_ms, int32_t *tokens) {
    int32_t next;
    fb_status st = api->reset(s); /* untimed: an empty KV cache for every repetition */
    if (st != FB_OK) return st;
    double t0 = fb_now_s();
    st = api->prefill(s, prompt, n_prompt, FB_LOGITS_NONE, NULL, &next);
    *prefill_s = fb_now_s() - t0;
    for (uint32_t i = 0; i < n && st == FB_OK; i++) {
        tokens[i] = next;
        double t_step = fb_now_s();
        st = api->decode(s, next, NULL, &next); /* argmax on the device; no logits copied */
        latency_ms[i] = (fb_now_s() - t_step) * 1e3;
    }
    return st;
}

double fb_harness_overhead_ns(void) {
    enum { N = 20000 };
    static double lat[N];
    double t_begin = fb_now_s();
    for (int i = 0; i < N; i++) {
        double t0 = fb_now_s();
        double t1 = fb_now_s();
        lat[i] = (t1 - t0) * 1e3;
    }
    double elapsed = fb_now_s() - t_begin;
    volatile double sink = lat[N / 2]; /* keep the stores, which are part of what is measured */
    (void)sink;
    return elapsed / N * 1e9;
}
