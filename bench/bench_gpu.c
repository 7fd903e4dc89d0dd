/* bench_gpu.c - decode and prefill speed of CUDA backends (or any backend)
 * through the plugin ABI, side by side in one process, for each weight
 * precision, CUDA graphs off / on, (for a JIT backend) a cold and a warm
 * kernel cache, and one or more prompt lengths. A benchmark, not a test: it
 * prints figures and asserts nothing (exit 1 when a session fails, 77 when
 * none of the backends asked for can run here, 2 on bad usage).
 *
 *   bench_gpu MODEL.gguf [--backend eager_ops,jit_fused] [--precision f16,f32]
 *             [--graphs 0,1] [--jit-cache cold,warm] [--tokens 128]
 *             [--prompt 16[,2048...]] [--warmup 8] [--prefill-reps 3]
 *             [--cache-dir DIR] [--option BACKEND:KEY=VALUE ...]
 *
 * --option passes a per-backend option (ABI 1.1, vetted by the backend's
 * check_option) to every session of that backend: jit_fused:decode=kernels
 * measures its per-op decode beside the persistent step.
 *
 * Per configuration, one session (its KV cache sized for the longest
 * prompt): load (create: convert and upload), then for each prompt length P,
 * in the order given, one row:
 *   - the first prefill of P tokens; on the first prompt length, with the
 *     first decode after it, the cold start (graph capture included);
 *   - `prefill-reps` prefills of P tokens, each after reset(), timed on
 *     their own: the median is the time to the first token, and P over it
 *     the warm prefill rate;
 *   - from the last of them: `warmup` decodes, then `tokens` decodes timed
 *     one by one.
 * Columns: "prompt" is P; "load_s" and "cold_ms" belong to the session and
 * are printed on its first row only ("-" after it); "prefill/s" is P over
 * the first prefill of P (on the first row the cold one, as before);
 * "warm_pf/s" is P over the median timed prefill and "ttft_ms" that median
 * (prefill through the argmax of the last position); "ms/tok" and "p90_ms"
 * the median and p90 decode step, "tok/s" 1 / median; "bytes/step" the
 * bytes one step reads (weights at the storage precision, from
 * fb_model_decode_bytes, plus the f32 KV cache at the median position),
 * "GB/s" those over the median and "%copy" its share of the backend's own
 * device-to-device copy bandwidth (copy_bandwidth, called once per session,
 * after its last row; "-" for a backend without it); "peak_MiB" the device
 * memory peak of the session so far. "graphs" shows asked/used: used is what
 * the backend's effective settings report; "cache" is the JIT cache asked
 * for and whether the kernels came from it (cold/0: compiled; warm/1: a
 * hit), "-" for a backend without JIT. Runs of one backend follow each
 * other, so a warm run finds what the cold run before it stored. Last,
 * "load_GB/s" (first row of a session, as load_s): the model file's bytes
 * over load_s, the rate at which create() turned the file into a ready
 * backend (from the page cache when the file has been read before).
 * Scripts read the columns by their header names. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends.h"
#include "model.h"
#include "plugin_host.h"
#include "quant.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const struct {
    const char *name;
    fb_precision p;
    int type;
} precisions[] = {{"f32", FB_PRECISION_F32, GGUF_TYPE_F32},
                  {"f16", FB_PRECISION_F16, GGUF_TYPE_F16},
                  {"bf16", FB_PRECISION_BF16, GGUF_TYPE_BF16},
                  {"native", FB_PRECISION_NATIVE, -1}};

/* Is `name` one of the comma-separated items of `list`? */
static int in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0) return 1;
        p += len;
        if (*p == ',') p++;
    }
    return 0;
}

static int usage(void) {
    fprintf(stderr, "usage: bench_gpu MODEL.gguf [--backend NAME,...] [--precision f16,f32,...] [--graphs 0,1]\n"
                    "                 [--jit-cache cold,warm] [--tokens N] [--prompt N[,N...]] [--warmup N]\n"
                    "                 [--prefill-reps N] [--cache-dir DIR] [--option BACKEND:KEY=VALUE ...]\n");
    return 2;
}

#define MAX_PROMPTS 8
#define MAX_OPTIONS 8

typedef struct Run {
    const int32_t *prompt; /* max_prompt token ids; a row of P tokens uses the first P */
    int prompts[MAX_PROMPTS], n_prompts, max_prompt;
    int n_warmup, n_tokens, prefill_reps;
    double *lat;       /* n_tokens decode latencies, s */
    double *prefill_s; /* prefill_reps prefill times, s */
    int n_options;     /* --option: for the backend named in option_backend[i] */
    char option_backend[MAX_OPTIONS][64], option_key[MAX_OPTIONS][64], option_value[MAX_OPTIONS][128];
} Run;

/* One prompt length's figures, printed once the session's copy bandwidth is known. */
typedef struct Row {
    int prompt;
    double first_prefill_s, warm_prefill_s, median_s, p90_s, peak_mib;
    uint64_t bytes;
} Row;

static double median_of(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* One configuration in one session; prints a row per prompt length. Returns 0, or 1 when it failed. */
static int bench_one(const fb_plugin *api, const fb_model *m, const fb_model_view_owner *view, size_t k, int graphs,
                     int cache, const char *cache_dir, const Run *run) {
    const int n_tokens = run->n_tokens;
    double *lat = run->lat;
    fb_settings settings = {.struct_size = sizeof settings,
                            .weight_precision = precisions[k].p,
                            .accumulate_precision = FB_PRECISION_F32,
                            .allow_jit = 1,
                            .allow_graphs = graphs,
                            .jit_cache = cache == 0 ? FB_JIT_CACHE_COLD : FB_JIT_CACHE_WARM,
                            .max_context = (uint32_t)(run->max_prompt + 1 + run->n_warmup + n_tokens + 1),
                            .cache_dir = cache_dir};
    fb_option options[MAX_OPTIONS];
    for (int i = 0; i < run->n_options; i++)
        if (strcmp(run->option_backend[i], api->name) == 0)
            options[settings.n_options++] = (fb_option){run->option_key[i], run->option_value[i]};
    settings.options = options;
    char cache_col[12];
    if (cache < 0) snprintf(cache_col, sizeof cache_col, "-");
    else
        snprintf(cache_col, sizeof cache_col, "%s", cache ? "warm" : "cold");
    fb_session *s;
    char message[512];
    double t0 = now();
    fb_status st = api->create(fb_host_services(), &view->view, &settings, &s, message, sizeof message);
    double load = now() - t0, cold = 0;
    if (st != FB_OK) {
        printf("%-9s %-6s %-6d %-7s create failed: %s\n", api->name, precisions[k].name, graphs, cache_col, message);
        return 1;
    }
    Row rows[MAX_PROMPTS];
    int n_rows = 0;
    fb_memory_stats mem = {.struct_size = sizeof mem};
    for (int j = 0; j < run->n_prompts && st == FB_OK; j++) {
        const int n_prompt = run->prompts[j];
        const uint32_t n = (uint32_t)n_prompt;
        int32_t next;
        if (j > 0) st = api->reset(s);
        // the first prefill of this length; the first of the session, with the first decode, is the cold start
        t0 = now();
        if (st == FB_OK) st = api->prefill(s, run->prompt, n, FB_LOGITS_NONE, NULL, &next);
        double first_prefill = now() - t0;
        if (st == FB_OK && j == 0) {
            st = api->decode(s, next, NULL, &next);
            cold = now() - t0;
        }
        // prefill timed on its own, from position 0 each time
        for (int r = 0; r < run->prefill_reps && st == FB_OK; r++) {
            st = api->reset(s);
            double t1 = now();
            if (st == FB_OK) st = api->prefill(s, run->prompt, n, FB_LOGITS_NONE, NULL, &next);
            run->prefill_s[r] = now() - t1;
        }
        // decode after the last timed prefill: warm-up, then timed one by one
        for (int i = 0; i < run->n_warmup && st == FB_OK; i++) st = api->decode(s, next, NULL, &next);
        for (int i = 0; i < n_tokens && st == FB_OK; i++) {
            double t1 = now();
            st = api->decode(s, next, NULL, &next);
            lat[i] = now() - t1;
        }
        if (st != FB_OK) {
            printf("%-9s %-6s %-6d %-7s %6d failed: %s\n", api->name, precisions[k].name, graphs, cache_col, n_prompt,
                   api->last_error(s));
            break;
        }
        api->memory(s, &mem);
        Row *row = &rows[n_rows++];
        row->prompt = n_prompt;
        row->first_prefill_s = first_prefill;
        row->warm_prefill_s = median_of(run->prefill_s, run->prefill_reps);
        row->median_s = median_of(lat, n_tokens);
        row->p90_s = lat[(n_tokens * 9) / 10 < n_tokens ? (n_tokens * 9) / 10 : n_tokens - 1];
        row->peak_mib = mem.device_peak_bytes / 1048576.0;
        /* the KV cache read at the median timed step: prompt, warm-up, half the timed steps */
        row->bytes = fb_model_decode_bytes(m, precisions[k].type) +
                     fb_model_kv_bytes_per_pos(m, 4) * (uint64_t)(n_prompt + run->n_warmup + n_tokens / 2);
    }
    fb_effective_settings eff = {.struct_size = sizeof eff};
    api->effective_settings(s, &eff);
    double copy_bw = 0;
    if (st == FB_OK && api->copy_bandwidth && api->copy_bandwidth(s, &copy_bw) != FB_OK) copy_bw = 0;
    api->destroy(s);
    if (cache >= 0) snprintf(cache_col, sizeof cache_col, "%s/%d", cache ? "warm" : "cold", eff.kernel_cache_hit);
    char graphs_col[8];
    snprintf(graphs_col, sizeof graphs_col, "%d/%d", graphs, eff.graphs);
    for (int j = 0; j < n_rows; j++) {
        const Row *row = &rows[j];
        double gbs = (double)row->bytes / row->median_s / 1e9;
        char load_col[16] = "-", cold_col[16] = "-", pct[16] = "-", load_gbs[16] = "-";
        if (j == 0) {
            snprintf(load_col, sizeof load_col, "%.2f", load);
            snprintf(cold_col, sizeof cold_col, "%.1f", cold * 1e3);
            snprintf(load_gbs, sizeof load_gbs, "%.2f", (double)gguf_file_size(m->file) / load / 1e9);
        }
        if (copy_bw > 0) snprintf(pct, sizeof pct, "%.0f%%", 100.0 * gbs * 1e9 / copy_bw);
        printf("%-9s %-6s %-6s %-7s %6d %7s %9s %11.1f %11.1f %9.2f %9.3f %9.3f %8.1f %12" PRIu64
               " %8.1f %7s %9.0f %10s\n",
               api->name, precisions[k].name, graphs_col, cache_col, row->prompt, load_col, cold_col,
               row->prompt / row->first_prefill_s, row->prompt / row->warm_prefill_s, row->warm_prefill_s * 1e3,
               row->median_s * 1e3, row->p90_s * 1e3, 1.0 / row->median_s, row->bytes, gbs, pct, row->peak_mib,
               load_gbs);
    }
    if (copy_bw > 0) printf("#   copy bandwidth %.0f GB/s (read + write); notes: %s\n", copy_bw / 1e9, eff.notes);
    else
        printf("#   notes: %s\n", eff.notes);
    fflush(stdout);
    return st == FB_OK ? 0 : 1;
}

/* "16,2048" -> prompts; 0 on success, -1 on a bad or empty list. */
static int parse_prompts(const char *list, Run *run) {
    run->n_prompts = 0;
    run->max_prompt = 0;
    for (const char *p = list; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1 << 20 || (*end != ',' && *end) || run->n_prompts == MAX_PROMPTS) return -1;
        run->prompts[run->n_prompts++] = (int)v;
        if (v > run->max_prompt) run->max_prompt = (int)v;
        p = *end ? end + 1 : end;
    }
    return run->n_prompts ? 0 : -1;
}

int main(int argc, char **argv) {
    const char *path = NULL, *backend_list = "eager_ops", *precision_list = "f16,f32", *graph_list = "0,1";
    const char *cache_list = "warm", *cache_dir = NULL, *prompt_list = "16";
    int n_tokens = 128, n_warmup = 8, prefill_reps = 3, n_options = 0;
    char options[MAX_OPTIONS][3][128]; /* backend, key, value */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) backend_list = argv[++i];
        else if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc)
            precision_list = argv[++i];
        else if (strcmp(argv[i], "--graphs") == 0 && i + 1 < argc)
            graph_list = argv[++i];
        else if (strcmp(argv[i], "--jit-cache") == 0 && i + 1 < argc)
            cache_list = argv[++i];
        else if (strcmp(argv[i], "--cache-dir") == 0 && i + 1 < argc)
            cache_dir = argv[++i];
        else if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc)
            n_tokens = atoi(argv[++i]);
        else if (strcmp(argv[i], "--prompt") == 0 && i + 1 < argc)
            prompt_list = argv[++i];
        else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc)
            n_warmup = atoi(argv[++i]);
        else if (strcmp(argv[i], "--prefill-reps") == 0 && i + 1 < argc)
            prefill_reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--option") == 0 && i + 1 < argc) {
            const char *o = argv[++i], *colon = strchr(o, ':'), *eq = colon ? strchr(colon, '=') : NULL;
            if (!colon || !eq || colon == o || eq == colon + 1 || n_options == MAX_OPTIONS) {
                fprintf(stderr, "bench_gpu: --option takes BACKEND:KEY=VALUE (at most %d), not '%s'\n", MAX_OPTIONS, o);
                return 2;
            }
            snprintf(options[n_options][0], sizeof options[n_options][0], "%.*s", (int)(colon - o), o);
            snprintf(options[n_options][1], sizeof options[n_options][1], "%.*s", (int)(eq - colon - 1), colon + 1);
            snprintf(options[n_options][2], sizeof options[n_options][2], "%s", eq + 1);
            n_options++;
        } else if (argv[i][0] == '-')
            return usage();
        else
            path = argv[i];
    }
    Run run = {.n_warmup = n_warmup, .n_tokens = n_tokens, .prefill_reps = prefill_reps, .n_options = n_options};
    for (int i = 0; i < n_options; i++) {
        snprintf(run.option_backend[i], sizeof run.option_backend[i], "%.63s", options[i][0]);
        snprintf(run.option_key[i], sizeof run.option_key[i], "%.63s", options[i][1]);
        snprintf(run.option_value[i], sizeof run.option_value[i], "%.127s", options[i][2]);
    }
    if (!path || n_tokens < 1 || n_warmup < 0 || prefill_reps < 1 || prefill_reps > 100) return usage();
    if (parse_prompts(prompt_list, &run) != 0) {
        fprintf(stderr, "bench_gpu: --prompt takes 1 to %d positive token counts separated by commas, not '%s'\n",
                MAX_PROMPTS, prompt_list);
        return 2;
    }
    fb_error err;
    fb_model *m;
    fb_model_view_owner view;
    if (fb_model_open(path, &m, &err) || fb_model_view_build(m, &view, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    fb_backend_list list;
    if (fb_backends_discover(NULL, 0, &list, &err)) {
        fprintf(stderr, "bench_gpu: %s\n", err.msg);
        return 2;
    }
    printf("model    %s (%s, %u layers, width %u, vocab %u)\n", path, m->name, m->hp.n_layer, m->hp.n_embd,
           m->hp.n_vocab);
    printf("run      prompt %s, %d timed prefill(s) each, warm-up %d, %d timed decode steps\n", prompt_list,
           prefill_reps, n_warmup, n_tokens);
    int failures = 0, available = 0;
    for (const char *b = backend_list; *b;) {
        char name[64];
        size_t len = strcspn(b, ",");
        snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), b);
        b += len + (b[len] == ',');
        const fb_backend *be = fb_backends_find(&list, name);
        if (!be) {
            printf("backend  %s: not found\n", name);
            failures++;
            continue;
        }
        fb_probe_result probe = {.struct_size = sizeof probe};
        be->api->probe(fb_host_services(), &probe);
        printf("backend  %s %s: %s%s\n", be->api->name, be->api->version,
               probe.available ? "" : "unavailable: ", probe.available ? probe.device : probe.reason);
        available += probe.available != 0;
        for (int i = 0; i < run.n_options; i++) { /* each option vetted by its backend, before anything runs */
            if (strcmp(run.option_backend[i], be->api->name) != 0) continue;
            char why[256] = "";
            fb_status vetted =
                be->api->struct_size >= offsetof(fb_plugin, check_option) + sizeof(void *) && be->api->check_option
                    ? be->api->check_option(fb_host_services(), run.option_key[i], run.option_value[i], why, sizeof why)
                    : FB_ERR_INVALID_ARGUMENT;
            if (vetted != FB_OK) {
                fprintf(stderr, "bench_gpu: --option %s:%s=%s: %s\n", run.option_backend[i], run.option_key[i],
                        run.option_value[i], why[0] ? why : "the backend takes no options");
                return 2;
            }
            printf("option   %s: %s = %s\n", be->api->name, run.option_key[i], run.option_value[i]);
        }
    }
    if (!available) {
        /* nothing can be measured here (no GPU, say): a skip, as the GPU tests do */
        printf("bench_gpu: none of the backends asked for (%s) can run on this machine, so nothing was measured\n",
               backend_list);
        fb_backends_free(&list);
        fb_model_view_free(&view);
        fb_model_close(m);
        return failures ? 1 : 77; /* a backend name that no plugin provides is an error, not a skip */
    }
    printf("\n%-9s %-6s %-6s %-7s %6s %7s %9s %11s %11s %9s %9s %9s %8s %12s %8s %7s %9s %10s\n", "backend", "prec",
           "graphs", "cache", "prompt", "load_s", "cold_ms", "prefill/s", "warm_pf/s", "ttft_ms", "ms/tok", "p90_ms",
           "tok/s", "bytes/step", "GB/s", "%copy", "peak_MiB", "load_GB/s");
    int32_t *prompt = malloc((size_t)run.max_prompt * sizeof *prompt);
    for (int i = 0; i < run.max_prompt; i++) prompt[i] = (int32_t)((i * 7919 + 13) % (int)m->hp.n_vocab);
    run.prompt = prompt;
    run.lat = malloc((size_t)n_tokens * sizeof(double));
    run.prefill_s = malloc((size_t)prefill_reps * sizeof(double));
    for (const char *b = backend_list; *b;) {
        char name[64];
        size_t len = strcspn(b, ",");
        snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), b);
        b += len + (b[len] == ',');
        const fb_backend *be = fb_backends_find(&list, name);
        fb_probe_result probe = {.struct_size = sizeof probe};
        if (!be || be->api->probe(fb_host_services(), &probe) != FB_OK || !probe.available) continue;
        const fb_plugin *api = be->api;
        bool jit = (api->capabilities & FB_CAP_JIT) != 0;
        for (size_t k = 0; k < sizeof precisions / sizeof precisions[0]; k++) {
            if (!in_list(precision_list, precisions[k].name)) continue;
            for (int graphs = 0; graphs <= 1; graphs++) {
                if (!in_list(graph_list, graphs ? "1" : "0")) continue;
                for (int cache = 0; cache <= 1; cache++) {
                    if (jit && !in_list(cache_list, cache ? "warm" : "cold")) continue;
                    if (!jit && cache == 0) continue; // one run, the cache does not apply
                    failures += bench_one(api, m, &view, k, graphs, jit ? cache : -1, cache_dir, &run);
                }
            }
        }
    }
    free(run.lat);
    free(run.prefill_s);
    free(prompt);
    fb_backends_free(&list);
    fb_model_view_free(&view);
    fb_model_close(m);
    return failures ? 1 : 0;
}
