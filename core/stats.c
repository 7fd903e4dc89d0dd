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
    static const double table[] = {0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                   2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                   2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
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

static int cmp_ranked(const void *a, const void *b) { return cmp_double(&((const ranked *)a)->value, &((const ranked *)b)->value); }

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
