/* analyze.c - the "why" breakdown of a decode step from a trace (analyze.h). */
#include "why/analyze.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const class_names[WHY_N_CLASSES] = {"matvec", "attention", "norm", "rope_kv",
                                                      "elementwise", "argmax", "copy", "other"};

const char *why_class_name(why_class c) { return (unsigned)c < WHY_N_CLASSES ? class_names[c] : "other"; }

int why_class_parse(const char *name) {
    for (int i = 0; i < WHY_N_CLASSES; i++)
        if (name && strcmp(name, class_names[i]) == 0) return i;
    return -1;
}

/* The host's table. Order matters: "attn_norm" is a norm, not attention, and
 * a "gemv" that fuses an add is still a matvec. Names seen in cuBLAS, CUTLASS,
 * the bundled plugins and common framework kernels. */
static const fb_kernel_class default_classes[] = {
    {"gemv", "matvec", 0},       {"gemm", "matvec", 0},      {"matvec", "matvec", 0},   {"matmul", "matvec", 0},
    {"cutlass", "matvec", 0},    {"xmma", "matvec", 0},      {"cublas", "matvec", 0},   {"mma_", "matvec", 0},
    {"splitk", "matvec", 0}, /* cuBLAS's split-K reduction finishes a GEMM */
    {"rmsnorm", "norm", 0},      {"rms_norm", "norm", 0},    {"layernorm", "norm", 0},  {"layer_norm", "norm", 0},
    {"norm", "norm", 0},         {"rope", "rope_kv", 0},     {"rotary", "rope_kv", 0},  {"kv_cache", "rope_kv", 0},
    {"kvcache", "rope_kv", 0},   {"kv_store", "rope_kv", 0}, {"kv_write", "rope_kv", 0}, {"attention", "attention", 0},
    {"attn", "attention", 0},    {"softmax", "attention", 0}, {"flash", "attention", 0}, {"fmha", "attention", 0},
    {"sdpa", "attention", 0},    {"argmax", "argmax", 0},    {"arg_max", "argmax", 0},  {"memcpy", "copy", 0},
    {"copy", "copy", 0},         {"silu", "elementwise", 0}, {"swiglu", "elementwise", 0}, {"gelu", "elementwise", 0},
    {"elementwise", "elementwise", 0}, {"residual", "elementwise", 0}, {"add", "elementwise", 0},
    {"mul", "elementwise", 0},   {"scale", "elementwise", 0}, {"convert", "elementwise", 0}, {"cast", "elementwise", 0},
    {"embed", "elementwise", 0},
};

const fb_kernel_class *why_default_classes(size_t *n) {
    *n = sizeof default_classes / sizeof default_classes[0];
    return default_classes;
}

static int contains_nocase(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    if (n == 0) return 0;
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i])) i++;
        if (i == n) return 1;
    }
    return 0;
}

why_class why_classify(const char *name, const fb_kernel_class *plugin, size_t n_plugin, uint64_t *bytes) {
    if (bytes) *bytes = 0;
    for (size_t i = 0; i < n_plugin; i++) {
        int c = why_class_parse(plugin[i].kclass);
        if (c < 0 || !plugin[i].match || !contains_nocase(name, plugin[i].match)) continue;
        if (bytes) *bytes = plugin[i].bytes;
        return (why_class)c;
    }
    size_t n;
    const fb_kernel_class *d = why_default_classes(&n);
    for (size_t i = 0; i < n; i++)
        if (contains_nocase(name, d[i].match)) return (why_class)why_class_parse(d[i].kclass);
    return WHY_CLASS_OTHER;
}

// ----------------------------------------------------------------------------
// the breakdown

typedef struct interval {
    uint64_t start, end;
} interval;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_interval(const void *a, const void *b) {
    const interval *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

typedef struct kernel_sum {
    const char *name;
    why_class cls;
    uint64_t bytes_per_launch;
    size_t calls;
    double total_ns;
} kernel_sum;

static int cmp_kernel_sum(const void *a, const void *b) {
    const kernel_sum *x = a, *y = b;
    if (x->total_ns != y->total_ns) return x->total_ns > y->total_ns ? -1 : 1;
    return strcmp(x->name, y->name);
}

int why_analyze(const why_trace *t, const fb_kernel_class *plugin, size_t n_plugin, why_breakdown *out, fb_error *err) {
    memset(out, 0, sizeof *out);
    if (t->n_steps == 0) return fb_error_set(err, "the trace has no step: nothing to break down");
    interval *iv = malloc((t->n_records ? t->n_records : 1) * sizeof *iv);
    kernel_sum *sums = calloc(t->n_records ? t->n_records : 1, sizeof *sums);
    double *fractions = malloc(t->n_steps * sizeof *fractions);
    if (!iv || !sums || !fractions) {
        free(iv);
        free(sums);
        free(fractions);
        return fb_error_set(err, "out of memory analysing the trace");
    }
    size_t n_sums = 0, n_in_steps = 0;
    double step_ns = 0, busy_ns = 0, recorded_ns = 0, gaps = 0, max_gap_ns = 0, class_ns[WHY_N_CLASSES] = {0};
    size_t kernels = 0, copies = 0, spans = 0;
    for (size_t s = 0; s < t->n_steps; s++) {
        const why_step *st = &t->steps[s];
        step_ns += (double)(st->end_ns - st->begin_ns);
        size_t n_iv = 0;
        for (size_t i = 0; i < t->n_records; i++) {
            const why_record *r = &t->records[i];
            if (r->start_ns < st->begin_ns || r->start_ns >= st->end_ns) continue;
            n_in_steps++;
            uint64_t end = r->end_ns < st->end_ns ? r->end_ns : st->end_ns;
            iv[n_iv++] = (interval){r->start_ns, end};
            double dur = (double)(end - r->start_ns);
            recorded_ns += dur;
            if (r->kind == WHY_KERNEL) kernels++;
            else if (r->kind == WHY_SPAN) spans++;
            else copies++;
            uint64_t bytes = 0;
            why_class c = r->kind == WHY_MEMCPY || r->kind == WHY_MEMSET
                              ? WHY_CLASS_COPY
                              : why_classify(r->name, plugin, n_plugin, &bytes);
            if (r->kind != WHY_KERNEL && r->kind != WHY_SPAN) bytes = r->bytes;
            class_ns[c] += dur;
            size_t k = 0;
            while (k < n_sums && strcmp(sums[k].name, r->name) != 0) k++;
            if (k == n_sums) sums[n_sums++] = (kernel_sum){r->name, c, 0, 0, 0};
            sums[k].calls++;
            sums[k].total_ns += dur;
            sums[k].bytes_per_launch = bytes; /* the same for every launch of one name */
        }
        /* busy: the union of the intervals; gaps: the idle stretches between them */
        qsort(iv, n_iv, sizeof *iv, cmp_interval);
        double busy_before = busy_ns;
        uint64_t cur_start = 0, cur_end = 0;
        for (size_t i = 0; i < n_iv; i++) {
            if (i > 0 && iv[i].start <= cur_end) {
                if (iv[i].end > cur_end) cur_end = iv[i].end;
                continue;
            }
            if (i > 0) {
                busy_ns += (double)(cur_end - cur_start);
                double gap = (double)(iv[i].start - cur_end);
                gaps += 1;
                if (gap > max_gap_ns) max_gap_ns = gap;
            }
            cur_start = iv[i].start;
            cur_end = iv[i].end;
        }
        if (n_iv) busy_ns += (double)(cur_end - cur_start);
        fractions[s] = st->end_ns > st->begin_ns ? (busy_ns - busy_before) / (double)(st->end_ns - st->begin_ns) : 0;
    }
    qsort(fractions, t->n_steps, sizeof *fractions, cmp_double);
    size_t mid = t->n_steps / 2;
    out->busy_fraction_median = t->n_steps % 2 ? fractions[mid] : 0.5 * (fractions[mid - 1] + fractions[mid]);
    double n = (double)t->n_steps;
    out->source_gpu = kernels + copies > 0;
    out->n_steps = t->n_steps;
    out->step_ms = step_ns / n * 1e-6;
    out->busy_ms = busy_ns / n * 1e-6;
    out->idle_ms = out->step_ms - out->busy_ms;
    out->busy_fraction = step_ns > 0 ? busy_ns / step_ns : 0;
    out->kernels_per_token = (double)kernels / n;
    out->copies_per_token = (double)copies / n;
    out->launches_per_token = (double)(kernels + copies) / n;
    out->spans_per_token = (double)spans / n;
    out->gaps_per_step = gaps / n;
    out->max_gap_us = max_gap_ns * 1e-3;
    out->recorded_ms = recorded_ns / n * 1e-6;
    for (int c = 0; c < WHY_N_CLASSES; c++) out->class_ms[c] = class_ns[c] / n * 1e-6;
    out->n_outside = t->n_records - n_in_steps;
    qsort(sums, n_sums, sizeof *sums, cmp_kernel_sum);
    for (size_t k = 0; k < n_sums && k < WHY_TOP_MAX; k++) {
        why_top_kernel *tk = &out->top[out->n_top++];
        snprintf(tk->name, sizeof tk->name, "%s", sums[k].name);
        tk->cls = sums[k].cls;
        tk->calls_per_step = (double)sums[k].calls / n;
        tk->ms_per_step = sums[k].total_ns / n * 1e-6;
        tk->share = recorded_ns > 0 ? sums[k].total_ns / recorded_ns : 0;
        tk->avg_us = sums[k].total_ns / (double)sums[k].calls * 1e-3;
        tk->gb_per_s = sums[k].bytes_per_launch && sums[k].total_ns > 0
                           ? (double)sums[k].bytes_per_launch * (double)sums[k].calls / sums[k].total_ns
                           : -1;
    }
    free(iv);
    free(sums);
    free(fractions);
    return 0;
}
