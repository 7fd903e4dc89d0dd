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
 * distribution (normal approximation with tie correction). */
double fb_mann_whitney_p(const double *a, size_t na, const double *b, size_t nb);

#endif
