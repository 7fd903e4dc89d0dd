/* bench_gpu.c - decode speed of CUDA backends through the plugin ABI, side
 * by side in one process, for each weight precision, CUDA graphs off / on
 * and (for a JIT backend) a cold and a warm kernel cache. A benchmark, not a
 * test: it prints figures and asserts nothing (exit 1 only when a session
 * fails).
 *
 *   bench_gpu MODEL.gguf [--backend eager_ops,jit_fused] [--precision f16,f32]
 *             [--graphs 0,1] [--jit-cache cold,warm] [--tokens 128]
 *             [--prompt 16] [--warmup 8] [--cache-dir DIR]
 *
 * Per configuration, in one session: load (create: convert and upload),
 * cold start (the first prefill of the prompt plus the first decode, graph
 * capture included), then `warmup` decodes, then `tokens` decodes timed one
 * by one. Reports the median and p90 step latency, tok/s (1 / median), the
 * bytes one step reads (weights at the storage precision, from
 * fb_model_decode_bytes, plus the f32 KV cache at the median position),
 * achieved GB/s and its share of the backend's own device-to-device copy
 * bandwidth (copy_bandwidth, called once per session), and the device
 * memory peak, and last (column 15) load_GB/s: the model file's bytes over
 * load_s, the rate at which create() turned the file into a ready backend
 * (from the page cache when the file has been read before). "graphs" shows asked/used: used is what the backend's
 * effective settings report; "cache" is the JIT cache asked for and
 * whether the kernels came from it (cold/0: compiled; warm/1: a hit), "-"
 * for a backend without JIT. Runs of one backend follow each other, so a
 * warm run finds what the cold run before it stored. */
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
    fprintf(stderr,
            "usage: bench_gpu MODEL.gguf [--backend NAME,...] [--precision f16,f32,...] [--graphs 0,1]\n"
            "                 [--jit-cache cold,warm] [--tokens N] [--prompt N] [--warmup N] [--cache-dir DIR]\n");
    return 2;
}

typedef struct Run {
    const int32_t *prompt;
    int n_prompt, n_warmup, n_tokens;
    double *lat;
} Run;

/* One configuration in one session; prints its row. Returns 0, or 1 when it failed. */
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
                            .max_context = (uint32_t)(run->n_prompt + 1 + run->n_warmup + n_tokens + 1),
                            .cache_dir = cache_dir};
    char cache_col[12];
    if (cache < 0) snprintf(cache_col, sizeof cache_col, "-");
    fb_session *s;
    char message[512];
    double t0 = now();
    fb_status st = api->create(fb_host_services(), &view->view, &settings, &s, message, sizeof message);
    double load = now() - t0;
    if (st != FB_OK) {
        printf("%-9s %-6s %-6d create failed: %s\n", api->name, precisions[k].name, graphs, message);
        return 1;
    }
    int32_t next;
    t0 = now();
    st = api->prefill(s, run->prompt, (uint32_t)run->n_prompt, FB_LOGITS_NONE, NULL, &next);
    double prefill = now() - t0;
    if (st == FB_OK) st = api->decode(s, next, NULL, &next);
    double cold = now() - t0;
    for (int i = 0; i < run->n_warmup && st == FB_OK; i++) st = api->decode(s, next, NULL, &next);
    for (int i = 0; i < n_tokens && st == FB_OK; i++) {
        double t1 = now();
        st = api->decode(s, next, NULL, &next);
        lat[i] = now() - t1;
    }
    if (st != FB_OK) {
        printf("%-9s %-6s %-6d failed: %s\n", api->name, precisions[k].name, graphs, api->last_error(s));
        api->destroy(s);
        return 1;
    }
    fb_effective_settings eff = {.struct_size = sizeof eff};
    fb_memory_stats mem = {.struct_size = sizeof mem};
    api->effective_settings(s, &eff);
    api->memory(s, &mem);
    double copy_bw = 0;
    if (api->copy_bandwidth && api->copy_bandwidth(s, &copy_bw) != FB_OK) copy_bw = 0;
    api->destroy(s);
    if (cache >= 0) snprintf(cache_col, sizeof cache_col, "%s/%d", cache ? "warm" : "cold", eff.kernel_cache_hit);
    qsort(lat, (size_t)n_tokens, sizeof *lat, cmp_double);
    double median = lat[n_tokens / 2], p90 = lat[(n_tokens * 9) / 10 < n_tokens ? (n_tokens * 9) / 10 : n_tokens - 1];
    uint64_t bytes = fb_model_decode_bytes(m, precisions[k].type) +
                     fb_model_kv_bytes_per_pos(m, 4) * (uint64_t)(run->n_prompt + 1 + run->n_warmup + n_tokens / 2);
    double gbs = (double)bytes / median / 1e9;
    char graphs_col[8], pct[16];
    snprintf(graphs_col, sizeof graphs_col, "%d/%d", graphs, eff.graphs);
    if (copy_bw > 0) snprintf(pct, sizeof pct, "%.0f%%", 100.0 * gbs * 1e9 / copy_bw);
    else
        snprintf(pct, sizeof pct, "-");
    printf("%-9s %-6s %-6s %-7s %7.2f %9.1f %11.1f %9.3f %9.3f %8.1f %12" PRIu64 " %8.1f %7s %9.0f %10.2f\n", api->name,
           precisions[k].name, graphs_col, cache_col, load, cold * 1e3, run->n_prompt / prefill, median * 1e3,
           p90 * 1e3, 1.0 / median, bytes, gbs, pct, mem.device_peak_bytes / 1048576.0,
           (double)gguf_file_size(m->file) / load / 1e9);
    if (copy_bw > 0) printf("#   copy bandwidth %.0f GB/s (read + write); notes: %s\n", copy_bw / 1e9, eff.notes);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    const char *path = NULL, *backend_list = "eager_ops", *precision_list = "f16,f32", *graph_list = "0,1";
    const char *cache_list = "warm", *cache_dir = NULL;
    int n_tokens = 128, n_prompt = 16, n_warmup = 8;
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
            n_prompt = atoi(argv[++i]);
        else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc)
            n_warmup = atoi(argv[++i]);
        else if (argv[i][0] == '-')
            return usage();
        else
            path = argv[i];
    }
    if (!path || n_tokens < 1 || n_prompt < 1 || n_warmup < 0) return usage();
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
    printf("run      prompt %d, warm-up %d, %d timed decode steps\n", n_prompt, n_warmup, n_tokens);
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
    }
    printf("\n%-9s %-6s %-6s %-7s %7s %9s %11s %9s %9s %8s %12s %8s %7s %9s %10s\n", "backend", "prec", "graphs",
           "cache", "load_s", "cold_ms", "prefill/s", "ms/tok", "p90_ms", "tok/s", "bytes/step", "GB/s", "%copy",
           "peak_MiB", "load_GB/s");
    int32_t *prompt = malloc((size_t)n_prompt * sizeof *prompt);
    for (int i = 0; i < n_prompt; i++) prompt[i] = (int32_t)((i * 7919 + 13) % (int)m->hp.n_vocab);
    Run run = {.prompt = prompt,
               .n_prompt = n_prompt,
               .n_warmup = n_warmup,
               .n_tokens = n_tokens,
               .lat = malloc((size_t)n_tokens * sizeof(double))};
    for (const char *b = backend_list; *b && available;) {
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
    free(prompt);
    fb_backends_free(&list);
    fb_model_view_free(&view);
    fb_model_close(m);
    return failures || !available ? 1 : 0;
}
