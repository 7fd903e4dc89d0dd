/* report_html.c - the HTML report and the trend page (see report_html.h).
 *
 * Charts are inline SVG written here rather than a charting library embedded
 * in the file: six simple chart kinds (bars with whiskers, box plots, lines,
 * a band) take a few hundred lines of C, the page stays small (tens of kB, not
 * the 200+ kB of a library), prints as vectors, needs no JavaScript to draw,
 * and there is nothing third-party to vendor and keep patched. Hovering a
 * mark shows its exact value through SVG <title> elements.
 *
 * Every chart is an <svg class="chart" data-chart=ID> whose series are
 * <g class="series"> groups; a few lines of inline script count them into
 * the page's data-series attribute, which the browser test reads. */
#include "report_html.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "stats.h"

#define MAX_BACKENDS 64

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                      "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"};
#define N_COLOURS (sizeof palette / sizeof palette[0])
#define WRONG_GREY "#b0b0b0"

// ----------------------------------------------------------------------------
// Small helpers: escaping, JSON access, notes

static void esc(FILE *out, const char *s) {
    for (; s && *s; s++) switch (*s) {
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '&': fputs("&amp;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default: fputc(*s, out);
        }
}

/* printf into a buffer, then escaped onto out. */
__attribute__((format(printf, 2, 3))) static void escf(FILE *out, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    esc(out, buf);
}

static const cJSON *obj(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }
static const char *str(const cJSON *o, const char *key) {
    const cJSON *v = obj(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}
static double num(const cJSON *o, const char *key) {
    const cJSON *v = obj(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

typedef struct notes {
    char *buf;
    size_t n, len;
    int count;
} notes;

__attribute__((format(printf, 2, 3))) static void note(notes *ns, const char *fmt, ...) {
    ns->count++;
    if (!ns->buf || ns->len + 1 >= ns->n) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(ns->buf + ns->len, ns->n - ns->len, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    ns->len += (size_t)k;
    if (ns->len + 1 < ns->n) ns->buf[ns->len++] = '\n', ns->buf[ns->len] = '\0';
    else
        ns->len = ns->n - 1;
}

/* A number array of the JSON as doubles (malloc'd; NULL and 0 when empty). */
static double *numbers(const cJSON *arr, size_t *n) {
    *n = 0;
    int size = cJSON_GetArraySize(arr);
    if (size <= 0) return NULL;
    double *x = malloc((size_t)size * sizeof *x);
    const cJSON *v;
    if (x) cJSON_ArrayForEach(v, arr) if (cJSON_IsNumber(v)) x[(*n)++] = v->valuedouble;
    return x;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile q of sorted x (linear interpolation between order statistics). */
static double quantile(const double *sorted, size_t n, double q) {
    double pos = q * (double)(n - 1);
    size_t i = (size_t)pos;
    if (i + 1 >= n) return sorted[n - 1];
    return sorted[i] + (pos - (double)i) * (sorted[i + 1] - sorted[i]);
}

// ----------------------------------------------------------------------------
// A report read back from its JSON, every figure recomputed

typedef struct backend {
    const cJSON *j;
    const char *label, *status;
    const char *colour;
    bool ok, wrong, ranked; /* ranked: ok, correct, and timed */
    double *lat, *prefill;  /* raw samples */
    size_t n_lat, n_prefill;
    fb_summary s; /* of lat */
    double throughput, thr_low, thr_high, prefill_tok_s;
    double bytes_per_step, bandwidth, ceiling, roofline;
    double load_s, cold_s;
    double advantage;
    bool has_agreement;
    double top1, kl, max_diff;
} backend;

typedef struct run_view {
    const cJSON *root;
    int index;
    backend b[MAX_BACKENDS];
    int n;
    int gen_tokens, repetitions, n_prompt;
    int n_timed, n_ranked, n_startup, n_roofline, n_agreement;
} run_view;

/* Stored figure against the recomputed one: a note when they differ. */
static void check(notes *ns, const char *name, const backend *b, const char *key, double recomputed) {
    double stored = num(obj(b->j, "metrics"), key);
    if (isnan(stored) && isnan(recomputed)) return;
    if (isnan(stored)) return; /* not stored: nothing to disagree with */
    double tol = 1e-9 * fmax(fabs(stored), fabs(recomputed)) + 1e-12;
    if (!(fabs(stored - recomputed) <= tol))
        note(ns, "%s, %s: the stored %s (%.10g) differs from %.10g recomputed from the raw samples", name, b->label,
             key, stored, recomputed);
}

static int load_run(const cJSON *root, int index, const char *name, run_view *v, notes *ns) {
    memset(v, 0, sizeof *v);
    v->root = root;
    v->index = index;
    const cJSON *schema = obj(root, "schema_version");
    if (!cJSON_IsNumber(schema) || !cJSON_IsArray(obj(root, "backends"))) {
        note(ns, "%s is not a fairbench JSON report (no schema_version or backends)", name);
        return -1;
    }
    const cJSON *run = obj(root, "run");
    v->gen_tokens = (int)num(run, "gen_tokens");
    v->repetitions = (int)num(run, "repetitions");
    v->n_prompt = cJSON_GetArraySize(obj(run, "prompt_tokens"));
    if (v->gen_tokens <= 0) v->gen_tokens = 1;
    const cJSON *j;
    cJSON_ArrayForEach(j, obj(root, "backends")) {
        if (v->n == MAX_BACKENDS) break;
        backend *b = &v->b[v->n];
        b->j = j;
        b->label = str(j, "label");
        b->status = str(j, "status");
        b->colour = palette[v->n % N_COLOURS];
        b->wrong = strcmp(b->status, "WRONG") == 0;
        b->ok = strcmp(b->status, "ok") == 0 || b->wrong;
        const cJSON *samples = obj(j, "samples");
        b->lat = numbers(obj(samples, "decode_latency_ms"), &b->n_lat);
        b->prefill = numbers(obj(samples, "prefill_s"), &b->n_prefill);
        b->ranked = b->ok && !b->wrong && b->n_lat > 0;
        if (b->wrong) b->colour = WRONG_GREY;
        const cJSON *m = obj(j, "metrics");
        b->load_s = num(m, "load_s");
        b->cold_s = num(m, "cold_start_s");
        b->bytes_per_step = num(m, "bytes_per_step");
        b->ceiling = num(m, "ceiling_gb_s");
        b->throughput = b->thr_low = b->thr_high = b->bandwidth = b->roofline = b->prefill_tok_s = NAN;
        b->advantage = NAN;
        if (b->n_lat > 0) {
            v->n_timed++;
            fb_summarize(b->lat, b->n_lat, &b->s);
            b->throughput = b->s.mean > 0 ? 1000.0 / b->s.mean : NAN;
            b->thr_low = b->s.ci95_high > 0 ? 1000.0 / b->s.ci95_high : NAN;
            b->thr_high = b->s.ci95_low > 0 ? 1000.0 / b->s.ci95_low : NAN;
            if (b->bytes_per_step > 0 && b->s.median > 0) b->bandwidth = b->bytes_per_step / (b->s.median * 1e-3) / 1e9;
            if (b->ceiling > 0 && isfinite(b->bandwidth)) {
                b->roofline = 100.0 * b->bandwidth / b->ceiling;
                v->n_roofline++;
            }
            if (b->n_prefill > 0) {
                fb_summary p;
                fb_summarize(b->prefill, b->n_prefill, &p);
                if (p.median > 0) b->prefill_tok_s = v->n_prompt / p.median;
            }
        }
        if (b->ok && isfinite(b->load_s) && isfinite(b->cold_s)) v->n_startup++;
        const cJSON *a = obj(j, "agreement");
        if (a) {
            b->has_agreement = true;
            b->top1 = num(a, "top1");
            b->kl = num(a, "mean_kl");
            b->max_diff = num(a, "max_abs_logit_diff");
            v->n_agreement++;
        }
        v->n_ranked += b->ranked;
        v->n++;
    }
    /* Advantage: mean-latency ratio against the slowest ranked backend. */
    const backend *slowest = NULL;
    for (int i = 0; i < v->n; i++)
        if (v->b[i].ranked && (!slowest || v->b[i].s.mean > slowest->s.mean)) slowest = &v->b[i];
    for (int i = 0; i < v->n; i++)
        if (v->b[i].ranked) v->b[i].advantage = slowest->s.mean / v->b[i].s.mean;
    /* Say where the stored summaries disagree with the samples. */
    for (int i = 0; i < v->n; i++) {
        const backend *b = &v->b[i];
        if (b->n_lat == 0) continue;
        check(ns, name, b, "decode_mean_ms", b->s.mean);
        check(ns, name, b, "decode_median_ms", b->s.median);
        check(ns, name, b, "decode_p90_ms", b->s.p90);
        check(ns, name, b, "decode_p99_ms", b->s.p99);
        check(ns, name, b, "decode_stddev_ms", b->s.stddev);
        check(ns, name, b, "decode_ci95_low_ms", b->s.ci95_low);
        check(ns, name, b, "decode_ci95_high_ms", b->s.ci95_high);
        check(ns, name, b, "throughput_tok_s", b->throughput);
        check(ns, name, b, "bandwidth_gb_s", b->bandwidth);
        check(ns, name, b, "roofline_pct", b->roofline);
        check(ns, name, b, "prefill_tok_s", b->prefill_tok_s);
        if (b->ranked) check(ns, name, b, "advantage", b->advantage);
        if (b->n_lat != (size_t)v->gen_tokens * (size_t)v->repetitions && b->ok)
            note(ns, "%s, %s: %zu decode samples, not gen_tokens x repetitions = %d", name, b->label, b->n_lat,
                 v->gen_tokens * v->repetitions);
    }
    return 0;
}

static void free_run(run_view *v) {
    for (int i = 0; i < v->n; i++) {
        free(v->b[i].lat);
        free(v->b[i].prefill);
    }
}

// ----------------------------------------------------------------------------
// SVG: a plot area with linear axes

enum { W = 760, H = 320, ML = 72, MR = 24, MT = 22, MB = 56 };

typedef struct plot {
    double x0, x1, y0, y1;
} plot;

static double px(const plot *p, double x) { return ML + (x - p->x0) / (p->x1 - p->x0) * (W - ML - MR); }
static double py(const plot *p, double y) { return H - MB - (y - p->y0) / (p->y1 - p->y0) * (H - MT - MB); }

/* A tick step of 1, 2 or 5 times a power of ten giving about n ticks. */
static double nice_step(double range, int n) {
    double raw = range / n, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

/* Round the upper bound up to a tick; a zero range gets a unit one. */
static double nice_max(double hi) {
    if (!(hi > 0) || !isfinite(hi)) return 1;
    double step = nice_step(hi, 5);
    return ceil(hi / step) * step;
}

static void chart_open(FILE *out, const run_view *v, const char *id, const char *caption) {
    fprintf(out, "<figure><figcaption>");
    esc(out, caption);
    fprintf(out, "</figcaption>\n<svg class=\"chart\" data-chart=\"r%d-%s\" viewBox=\"0 0 %d %d\" role=\"img\">\n",
            v ? v->index : 0, id, W, H);
}

static void chart_close(FILE *out, const char *footnote) {
    fprintf(out, "</svg>");
    if (footnote && footnote[0]) {
        fprintf(out, "<p class=\"foot\">");
        esc(out, footnote);
        fprintf(out, "</p>");
    }
    fprintf(out, "</figure>\n");
}

static void y_axis(FILE *out, const plot *p, const char *label) {
    double step = nice_step(p->y1 - p->y0, 5);
    for (double y = ceil(p->y0 / step) * step; y <= p->y1 + step * 1e-9; y += step)
        fprintf(out,
                "<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/><text class=\"tick\" x=\"%d\" "
                "y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                ML, W - MR, py(p, y), py(p, y), ML - 6, py(p, y) + 4, y);
    fprintf(out, "<text class=\"axis\" transform=\"translate(16 %d) rotate(-90)\" text-anchor=\"middle\">",
            (H - MB + MT) / 2);
    esc(out, label);
    fprintf(out, "</text>\n<line class=\"frame\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\"/>\n", ML, W - MR, H - MB,
            H - MB);
}

static void x_axis(FILE *out, const plot *p, const char *label) {
    double step = nice_step(p->x1 - p->x0, 8);
    for (double x = ceil(p->x0 / step) * step; x <= p->x1 + step * 1e-9; x += step)
        fprintf(out, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", px(p, x),
                H - MB + 16, x);
    fprintf(out, "<text class=\"axis\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (ML + W - MR) / 2, H - 10);
    esc(out, label);
    fprintf(out, "</text>\n");
}

/* Category i of n along the x axis: its centre, and a bar width. */
static double slot_x(int i, int n) { return ML + (i + 0.5) * (double)(W - ML - MR) / n; }
static double slot_w(int n) { return fmin(90, 0.6 * (W - ML - MR) / n); }

static void slot_label(FILE *out, int i, int n, const backend *b) {
    fprintf(out, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", slot_x(i, n), H - MB + 16);
    esc(out, b->label);
    fprintf(out, "</text>\n");
    if (b->wrong)
        fprintf(out, "<text class=\"tick wrong\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">WRONG, not ranked</text>\n",
                slot_x(i, n), H - MB + 30);
}

static void series_open(FILE *out, const backend *b, const char *extra) {
    fprintf(out, "<g class=\"series%s\" data-series=\"", b->wrong ? " wrong" : "");
    esc(out, b->label);
    if (extra) esc(out, extra);
    fprintf(out, "\">");
}

// ----------------------------------------------------------------------------
// The charts of one run

/* Throughput per timed backend: a bar, the 95% CI of 1000 / mean latency as
 * whiskers, and the advantage over the slowest correct backend. */
static void chart_throughput(FILE *out, const run_view *v) {
    if (!v->n_timed) return;
    double hi = 0;
    /* The scale is set by the correct backends: a WRONG one's speed means
     * nothing, and is clipped at the top when it is off the scale. */
    for (int i = 0; i < v->n; i++)
        if (v->b[i].n_lat && (!v->b[i].wrong || !v->n_ranked))
            hi = fmax(hi, isfinite(v->b[i].thr_high) ? v->b[i].thr_high : v->b[i].throughput);
    plot p = {0, 1, 0, nice_max(hi * 1.12)};
    chart_open(out, v, "throughput",
               "Decode throughput (tok/s) with 95% confidence interval; advantage over the slowest correct backend");
    y_axis(out, &p, "tokens per second");
    int k = 0;
    for (int i = 0; i < v->n; i++) {
        const backend *b = &v->b[i];
        if (!b->n_lat) continue;
        double x = slot_x(k, v->n_timed), w = slot_w(v->n_timed);
        series_open(out, b, NULL);
        double shown = fmin(b->throughput, p.y1);
        fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>", x - w / 2,
                py(&p, shown), w, py(&p, 0) - py(&p, shown), b->colour);
        escf(out, "%s: %.6g tok/s (95%% CI %.6g to %.6g; mean decode %.6g ms over %zu steps)", b->label, b->throughput,
             b->thr_low, b->thr_high, b->s.mean, b->n_lat);
        fprintf(out, "</title></rect>\n");
        if (isfinite(b->thr_low) && isfinite(b->thr_high) && b->thr_high <= p.y1)
            fprintf(out, "<path class=\"whisker\" d=\"M%.1f %.1fV%.1fM%.1f %.1fh%dM%.1f %.1fh%d\"/>\n", x,
                    py(&p, b->thr_low), py(&p, b->thr_high), x - 8, py(&p, b->thr_low), 16, x - 8, py(&p, b->thr_high),
                    16);
        if (b->ranked)
            fprintf(out,
                    "<text class=\"value\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.3g tok/s, %.2fx</text>\n", x,
                    py(&p, isfinite(b->thr_high) ? b->thr_high : b->throughput) - 6, b->throughput, b->advantage);
        else if (shown < b->throughput)
            fprintf(out,
                    "<text class=\"value wrong\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.3g tok/s, off the "
                    "scale</text>\n",
                    x, py(&p, shown) + 14, b->throughput);
        fprintf(out, "</g>\n");
        slot_label(out, k, v->n_timed, b);
        k++;
    }
    chart_close(out,
                "Whiskers: 95% CI of the mean decode latency, inverted. The ratio is the advantage (mean latency of "
                "the slowest correct backend / this one's); WRONG backends are drawn grey and never ranked.");
}

/* Decode-latency distribution: box (quartiles), median line, whiskers to the
 * last sample within 1.5 IQR, the samples beyond as outlier dots. */
static void chart_box(FILE *out, const run_view *v) {
    if (!v->n_timed) return;
    double hi = 0;
    for (int i = 0; i < v->n; i++)
        if (v->b[i].n_lat) hi = fmax(hi, v->b[i].s.max);
    plot p = {0, 1, 0, nice_max(hi * 1.05)};
    chart_open(out, v, "latency-box", "Decode latency per step (ms): distribution per backend");
    y_axis(out, &p, "ms per decode step");
    int k = 0;
    for (int i = 0; i < v->n; i++) {
        const backend *b = &v->b[i];
        if (!b->n_lat) continue;
        double *sorted = malloc(b->n_lat * sizeof *sorted);
        if (!sorted) continue;
        memcpy(sorted, b->lat, b->n_lat * sizeof *sorted);
        qsort(sorted, b->n_lat, sizeof *sorted, cmp_double);
        double q1 = quantile(sorted, b->n_lat, 0.25), q2 = quantile(sorted, b->n_lat, 0.5),
               q3 = quantile(sorted, b->n_lat, 0.75), iqr = q3 - q1;
        double lo_w = q1, hi_w = q3;
        for (size_t s = 0; s < b->n_lat; s++) {
            if (sorted[s] >= q1 - 1.5 * iqr) lo_w = fmin(lo_w, sorted[s]);
            if (sorted[s] <= q3 + 1.5 * iqr) hi_w = fmax(hi_w, sorted[s]);
        }
        double x = slot_x(k, v->n_timed), w = slot_w(v->n_timed);
        size_t n_out = 0;
        for (size_t s = 0; s < b->n_lat; s++) n_out += sorted[s] < lo_w || sorted[s] > hi_w;
        series_open(out, b, NULL);
        fprintf(out, "<path class=\"whisker\" d=\"M%.1f %.1fV%.1fM%.1f %.1fV%.1fM%.1f %.1fh%.1fM%.1f %.1fh%.1f\"/>\n",
                x, py(&p, lo_w), py(&p, q1), x, py(&p, q3), py(&p, hi_w), x - w / 4, py(&p, lo_w), w / 2, x - w / 4,
                py(&p, hi_w), w / 2);
        fprintf(out,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" fill-opacity=\"0.35\" "
                "stroke=\"%s\"><title>",
                x - w / 2, py(&p, q3), w, fmax(py(&p, q1) - py(&p, q3), 1), b->colour, b->colour);
        escf(out, "%s: median %.6g ms, quartiles %.6g to %.6g ms, whiskers %.6g to %.6g ms, %zu outliers of %zu steps",
             b->label, q2, q1, q3, lo_w, hi_w, n_out, b->n_lat);
        fprintf(out, "</title></rect>\n<line class=\"median\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n",
                x - w / 2, x + w / 2, py(&p, q2), py(&p, q2));
        for (size_t s = 0; s < b->n_lat; s++) {
            double y = b->lat[s];
            if (y >= lo_w && y <= hi_w) continue;
            fprintf(out, "<circle class=\"outlier\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" stroke=\"%s\"><title>", x,
                    py(&p, y), b->colour);
            escf(out, "%s: outlier %.6g ms (repetition %zu, step %zu)", b->label, y, s / (size_t)v->gen_tokens + 1,
                 s % (size_t)v->gen_tokens + 1);
            fprintf(out, "</title></circle>\n");
        }
        fprintf(out, "</g>\n");
        slot_label(out, k, v->n_timed, b);
        free(sorted);
        k++;
    }
    chart_close(out, "Box: quartiles and median; whiskers: the furthest samples within 1.5 interquartile ranges; dots: "
                     "the samples beyond (outliers).");
}

/* Every decode step in run order, one line per (backend, repetition). */
static void chart_steps(FILE *out, const run_view *v) {
    if (!v->n_timed) return;
    double hi = 0;
    for (int i = 0; i < v->n; i++)
        if (v->b[i].n_lat) hi = fmax(hi, v->b[i].s.max);
    plot p = {1, v->gen_tokens > 1 ? v->gen_tokens : 2, 0, nice_max(hi * 1.05)};
    chart_open(out, v, "steps", "Decode latency of each step in run order, one line per repetition");
    y_axis(out, &p, "ms per decode step");
    x_axis(out, &p, "decode step within the repetition");
    int legend = 0;
    for (int i = 0; i < v->n; i++) {
        const backend *b = &v->b[i];
        if (!b->n_lat) continue;
        size_t n_rep = (b->n_lat + (size_t)v->gen_tokens - 1) / (size_t)v->gen_tokens;
        for (size_t r = 0; r < n_rep; r++) {
            char extra[32];
            snprintf(extra, sizeof extra, " rep %zu", r + 1);
            series_open(out, b, extra);
            size_t first = r * (size_t)v->gen_tokens, last = first + (size_t)v->gen_tokens;
            if (last > b->n_lat) last = b->n_lat;
            fprintf(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-opacity=\"%.2f\" points=\"", b->colour,
                    0.45 + 0.55 * (double)(r + 1) / (double)n_rep);
            for (size_t s = first; s < last; s++)
                fprintf(out, "%.1f,%.1f ", px(&p, (double)(s - first + 1)), py(&p, b->lat[s]));
            fprintf(out, "\"><title>");
            escf(out, "%s, repetition %zu", b->label, r + 1);
            fprintf(out, "</title></polyline>\n");
            for (size_t s = first; s < last; s++) {
                fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\" fill=\"%s\"><title>",
                        px(&p, (double)(s - first + 1)), py(&p, b->lat[s]), b->colour);
                escf(out, "%s, repetition %zu, step %zu: %.6g ms", b->label, r + 1, s - first + 1, b->lat[s]);
                fprintf(out, "</title></circle>");
            }
            fprintf(out, "</g>\n");
        }
        fprintf(out, "<text class=\"legend\" x=\"%d\" y=\"%d\" fill=\"%s\">", ML + 10 + 150 * legend, MT + 2,
                b->colour);
        esc(out, b->label);
        fprintf(out, "</text>\n");
        legend++;
    }
    chart_close(out, "Later repetitions are drawn darker: a drift between them (warm-up, frequency scaling) or a spike "
                     "shared by every backend at one time (interference) shows here.");
}

/* Achieved bandwidth against the ceiling measured in the same run. */
static void chart_roofline(FILE *out, const run_view *v) {
    if (!v->n_roofline) return;
    double hi = 0;
    for (int i = 0; i < v->n; i++)
        if (isfinite(v->b[i].roofline))
            hi = fmax(hi, v->b[i].wrong && v->n_ranked ? v->b[i].ceiling : fmax(v->b[i].ceiling, v->b[i].bandwidth));
    plot p = {0, 1, 0, nice_max(hi * 1.1)};
    chart_open(
        out, v, "roofline",
        "Roofline: achieved GB/s (bytes one decode step must read / median latency) against the measured ceiling");
    y_axis(out, &p, "GB/s");
    int k = 0;
    for (int i = 0; i < v->n; i++) {
        const backend *b = &v->b[i];
        if (!isfinite(b->roofline)) continue;
        double x = slot_x(k, v->n_roofline), w = slot_w(v->n_roofline);
        series_open(out, b, NULL);
        double shown = fmin(b->bandwidth, p.y1);
        fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>", x - w / 2,
                py(&p, shown), w, py(&p, 0) - py(&p, shown), b->colour);
        escf(out, "%s: %.6g GB/s achieved (%.6g MB per step / %.6g ms median), %.3g%% of %.6g GB/s", b->label,
             b->bandwidth, b->bytes_per_step / 1e6, b->s.median, b->roofline, b->ceiling);
        fprintf(out, "</title></rect>\n<line class=\"ceiling\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"><title>",
                x - w, x + w, py(&p, b->ceiling), py(&p, b->ceiling));
        escf(out, "%s: ceiling %.6g GB/s (measured in this run)", b->label, b->ceiling);
        fprintf(out,
                "</title></line>\n<text class=\"value\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.3g%%</text>\n",
                x, fmax(fmin(py(&p, shown), py(&p, b->ceiling)) - 6, MT + 10), b->roofline);
        fprintf(out, "</g>\n");
        slot_label(out, k, v->n_roofline, b);
        k++;
    }
    chart_close(out, "Bars: achieved bandwidth; dashed line: the ceiling (streaming read on the CPU, device copy on a "
                     "GPU) measured in the same run; the percentage is the roofline fraction.");
}

/* Start-up: load and cold start, stacked per backend. */
static void chart_startup(FILE *out, const run_view *v) {
    if (!v->n_startup) return;
    double hi = 0;
    for (int i = 0; i < v->n; i++)
        if (v->b[i].ok && isfinite(v->b[i].load_s)) hi = fmax(hi, 1e3 * (v->b[i].load_s + v->b[i].cold_s));
    plot p = {0, 1, 0, nice_max(hi * 1.1)};
    chart_open(out, v, "startup", "Start-up: load (create) and cold start (first prefill + decode), ms");
    y_axis(out, &p, "ms");
    int k = 0;
    for (int i = 0; i < v->n; i++) {
        const backend *b = &v->b[i];
        if (!b->ok || !isfinite(b->load_s) || !isfinite(b->cold_s)) continue;
        double x = slot_x(k, v->n_startup), w = slot_w(v->n_startup), load = 1e3 * b->load_s, cold = 1e3 * b->cold_s;
        series_open(out, b, NULL);
        fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>", x - w / 2,
                py(&p, load), w, py(&p, 0) - py(&p, load), b->colour);
        escf(out, "%s: load %.6g ms", b->label, load);
        fprintf(out,
                "</title></rect>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" "
                "fill-opacity=\"0.45\"><title>",
                x - w / 2, py(&p, load + cold), w, py(&p, load) - py(&p, load + cold), b->colour);
        escf(out, "%s: cold start %.6g ms", b->label, cold);
        fprintf(out,
                "</title></rect>\n<text class=\"value\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.3g ms</text>"
                "</g>\n",
                x, py(&p, load + cold) - 6, load + cold);
        slot_label(out, k, v->n_startup, b);
        k++;
    }
    chart_close(out, "Solid: load; light: cold start on top of it.");
}

/* Cumulative time to generate n tokens: start-up + n x mean decode latency,
 * per correct backend; where one starts slower but decodes faster, the point
 * where it catches up is marked. */
static void chart_break_even(FILE *out, const run_view *v) {
    const backend *r[MAX_BACKENDS];
    int n = 0;
    for (int i = 0; i < v->n; i++)
        if (v->b[i].ranked && isfinite(v->b[i].load_s) && isfinite(v->b[i].cold_s)) r[n++] = &v->b[i];
    if (n < 1) return;
    double start[MAX_BACKENDS], per_tok[MAX_BACKENDS], max_cross = 0;
    for (int i = 0; i < n; i++) start[i] = r[i]->load_s + r[i]->cold_s, per_tok[i] = r[i]->s.mean * 1e-3;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (start[i] > start[j] && per_tok[i] < per_tok[j])
                max_cross = fmax(max_cross, (start[i] - start[j]) / (per_tok[j] - per_tok[i]));
    /* at least 1000 tokens: a crossing after one token is shown as such */
    double xmax = nice_max(fmax(1.6 * max_cross, 1000)), hi = 0;
    for (int i = 0; i < n; i++) hi = fmax(hi, start[i] + xmax * per_tok[i]);
    plot p = {0, xmax, 0, nice_max(hi * 1.05)};
    chart_open(out, v, "break-even", "Break-even: cumulative time (start-up + decode) against tokens generated");
    y_axis(out, &p, "seconds");
    x_axis(out, &p, "tokens generated");
    char foot[1024] = "";
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        series_open(out, r[i], NULL);
        fprintf(out, "<line stroke=\"%s\" stroke-width=\"2\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"><title>",
                r[i]->colour, px(&p, 0), py(&p, start[i]), px(&p, xmax), py(&p, start[i] + xmax * per_tok[i]));
        escf(out, "%s: %.6g s + %.6g ms per token", r[i]->label, start[i], per_tok[i] * 1e3);
        fprintf(out, "</title></line>\n");
        for (int j = 0; j < n; j++) {
            if (!(start[i] > start[j] && per_tok[i] < per_tok[j])) continue;
            double x = (start[i] - start[j]) / (per_tok[j] - per_tok[i]);
            fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"none\" stroke=\"#000\"><title>", px(&p, x),
                    py(&p, start[i] + x * per_tok[i]));
            escf(out, "%s catches up with %s after %.0f tokens", r[i]->label, r[j]->label, ceil(x));
            fprintf(out, "</title></circle>\n");
            if (len + 1 < sizeof foot)
                len += (size_t)snprintf(foot + len, sizeof foot - len,
                                        "%s starts %.3g s later than %s but decodes "
                                        "faster: it is ahead after %.0f tokens. ",
                                        r[i]->label, start[i] - start[j], r[j]->label, ceil(x));
        }
        fprintf(out, "<text class=\"legend\" x=\"%d\" y=\"%d\" fill=\"%s\">", ML + 10 + 150 * i, MT + 2, r[i]->colour);
        esc(out, r[i]->label);
        fprintf(out, "</text></g>\n");
    }
    if (len >= sizeof foot) len = sizeof foot - 1;
    if (!len)
        snprintf(foot, sizeof foot, "No backend starts slower and decodes faster than another: no break-even point.");
    chart_close(out, foot);
}

/* Agreement with the reference: top-1 per backend, mean KL in the label. */
static void chart_agreement(FILE *out, const run_view *v) {
    if (!v->n_agreement) return;
    plot p = {0, 1, 0, 100};
    chart_open(out, v, "agreement", "Agreement with the reference (teacher-forced): top-1 %, mean KL");
    y_axis(out, &p, "top-1 agreement (%)");
    int k = 0;
    for (int i = 0; i < v->n; i++) {
        const backend *b = &v->b[i];
        if (!b->has_agreement) continue;
        double x = slot_x(k, v->n_agreement), w = slot_w(v->n_agreement), t = 100 * (isfinite(b->top1) ? b->top1 : 0);
        series_open(out, b, NULL);
        fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>", x - w / 2,
                py(&p, t), w, py(&p, 0) - py(&p, t), b->colour);
        escf(out, "%s: top-1 %.6g%%, mean KL %.6g, max |logit diff| %.6g (%s)%s", b->label, t, b->kl, b->max_diff,
             str(obj(b->j, "agreement"), "bar"), b->wrong ? "; WRONG" : "");
        fprintf(out,
                "</title></rect>\n<text class=\"value\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.1f%%, KL %.2g"
                "</text></g>\n",
                x, py(&p, t) - 6, t, b->kl);
        slot_label(out, k, v->n_agreement, b);
        k++;
    }
    chart_close(out, "Bars: share of positions where the backend's argmax equals the reference's; WRONG (below the "
                     "precision's thresholds) is grey.");
}

// ----------------------------------------------------------------------------
// Header and table

/* A number cell: conv 'f', 'e' or 'g' at precision prec, then suffix. */
static void cell_num(FILE *out, double x, int prec, char conv, const char *suffix) {
    fprintf(out, "<td>");
    if (!isfinite(x)) fprintf(out, "-");
    else if (conv == 'e')
        fprintf(out, "%.*e%s", prec, x, suffix);
    else if (conv == 'g')
        fprintf(out, "%.*g%s", prec, x, suffix);
    else
        fprintf(out, "%.*f%s", prec, x, suffix);
    fprintf(out, "</td>");
}

static void header(FILE *out, const run_view *v, const char *name) {
    const cJSON *root = v->root, *env = obj(root, "environment"), *fair = obj(root, "fairness");
    fprintf(out, "<h2>");
    esc(out, name);
    fprintf(out, "</h2>\n<dl class=\"meta\">");
    const cJSON *model = obj(root, "model"), *prof = obj(root, "profile"), *run = obj(root, "run");
    fprintf(out, "<dt>Model</dt><dd>");
    escf(out, "%s (%.4g MB, sha256 %.16s…)", str(model, "path"), num(model, "bytes") / 1e6, str(model, "sha256"));
    fprintf(out, "</dd><dt>Profile</dt><dd>");
    escf(out, "%s (sha256 %.16s…)%s%s", str(prof, "path"), str(prof, "sha256"),
         str(prof, "overrides")[0] ? "; --set " : "", str(prof, "overrides"));
    fprintf(out, "</dd><dt>Machine</dt><dd>");
    escf(out, "%s, %g cores, %s; %s", str(env, "cpu"), num(env, "cores"), str(env, "memory"), str(env, "kernel"));
    const cJSON *g;
    cJSON_ArrayForEach(g, obj(env, "gpus")) if (cJSON_IsString(g)) escf(out, "; GPU %s", g->valuestring);
    fprintf(out, "</dd><dt>fairbench</dt><dd>");
    escf(out, "%s, commit %s, %s build; run %s", str(env, "fairbench_version"), str(env, "git_commit"),
         str(env, "build"), str(env, "date"));
    fprintf(out, "</dd><dt>Run</dt><dd>");
    escf(out, "%d prompt tokens, %d generated, %g warm-up, %d repetitions, order %s, %.3g s", v->n_prompt,
         v->gen_tokens, num(run, "warmup"), v->repetitions, str(run, "order"), num(run, "wall_s"));
    fprintf(out, "</dd></dl>\n");
    bool is_fair = cJSON_IsTrue(obj(fair, "fair"));
    const char *verdict = str(fair, "verdict");
    fprintf(out, "<div class=\"verdict %s\"><strong>Fairness verdict: %s</strong>", is_fair ? "fair" : "unfair",
            is_fair ? "fair" : "unfair");
    /* "unfair: reason; reason" -> a list of reasons */
    const char *reasons = strchr(verdict, ':');
    if (reasons) {
        fprintf(out, "<ul>");
        for (const char *r = reasons + 1; *r;) {
            while (*r == ' ') r++;
            const char *end = strstr(r, "; ");
            size_t len = end ? (size_t)(end - r) : strlen(r);
            char item[1024];
            snprintf(item, sizeof item, "%.*s", (int)(len < sizeof item ? len : sizeof item - 1), r);
            fprintf(out, "<li>");
            esc(out, item);
            fprintf(out, "</li>");
            r += len + (end ? 2 : 0);
        }
        fprintf(out, "</ul>");
    }
    const cJSON *ref = obj(root, "reference");
    fprintf(out, "<p>");
    escf(out, "Reference: %s (%s); agreement teacher-forced on its %d greedy tokens.", str(ref, "backend"),
         str(ref, "status"), cJSON_GetArraySize(obj(ref, "tokens")));
    fprintf(out, "</p></div>\n");
    const cJSON *w;
    if (cJSON_GetArraySize(obj(root, "warnings")) > 0) {
        fprintf(out, "<ul class=\"warnings\">");
        cJSON_ArrayForEach(w, obj(root, "warnings")) if (cJSON_IsString(w)) {
            fprintf(out, "<li>Warning: ");
            esc(out, w->valuestring);
            fprintf(out, "</li>");
        }
        fprintf(out, "</ul>\n");
    }
}

static void table(FILE *out, const run_view *v) {
    fprintf(out, "<table><thead><tr><th>Backend</th>");
    for (int i = 0; i < v->n; i++) {
        fprintf(out, "<th%s>", v->b[i].wrong ? " class=\"wrong\"" : "");
        esc(out, v->b[i].label);
        fprintf(out, "</th>");
    }
    fprintf(out, "</tr></thead><tbody>\n");
#define ROW(TITLE, BODY)                           \
    do {                                           \
        fprintf(out, "<tr><th>%s</th>", TITLE);    \
        for (int i = 0; i < v->n; i++) {           \
            const backend *b = &v->b[i];           \
            const cJSON *m = obj(b->j, "metrics"); \
            (void)m;                               \
            BODY;                                  \
        }                                          \
        fprintf(out, "</tr>\n");                   \
    } while (0)
    ROW("Status", {
        fprintf(out, "<td class=\"%s\">", b->wrong ? "wrong" : b->ok ? "ok" : "bad");
        esc(out, b->status);
        if (str(b->j, "reason")[0]) {
            fprintf(out, ": ");
            esc(out, str(b->j, "reason"));
        }
        fprintf(out, "</td>");
    });
    ROW("Plugin", {
        fprintf(out, "<td>");
        escf(out, "%s %s", str(b->j, "plugin"), str(b->j, "plugin_version"));
        fprintf(out, "</td>");
    });
    ROW("Device", {
        fprintf(out, "<td>");
        esc(out, str(b->j, "device"));
        fprintf(out, "</td>");
    });
    ROW("Weights / accumulate", {
        const cJSON *e = obj(b->j, "effective_settings");
        if (!e) e = obj(b->j, "settings");
        fprintf(out, "<td>");
        escf(out, "%s / %s", str(e, "weight_precision"), str(e, "accumulate_precision"));
        fprintf(out, "</td>");
    });
    ROW("CPU threads", cell_num(out, num(obj(b->j, "effective_settings"), "threads"), 6, 'g', ""));
    ROW("Load (ms)", cell_num(out, 1e3 * b->load_s, 1, 'f', ""));
    ROW("Cold start (ms)", cell_num(out, 1e3 * b->cold_s, 2, 'f', ""));
    ROW("Prefill (tok/s)", cell_num(out, b->prefill_tok_s, 1, 'f', ""));
    ROW("Decode mean (ms)", cell_num(out, b->n_lat ? b->s.mean : NAN, 4, 'f', ""));
    ROW("Decode median (ms)", cell_num(out, b->n_lat ? b->s.median : NAN, 4, 'f', ""));
    ROW("Decode p90 (ms)", cell_num(out, b->n_lat ? b->s.p90 : NAN, 4, 'f', ""));
    ROW("Decode p99 (ms)", cell_num(out, b->n_lat ? b->s.p99 : NAN, 4, 'f', ""));
    ROW("Decode stddev (ms)", cell_num(out, b->n_lat ? b->s.stddev : NAN, 4, 'f', ""));
    ROW("Decode 95% CI (ms)", {
        if (b->n_lat) fprintf(out, "<td>%.4f to %.4f</td>", b->s.ci95_low, b->s.ci95_high);
        else
            fprintf(out, "<td>-</td>");
    });
    ROW("Outliers (steps)", {
        if (b->n_lat) fprintf(out, "<td>%zu of %zu</td>", b->s.n_outliers, b->s.n);
        else
            fprintf(out, "<td>-</td>");
    });
    ROW("Throughput (tok/s)", cell_num(out, b->throughput, 2, 'f', ""));
    ROW("Bytes per step (MB)", cell_num(out, b->bytes_per_step / 1e6, 2, 'f', ""));
    ROW("Bandwidth (GB/s)", cell_num(out, b->bandwidth, 3, 'f', ""));
    ROW("Roofline (% of ceiling)", {
        if (isfinite(b->roofline)) fprintf(out, "<td>%.1f%% of %.2f GB/s</td>", b->roofline, b->ceiling);
        else
            fprintf(out, "<td>-</td>");
    });
    ROW("Peak device memory (MB)",
        cell_num(out, num(m, "device_peak_bytes") > 0 ? num(m, "device_peak_bytes") / 1e6 : NAN, 1, 'f', ""));
    ROW("Host RSS peak (MB)",
        cell_num(out, num(m, "host_rss_peak_bytes") > 0 ? num(m, "host_rss_peak_bytes") / 1e6 : NAN, 1, 'f', ""));
    ROW("Top-1 agreement", cell_num(out, b->has_agreement ? 100 * b->top1 : NAN, 1, 'f', "%"));
    ROW("Max |logit diff|", cell_num(out, b->has_agreement ? b->max_diff : NAN, 3, 'g', ""));
    ROW("Mean KL", cell_num(out, b->has_agreement ? b->kl : NAN, 2, 'e', ""));
    ROW("Advantage (95% CI)", {
        if (b->ranked)
            fprintf(out, "<td>%.2fx (%.2f to %.2f)</td>", b->advantage, num(m, "advantage_ci95_low"),
                    num(m, "advantage_ci95_high"));
        else
            fprintf(out, "<td>%s</td>", b->wrong ? "not ranked (WRONG)" : "-");
    });
    ROW("Harness overhead (ns/tok)", cell_num(out, num(m, "harness_overhead_ns"), 0, 'f', ""));
    ROW("Notes", {
        fprintf(out, "<td class=\"notes\">");
        esc(out, str(obj(b->j, "effective_settings"), "notes"));
        fprintf(out, "</td>");
    });
#undef ROW
    fprintf(out, "</tbody></table>\n<p class=\"foot\">Every figure above is recomputed here from the report's raw "
                 "samples; the advantage interval is the run's own bootstrap.</p>\n");
}

// ----------------------------------------------------------------------------
// The page

/* The profiling pass (docs/why.md), per backend that has one: where a decode
 * step goes, by class and by kernel or span. Untimed, apart from the charts'
 * figures; a plain table with bars, not a chart. */
static void why_section(FILE *out, const run_view *v) {
    bool any = false;
    for (int i = 0; i < v->n; i++) any |= obj(v->b[i].j, "why") != NULL || str(v->b[i].j, "why_status") != NULL;
    if (!any) return;
    fprintf(out, "<h3>Why: the profiling pass (untimed, after the timed repetitions)</h3>\n");
    for (int i = 0; i < v->n; i++) {
        const backend *b = &v->b[i];
        const cJSON *why = obj(b->j, "why");
        const char *status = str(b->j, "why_status");
        const cJSON *gpu = obj(why, "gpu"), *spans = obj(why, "spans");
        const cJSON *src = cJSON_IsTrue(obj(gpu, "available"))     ? gpu
                           : cJSON_IsTrue(obj(spans, "available")) ? spans
                                                                   : NULL;
        fprintf(out, "<div class=\"why\"><h4>");
        esc(out, b->label);
        if (!src) {
            fprintf(out, "</h4><p>no breakdown: ");
            esc(out, status ? status : "the pass recorded neither kernels nor spans");
            fprintf(out, "</p></div>\n");
            continue;
        }
        bool kernels = src == gpu;
        fprintf(out, " &mdash; %s: step %.4g ms, busy %.1f%%, %.1f %s per token</h4>\n",
                kernels ? "GPU kernels (CUPTI)" : "named spans (plugin)", num(src, "step_ms"),
                100 * num(src, "busy_fraction"), num(src, kernels ? "launches_per_token" : "spans_per_token"),
                kernels ? "launches" : "spans");
        fprintf(out, "<table><thead><tr><th>class</th><th>ms/step</th><th>share</th><th></th></tr></thead><tbody>\n");
        double total = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, obj(src, "class_ms")) total += cJSON_IsNumber(c) ? c->valuedouble : 0;
        cJSON_ArrayForEach(c, obj(src, "class_ms")) {
            if (!cJSON_IsNumber(c) || c->valuedouble <= 0 || total <= 0) continue;
            double share = c->valuedouble / total;
            fprintf(out, "<tr><th>");
            esc(out, c->string);
            fprintf(out,
                    "</th><td>%.4f</td><td>%.1f%%</td><td style=\"text-align:left\"><span class=\"bar\" "
                    "style=\"width:%.0fpx\" title=\"%.3f ms/step\"></span></td></tr>\n",
                    c->valuedouble, 100 * share, 200 * share, c->valuedouble);
        }
        fprintf(out,
                "</tbody></table>\n<table><thead><tr><th>%s</th><th>class</th><th>ms/step</th><th>share</th>"
                "<th>GB/s</th></tr></thead><tbody>\n",
                kernels ? "kernel" : "span");
        int shown = 0;
        cJSON_ArrayForEach(c, obj(src, "top")) {
            if (shown++ == 8) break;
            fprintf(out, "<tr><th>");
            esc(out, str(c, "name") ? str(c, "name") : "?");
            fprintf(out, "</th><td>");
            esc(out, str(c, "class") ? str(c, "class") : "");
            fprintf(out, "</td>");
            cell_num(out, num(c, "ms_per_step"), 4, 'f', "");
            cell_num(out, 100 * num(c, "share"), 1, 'f', "%");
            cell_num(out, num(c, "gb_per_s"), 1, 'f', "");
            fprintf(out, "</tr>\n");
        }
        fprintf(out, "</tbody></table></div>\n");
    }
}

static void page_open(FILE *out, const char *title) {
    fprintf(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    esc(out, title);
    /* The error hook comes first, so an error anywhere later is counted. */
    fprintf(out,
            "</title>\n<script>window.fbErrors = 0; window.addEventListener('error', function () {"
            " document.documentElement.setAttribute('data-errors', String(++window.fbErrors)); });</script>\n"
            "<style>\n"
            "body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; color: #222; padding: "
            "0 1em; }\n"
            "h1 { font-size: 1.5em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; }\n"
            "dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; }\n"
            "dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; overflow-wrap: anywhere; }\n"
            ".verdict { padding: 6px 12px; border-radius: 4px; margin: 8px 0; }\n"
            ".verdict.fair { background: #e6f4e6; } .verdict.unfair { background: #fdecea; }\n"
            ".warnings li, .differs { color: #8a4b00; }\n"
            "table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }\n"
            "th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }\n"
            "tbody th { text-align: left; font-weight: normal; background: #f6f6f6; }\n"
            "td.wrong, th.wrong { color: #888; } td.bad { color: #b00; } td.notes { font-size: 0.85em; text-align: "
            "left; }\n"
            ".charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 8px 24px; }\n"
            "figure { margin: 12px 0; break-inside: avoid; } figcaption { font-weight: 600; }\n"
            "svg.chart { width: 100%%; max-width: 900px; height: auto; display: block; }\n"
            "svg .grid { stroke: #eee; } svg .frame { stroke: #888; } svg .tick { font-size: 11px; fill: #555; }\n"
            "svg .axis { font-size: 12px; fill: #333; } svg .value { font-size: 11px; fill: #222; }\n"
            "svg .legend { font-size: 12px; font-weight: 600; } svg .wrong { fill: #888; }\n"
            "svg .whisker { stroke: #222; fill: none; } svg .median { stroke: #000; stroke-width: 2; }\n"
            "svg .outlier { fill: #fff; } svg .ceiling { stroke: #000; stroke-dasharray: 5 3; stroke-width: 2; }\n"
            "svg .band { stroke: none; }\n"
            "svg rect:hover, svg circle:hover { opacity: 0.75; }\n"
            ".foot { font-size: 0.85em; color: #555; margin: 2px 0; }\n"
            ".why { margin: 4px 0 12px; } .why h4 { margin: 6px 0 2px; }\n"
            "span.bar { display: inline-block; height: 10px; background: #1f77b4; }\n"
            "@media print { body { max-width: none; margin: 0; } figure, table { break-inside: avoid; } }\n"
            "</style>\n</head>\n<body>\n");
}

/* Counts each chart's series into <html data-series="id:n ...">. */
static void page_close(FILE *out) {
    fprintf(out, "<script>\n(function () {\n"
                 "  var counts = [];\n"
                 "  document.querySelectorAll('svg.chart').forEach(function (svg) {\n"
                 "    counts.push(svg.getAttribute('data-chart') + ':' + svg.querySelectorAll('g.series').length);\n"
                 "  });\n"
                 "  document.documentElement.setAttribute('data-series', counts.join(' '));\n"
                 "  document.documentElement.setAttribute('data-rendered', 'yes');\n"
                 "})();\n</script>\n</body>\n</html>\n");
}

int fb_html_report_write(FILE *out, const cJSON *const *reports, const char *const *names, int n, char *notes_buf,
                         size_t notes_n) {
    notes ns = {notes_buf, notes_n, 0, 0};
    if (notes_buf && notes_n) notes_buf[0] = '\0';
    run_view *views = calloc(n > 0 ? (size_t)n : 1, sizeof *views);
    if (!views) return -1;
    int rc = 0, loaded = 0;
    for (int i = 0; i < n && !rc; i++, loaded++) rc = load_run(reports[i], i, names[i], &views[i], &ns);
    if (!rc) {
        page_open(out, n == 1 ? "fairbench report" : "fairbench reports");
        fprintf(out, "<h1>fairbench report</h1>\n");
        if (ns.count) {
            fprintf(out,
                    "<div class=\"differs\"><strong>%d stored figure%s differ%s from the raw samples</strong> "
                    "(the charts and table show the recomputed values):<ul>",
                    ns.count, ns.count == 1 ? "" : "s", ns.count == 1 ? "s" : "");
            for (const char *line = notes_buf ? notes_buf : ""; *line;) {
                const char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t)(nl - line) : strlen(line);
                char item[1024];
                snprintf(item, sizeof item, "%.*s", (int)(len < sizeof item ? len : sizeof item - 1), line);
                fprintf(out, "<li>");
                esc(out, item);
                fprintf(out, "</li>");
                line += len + (nl ? 1 : 0);
            }
            fprintf(out, "</ul></div>\n");
        }
        for (int i = 0; i < n; i++) {
            fprintf(out, "<section class=\"run\">\n");
            header(out, &views[i], names[i]);
            table(out, &views[i]);
            fprintf(out, "<div class=\"charts\">\n");
            chart_throughput(out, &views[i]);
            chart_box(out, &views[i]);
            chart_steps(out, &views[i]);
            chart_roofline(out, &views[i]);
            chart_startup(out, &views[i]);
            chart_break_even(out, &views[i]);
            chart_agreement(out, &views[i]);
            fprintf(out, "</div>\n");
            why_section(out, &views[i]);
            fprintf(out, "</section>\n");
        }
        page_close(out);
    }
    for (int i = 0; i < loaded; i++) free_run(&views[i]);
    free(views);
    return rc || ferror(out) ? -1 : 0;
}

// ----------------------------------------------------------------------------
// The trend page

int fb_html_trend_write(FILE *out, const char *metric, const char *unit, const fb_trend_series *series, int n_series,
                        const char *verdict) {
    page_open(out, "fairbench trend");
    fprintf(out, "<h1>fairbench trend: ");
    esc(out, metric);
    fprintf(out, "</h1>\n");
    if (verdict && verdict[0]) {
        fprintf(out, "<div class=\"verdict %s\"><strong>", strstr(verdict, "regress") ? "unfair" : "fair");
        esc(out, verdict);
        fprintf(out, "</strong></div>\n");
    }
    /* x: position of each run among all runs of any series (by id). */
    size_t total = 0;
    for (int s = 0; s < n_series; s++) total += series[s].n_points;
    long long *ids = malloc((total ? total : 1) * sizeof *ids);
    if (!ids) return -1;
    int n_ids = 0;
    double hi = 0;
    for (int s = 0; s < n_series; s++)
        for (size_t i = 0; i < series[s].n_points; i++) {
            const fb_trend_point *pt = &series[s].points[i];
            int k = 0;
            while (k < n_ids && ids[k] != pt->run_id) k++;
            if (k == n_ids) ids[n_ids++] = pt->run_id;
            for (size_t r = 0; r < pt->n; r++) hi = fmax(hi, pt->values[r]);
        }
    /* ids in ascending order */
    for (int i = 1; i < n_ids; i++)
        for (int j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            long long t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    plot p = {-0.5, n_ids > 0 ? n_ids - 0.5 : 0.5, 0, nice_max(hi * 1.1)};
    char caption[256];
    snprintf(caption, sizeof caption, "%s per run (%s): mean of the repetitions with its 95%% CI band", metric, unit);
    chart_open(out, NULL, "trend", caption);
    char ylabel[128];
    snprintf(ylabel, sizeof ylabel, "%s (%s)", metric, unit);
    y_axis(out, &p, ylabel);
    for (int k = 0; k < n_ids; k++)
        fprintf(out, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">#%lld</text>\n", px(&p, k),
                H - MB + 16, ids[k]);
    fprintf(out, "<text class=\"axis\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">run</text>\n", (ML + W - MR) / 2,
            H - 22);
    for (int s = 0; s < n_series; s++) {
        const char *colour = palette[s % N_COLOURS];
        fprintf(out, "<g class=\"series\" data-series=\"");
        esc(out, series[s].label);
        fprintf(out, "\">\n");
        /* the band: upper edge forward, lower edge back */
        size_t np = series[s].n_points;
        fb_summary *sum = calloc(np ? np : 1, sizeof *sum);
        double *x = calloc(np ? np : 1, sizeof *x);
        if (!sum || !x) {
            free(sum);
            free(x);
            free(ids);
            return -1;
        }
        for (size_t i = 0; i < np; i++) {
            const fb_trend_point *pt = &series[s].points[i];
            int k = 0;
            while (k < n_ids && ids[k] != pt->run_id) k++;
            x[i] = k;
            if (pt->n) fb_summarize(pt->values, pt->n, &sum[i]);
        }
        fprintf(out, "<polygon class=\"band\" fill=\"%s\" fill-opacity=\"0.18\" points=\"", colour);
        for (size_t i = 0; i < np; i++)
            if (series[s].points[i].n) fprintf(out, "%.1f,%.1f ", px(&p, x[i]), py(&p, sum[i].ci95_high));
        for (size_t i = np; i-- > 0;)
            if (series[s].points[i].n) fprintf(out, "%.1f,%.1f ", px(&p, x[i]), py(&p, sum[i].ci95_low));
        fprintf(out, "\"/>\n<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", colour);
        for (size_t i = 0; i < np; i++)
            if (series[s].points[i].n) fprintf(out, "%.1f,%.1f ", px(&p, x[i]), py(&p, sum[i].mean));
        fprintf(out, "\"/>\n");
        for (size_t i = 0; i < np; i++) {
            const fb_trend_point *pt = &series[s].points[i];
            if (!pt->n) continue;
            fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>", px(&p, x[i]),
                    py(&p, sum[i].mean), colour);
            escf(out, "%s, run #%lld (%s, commit %s): mean %.6g %s, 95%% CI %.6g to %.6g, %zu repetitions",
                 series[s].label, pt->run_id, pt->time, pt->commit, sum[i].mean, unit, sum[i].ci95_low,
                 sum[i].ci95_high, pt->n);
            fprintf(out, "</title></circle>\n");
        }
        fprintf(out, "<text class=\"legend\" x=\"%d\" y=\"%d\" fill=\"%s\">", ML + 10 + 150 * s, MT + 2, colour);
        esc(out, series[s].label);
        fprintf(out, "</text></g>\n");
        free(sum);
        free(x);
    }
    chart_close(out, "Each point: the mean over the run's repetitions of the per-repetition figure; the band: its 95% "
                     "confidence interval (Student's t). Hover a point for its run, date and commit.");
    page_close(out);
    free(ids);
    return ferror(out) ? -1 : 0;
}

// ----------------------------------------------------------------------------
// From a finished run: through its JSON, so the page is the one `fairbench
// report` would make from the saved file.

char *fb_report_json_string(const fb_profile *p, const fb_run_result *r) {
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) return NULL;
    int rc = fb_report_write(p, r, FB_REPORT_JSON, mem);
    if (fclose(mem) != 0 || rc) {
        free(text);
        return NULL;
    }
    return text;
}

int fb_report_write_html(const fb_profile *p, const fb_run_result *r, FILE *out, char *notes_buf, size_t notes_n) {
    char *text = fb_report_json_string(p, r);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!root) return -1;
    const cJSON *reports[1] = {root};
    const char *names[1] = {p->path[0] ? p->path : "this run"};
    int rc = fb_html_report_write(out, reports, names, 1, notes_buf, notes_n);
    cJSON_Delete(root);
    return rc;
}
