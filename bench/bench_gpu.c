/* bench_gpu.c - decode speed of one backend through the plugin ABI, for
 * each weight precision and CUDA graphs off / on. A benchmark, not a test:
 * it prints figures and asserts nothing (exit 1 only when a session fails).
 *
 *   bench_gpu MODEL.gguf [--backend eager_ops] [--precision f16,f32]
 *             [--graphs 0,1] [--tokens 128] [--prompt 16] [--warmup 8]
 *
 * Per configuration, in one session: load (create: convert and upload),
 * cold start (the first prefill of the prompt plus the first decode, graph
 * capture included), then `warmup` decodes, then `tokens` decodes timed one
 * by one. Reports the median and p90 step latency, tok/s (1 / median), the
 * bytes one step reads (weights at the storage precision, from
 * fb_model_decode_bytes, plus the f32 KV cache at the median position),
 * achieved GB/s and its share of the backend's own device-to-device copy
 * bandwidth (copy_bandwidth, called once per session), and the device
 * memory peak. "graphs" shows asked/used: used is what the backend's
 * effective settings report. */
#include <inttypes.h>
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

static const struct { const char *name; fb_precision p; int type; } precisions[] = {
    {"f32", FB_PRECISION_F32, GGUF_TYPE_F32}, {"f16", FB_PRECISION_F16, GGUF_TYPE_F16},
    {"bf16", FB_PRECISION_BF16, GGUF_TYPE_BF16}, {"native", FB_PRECISION_NATIVE, -1}};

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
    fprintf(stderr, "usage: bench_gpu MODEL.gguf [--backend NAME] [--precision f16,f32,...] [--graphs 0,1]\n"
                    "                 [--tokens N] [--prompt N] [--warmup N]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *path = NULL, *backend = "eager_ops", *precision_list = "f16,f32", *graph_list = "0,1";
    int n_tokens = 128, n_prompt = 16, n_warmup = 8;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) backend = argv[++i];
        else if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc) precision_list = argv[++i];
        else if (strcmp(argv[i], "--graphs") == 0 && i + 1 < argc) graph_list = argv[++i];
        else if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) n_tokens = atoi(argv[++i]);
        else if (strcmp(argv[i], "--prompt") == 0 && i + 1 < argc) n_prompt = atoi(argv[++i]);
        else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc) n_warmup = atoi(argv[++i]);
        else if (argv[i][0] == '-') return usage();
        else path = argv[i];
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
    if (fb_backends_discover(NULL, 0, &list, &err) || !fb_backends_find(&list, backend)) {
        fprintf(stderr, "bench_gpu: backend %s not found\n", backend);
        return 2;
    }
    const fb_plugin *api = fb_backends_find(&list, backend)->api;
    fb_probe_result probe = {.struct_size = sizeof probe};
    api->probe(fb_host_services(), &probe);
    printf("model    %s (%s, %u layers, width %u, vocab %u)\n", path, m->name, m->hp.n_layer, m->hp.n_embd, m->hp.n_vocab);
    printf("backend  %s %s: %s%s\n", api->name, api->version, probe.available ? "" : "unavailable: ",
           probe.available ? probe.device : probe.reason);
    printf("run      prompt %d, warm-up %d, %d timed decode steps\n\n", n_prompt, n_warmup, n_tokens);
    if (!probe.available) return 1;
    printf("%-9s %-6s %-6s %7s %9s %11s %9s %9s %8s %12s %8s %7s %9s\n", "backend", "prec", "graphs", "load_s",
           "cold_ms", "prefill/s", "ms/tok", "p90_ms", "tok/s", "bytes/step", "GB/s", "%copy", "peak_MiB");

    int32_t *prompt = malloc((size_t)n_prompt * sizeof *prompt);
    for (int i = 0; i < n_prompt; i++) prompt[i] = (int32_t)((i * 7919 + 13) % (int)m->hp.n_vocab);
    double *lat = malloc((size_t)n_tokens * sizeof *lat);
    int failures = 0;
    for (size_t k = 0; k < sizeof precisions / sizeof precisions[0]; k++) {
        if (!in_list(precision_list, precisions[k].name)) continue;
        for (int graphs = 0; graphs <= 1; graphs++) {
            if (!in_list(graph_list, graphs ? "1" : "0")) continue;
            fb_settings settings = {.struct_size = sizeof settings, .weight_precision = precisions[k].p,
                                    .accumulate_precision = FB_PRECISION_F32, .allow_graphs = graphs,
                                    .max_context = (uint32_t)(n_prompt + 1 + n_warmup + n_tokens + 1)};
            fb_session *s;
            char message[512];
            double t0 = now();
            fb_status st = api->create(fb_host_services(), &view.view, &settings, &s, message, sizeof message);
            double load = now() - t0;
            if (st != FB_OK) {
                printf("%-9s %-6s %-6d create failed: %s\n", api->name, precisions[k].name, graphs, message);
                failures++;
                continue;
            }
            int32_t next;
            t0 = now();
            st = api->prefill(s, prompt, (uint32_t)n_prompt, FB_LOGITS_NONE, NULL, &next);
            double prefill = now() - t0;
            if (st == FB_OK) st = api->decode(s, next, NULL, &next);
            double cold = now() - t0;
            for (int i = 0; i < n_warmup && st == FB_OK; i++) st = api->decode(s, next, NULL, &next);
            for (int i = 0; i < n_tokens && st == FB_OK; i++) {
                double t1 = now();
                st = api->decode(s, next, NULL, &next);
                lat[i] = now() - t1;
            }
            if (st != FB_OK) {
                printf("%-9s %-6s %-6d failed: %s\n", api->name, precisions[k].name, graphs, api->last_error(s));
                failures++;
                api->destroy(s);
                continue;
            }
            fb_effective_settings eff = {.struct_size = sizeof eff};
            fb_memory_stats mem = {.struct_size = sizeof mem};
            api->effective_settings(s, &eff);
            api->memory(s, &mem);
            double copy_bw = 0;
            if (api->copy_bandwidth && api->copy_bandwidth(s, &copy_bw) != FB_OK) copy_bw = 0;
            api->destroy(s);
            qsort(lat, (size_t)n_tokens, sizeof *lat, cmp_double);
            double median = lat[n_tokens / 2], p90 = lat[(n_tokens * 9) / 10 < n_tokens ? (n_tokens * 9) / 10 : n_tokens - 1];
            uint64_t bytes = fb_model_decode_bytes(m, precisions[k].type) +
                             fb_model_kv_bytes_per_pos(m, 4) * (uint64_t)(n_prompt + 1 + n_warmup + n_tokens / 2);
            double gbs = (double)bytes / median / 1e9;
            char graphs_col[8], pct[16];
            snprintf(graphs_col, sizeof graphs_col, "%d/%d", graphs, eff.graphs);
            if (copy_bw > 0) snprintf(pct, sizeof pct, "%.0f%%", 100.0 * gbs * 1e9 / copy_bw);
            else snprintf(pct, sizeof pct, "-");
            printf("%-9s %-6s %-6s %7.2f %9.1f %11.1f %9.3f %9.3f %8.1f %12" PRIu64 " %8.1f %7s %9.0f\n", api->name,
                   precisions[k].name, graphs_col, load, cold * 1e3, n_prompt / prefill, median * 1e3, p90 * 1e3,
                   1.0 / median, bytes, gbs, pct, mem.device_peak_bytes / 1048576.0);
            if (copy_bw > 0) printf("#   copy bandwidth %.0f GB/s (read + write); notes: %s\n", copy_bw / 1e9, eff.notes);
            fflush(stdout);
        }
    }
    free(lat);
    free(prompt);
    fb_backends_free(&list);
    fb_model_view_free(&view);
    fb_model_close(m);
    return failures ? 1 : 0;
}
