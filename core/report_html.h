/* report_html.h - the HTML report: one self-contained, offline file (style
 * and a few lines of script inline, charts as inline SVG written here) built
 * from JSON reports alone, so a report saved months ago renders the same.
 *
 * Every figure is re-derived from the report's raw samples (decode latency
 * per step, prefill per repetition) with the same statistics the runner uses;
 * where a stored summary differs from the recomputed one, the HTML says so
 * and the difference is listed in `notes`. */
#ifndef FB_REPORT_HTML_H
#define FB_REPORT_HTML_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>

/* Write one HTML page holding the n reports (names: what each came from, for
 * the headings). notes (size notes_n, may be NULL) gets one line per stored
 * figure that differs from its recomputation. Returns 0, or -1 when a report
 * is not a fairbench JSON report (notes says which) or the write failed. */
int fb_html_report_write(FILE *out, const cJSON *const *reports, const char *const *names, int n, char *notes,
                         size_t notes_n);

/* A trend: one metric of one backend across runs. For each run, the values of
 * its repetitions (e.g. per-repetition median decode latency). */
typedef struct fb_trend_point {
    long long run_id;
    char time[32], commit[32];
    const double *values; /* per repetition */
    size_t n;
} fb_trend_point;

typedef struct fb_trend_series {
    const char *label;
    const fb_trend_point *points;
    size_t n_points;
} fb_trend_series;

/* Write the trend page: per series, the per-run mean with its 95% CI band;
 * `verdict` (may be NULL) is the regression check's sentence. */
int fb_html_trend_write(FILE *out, const char *metric, const char *unit, const fb_trend_series *series,
                        int n_series, const char *verdict);

/* The run's JSON report as text (what --format json writes; malloc'd,
 * caller frees; NULL when out of memory), and the HTML report of a run made
 * from exactly that JSON. */
struct fb_profile;
struct fb_run_result;
char *fb_report_json_string(const struct fb_profile *p, const struct fb_run_result *r);
int fb_report_write_html(const struct fb_profile *p, const struct fb_run_result *r, FILE *out, char *notes,
                         size_t notes_n);

#endif
