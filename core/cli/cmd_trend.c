/* cmd_trend.c - `fairbench trend METRIC`: one metric of every backend across
 * the runs of the results history, as an HTML chart (per backend, the mean
 * over repetitions with its 95% CI band), and with --fail-on-regression PCT a
 * check for someone else's CI: exit 1 when the last run's decode latency is
 * both significantly (Mann-Whitney U on per-repetition medians, p < 0.05) and
 * practically (by more than PCT %) slower than the baseline run's. */
#include "cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "history.h"
#include "report_html.h"
#include "stats.h"

#define SIGNIFICANCE 0.05

void fb_trend_usage(FILE *out) {
    fprintf(out,
            "usage: fairbench trend METRIC [--backend LABEL] [-o trend.html] [--db FILE]\n"
            "                       [--fail-on-regression PCT] [--baseline RUN]\n"
            "METRIC, per repetition of each run, from the stored samples:\n"
            "  decode_ms   median decode latency of the repetition (ms)\n"
            "  tok_s       1000 / that median (tokens per second)\n"
            "writes an HTML chart across runs (-o), else a table on stdout. With\n"
            "--fail-on-regression PCT: compares the last run with the baseline (RUN, else\n"
            "the run tagged baseline, else the first) backend by backend, and exits 1 when\n"
            "one's decode latency is significantly (two-sided Mann-Whitney U test on the\n"
            "per-repetition medians, p < 0.05) and practically (more than PCT %%) higher.\n"
            "exit status: 0 ok, 1 a regression, 2 bad input or usage\n");
}

typedef struct options {
    const char *metric, *backend, *output, *db, *baseline;
    double fail_pct; /* < 0: no check */
} options;

static double median_of(const double *x, size_t n) {
    fb_summary s;
    fb_summarize(x, n, &s);
    return s.median;
}

/* The regression check; a sentence per backend on stdout, the overall one in
 * verdict. Returns 1 on a regression, 0 without, -1 on error. */
static int check_regression(fb_history *h, const options *o, char **labels, size_t n_labels, char *verdict,
                            size_t verdict_n) {
    fb_error err;
    int64_t base, last;
    const char *base_ref = o->baseline ? o->baseline : "baseline";
    if (fb_history_resolve(h, base_ref, &base, &err)) {
        if (o->baseline || fb_history_resolve(h, "first", &base, &err)) {
            fprintf(stderr, "fairbench trend: %s\n", err.msg);
            return -1;
        }
        base_ref = "first";
    }
    if (fb_history_resolve(h, "last", &last, &err)) {
        fprintf(stderr, "fairbench trend: %s\n", err.msg);
        return -1;
    }
    if (base == last) {
        snprintf(verdict, verdict_n, "no regression check: the last run (#%" PRId64 ") is the baseline", last);
        printf("%s\n", verdict);
        return 0;
    }
    printf("regression check: run #%" PRId64 " (last) against run #%" PRId64 " (%s), threshold %.3g%%\n", last, base,
           base_ref, o->fail_pct);
    int n_regressed = 0, n_compared = 0;
    for (size_t i = 0; i < n_labels; i++) {
        double *a, *b;
        size_t na, nb;
        if (fb_history_rep_medians(h, base, labels[i], &a, &na, &err) ||
            fb_history_rep_medians(h, last, labels[i], &b, &nb, &err)) {
            fprintf(stderr, "fairbench trend: %s\n", err.msg);
            return -1;
        }
        if (na < 2 || nb < 2) {
            if (na || nb)
                printf("  %-16s not compared: %zu and %zu timed repetitions (2 or more needed in both)\n", labels[i], na, nb);
        } else {
            double ma = median_of(a, na), mb = median_of(b, nb), change = 100 * (mb / ma - 1);
            double p = fb_mann_whitney_p(a, na, b, nb);
            bool regressed = p < SIGNIFICANCE && change > o->fail_pct;
            printf("  %-16s %.4g -> %.4g ms per step (%+.1f%%), p = %.2g over %zu and %zu repetitions: %s\n", labels[i],
                   ma, mb, change, p, na, nb,
                   regressed ? "REGRESSION" : p >= SIGNIFICANCE ? "no significant change" : change > 0 ? "slower, within the threshold" : "faster");
            n_regressed += regressed;
            n_compared++;
        }
        free(a);
        free(b);
    }
    snprintf(verdict, verdict_n, "%d of %d backends regressed (run #%" PRId64 " against #%" PRId64 ", threshold %.3g%%)",
             n_regressed, n_compared, last, base, o->fail_pct);
    printf("%s\n", verdict);
    return n_regressed > 0;
}

int fb_cmd_trend(int argc, char **argv) {
    options o = {.fail_pct = -1};
    enum { O_DB = 256, O_BACKEND, O_FAIL, O_BASELINE };
    static const struct option longopts[] = {
        {"db", required_argument, NULL, O_DB},     {"backend", required_argument, NULL, O_BACKEND},
        {"output", required_argument, NULL, 'o'},  {"fail-on-regression", required_argument, NULL, O_FAIL},
        {"baseline", required_argument, NULL, O_BASELINE}, {"help", no_argument, NULL, 'h'},
        {0}};
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case O_DB: o.db = optarg; break;
        case O_BACKEND: o.backend = optarg; break;
        case 'o': o.output = optarg; break;
        case O_BASELINE: o.baseline = optarg; break;
        case O_FAIL:
            o.fail_pct = strtod(optarg, &end);
            if (*end || !(o.fail_pct >= 0) || !isfinite(o.fail_pct)) {
                fprintf(stderr, "fairbench trend: --fail-on-regression needs a percentage >= 0, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h': fb_trend_usage(stdout); return EXIT_OK;
        default: fb_trend_usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        fb_trend_usage(stderr);
        return EXIT_USAGE;
    }
    o.metric = argv[optind];
    bool tok_s = strcmp(o.metric, "tok_s") == 0;
    if (!tok_s && strcmp(o.metric, "decode_ms") != 0) {
        fprintf(stderr, "fairbench trend: unknown metric '%s' (decode_ms, tok_s)\n", o.metric);
        return EXIT_USAGE;
    }
    char buf[1100];
    const char *path = o.db;
    if (!path && fb_history_default_path(buf, sizeof buf) == 0) path = buf;
    if (!path || access(path, F_OK) != 0) {
        fprintf(stderr, "fairbench trend: no results database at %s\n", path ? path : "(HOME is not set; use --db)");
        return EXIT_USAGE;
    }
    fb_history *h;
    fb_error err;
    if (fb_history_open(path, &h, &err)) {
        fprintf(stderr, "fairbench trend: %s\n", err.msg);
        return EXIT_USAGE;
    }
    int64_t *ids = NULL;
    char **labels = NULL;
    size_t n_ids = 0, n_labels = 0;
    int rc = EXIT_OK;
    if (fb_history_run_ids(h, &ids, &n_ids, &err) || fb_history_labels(h, &labels, &n_labels, &err)) {
        fprintf(stderr, "fairbench trend: %s\n", err.msg);
        rc = EXIT_USAGE;
    }
    /* Only the backend asked for, when one is. */
    if (rc == EXIT_OK && o.backend) {
        size_t kept = 0;
        for (size_t i = 0; i < n_labels; i++) {
            if (strcmp(labels[i], o.backend) == 0) labels[kept++] = labels[i];
            else free(labels[i]);
        }
        n_labels = kept;
        if (!kept) {
            fprintf(stderr, "fairbench trend: no backend labelled '%s' in %s\n", o.backend, path);
            rc = EXIT_USAGE;
        }
    }
    fb_trend_series *series = calloc(n_labels ? n_labels : 1, sizeof *series);
    fb_trend_point *points = calloc(n_labels * n_ids + 1, sizeof *points);
    if (!series || !points) rc = EXIT_USAGE;
    for (size_t s = 0; rc == EXIT_OK && s < n_labels; s++) {
        series[s].label = labels[s];
        series[s].points = points + s * n_ids;
        for (size_t r = 0; r < n_ids; r++) {
            double *v;
            size_t nv;
            if (fb_history_rep_medians(h, ids[r], labels[s], &v, &nv, &err)) {
                fprintf(stderr, "fairbench trend: %s\n", err.msg);
                rc = EXIT_USAGE;
                break;
            }
            if (!nv) {
                free(v);
                continue;
            }
            if (tok_s)
                for (size_t k = 0; k < nv; k++) v[k] = 1000.0 / v[k];
            fb_trend_point *pt = &points[s * n_ids + series[s].n_points++];
            pt->run_id = ids[r];
            pt->values = v;
            pt->n = nv;
            fb_history_run_info(h, ids[r], pt->time, sizeof pt->time, pt->commit, sizeof pt->commit, &err);
        }
    }
    char verdict[512] = "";
    if (rc == EXIT_OK && o.fail_pct >= 0) {
        int reg = check_regression(h, &o, labels, n_labels, verdict, sizeof verdict);
        rc = reg < 0 ? EXIT_USAGE : reg ? EXIT_FAILURES : EXIT_OK;
    }
    const char *unit = tok_s ? "tok/s" : "ms";
    if (rc != EXIT_USAGE && o.output) {
        FILE *fp = fopen(o.output, "w");
        if (!fp || fb_html_trend_write(fp, o.metric, unit, series, (int)n_labels, verdict) || fclose(fp) != 0) {
            fprintf(stderr, "fairbench trend: cannot write %s\n", o.output);
            rc = EXIT_USAGE;
        } else {
            fprintf(stderr, "fairbench trend: chart written to %s\n", o.output);
        }
    } else if (rc != EXIT_USAGE && o.fail_pct < 0) {
        for (size_t s = 0; s < n_labels; s++)
            for (size_t i = 0; i < series[s].n_points; i++) {
                fb_summary sum;
                fb_summarize(series[s].points[i].values, series[s].points[i].n, &sum);
                printf("%-16s run %5lld  %s  %s  mean %.4g %s (95%% CI %.4g to %.4g, %zu repetitions)\n", labels[s],
                       series[s].points[i].run_id, series[s].points[i].time, series[s].points[i].commit, sum.mean, unit,
                       sum.ci95_low, sum.ci95_high, series[s].points[i].n);
            }
    }
    for (size_t i = 0; points && i < n_labels * n_ids; i++) free((void *)points[i].values);
    free(points);
    free(series);
    fb_history_free_strings(labels, n_labels);
    free(ids);
    fb_history_close(h);
    return rc;
}
