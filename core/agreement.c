/* agreement.c - the agreement maths and bars (see agreement.h). */
#include "agreement.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "profile.h"

/* Bars by storage precision. f32 must be the reference up to summation
 * order; 16-bit and block formats round the weights. The max-diff shares
 * were set from cpu_ref against itself (f16: 0.15%, bf16: 1.0% of the
 * largest |logit|; another f32 summation order: about 1e-6), and a real
 * defect (Llama-3 RoPE factors ignored) moves logits by 2.3% on the gqa
 * model. The near-tie share is about what the weights' rounding moves a
 * logit by. */
fb_agreement_bar fb_agreement_bar_for(fb_precision p) {
    switch (p) {
    case FB_PRECISION_F32: return (fb_agreement_bar){0.99, 1e-4, 1e-4, 1e-5};
    case FB_PRECISION_F16: return (fb_agreement_bar){0.95, 5e-3, 1e-2, 2e-3};
    case FB_PRECISION_BF16: return (fb_agreement_bar){0.90, 2e-2, 5e-2, 1e-2};
    default: return (fb_agreement_bar){0.90, 5e-2, 5e-2, 1e-2};
    }
}

int fb_argmax(const float *x, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (isnan(x[i])) return -1;
        if (x[i] > x[best]) best = i;
    }
    return (int)best;
}

void fb_agreement_init(fb_agreement *a, fb_precision p) {
    memset(a, 0, sizeof *a);
    a->precision = p;
    a->first_disagreement = -1;
    a->first_mismatch = -1;
}

void fb_agreement_add(fb_agreement *a, const float *got, const float *want, uint32_t n_vocab, int pos) {
    fb_agreement_bar bar = fb_agreement_bar_for(a->precision);
    int ag = fb_argmax(got, n_vocab), aw = fb_argmax(want, n_vocab);
    double max_ref = 0;
    for (uint32_t v = 0; v < n_vocab; v++) max_ref = fabs((double)want[v]) > max_ref ? fabs((double)want[v]) : max_ref;
    if (max_ref > a->max_ref) a->max_ref = max_ref;
    a->n++;
    if (ag == aw) {
        a->agree++;
    } else if (ag >= 0 && aw >= 0 && (double)want[aw] - (double)want[ag] <= bar.near_tie_share * max_ref) {
        a->agree++;
        a->near_ties++;
    } else if (a->first_disagreement < 0) {
        a->first_disagreement = pos, a->got = ag, a->want = aw;
        a->ref_got = ag >= 0 ? want[ag] : NAN, a->ref_want = aw >= 0 ? want[aw] : NAN;
    }
    double mg = -INFINITY, mw = -INFINITY;
    for (uint32_t v = 0; v < n_vocab; v++) {
        double d = fabs((double)got[v] - (double)want[v]);
        if (!(d <= a->max_abs)) a->max_abs = isnan(d) ? INFINITY : d;
        if (got[v] > mg) mg = got[v];
        if (want[v] > mw) mw = want[v];
    }
    /* KL(reference || backend) of the softmax distributions, in double */
    double zg = 0, zw = 0;
    for (uint32_t v = 0; v < n_vocab; v++) zg += exp((double)got[v] - mg), zw += exp((double)want[v] - mw);
    double lzg = log(zg), lzw = log(zw), kl = 0;
    for (uint32_t v = 0; v < n_vocab; v++) {
        double lw = (double)want[v] - mw - lzw, lg = (double)got[v] - mg - lzg;
        kl += exp(lw) * (lw - lg);
    }
    a->kl_sum += isnan(kl) ? INFINITY : kl;
}

void fb_agreement_add_returned(fb_agreement *a, const float *got, uint32_t n_vocab, int32_t returned, int pos) {
    int own = fb_argmax(got, n_vocab);
    /* an exact tie may go to any of the tied tokens */
    bool tied = own >= 0 && returned >= 0 && (uint32_t)returned < n_vocab && got[returned] == got[own];
    if (returned == own || tied) return;
    if (a->argmax_mismatches++ == 0) a->first_mismatch = pos, a->returned = returned, a->own_argmax = own;
}

double fb_agreement_top1(const fb_agreement *a) { return a->n ? (double)a->agree / a->n : 1.0; }
double fb_agreement_mean_kl(const fb_agreement *a) { return a->n ? a->kl_sum / a->n : 0.0; }

void fb_agreement_text(const fb_agreement *a, char *buf, size_t size) {
    char ties[48] = "";
    if (a->near_ties) snprintf(ties, sizeof ties, " (%u near tie%s)", a->near_ties, a->near_ties > 1 ? "s" : "");
    snprintf(buf, size, "top-1 %u/%u%s, max |logit diff| %.2g (largest |logit| %.3g), mean KL %.2g", a->agree, a->n,
             ties, a->max_abs, a->max_ref, fb_agreement_mean_kl(a));
}

int fb_agreement_check(const fb_agreement *a, const char *reference, char *why, size_t size) {
    fb_agreement_bar bar = fb_agreement_bar_for(a->precision);
    const char *p = fb_precision_name(a->precision);
    double top1 = fb_agreement_top1(a), kl = fb_agreement_mean_kl(a);
    char broken[240];
    if (top1 < bar.min_top1)
        snprintf(broken, sizeof broken, "top-1 agreement %.1f%% is below the bar for %s (%.0f%%)", 100 * top1, p,
                 100 * bar.min_top1);
    else if (!(kl <= bar.max_kl))
        snprintf(broken, sizeof broken, "mean KL %.2g is above the bar for %s (%.0e)", kl, p, bar.max_kl);
    else if (!(a->max_abs <= bar.max_diff_share * a->max_ref))
        snprintf(broken, sizeof broken, "the largest |logit diff| %.3g is %.3g%% of the largest |logit| (%.3g); the "
                 "bar for %s is %g%%", a->max_abs, 100 * a->max_abs / a->max_ref, a->max_ref, p,
                 100 * bar.max_diff_share);
    else if (a->argmax_mismatches)
        snprintf(broken, sizeof broken, "at %u of %u positions the token returned is not the argmax of its own "
                 "logits (first at position %d: returned %d, argmax %d)", a->argmax_mismatches, a->n,
                 a->first_mismatch, a->returned, a->own_argmax);
    else
        return 0;
    char summary[200];
    fb_agreement_text(a, summary, sizeof summary);
    int n = snprintf(why, size, "disagrees with %s: %s (%s)", reference, broken, summary);
    if (a->first_disagreement >= 0 && n > 0 && (size_t)n < size)
        snprintf(why + n, size - (size_t)n, "; first at position %d: argmax %d, %s's %d (%s's logits for them: %.4g "
                 "and %.4g)", a->first_disagreement, a->got, reference, a->want, reference, a->ref_got, a->ref_want);
    return -1;
}
