/* report.c - the run's report: a terminal table laid out like the origin's
 * (metrics as rows, backends as columns) with the fairness audit and verdict
 * under it, or Markdown, CSV, or JSON (schema version 1, every raw sample). */
#include "report.h"
#include "why/why_text.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "fb_version.h"
#include "membw.h"

/* 2: each backend may carry "why" (the profiling pass, docs/why.md) and
 * "why_status"; every field of 1 is kept. */
#define REPORT_SCHEMA_VERSION 2

// ----------------------------------------------------------------------------
// Rows: each metric formatted per entry ("-" where it does not apply)

typedef void (*cell_fn)(const fb_entry_result *r, char *buf, size_t n);

static bool ran(const fb_entry_result *r) { return r->state == FB_ENTRY_OK && r->n_latency > 0; }

static void c_status(const fb_entry_result *r, char *b, size_t n) {
    if (r->state == FB_ENTRY_OK && r->wrong) snprintf(b, n, "WRONG");
    else
        snprintf(b, n, "%s", fb_entry_state_name(r->state));
}
static void c_plugin(const fb_entry_result *r, char *b, size_t n) {
    snprintf(b, n, "%s %s", r->entry->plugin, r->plugin_version);
}
static void c_precision(const fb_entry_result *r, char *b, size_t n) {
    if (r->has_effective) snprintf(b, n, "%s", fb_precision_name(r->effective.weight_precision));
    else
        snprintf(b, n, "%s (asked)", fb_precision_name(r->entry->fairness.weight_precision));
}
static void c_jit_graphs(const fb_entry_result *r, char *b, size_t n) {
    if (!r->has_effective) snprintf(b, n, "-");
    else
        snprintf(b, n, "%s / %s", r->effective.jit ? "on" : "off", r->effective.graphs ? "on" : "off");
}
/* The JIT kernel cache the profile asked for, and what the backend found:
 * "warm, hit" (kernels from the cache), "warm, miss" (compiled, then
 * stored), "cold, compiled"; "-" for a backend without one. */
static void c_kernel_cache(const fb_entry_result *r, char *b, size_t n) {
    if (!r->has_effective || r->effective.kernel_cache_hit < 0) snprintf(b, n, "-");
    else if (r->entry->fairness.jit_cache == FB_JIT_CACHE_COLD)
        snprintf(b, n, "cold, compiled");
    else
        snprintf(b, n, "warm, %s", r->effective.kernel_cache_hit ? "hit" : "miss");
}
static void c_threads(const fb_entry_result *r, char *b, size_t n) {
    if (!r->has_effective || r->effective.threads == 0) snprintf(b, n, "-");
    else
        snprintf(b, n, "%d", r->effective.threads);
}
static void c_load(const fb_entry_result *r, char *b, size_t n) {
    if (r->state == FB_ENTRY_OK) snprintf(b, n, "%.1f", r->load_s * 1e3);
    else
        snprintf(b, n, "-");
}
static void c_cold(const fb_entry_result *r, char *b, size_t n) {
    if (r->state == FB_ENTRY_OK) snprintf(b, n, "%.2f", r->cold_start_s * 1e3);
    else
        snprintf(b, n, "-");
}
#define SUMMARY_CELL(NAME, EXPR, FMT)                               \
    static void NAME(const fb_entry_result *r, char *b, size_t n) { \
        if (ran(r)) snprintf(b, n, FMT, EXPR);                      \
        else                                                        \
            snprintf(b, n, "-");                                    \
    }
SUMMARY_CELL(c_prefill, r->prefill_tok_s, "%.1f")
SUMMARY_CELL(c_mean, r->decode.mean, "%.3f")
SUMMARY_CELL(c_median, r->decode.median, "%.3f")
SUMMARY_CELL(c_p90, r->decode.p90, "%.3f")
SUMMARY_CELL(c_p99, r->decode.p99, "%.3f")
SUMMARY_CELL(c_stddev, r->decode.stddev, "%.3f")
SUMMARY_CELL(c_throughput, r->throughput_tok_s, "%.1f")
SUMMARY_CELL(c_bytes, (double)r->bytes_per_step / 1e6, "%.1f")
SUMMARY_CELL(c_bandwidth, r->bandwidth_gb_s, "%.2f")
SUMMARY_CELL(c_overhead, r->harness_overhead_ns, "%.0f")
static void c_ci(const fb_entry_result *r, char *b, size_t n) {
    if (ran(r)) snprintf(b, n, "%.3f-%.3f", r->decode.ci95_low, r->decode.ci95_high);
    else
        snprintf(b, n, "-");
}
static void c_roofline(const fb_entry_result *r, char *b, size_t n) {
    if (ran(r) && r->ceiling_gb_s > 0) snprintf(b, n, "%.0f%% of %.1f", r->roofline_pct, r->ceiling_gb_s);
    else
        snprintf(b, n, "-");
}
static void c_device_mem(const fb_entry_result *r, char *b, size_t n) {
    if (r->device_peak_bytes) snprintf(b, n, "%.1f", (double)r->device_peak_bytes / 1e6);
    else
        snprintf(b, n, "-");
}
static void c_rss(const fb_entry_result *r, char *b, size_t n) {
    if (r->host_rss_peak_bytes) snprintf(b, n, "%.1f", (double)r->host_rss_peak_bytes / 1e6);
    else
        snprintf(b, n, "-");
}
static void c_top1(const fb_entry_result *r, char *b, size_t n) {
    if (r->agreement_checked) snprintf(b, n, "%.1f%%", 100 * r->top1);
    else
        snprintf(b, n, "-");
}
static void c_maxdiff(const fb_entry_result *r, char *b, size_t n) {
    if (r->agreement_checked) snprintf(b, n, "%.3g", r->max_abs_diff);
    else
        snprintf(b, n, "-");
}
static void c_kl(const fb_entry_result *r, char *b, size_t n) {
    if (r->agreement_checked) snprintf(b, n, "%.2e", r->mean_kl);
    else
        snprintf(b, n, "-");
}
static void c_advantage(const fb_entry_result *r, char *b, size_t n) {
    if (ran(r) && r->advantage > 0)
        snprintf(b, n, "%.2fx (%.2f-%.2f)", r->advantage, r->advantage_low, r->advantage_high);
    else
        snprintf(b, n, "-");
}

static const struct row {
    const char *label, *key;
    cell_fn cell;
} rows[] = {
    {"Status", "status", c_status},
    {"Plugin", "plugin", c_plugin},
    {"Weights", "weight_precision", c_precision},
    {"JIT / graphs", "jit_graphs", c_jit_graphs},
    {"Kernel cache", "kernel_cache", c_kernel_cache},
    {"CPU threads", "threads", c_threads},
    {"Load (ms)", "load_ms", c_load},
    {"Cold start (ms)", "cold_start_ms", c_cold},
    {"Prefill (tok/s)", "prefill_tok_s", c_prefill},
    {"Decode mean (ms)", "decode_mean_ms", c_mean},
    {"Decode median (ms)", "decode_median_ms", c_median},
    {"Decode p90 (ms)", "decode_p90_ms", c_p90},
    {"Decode p99 (ms)", "decode_p99_ms", c_p99},
    {"Decode stddev (ms)", "decode_stddev_ms", c_stddev},
    {"Decode 95% CI (ms)", "decode_ci95_ms", c_ci},
    {"Throughput (tok/s)", "throughput_tok_s", c_throughput},
    {"Bytes per step (MB)", "bytes_per_step_mb", c_bytes},
    {"Bandwidth (GB/s)", "bandwidth_gb_s", c_bandwidth},
    {"Roofline (% of GB/s)", "roofline", c_roofline},
    {"Peak device memory (MB)", "device_peak_mb", c_device_mem},
    {"Host RSS peak (MB)", "host_rss_peak_mb", c_rss},
    {"Top-1 agreement", "top1_agreement", c_top1},
    {"Max |logit diff|", "max_abs_logit_diff", c_maxdiff},
    {"Mean KL", "mean_kl", c_kl},
    {"Advantage (95% CI)", "advantage", c_advantage},
    {"Harness overhead (ns/tok)", "harness_overhead_ns", c_overhead},
};
#define N_ROWS (sizeof rows / sizeof rows[0])

// ----------------------------------------------------------------------------
// Text and Markdown

/* Each line of a "\n"-separated list, with a prefix. */
static void print_lines(const char *lines, const char *prefix, FILE *out) {
    while (*lines) {
        const char *nl = strchr(lines, '\n');
        int len = nl ? (int)(nl - lines) : (int)strlen(lines);
        fprintf(out, "%s%.*s\n", prefix, len, lines);
        lines += len + (nl ? 1 : 0);
    }
}

/* The profiling pass's breakdown per backend (untimed, after the timed runs). */
static void print_why(const fb_run_result *r, FILE *out) {
    bool any = false;
    for (int i = 0; i < r->n_entries; i++) any |= r->entries[i].why_status[0] != 0;
    if (!any) return;
    fprintf(out, "\nWhy: the profiling pass, untimed and separate from the timed repetitions above\n");
    for (int i = 0; i < r->n_entries; i++) {
        const fb_entry_result *e = &r->entries[i];
        cJSON *why = e->why_json ? cJSON_Parse(e->why_json) : NULL;
        if (why) why_print_text(out, e->entry->label, why);
        else if (e->why_status[0])
            fprintf(out, "%s: profiling pass %s\n", e->entry->label, e->why_status);
        cJSON_Delete(why);
    }
}

static void print_notes(const fb_run_result *r, FILE *out, const char *bullet) {
    fprintf(out, "\n%sFairness verdict: %s\n", bullet, r->verdict);
    fprintf(out, "%sReference: %s, %s; agreement teacher-forced on its %zu greedy tokens\n", bullet, r->reference_label,
            r->reference_status, r->n_reference_tokens);
    fprintf(out, "%sOrder: %s\n", bullet, r->order);
    char method[160];
    fb_cpu_ceiling_method(method, sizeof method);
    fprintf(out, "%sRoofline ceiling: CPU backends, %s; GPU backends, their copy probe\n", bullet, method);
    for (int i = 0; i < r->n_entries; i++) {
        const fb_entry_result *e = &r->entries[i];
        if (e->state != FB_ENTRY_OK)
            fprintf(out, "%s%s: %s: %s\n", bullet, e->entry->label, fb_entry_state_name(e->state), e->reason);
        else if (e->wrong)
            fprintf(out, "%s%s: WRONG: %s; not ranked on speed\n", bullet, e->entry->label, e->reason);
        if (e->has_effective && e->effective.notes[0])
            fprintf(out, "%s%s: %s\n", bullet, e->entry->label, e->effective.notes);
        if (e->has_effective && e->effective.options[0])
            fprintf(out, "%s%s: options in effect: %s\n", bullet, e->entry->label, e->effective.options);
    }
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%sWarning: ", bullet);
    print_lines(r->warnings, prefix, out);
    snprintf(prefix, sizeof prefix, "%sNote: ", bullet);
    print_lines(r->notes, prefix, out);
}

/* A Markdown table cell: '|' escaped, so a label cannot add a column. */
static void md_cell(FILE *out, const char *s) {
    fputc(' ', out);
    for (; *s; s++) {
        if (*s == '|' || *s == '\\') fputc('\\', out);
        fputc(*s, out);
    }
    fputs(" |", out);
}

static void read_first_line(const char *path, const char *prefix, char *buf, size_t n);

/* The header: what was run, on what, how many tokens, where. */
static void write_header(const fb_profile *p, const fb_run_result *r, FILE *out, bool markdown) {
    char cpu[256];
    read_first_line("/proc/cpuinfo", "model name", cpu, sizeof cpu);
    const char *model = strrchr(p->model, '/') ? strrchr(p->model, '/') + 1 : p->model;
    const char *profile = p->path[0] ? (strrchr(p->path, '/') ? strrchr(p->path, '/') + 1 : p->path) : "(defaults)";
    fprintf(out, "%sfairbench %s: %s\n", markdown ? "## " : "", FB_VERSION_STRING, model);
    const char *b = markdown ? "- " : "";
    fprintf(out, "%sProfile: %s%s%s\n", b, profile, p->sets[0] ? "; --set " : "", p->sets);
    fprintf(out, "%sModel: %s (%.1f MB, sha256 %.12s)\n", b, p->model, (double)r->model_bytes / 1e6, r->model_sha256);
    fprintf(out, "%sTokens: %zu prompt, %d generated per repetition; %d warm-up + %d timed repetitions\n", b,
            r->n_prompt, p->gen_tokens, p->warmup, p->repetitions);
    fprintf(out, "%sMachine: %s, %ld cores", b, cpu[0] ? cpu : "unknown CPU", sysconf(_SC_NPROCESSORS_ONLN));
    for (int i = 0; i < r->n_entries; i++) { /* each device a backend ran on, once */
        bool seen = !r->entries[i].device[0] || (cpu[0] && strncmp(r->entries[i].device, cpu, strlen(cpu)) == 0);
        for (int j = 0; j < i && !seen; j++) seen = strcmp(r->entries[j].device, r->entries[i].device) == 0;
        if (!seen) fprintf(out, "; %s", r->entries[i].device);
    }
    fprintf(out, "\n\n");
}

static void write_table(const fb_profile *p, const fb_run_result *r, FILE *out, bool markdown) {
    enum { W = 22 };
    char cell[128];
    size_t label_w = 26;
    write_header(p, r, out, markdown);
    if (markdown) {
        fprintf(out, "| Metric |");
        for (int i = 0; i < r->n_entries; i++) md_cell(out, r->entries[i].entry->label);
        fprintf(out, "\n|---|");
        for (int i = 0; i < r->n_entries; i++) fprintf(out, "---|");
        fprintf(out, "\n");
    } else {
        fprintf(out, "%-*s", (int)label_w, "Backend");
        for (int i = 0; i < r->n_entries; i++) fprintf(out, " | %*s", W, r->entries[i].entry->label);
        fprintf(out, "\n");
        for (size_t k = 0; k < label_w + (size_t)r->n_entries * (W + 3); k++) fputc('-', out);
        fprintf(out, "\n");
    }
    for (size_t row = 0; row < N_ROWS; row++) {
        if (markdown) fputc('|', out), md_cell(out, rows[row].label);
        else
            fprintf(out, "%-*s", (int)label_w, rows[row].label);
        for (int i = 0; i < r->n_entries; i++) {
            rows[row].cell(&r->entries[i], cell, sizeof cell);
            if (markdown) md_cell(out, cell);
            else
                fprintf(out, " | %*.*s", W, W, cell);
        }
        fprintf(out, "\n");
    }
    print_notes(r, out, markdown ? "- " : "");
    print_why(r, out);
}

static void write_csv(const fb_run_result *r, FILE *out) {
    char cell[128];
    fprintf(out, "metric");
    for (int i = 0; i < r->n_entries; i++) fprintf(out, ",%s", r->entries[i].entry->label);
    fprintf(out, "\n");
    for (size_t row = 0; row < N_ROWS; row++) {
        fprintf(out, "%s", rows[row].key);
        for (int i = 0; i < r->n_entries; i++) {
            rows[row].cell(&r->entries[i], cell, sizeof cell);
            fprintf(out, ",\"%s\"", cell);
        }
        fprintf(out, "\n");
    }
    fprintf(out, "verdict,\"%s\"\n", r->verdict);
}

// ----------------------------------------------------------------------------
// JSON

static void read_first_line(const char *path, const char *prefix, char *buf, size_t n) {
    buf[0] = '\0';
    FILE *fp = fopen(path, "r");
    if (!fp) return;
    char line[512];
    while (fgets(line, sizeof line, fp))
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            char *v = strchr(line, ':');
            v = v ? v + 1 : line + strlen(prefix);
            while (*v == ' ' || *v == '\t') v++;
            v[strcspn(v, "\n")] = '\0';
            snprintf(buf, n, "%s", v);
            break;
        }
    fclose(fp);
}

static cJSON *environment(const fb_run_result *r) {
    cJSON *env = cJSON_CreateObject();
    char buf[256];
    cJSON_AddStringToObject(env, "fairbench_version", FB_VERSION_STRING);
    cJSON_AddStringToObject(env, "git_commit", FB_GIT_COMMIT);
    cJSON_AddStringToObject(env, "build", FB_BUILD_FLAVOUR);
    read_first_line("/proc/cpuinfo", "model name", buf, sizeof buf);
    cJSON_AddStringToObject(env, "cpu", buf);
    cJSON_AddNumberToObject(env, "cores", (double)sysconf(_SC_NPROCESSORS_ONLN));
    read_first_line("/proc/meminfo", "MemTotal", buf, sizeof buf);
    cJSON_AddStringToObject(env, "memory", buf);
    struct utsname u;
    if (uname(&u) == 0) {
        snprintf(buf, sizeof buf, "%s %s %s", u.sysname, u.release, u.machine);
        cJSON_AddStringToObject(env, "kernel", buf);
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(env, "date", buf);
    /* GPUs, their driver and the CUDA version the driver supports, from
     * nvidia-smi (a separate process: the parent itself never touches a device). */
    FILE *smi = popen("nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null", "r");
    if (smi) {
        cJSON *gpus = cJSON_AddArrayToObject(env, "gpus");
        char line[256];
        while (fgets(line, sizeof line, smi)) {
            line[strcspn(line, "\n")] = '\0';
            if (line[0]) cJSON_AddItemToArray(gpus, cJSON_CreateString(line));
        }
        pclose(smi);
    }
    smi = popen("nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9.]*'", "r");
    if (smi) {
        if (fgets(buf, sizeof buf, smi)) {
            buf[strcspn(buf, "\n")] = '\0';
            cJSON_AddStringToObject(env, "cuda_driver_version",
                                    buf + (strncmp(buf, "CUDA Version: ", 14) == 0 ? 14 : 0));
        }
        pclose(smi);
    }
    cJSON *devices = cJSON_AddArrayToObject(env, "devices");
    for (int i = 0; i < r->n_entries; i++)
        if (r->entries[i].device[0]) {
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "backend", r->entries[i].entry->label);
            cJSON_AddStringToObject(d, "device", r->entries[i].device);
            cJSON_AddItemToArray(devices, d);
        }
    return env;
}

static cJSON *number_array(const double *x, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
    return a;
}

static cJSON *int_array(const int32_t *x, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
    return a;
}

/* NaN and infinities are not JSON: written as null. */
static void add_number(cJSON *o, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

static cJSON *entry_json(const fb_entry_result *e) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "label", e->entry->label);
    cJSON_AddStringToObject(o, "plugin", e->entry->plugin);
    cJSON_AddStringToObject(o, "plugin_version", e->plugin_version);
    cJSON_AddStringToObject(o, "status", e->state == FB_ENTRY_OK && e->wrong ? "WRONG" : fb_entry_state_name(e->state));
    cJSON_AddStringToObject(o, "reason", e->reason);
    cJSON_AddStringToObject(o, "device", e->device);
    cJSON *asked = cJSON_AddObjectToObject(o, "settings");
    cJSON_AddStringToObject(asked, "weight_precision", fb_precision_name(e->entry->fairness.weight_precision));
    cJSON_AddStringToObject(asked, "accumulate_precision", fb_precision_name(e->entry->fairness.accumulate_precision));
    cJSON_AddBoolToObject(asked, "allow_jit", e->entry->fairness.allow_jit);
    cJSON_AddBoolToObject(asked, "allow_graphs", e->entry->fairness.allow_graphs);
    cJSON_AddStringToObject(asked, "jit_cache", e->entry->fairness.jit_cache == FB_JIT_CACHE_WARM ? "warm" : "cold");
    cJSON_AddNumberToObject(asked, "threads", e->entry->fairness.threads);
    if (e->entry->n_options) {
        cJSON *opts = cJSON_AddObjectToObject(asked, "options");
        for (int j = 0; j < e->entry->n_options; j++)
            cJSON_AddStringToObject(opts, e->entry->options[j].key, e->entry->options[j].value);
    }
    if (e->has_effective) {
        cJSON *eff = cJSON_AddObjectToObject(o, "effective_settings");
        cJSON_AddStringToObject(eff, "weight_precision", fb_precision_name(e->effective.weight_precision));
        cJSON_AddStringToObject(eff, "accumulate_precision", fb_precision_name(e->effective.accumulate_precision));
        cJSON_AddBoolToObject(eff, "jit", e->effective.jit);
        cJSON_AddBoolToObject(eff, "graphs", e->effective.graphs);
        cJSON_AddNumberToObject(eff, "threads", e->effective.threads);
        cJSON_AddNumberToObject(eff, "kernel_cache_hit", e->effective.kernel_cache_hit);
        cJSON_AddStringToObject(eff, "device", e->effective.device);
        cJSON_AddStringToObject(eff, "notes", e->effective.notes);
        cJSON_AddStringToObject(eff, "options", e->effective.options);
    }
    cJSON *m = cJSON_AddObjectToObject(o, "metrics");
    add_number(m, "load_s", e->load_s);
    add_number(m, "cold_start_s", e->cold_start_s);
    if (ran(e)) {
        add_number(m, "prefill_tok_s", e->prefill_tok_s);
        add_number(m, "decode_mean_ms", e->decode.mean);
        add_number(m, "decode_median_ms", e->decode.median);
        add_number(m, "decode_p90_ms", e->decode.p90);
        add_number(m, "decode_p99_ms", e->decode.p99);
        add_number(m, "decode_stddev_ms", e->decode.stddev);
        add_number(m, "decode_ci95_low_ms", e->decode.ci95_low);
        add_number(m, "decode_ci95_high_ms", e->decode.ci95_high);
        add_number(m, "decode_cv", e->decode.cv);
        cJSON_AddNumberToObject(m, "decode_outliers", (double)e->decode.n_outliers);
        add_number(m, "throughput_tok_s", e->throughput_tok_s);
        cJSON_AddNumberToObject(m, "bytes_per_step", (double)e->bytes_per_step);
        add_number(m, "bandwidth_gb_s", e->bandwidth_gb_s);
        add_number(m, "ceiling_gb_s", e->ceiling_gb_s);
        add_number(m, "roofline_pct", e->roofline_pct);
        add_number(m, "advantage", e->advantage);
        add_number(m, "advantage_ci95_low", e->advantage_low);
        add_number(m, "advantage_ci95_high", e->advantage_high);
    }
    cJSON_AddNumberToObject(m, "device_peak_bytes", (double)e->device_peak_bytes);
    cJSON_AddNumberToObject(m, "host_rss_peak_bytes", (double)e->host_rss_peak_bytes);
    add_number(m, "harness_overhead_ns", e->harness_overhead_ns);
    if (e->agreement_checked) {
        cJSON *a = cJSON_AddObjectToObject(o, "agreement");
        add_number(a, "top1", e->top1);
        add_number(a, "max_abs_logit_diff", e->max_abs_diff);
        add_number(a, "mean_kl", e->mean_kl);
        cJSON_AddBoolToObject(a, "wrong", e->wrong);
        cJSON_AddStringToObject(a, "bar", e->agreement_note);
    }
    if (e->why_status[0]) cJSON_AddStringToObject(o, "why_status", e->why_status);
    cJSON *why = e->why_json ? cJSON_Parse(e->why_json) : NULL;
    if (why) cJSON_AddItemToObject(o, "why", why);
    cJSON *samples = cJSON_AddObjectToObject(o, "samples");
    cJSON_AddItemToObject(samples, "decode_latency_ms", number_array(e->latency_ms, e->n_latency));
    cJSON_AddItemToObject(samples, "prefill_s", number_array(e->prefill_s, e->n_prefill));
    cJSON_AddItemToObject(o, "generated_tokens", int_array(e->tokens, e->n_tokens));
    return o;
}

static char *json_text(const fb_profile *p, const fb_run_result *r) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "schema_version", REPORT_SCHEMA_VERSION);
    cJSON_AddItemToObject(root, "environment", environment(r));
    cJSON *prof = cJSON_AddObjectToObject(root, "profile");
    cJSON_AddStringToObject(prof, "path", p->path);
    cJSON_AddStringToObject(prof, "sha256", r->profile_sha256);
    cJSON_AddStringToObject(prof, "text", p->text);
    cJSON_AddStringToObject(prof, "overrides", p->sets);
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "path", p->model);
    cJSON_AddNumberToObject(model, "bytes", (double)r->model_bytes);
    cJSON_AddStringToObject(model, "sha256", r->model_sha256);
    cJSON *run = cJSON_AddObjectToObject(root, "run");
    cJSON_AddStringToObject(run, "prompt", r->prompt_text);
    cJSON_AddItemToObject(run, "prompt_tokens", int_array(r->prompt, r->n_prompt));
    cJSON_AddNumberToObject(run, "gen_tokens", p->gen_tokens);
    cJSON_AddNumberToObject(run, "warmup", p->warmup);
    cJSON_AddNumberToObject(run, "repetitions", p->repetitions);
    cJSON_AddStringToObject(run, "order", r->order);
    cJSON_AddNumberToObject(run, "wall_s", r->wall_s);
    char method[160];
    fb_cpu_ceiling_method(method, sizeof method);
    cJSON_AddStringToObject(run, "cpu_ceiling_method", method);
    cJSON *ref = cJSON_AddObjectToObject(root, "reference");
    cJSON_AddStringToObject(ref, "backend", r->reference_label);
    cJSON_AddStringToObject(ref, "status", r->reference_status);
    cJSON_AddItemToObject(ref, "tokens", int_array(r->reference_tokens, r->n_reference_tokens));
    cJSON *backends = cJSON_AddArrayToObject(root, "backends");
    for (int i = 0; i < r->n_entries; i++) cJSON_AddItemToArray(backends, entry_json(&r->entries[i]));
    cJSON *verdict = cJSON_AddObjectToObject(root, "fairness");
    cJSON_AddBoolToObject(verdict, "fair", r->fair);
    cJSON_AddStringToObject(verdict, "verdict", r->verdict);
    cJSON_AddBoolToObject(root, "interrupted", r->interrupted);
    cJSON *notes = cJSON_AddArrayToObject(root, "notes");
    for (const char *n = r->notes; *n;) {
        const char *nl = strchr(n, '\n');
        size_t len = nl ? (size_t)(nl - n) : strlen(n);
        char *line = strndup(n, len);
        cJSON_AddItemToArray(notes, cJSON_CreateString(line ? line : ""));
        free(line);
        n += len + (nl ? 1 : 0);
    }
    cJSON *warnings = cJSON_AddArrayToObject(root, "warnings");
    const char *w = r->warnings;
    while (*w) {
        const char *nl = strchr(w, '\n');
        size_t len = nl ? (size_t)(nl - w) : strlen(w);
        char *line = strndup(w, len);
        cJSON_AddItemToArray(warnings, cJSON_CreateString(line ? line : ""));
        free(line);
        w += len + (nl ? 1 : 0);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

int fb_report_write(const fb_profile *p, const fb_run_result *r, fb_report_format format, FILE *out) {
    switch (format) {
    case FB_REPORT_TEXT: write_table(p, r, out, false); break;
    case FB_REPORT_MARKDOWN: write_table(p, r, out, true); break;
    case FB_REPORT_CSV: write_csv(r, out); break;
    case FB_REPORT_JSON: {
        char *text = json_text(p, r);
        if (!text) return -1;
        fputs(text, out);
        fputc('\n', out);
        free(text);
        break;
    }
    }
    return ferror(out) ? -1 : 0;
}
