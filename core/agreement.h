/* agreement.h - does a backend compute what the reference computes? The one
 * home of the bars by precision and of the maths (top-1, max |logit diff|,
 * KL), used by the main job (runner.c) and meant for `fairbench conformance`.
 *
 * Positions are compared one at a time (teacher-forced: both saw the same
 * tokens), then the whole is held to the bar of the backend's weight
 * precision:
 *   top-1    share of positions whose argmax is the reference's, or a near
 *            tie (the reference's logits of the two are closer than the
 *            weights' rounding can move them)
 *   KL       mean KL(reference || backend) of the softmax distributions
 *   max diff the largest |logit difference| as a share of the largest
 *            |reference logit|: catches a defect that moves logits more than
 *            rounding does while top-1 and KL still pass
 *   argmax   the token the backend returned is the argmax of its own logits
 *            (a backend may not pick another token than its logits say)
 * Nothing here allocates or prints. */
#ifndef FB_AGREEMENT_H
#define FB_AGREEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "fairbench/plugin.h"

typedef struct fb_agreement_bar {
    double min_top1;       /* share of positions */
    double max_kl;         /* mean over positions, nats */
    double max_diff_share; /* max |logit diff| / max |reference logit| */
    double near_tie_share; /* reference logits closer than this share of the max count as a tie */
} fb_agreement_bar;

/* The bar for a backend whose weights are stored at precision p. */
fb_agreement_bar fb_agreement_bar_for(fb_precision p);

typedef struct fb_agreement {
    fb_precision precision;
    uint32_t n, agree;        /* positions compared; same argmax or a near tie */
    uint32_t near_ties;       /* of agree: argmaxes differ but the reference's logits of the two are within the tie share */
    double kl_sum, max_abs;   /* max_abs: the largest |logit difference| */
    double max_ref;           /* the largest |reference logit| seen */
    int first_disagreement;   /* position, -1 when none */
    int got, want;            /* the argmaxes there */
    float ref_got, ref_want;  /* the reference's logits of the two */
    uint32_t argmax_mismatches; /* positions whose returned token is not the argmax of the backend's own logits */
    int first_mismatch;       /* position, -1 when none */
    int returned, own_argmax; /* there: the token returned, its logits' argmax */
} fb_agreement;

void fb_agreement_init(fb_agreement *a, fb_precision p);

/* Add one position: the backend's logits `got` against the reference's
 * `want` (n_vocab each). */
void fb_agreement_add(fb_agreement *a, const float *got, const float *want, uint32_t n_vocab, int pos);

/* Add the token the backend returned at a position whose logits are `got`. */
void fb_agreement_add_returned(fb_agreement *a, const float *got, uint32_t n_vocab, int32_t returned, int pos);

/* Index of the largest value, lowest on ties; -1 when any is NaN. */
int fb_argmax(const float *x, uint32_t n);

double fb_agreement_top1(const fb_agreement *a);
double fb_agreement_mean_kl(const fb_agreement *a);

/* One line: "top-1 7/8 (1 near tie), max |logit diff| 0.01 (largest |logit| 12.3), mean KL 1e-6". */
void fb_agreement_text(const fb_agreement *a, char *buf, size_t size);

/* 0 when within the bar for its precision, else -1 with the first broken bar
 * in `why` ("top-1 agreement 50.0% is below the bar for f32 (99%)", ...),
 * followed by the first disagreement's detail when there is one. */
int fb_agreement_check(const fb_agreement *a, const char *reference, char *why, size_t size);

#endif
