/* stats.h - summaries of timing samples (all in the caller's unit). */
#ifndef FB_STATS_H
#define FB_STATS_H

#include <stddef.h>
#include <stdint.h>

typedef struct fb_summary {
    size_t n;
    double mean, median, p90, p99, stddev, min, max;
    double ci95_low, ci95_high; /* 95% confidence interval of the mean (Student's t) */
    double cv;                  /* stddev / mean */
    size_t n_outliers;          /* robust z-score |0.6745 (x - median) / MAD| > 3.5 */
} fb_summary;

/* Summarise n samples (n >= 1; the array is not modified). */
void fb_summarize(const double *x, size_t n, fb_summary *out);

/* Is x an outlier among samples whose median and MAD are given? */
int fb_is_outlier(double x, double median, double mad);

/* Median absolute deviation of n samples. */
double fb_mad(const double *x, size_t n);

/* 95% bootstrap interval of mean(a) / mean(b) (percentile method, `rounds`
 * resamples, seeded). */
void fb_ratio_ci(const double *a, size_t na, const double *b, size_t nb, uint64_t seed, int rounds, double *low,
                 double *high);

/* Two-sided Mann-Whitney U test: p-value that a and b come from the same
 * distribution (normal approximation with tie correction). Its samples must
 * be independent: consecutive decode steps of one repetition are not (a
 * busy machine slows a whole stretch of them), so test per-repetition
 * figures (fb_block_medians), not steps. */
double fb_mann_whitney_p(const double *a, size_t na, const double *b, size_t nb);

/* The medians of consecutive blocks of `block` samples: x[0..block-1],
 * x[block..2*block-1], ... into out (n / block values; a trailing partial
 * block is ignored). Returns the number written; 0 when block is 0 or
 * memory cannot be had. */
size_t fb_block_medians(const double *x, size_t n, size_t block, double *out);

/* The means of consecutive blocks of `block` samples, as fb_block_medians. */
size_t fb_block_means(const double *x, size_t n, size_t block, double *out);

/* Welch's unequal-variance t test of mean(b) - mean(a). */
typedef struct fb_welch {
    double diff;            /* mean(b) - mean(a) */
    double se;              /* its standard error */
    double df;              /* Welch-Satterthwaite degrees of freedom */
    double t;               /* diff / se */
    double p;               /* two-sided p-value */
    double ci_low, ci_high; /* (1 - alpha) confidence interval of diff: excludes 0 exactly when p < alpha */
} fb_welch;

/* Needs na >= 2 and nb >= 2 (returns -1 otherwise). When both groups have
 * zero spread the test is exact: p = 1 for equal means, 0 otherwise. */
int fb_welch_test(const double *a, size_t na, const double *b, size_t nb, double alpha, fb_welch *out);

/* Two runs' per-repetition figures (positive, e.g. each repetition's median
 * decode step in ms), compared as a ratio B/A: Welch's t test on their
 * logarithms. A difference counts only when it is significant (p < alpha)
 * and the ratio is more than `threshold` (a fraction: 0.05 = 5%) from 1. */
typedef struct fb_comparison {
    double ratio;                 /* B/A, the ratio of the geometric means */
    double ratio_low, ratio_high; /* its (1 - alpha) confidence interval */
    double p;                     /* two-sided p-value */
    int significant;              /* p < alpha */
    int beyond_threshold;         /* |ratio - 1| > threshold */
    int different;                /* both: the verdict */
} fb_comparison;

/* Needs na >= 2 and nb >= 2 positive figures; -1 otherwise. */
int fb_compare_repetitions(const double *a, size_t na, const double *b, size_t nb, double alpha, double threshold,
                           fb_comparison *out);

/* Student's t distribution with df > 0 degrees of freedom: P(|T| > t), and
 * the t with P(|T| > t) = p (0 < p < 1). */
double fb_t_two_sided_p(double t, double df);
double fb_t_critical(double p, double df);

#endif
