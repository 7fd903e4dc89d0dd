/* cmd_compare.c - `fairbench compare A.json B.json`: per backend, whether B's
 * decode latency differs from A's by more than noise and by more than a
 * practical threshold; and every way the two runs were not alike.
 *
 * The unit of evidence is the repetition, not the decode step: consecutive
 * steps of one repetition share the machine's state (another process's
 * burst, the clock speed of the moment), so they are not independent
 * samples, and a test over all steps calls two identical runs on a busy
 * machine "significantly different". Each repetition is reduced to its
 * median step latency; Welch's t test compares the logarithms of those
 * figures (so the difference is a ratio, B/A), and a difference is reported
 * only when it is significant (p < alpha) and its size passes the threshold. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stats.h"

enum { EXIT_DIFFERENT = EXIT_FAILURES };

typedef struct compare_options {
    const char *path_a, *path_b;
    double threshold; /* practical threshold, as a fraction: 0.05 = 5% */
    double alpha;     /* significance level of the test */
} compare_options;

#define DEFAULT_THRESHOLD_PCT 5.0
#define DEFAULT_ALPHA 0.01

void fb_compare_usage(FILE *out) {
    fprintf(out,
            "usage: fairbench compare [--threshold PCT] [--alpha P] A.json B.json\n"
            "For each backend in both JSON reports: B's decode latency against A's. Each\n"
            "repetition counts as one sample (its median decode step), since the steps of\n"
            "one repetition are not independent; Welch's t test on the logarithms of those\n"
            "figures gives the p-value and a (1 - P) confidence interval of B/A.\n"
            "A difference is reported only when it is significant (p < P) and larger than\n"
            "the threshold. Warns when A and B differ in profile, model, settings, plugin\n"
            "versions or machine, and names what differs.\n"
            "  --threshold PCT  smallest difference that matters, in percent (default %g)\n"
            "  --alpha P        significance level, 0 < P < 1 (default %g)\n"
            "Exit status: 0 no difference both significant and above the threshold,\n"
            "1 at least one, 2 bad usage or a file that is not a fairbench JSON report.\n",
            DEFAULT_THRESHOLD_PCT, DEFAULT_ALPHA);
}

/* A finite number from the whole of text; -1 when it is not one. */
static int parse_number(const char *text, double *out) {
    char *end;
    errno = 0;
    *out = strtod(text, &end);
    return end == text || *end || errno || !isfinite(*out) ? -1 : 0;
}

/* EXIT_OK to go on; -1 after --help; EXIT_USAGE on an error (said on stderr). */
static int parse_options(int argc, char **argv, compare_options *o) {
    *o = (compare_options){.threshold = DEFAULT_THRESHOLD_PCT / 100, .alpha = DEFAULT_ALPHA};
    int n_paths = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fb_compare_usage(stdout);
            return -1;
        }
        if (strcmp(arg, "--threshold") == 0 || strcmp(arg, "--alpha") == 0) {
            bool threshold = arg[2] == 't';
            double v = 0;
            bool ok = i + 1 < argc && parse_number(argv[i + 1], &v) == 0;
            if (!ok || (threshold ? !(v >= 0 && v <= 1000) : !(v > 0 && v < 1))) {
                fprintf(stderr, "fairbench compare: %s needs %s\n", arg,
                        threshold ? "a percentage from 0 to 1000" : "a probability between 0 and 1");
                return EXIT_USAGE;
            }
            if (threshold) o->threshold = v / 100;
            else
                o->alpha = v;
            i++;
        } else if (arg[0] == '-' && arg[1]) {
            fprintf(stderr, "fairbench compare: unknown option %s\n", arg);
            fb_compare_usage(stderr);
            return EXIT_USAGE;
        } else if (n_paths < 2) {
            *(n_paths++ ? &o->path_b : &o->path_a) = arg;
        } else {
            fprintf(stderr, "fairbench compare: more than two reports given (%s)\n", arg);
            return EXIT_USAGE;
        }
    }
    if (n_paths != 2) {
        fb_compare_usage(stderr);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

// ----------------------------------------------------------------------------
// Reading the reports

static cJSON *load_report(const char *path) {
    /* Not a file: a run of the results history (id, tag, first, last). */
    if (access(path, F_OK) != 0) return fb_cli_load_report("fairbench compare", path, NULL);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "fairbench compare: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 65536 + 1 > cap) {
            char *grown = realloc(text, cap = 2 * cap + 65536 + 1);
            if (!grown) break;
            text = grown;
        }
        size_t got = fread(text + len, 1, cap - len - 1, fp);
        len += got;
        if (got == 0) break;
    }
    bool read_error = ferror(fp) || !text;
    fclose(fp);
    if (read_error) {
        fprintf(stderr, "fairbench compare: cannot read %s\n", path);
        free(text);
        return NULL;
    }
    text[len] = '\0';
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *schema = root ? cJSON_GetObjectItemCaseSensitive(root, "schema_version") : NULL;
    if (!root || !cJSON_IsNumber(schema) || schema->valueint != 1) {
        fprintf(stderr, "fairbench compare: %s is not a fairbench JSON report (schema version 1)\n", path);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* root[first] or root[first][second] (second may be NULL); NULL when absent. */
static const cJSON *item(const cJSON *root, const char *first, const char *second) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, first);
    return second ? cJSON_GetObjectItemCaseSensitive(v, second) : v;
}

static const char *string_of(const cJSON *v) { return cJSON_IsString(v) ? v->valuestring : NULL; }

static const cJSON *find_backend(const cJSON *root, const char *label) {
    const cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(root, "backends")) {
        const char *l = string_of(cJSON_GetObjectItemCaseSensitive(b, "label"));
        if (l && strcmp(l, label) == 0) return b;
    }
    return NULL;
}

/* The median decode step of each repetition: the report keeps every step of
 * every timed repetition in order, run.gen_tokens steps per repetition.
 * Returns the number of repetitions (0 with `why` filled when there are
 * none to use); *out is malloc'd. */
static size_t repetition_medians(const cJSON *report, const cJSON *backend, double **out, char *why, size_t why_n) {
    *out = NULL;
    const cJSON *steps = item(report, "run", "gen_tokens");
    const cJSON *arr = item(backend, "samples", "decode_latency_ms");
    const char *status = string_of(cJSON_GetObjectItemCaseSensitive(backend, "status"));
    int n = cJSON_GetArraySize(arr);
    if (!cJSON_IsNumber(steps) || steps->valuedouble < 1) {
        snprintf(why, why_n, "run.gen_tokens is missing");
        return 0;
    }
    size_t per_rep = (size_t)steps->valuedouble;
    if (n == 0) {
        snprintf(why, why_n, "no decode samples (status %s)", status ? status : "unknown");
        return 0;
    }
    if ((size_t)n % per_rep != 0) {
        snprintf(why, why_n, "%d decode samples that are not whole repetitions of %zu steps", n, per_rep);
        return 0;
    }
    double *x = malloc((size_t)n * sizeof *x);
    *out = malloc((size_t)n / per_rep * sizeof **out);
    size_t n_reps = 0;
    if (!x || !*out) snprintf(why, why_n, "out of memory");
    else {
        size_t i = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, arr) {
            if (!cJSON_IsNumber(v) || !(v->valuedouble > 0)) break;
            x[i++] = v->valuedouble;
        }
        if (i < (size_t)n) snprintf(why, why_n, "decode sample %zu that is not a positive number", i);
        else if (!(n_reps = fb_block_medians(x, i, per_rep, *out)))
            snprintf(why, why_n, "out of memory");
    }
    free(x);
    if (n_reps == 0) {
        free(*out);
        *out = NULL;
    }
    return n_reps;
}

// ----------------------------------------------------------------------------
// What differs between the two runs

/* A JSON value as short text (strings without quotes). */
static void value_text(const cJSON *v, char *buf, size_t n) {
    if (!v) snprintf(buf, n, "(absent)");
    else if (cJSON_IsString(v))
        snprintf(buf, n, "'%s'", v->valuestring);
    else {
        char *t = cJSON_PrintUnformatted(v);
        snprintf(buf, n, "%s", t ? t : "?");
        free(t);
    }
}

static int n_warnings;

static void warn_if_differs(const char *what, const cJSON *va, const cJSON *vb) {
    if (cJSON_Compare(va, vb, true) || (!va && !vb)) return;
    char ta[200], tb[200];
    value_text(va, ta, sizeof ta);
    value_text(vb, tb, sizeof tb);
    printf("warning: A and B differ in %s: %s in A, %s in B\n", what, ta, tb);
    n_warnings++;
}

/* Every key of two objects (A's keys, then B's keys A lacks). */
static void warn_if_objects_differ(const char *what, const cJSON *oa, const cJSON *ob) {
    char name[160];
    const cJSON *v;
    cJSON_ArrayForEach(v, oa) {
        snprintf(name, sizeof name, "%s %s", what, v->string);
        warn_if_differs(name, v, cJSON_GetObjectItemCaseSensitive(ob, v->string));
    }
    cJSON_ArrayForEach(v, ob) {
        if (cJSON_GetObjectItemCaseSensitive(oa, v->string)) continue;
        snprintf(name, sizeof name, "%s %s", what, v->string);
        warn_if_differs(name, NULL, v);
    }
}

static void warn_differences(const cJSON *a, const cJSON *b) {
    warn_if_differs("profile (sha256 of its text)", item(a, "profile", "sha256"), item(b, "profile", "sha256"));
    warn_if_differs("profile overrides (--set)", item(a, "profile", "overrides"), item(b, "profile", "overrides"));
    warn_if_differs("model (sha256)", item(a, "model", "sha256"), item(b, "model", "sha256"));
    static const char *machine[] = {"cpu", "cores", "memory", "gpus", "cuda_driver_version", "build"};
    for (size_t i = 0; i < sizeof machine / sizeof machine[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "machine: %s", machine[i]);
        warn_if_differs(what, item(a, "environment", machine[i]), item(b, "environment", machine[i]));
    }
    const cJSON *ba;
    cJSON_ArrayForEach(ba, cJSON_GetObjectItemCaseSensitive(a, "backends")) {
        const char *label = string_of(cJSON_GetObjectItemCaseSensitive(ba, "label"));
        const cJSON *bb = label ? find_backend(b, label) : NULL;
        if (!bb) continue;
        char what[160];
        snprintf(what, sizeof what, "%s: plugin", label);
        warn_if_differs(what, cJSON_GetObjectItemCaseSensitive(ba, "plugin"),
                        cJSON_GetObjectItemCaseSensitive(bb, "plugin"));
        snprintf(what, sizeof what, "%s: plugin version", label);
        warn_if_differs(what, cJSON_GetObjectItemCaseSensitive(ba, "plugin_version"),
                        cJSON_GetObjectItemCaseSensitive(bb, "plugin_version"));
        snprintf(what, sizeof what, "%s: settings", label);
        warn_if_objects_differ(what, cJSON_GetObjectItemCaseSensitive(ba, "settings"),
                               cJSON_GetObjectItemCaseSensitive(bb, "settings"));
        snprintf(what, sizeof what, "%s: effective settings", label);
        warn_if_objects_differ(what, cJSON_GetObjectItemCaseSensitive(ba, "effective_settings"),
                               cJSON_GetObjectItemCaseSensitive(bb, "effective_settings"));
    }
}

// ----------------------------------------------------------------------------
// The comparison

static double median_of(const double *x, size_t n) {
    fb_summary s;
    fb_summarize(x, n, &s);
    return s.median;
}

/* One backend's line; returns 1 when the difference is significant and above the threshold. */
static int compare_backend(const compare_options *o, const cJSON *a, const cJSON *ba, const cJSON *b, const cJSON *bb,
                           const char *label) {
    char why[160];
    double *ra = NULL, *rb = NULL;
    size_t na = repetition_medians(a, ba, &ra, why, sizeof why);
    if (!na) {
        printf("%-16s not compared: A has %s\n", label, why);
        return 0;
    }
    size_t nb = repetition_medians(b, bb, &rb, why, sizeof why);
    if (!nb) {
        printf("%-16s not compared: B has %s\n", label, why);
        free(ra);
        return 0;
    }
    fb_comparison c;
    char verdict[200], ci[40] = "-", p_text[16] = "-";
    if (fb_compare_repetitions(ra, na, rb, nb, o->alpha, o->threshold, &c)) {
        snprintf(verdict, sizeof verdict, "not tested: %s has %zu repetition%s (2 per side needed)", na < 2 ? "A" : "B",
                 na < 2 ? na : nb, (na < 2 ? na : nb) == 1 ? "" : "s");
        c.ratio = median_of(rb, nb) / median_of(ra, na);
    } else {
        const char *direction = c.ratio > 1 ? "slower" : "faster";
        double change_pct = 100 * fabs(c.ratio - 1);
        if (!c.significant) snprintf(verdict, sizeof verdict, "no significant difference");
        else if (!c.beyond_threshold)
            snprintf(verdict, sizeof verdict, "B %s by %.1f%%: significant, but within the %g%% threshold", direction,
                     change_pct, 100 * o->threshold);
        else
            snprintf(verdict, sizeof verdict, "B %s by %.1f%%", direction, change_pct);
        snprintf(ci, sizeof ci, "%.3f-%.3f", c.ratio_low, c.ratio_high);
        snprintf(p_text, sizeof p_text, "%.2g", c.p);
    }
    printf("%-16s %5zu %5zu %10.4f %10.4f %7.3f %17s %9s  %s\n", label, na, nb, median_of(ra, na), median_of(rb, nb),
           c.ratio, ci, p_text, verdict);
    free(ra);
    free(rb);
    return c.different;
}

int fb_cmd_compare(int argc, char **argv) {
    compare_options o;
    int rc = parse_options(argc, argv, &o);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    cJSON *a = load_report(o.path_a), *b = a ? load_report(o.path_b) : NULL;
    if (!a || !b) {
        cJSON_Delete(a);
        cJSON_Delete(b);
        return EXIT_USAGE;
    }
    printf("A: %s\nB: %s\n", o.path_a, o.path_b);
    n_warnings = 0;
    warn_differences(a, b);
    printf("\nms/step: the median over repetitions of each repetition's median decode step.\n"
           "B/A: ratio of the geometric means of those medians; p: Welch's t test on their\n"
           "logarithms; CI: %g%% interval of B/A.\n"
           "A difference counts when p < %g and B/A is more than %g%% from 1.\n\n",
           100 * (1 - o.alpha), o.alpha, 100 * o.threshold);
    printf("%-16s %5s %5s %10s %10s %7s %17s %9s  %s\n", "backend", "reps", "reps", "A ms/step", "B ms/step", "B/A",
           "CI of B/A", "p-value", "verdict");
    printf("%-16s %5s %5s\n", "", "A", "B");
    int n_compared = 0, n_different = 0;
    const cJSON *ba;
    cJSON_ArrayForEach(ba, cJSON_GetObjectItemCaseSensitive(a, "backends")) {
        const char *label = string_of(cJSON_GetObjectItemCaseSensitive(ba, "label"));
        if (!label) continue;
        const cJSON *bb = find_backend(b, label);
        if (!bb) {
            printf("%-16s only in A\n", label);
            continue;
        }
        n_different += compare_backend(&o, a, ba, b, bb, label);
        n_compared++;
    }
    const cJSON *bb;
    cJSON_ArrayForEach(bb, cJSON_GetObjectItemCaseSensitive(b, "backends")) {
        const char *label = string_of(cJSON_GetObjectItemCaseSensitive(bb, "label"));
        if (label && !find_backend(a, label)) printf("%-16s only in B\n", label);
    }
    printf("\n%d backend%s compared, %d with a significant decode-latency difference above %g%%%s\n", n_compared,
           n_compared == 1 ? "" : "s", n_different, 100 * o.threshold,
           n_warnings ? "; the runs differ (see the warnings above)" : "");
    cJSON_Delete(a);
    cJSON_Delete(b);
    return n_different ? EXIT_DIFFERENT : EXIT_OK;
}
