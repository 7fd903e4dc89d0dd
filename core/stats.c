/* stats.c - see stats.h. */
#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile q of sorted s (linear interpolation between closest ranks). */
static double quantile(const double *s, size_t n, double q) {
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    double frac = pos - (double)lo;
    return lo + 1 < n ? s[lo] + frac * (s[lo + 1] - s[lo]) : s[n - 1];
}

/* Two-sided 95% Student t critical value for `df` degrees of freedom. */
static double t95(size_t df) {
    static const double table[] = {0,     12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                   2.201, 2.179,  2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080,
                                   2.074, 2.069,  2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
    if (df == 0) return INFINITY;
    if (df <= 30) return table[df];
    return 1.96 + 2.4 / (double)df; /* close to the exact value beyond 30 */
}

double fb_mad(const double *x, size_t n) {
    if (n == 0) return 0;
    double *s = malloc(n * sizeof *s);
    if (!s) return 0;
    memcpy(s, x, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    double med = quantile(s, n, 0.5);
    for (size_t i = 0; i < n; i++) s[i] = fabs(x[i] - med);
    qsort(s, n, sizeof *s, cmp_double);
    double mad = quantile(s, n, 0.5);
    free(s);
    return mad;
}

int fb_is_outlier(double x, double median, double mad) {
    if (mad <= 0) return 0;
    return fabs(0.6745 * (x - median) / mad) > 3.5;
}

void fb_summarize(const double *x, size_t n, fb_summary *out) {
    memset(out, 0, sizeof *out);
    if (n == 0) return;
    double *s = malloc(n * sizeof *s);
    if (!s) return;
    memcpy(s, x, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += s[i];
    double mean = sum / (double)n, ss = 0;
    for (size_t i = 0; i < n; i++) ss += (s[i] - mean) * (s[i] - mean);
    out->n = n;
    out->mean = mean;
    out->median = quantile(s, n, 0.5);
    out->p90 = quantile(s, n, 0.90);
    out->p99 = quantile(s, n, 0.99);
    out->min = s[0];
    out->max = s[n - 1];
    out->stddev = n > 1 ? sqrt(ss / (double)(n - 1)) : 0;
    double half = n > 1 ? t95(n - 1) * out->stddev / sqrt((double)n) : 0;
    out->ci95_low = mean - half;
    out->ci95_high = mean + half;
    out->cv = mean > 0 ? out->stddev / mean : 0;
    double mad = fb_mad(x, n);
    for (size_t i = 0; i < n; i++) out->n_outliers += (size_t)fb_is_outlier(x[i], out->median, mad);
    free(s);
}

static uint64_t next_random(uint64_t *state) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return *state >> 33;
}

void fb_ratio_ci(const double *a, size_t na, const double *b, size_t nb, uint64_t seed, int rounds, double *low,
                 double *high) {
    *low = *high = NAN;
    if (na == 0 || nb == 0 || rounds < 10) return;
    double *ratios = malloc((size_t)rounds * sizeof *ratios);
    if (!ratios) return;
    uint64_t state = seed | 1;
    for (int r = 0; r < rounds; r++) {
        double sa = 0, sb = 0;
        for (size_t i = 0; i < na; i++) sa += a[next_random(&state) % na];
        for (size_t i = 0; i < nb; i++) sb += b[next_random(&state) % nb];
        ratios[r] = (sa / (double)na) / (sb / (double)nb);
    }
    qsort(ratios, (size_t)rounds, sizeof *ratios, cmp_double);
    *low = quantile(ratios, (size_t)rounds, 0.025);
    *high = quantile(ratios, (size_t)rounds, 0.975);
    free(ratios);
}

typedef struct ranked {
    double value;
    int group;
} ranked;

static int cmp_ranked(const void *a, const void *b) {
    return cmp_double(&((const ranked *)a)->value, &((const ranked *)b)->value);
}

double fb_mann_whitney_p(const double *a, size_t na, const double *b, size_t nb) {
    size_t n = na + nb;
    if (na == 0 || nb == 0) return NAN;
    ranked *all = malloc(n * sizeof *all);
    if (!all) return NAN;
    for (size_t i = 0; i < na; i++) all[i] = (ranked){a[i], 0};
    for (size_t i = 0; i < nb; i++) all[na + i] = (ranked){b[i], 1};
    qsort(all, n, sizeof *all, cmp_ranked);
    double rank_sum_a = 0, tie_term = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && all[j].value == all[i].value) j++;
        double rank = (double)(i + 1 + j) / 2.0; /* average rank of the tie group */
        for (size_t k = i; k < j; k++)
            if (all[k].group == 0) rank_sum_a += rank;
        double t = (double)(j - i);
        tie_term += t * t * t - t;
        i = j;
    }
    free(all);
    double u = rank_sum_a - (double)na * (double)(na + 1) / 2.0;
    double mu = (double)na * (double)nb / 2.0;
    double sigma2 = (double)na * (double)nb / 12.0 * ((double)(n + 1) - tie_term / ((double)n * (double)(n - 1)));
    if (sigma2 <= 0) return 1.0;
    double z = (fabs(u - mu) - 0.5) / sqrt(sigma2); /* continuity correction */
    if (z < 0) z = 0;
    return erfc(z / sqrt(2.0));
}

size_t fb_block_medians(const double *x, size_t n, size_t block, double *out) {
    if (block == 0 || n < block) return 0;
    double *s = malloc(block * sizeof *s);
    if (!s) return 0;
    size_t n_blocks = n / block;
    for (size_t k = 0; k < n_blocks; k++) {
        memcpy(s, x + k * block, block * sizeof *s);
        qsort(s, block, sizeof *s, cmp_double);
        out[k] = quantile(s, block, 0.5);
    }
    free(s);
    return n_blocks;
}

size_t fb_block_means(const double *x, size_t n, size_t block, double *out) {
    if (block == 0 || n < block) return 0;
    size_t n_blocks = n / block;
    for (size_t k = 0; k < n_blocks; k++) {
        double sum = 0;
        for (size_t i = 0; i < block; i++) sum += x[k * block + i];
        out[k] = sum / (double)block;
    }
    return n_blocks;
}

// ----------------------------------------------------------------------------
// Student's t distribution, through the regularized incomplete beta function

/* The continued fraction of the incomplete beta function I_x(a, b), evaluated
 * by the modified Lentz method; converges quickly for x < (a + 1) / (a + b + 2). */
static double beta_fraction(double a, double b, double x) {
    const double tiny = 1e-300, eps = 1e-15;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    if (fabs(d) < tiny) d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 500; m++) {
        /* even step: d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m)) */
        double coef = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
        d = 1 + coef * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + coef / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        h *= d * c;
        /* odd step: d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)) */
        coef = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
        d = 1 + coef * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + coef / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        double step = d * c;
        h *= step;
        if (fabs(step - 1) < eps) break;
    }
    return h;
}

/* I_x(a, b), the regularized incomplete beta function, for 0 <= x <= 1. */
static double incomplete_beta(double a, double b, double x) {
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    double front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x));
    if (x < (a + 1) / (a + b + 2)) return front * beta_fraction(a, b, x) / a;
    return 1 - front * beta_fraction(b, a, 1 - x) / b; /* I_x(a, b) = 1 - I_{1-x}(b, a) */
}

double fb_t_two_sided_p(double t, double df) {
    if (isnan(t) || !(df > 0)) return NAN;
    if (isinf(t)) return 0;
    /* P(|T| > t) = I_{df / (df + t^2)}(df / 2, 1 / 2) */
    return incomplete_beta(df / 2, 0.5, df / (df + t * t));
}

double fb_t_critical(double p, double df) {
    if (!(p > 0 && p < 1) || !(df > 0)) return NAN;
    double lo = 0, hi = 1;
    while (fb_t_two_sided_p(hi, df) > p && hi < 1e12) hi *= 2;
    for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) { /* P(|T| > t) falls as t grows */
        double mid = 0.5 * (lo + hi);
        if (fb_t_two_sided_p(mid, df) > p) lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

static void mean_and_variance(const double *x, size_t n, double *mean, double *var) {
    double sum = 0, ss = 0;
    for (size_t i = 0; i < n; i++) sum += x[i];
    *mean = sum / (double)n;
    for (size_t i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *var = n > 1 ? ss / (double)(n - 1) : 0;
}

int fb_welch_test(const double *a, size_t na, const double *b, size_t nb, double alpha, fb_welch *out) {
    memset(out, 0, sizeof *out);
    if (na < 2 || nb < 2 || !(alpha > 0 && alpha < 1)) return -1;
    double mean_a, var_a, mean_b, var_b;
    mean_and_variance(a, na, &mean_a, &var_a);
    mean_and_variance(b, nb, &mean_b, &var_b);
    double qa = var_a / (double)na, qb = var_b / (double)nb;
    out->diff = mean_b - mean_a;
    out->se = sqrt(qa + qb);
    if (out->se == 0) { /* no spread on either side: the difference is exact */
        out->df = (double)(na + nb - 2);
        out->t = out->diff == 0 ? 0 : copysign(INFINITY, out->diff);
        out->p = out->diff == 0 ? 1 : 0;
        out->ci_low = out->ci_high = out->diff;
        return 0;
    }
    out->df = (qa + qb) * (qa + qb) / (qa * qa / (double)(na - 1) + qb * qb / (double)(nb - 1));
    out->t = out->diff / out->se;
    out->p = fb_t_two_sided_p(out->t, out->df);
    double half = fb_t_critical(alpha, out->df) * out->se;
    out->ci_low = out->diff - half;
    out->ci_high = out->diff + half;
    return 0;
}

int fb_compare_repetitions(const double *a, size_t na, const double *b, size_t nb, double alpha, double threshold,
                           fb_comparison *out) {
    memset(out, 0, sizeof *out);
    if (na < 2 || nb < 2) return -1;
    double *logs = malloc((na + nb) * sizeof *logs);
    if (!logs) return -1;
    for (size_t i = 0; i < na + nb; i++) {
        double x = i < na ? a[i] : b[i - na];
        if (!(x > 0) || !isfinite(x)) {
            free(logs);
            return -1;
        }
        logs[i] = log(x);
    }
    fb_welch w;
    int rc = fb_welch_test(logs, na, logs + na, nb, alpha, &w);
    free(logs);
    if (rc) return -1;
    out->ratio = exp(w.diff);
    out->ratio_low = exp(w.ci_low);
    out->ratio_high = exp(w.ci_high);
    out->p = w.p;
    out->significant = w.p < alpha;
    out->beyond_threshold = fabs(out->ratio - 1) > threshold;
    out->different = out->significant && out->beyond_threshold;
    return 0;
}
