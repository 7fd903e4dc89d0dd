/* bench_cpu_ref.c - cpu_ref decode speed against the machine's streaming-read
 * bandwidth, measured in the same run. A benchmark, not a test: it prints
 * figures and asserts nothing.
 *
 *   bench_cpu_ref [MODEL.gguf] [--tokens N]
 *
 * For each weight precision (f32, f16, native) and thread count (1, all
 * cores): prefill a short prompt, decode 4 warm-up tokens, then time N
 * decode steps one by one. Reports the median step latency, tok/s, the bytes
 * one step reads (weights at the storage precision + the KV cache so far),
 * achieved GB/s and its share of the streaming-read bandwidth measured with
 * the same thread count. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends.h"
#include "membw.h"
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

int main(int argc, char **argv) {
    const char *path = NULL;
    int n_tokens = 32;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) n_tokens = atoi(argv[++i]);
        else path = argv[i];
    }
    if (!path || n_tokens < 1) {
        fprintf(stderr, "usage: bench_cpu_ref MODEL.gguf [--tokens N]\n");
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
    if (fb_backends_discover(NULL, 0, &list, &err) || !fb_backends_find(&list, "cpu_ref")) {
        fprintf(stderr, "cpu_ref not found\n");
        return 2;
    }
    const fb_plugin *api = fb_backends_find(&list, "cpu_ref")->api;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int thread_counts[2] = {1, cores > 1 ? (int)cores : 1};
    int n_thread_counts = cores > 1 ? 2 : 1;

    double read_bw[2];
    for (int t = 0; t < n_thread_counts; t++) read_bw[t] = fb_cpu_ceiling(thread_counts[t]);

    fb_probe_result probe = {.struct_size = sizeof probe};
    api->probe(fb_host_services(), &probe);
    printf("model       %s\n", path);
    printf("machine     %s\n", probe.device);
    char method[160];
    fb_cpu_ceiling_method(method, sizeof method);
    for (int t = 0; t < n_thread_counts; t++)
        printf("streaming read, %d thread%s: %.2f GB/s (%s)\n", thread_counts[t], thread_counts[t] > 1 ? "s" : "",
               read_bw[t] / 1e9, method);
    printf("\n%-8s %-7s %10s %9s %12s %8s %9s\n", "weights", "threads", "ms/token", "tok/s", "bytes/step", "GB/s",
           "% of read");

    static const struct { fb_precision p; const char *name; int type; } precisions[] = {
        {FB_PRECISION_F32, "f32", GGUF_TYPE_F32}, {FB_PRECISION_F16, "f16", GGUF_TYPE_F16},
        {FB_PRECISION_NATIVE, "native", -1}};
    int32_t prompt[8];
    for (int i = 0; i < 8; i++) prompt[i] = (int32_t)((i * 7919 + 13) % (int)m->hp.n_vocab);
    double *lat = malloc((size_t)n_tokens * sizeof *lat);
    for (size_t k = 0; k < sizeof precisions / sizeof precisions[0]; k++) {
        for (int t = 0; t < n_thread_counts; t++) {
            fb_settings settings = {.struct_size = sizeof settings, .weight_precision = precisions[k].p,
                                    .accumulate_precision = FB_PRECISION_F32, .threads = thread_counts[t],
                                    .max_context = (uint32_t)(8 + 4 + n_tokens + 1)};
            fb_session *s;
            char message[512];
            if (api->create(fb_host_services(), &view.view, &settings, &s, message, sizeof message) != FB_OK) {
                printf("%-8s %-7d create failed: %s\n", precisions[k].name, thread_counts[t], message);
                continue;
            }
            int32_t next;
            api->prefill(s, prompt, 8, FB_LOGITS_NONE, NULL, &next);
            for (int i = 0; i < 4; i++) api->decode(s, next, NULL, &next);
            for (int i = 0; i < n_tokens; i++) {
                double t0 = now();
                api->decode(s, next, NULL, &next);
                lat[i] = now() - t0;
            }
            api->destroy(s);
            qsort(lat, (size_t)n_tokens, sizeof *lat, cmp_double);
            double median = lat[n_tokens / 2];
            /* Weights at the storage precision, plus the KV cache (f32) at the median position. */
            uint64_t bytes = fb_model_decode_bytes(m, precisions[k].type) +
                             fb_model_kv_bytes_per_pos(m, 4) * (uint64_t)(12 + n_tokens / 2);
            double gbs = (double)bytes / median / 1e9;
            printf("%-8s %-7d %10.2f %9.2f %12" PRIu64 " %8.2f %8.0f%%\n", precisions[k].name, thread_counts[t],
                   median * 1e3, 1.0 / median, bytes, gbs, 100.0 * gbs * 1e9 / read_bw[t]);
        }
    }
    free(lat);
    fb_backends_free(&list);
    fb_model_view_free(&view);
    fb_model_close(m);
    return 0;
}
