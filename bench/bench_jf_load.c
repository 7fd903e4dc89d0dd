/* bench_jf_load.c - jit_fused's weight loading on the host alone: how fast
 * the pipeline (plugins/jit_fused/jf_upload.c) converts and stages a
 * model's weights, with memcpy into host memory standing in for the copy to
 * the device. A benchmark, not a test: it prints figures (and whether every
 * way gave the same bytes) and asserts nothing.
 *
 *   bench_jf_load MODEL.gguf [--precision f16|f32|bf16|native] [--threads N]
 *                 [--slot-kib N] [--repeat N] [--way K]
 *
 * Each way runs `repeat` times (default 3); each run maps the file afresh
 * (fb_model_open), so its pages are faulted in again as in a new process,
 * while the file itself stays in the page cache after the first read (run
 * it once before timing, or read the first line's figures as cold). The
 * arena (the "device") is allocated and touched once, outside the timing.
 * GB/s are of file bytes (the model file's size, as bench_gpu's load_GB/s)
 * per second:
 *
 *   rows jf_layout_rows      the loader before jf_upload: per 64 MiB chunk,
 *                            jf_layout_rows on up to 8 threads started for
 *                            it, then the copy (here a memcpy, not
 *                            overlapped); with 1 thread: single-threaded
 *   pipeline                 jf_upload_run, 1 worker and N workers, and at N
 *                            without the madvise, and without the copying
 *                            of same-type rows (to see what each gives)
 *
 * --way K runs only the K-th of those (from 0); "bytes" then compares its
 * runs with each other only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jf_upload.h"
#include "model.h"
#include "plugin_host.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// ----------------------------------------------------------------------------
// The "device": host memory, copied into at once

typedef struct HostDevice {
    uint8_t *arena;
} HostDevice;

static void *host_staging_alloc(void *ctx, size_t bytes, int *pinned) {
    (void)ctx;
    *pinned = 1; /* as far as the pipeline is concerned */
    return malloc(bytes);
}
static void host_staging_free(void *ctx, void *block, int pinned) {
    (void)ctx, (void)pinned;
    free(block);
}
static int host_copy(void *ctx, int slot, uint64_t dst_offset, const void *src, size_t bytes, char *msg,
                     size_t msg_size) {
    (void)slot, (void)msg, (void)msg_size;
    memcpy(((HostDevice *)ctx)->arena + dst_offset, src, bytes);
    return 0;
}
static int host_wait(void *ctx, int slot, char *msg, size_t msg_size) {
    (void)ctx, (void)slot, (void)msg, (void)msg_size;
    return 0;
}
static int host_drain(void *ctx, char *msg, size_t msg_size) {
    (void)ctx, (void)msg, (void)msg_size;
    return 0;
}

// ----------------------------------------------------------------------------
// One load of the model's weights into the arena, one way or another

typedef struct Way {
    const char *name;
    int old_loader; /* 1: per-chunk jf_layout_rows, as jit_fused loaded before jf_upload */
    int threads;
    jf_upload_options options;
} Way;

/* The loader before jf_upload, with memcpy for its copies. */
static int old_load(const fb_host *host, const jf_upload_item *items, size_t n, int threads, uint8_t *arena) {
    const size_t staging = (size_t)64 << 20;
    uint8_t *buf = malloc(staging);
    int rc = buf ? 0 : -2;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const fb_tensor_view *t = &items[i].src;
        size_t src_row = (size_t)host->row_bytes(t->type, t->ne[0]);
        size_t dst_row = (size_t)jf_row_bytes(items[i].dev_type, t->ne[0]);
        int64_t chunk = (int64_t)(staging / dst_row) > 0 ? (int64_t)(staging / dst_row) : 1;
        for (int64_t r = 0; r < t->ne[1] && rc == 0; r += chunk) {
            int64_t rows = t->ne[1] - r < chunk ? t->ne[1] - r : chunk;
            rc = jf_layout_rows(host, t->type, (const uint8_t *)t->data + (size_t)r * src_row, rows, t->ne[0], buf,
                                items[i].dev_type, threads);
            if (rc == 0) memcpy(arena + items[i].offset + (size_t)r * dst_row, buf, (size_t)rows * dst_row);
        }
    }
    free(buf);
    return rc;
}

typedef struct Plan {
    jf_config c;
    jf_upload_item *items;
    size_t n_items;
    uint64_t arena_bytes, row_bytes, file_bytes; /* the tensors' rows in the file; the file's size */
    float *rope;
} Plan;

static void plan_free(Plan *p) {
    free(p->items);
    free(p->rope);
    memset(p, 0, sizeof *p);
}

/* The items of the model at path (mapped now, in *m) at precision w. */
static int plan_open(const char *path, jf_wtype w, fb_model **m, fb_model_view_owner *view, Plan *p) {
    fb_error err;
    memset(p, 0, sizeof *p);
    if (fb_model_open(path, m, &err) || fb_model_view_build(*m, view, &err)) {
        fprintf(stderr, "bench_jf_load: %s\n", err.msg);
        return -1;
    }
    char msg[512];
    const fb_model_view *mv = &view->view;
    if (jf_config_from_view(mv, 0, w, &p->c, msg, sizeof msg) != 0) {
        fprintf(stderr, "bench_jf_load: %s\n", msg);
        return -1;
    }
    p->rope = malloc((size_t)(p->c.n_rot / 2) * sizeof(float));
    jf_rope_inv_freq(p->rope, p->c.n_rot, mv->rope_freq_base,
                     mv->rope_freqs ? (const float *)mv->rope_freqs->data : NULL);
    fb_tensor_view rope = {.name = "rope",
                           .type = JF_T_F32,
                           .n_dims = 1,
                           .ne = {p->c.n_rot / 2, 1, 1, 1},
                           .data = p->rope,
                           .n_bytes = (uint64_t)(p->c.n_rot / 2) * 4};
    if (jf_upload_items(&p->c, mv, &rope, &p->items, &p->n_items, &p->arena_bytes, msg, sizeof msg) != 0) {
        fprintf(stderr, "bench_jf_load: %s\n", msg);
        return -1;
    }
    p->file_bytes = gguf_file_size((*m)->file);
    for (size_t i = 0; i < p->n_items; i++)
        p->row_bytes += (uint64_t)p->items[i].src.ne[1] *
                        fb_host_services()->row_bytes(p->items[i].src.type, p->items[i].src.ne[0]);
    return 0;
}

static int usage(void) {
    fprintf(stderr, "usage: bench_jf_load MODEL.gguf [--precision f16|f32|bf16|native] [--threads N] [--slot-kib N] "
                    "[--repeat N] [--way K]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *path = NULL, *precision = "f16";
    int threads = jf_upload_cpus(), repeat = 3, only = -1;
    size_t slot_bytes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc) precision = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--slot-kib") == 0 && i + 1 < argc)
            slot_bytes = (size_t)atol(argv[++i]) << 10;
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (strcmp(argv[i], "--way") == 0 && i + 1 < argc)
            only = atoi(argv[++i]);
        else if (argv[i][0] == '-')
            return usage();
        else
            path = argv[i];
    }
    static const char *names[] = {"f32", "f16", "bf16", "native"};
    int w = -1;
    for (int k = 0; k < 4; k++)
        if (strcmp(precision, names[k]) == 0) w = k;
    if (!path || w < 0 || threads < 1 || threads > JF_UPLOAD_MAX_THREADS || repeat < 1) return usage();

    fb_model *m;
    fb_model_view_owner view;
    Plan plan;
    if (plan_open(path, (jf_wtype)w, &m, &view, &plan) != 0) return 1;
    uint8_t *arena = malloc(plan.arena_bytes), *first = malloc(plan.arena_bytes);
    if (!arena || !first) {
        fprintf(stderr, "bench_jf_load: out of memory for two arenas of %" PRIu64 " bytes\n", plan.arena_bytes);
        return 1;
    }
    memset(first, 0, plan.arena_bytes);
    printf("model    %s: %.3f GB, %zu tensors of %.3f GB, %.3f GB on the device at %s\n", path, plan.file_bytes / 1e9,
           plan.n_items, plan.row_bytes / 1e9, plan.arena_bytes / 1e9, precision);
    printf("machine  %d CPUs for this process; copies are memcpy into host memory; best and median of %d runs\n",
           jf_upload_cpus(), repeat);
    fb_model_view_free(&view);
    fb_model_close(m);
    plan_free(&plan);

    const int old_threads = threads < 8 ? threads : 8;
    Way ways[] = {
        {"jf_layout_rows, 1 thread (single-threaded)", 1, 1, {0}},
        {"jf_layout_rows, the old loader's threads", 1, old_threads, {0}},
        {"pipeline, 1 worker", 0, 1, {.threads = 1, .slot_bytes = slot_bytes}},
        {"pipeline, N workers", 0, threads, {.threads = threads, .slot_bytes = slot_bytes}},
        {"pipeline, N workers, no madvise",
         0,
         threads,
         {.threads = threads, .slot_bytes = slot_bytes, .no_prefault = 1}},
        {"pipeline, N workers, no same-type copy",
         0,
         threads,
         {.threads = threads, .slot_bytes = slot_bytes, .no_fast_copy = 1}},
    };
    printf("\n%-42s %7s %9s %9s %9s %s\n", "way", "threads", "best_s", "GB/s", "median", "bytes");
    int failures = 0;
    double *secs = malloc((size_t)repeat * sizeof *secs);
    for (size_t k = 0; k < sizeof ways / sizeof ways[0]; k++) {
        if (only >= 0 && (size_t)only != k) continue;
        int same = 1;
        for (int r = 0; r < repeat; r++) {
            if (plan_open(path, (jf_wtype)w, &m, &view, &plan) != 0) return 1; // mapped afresh
            memset(arena, 0, plan.arena_bytes);
            char msg[600] = "";
            double t0 = now_s();
            int rc;
            if (ways[k].old_loader) rc = old_load(fb_host_services(), plan.items, plan.n_items, ways[k].threads, arena);
            else {
                HostDevice hd = {.arena = arena};
                jf_upload_device dev = {.ctx = &hd,
                                        .staging_alloc = host_staging_alloc,
                                        .staging_free = host_staging_free,
                                        .copy = host_copy,
                                        .wait = host_wait,
                                        .drain = host_drain};
                rc = jf_upload_run(fb_host_services(), plan.items, plan.n_items, &ways[k].options, &dev, NULL, msg,
                                   sizeof msg);
            }
            secs[r] = now_s() - t0;
            if (rc != 0) {
                printf("%-42s failed: %s\n", ways[k].name, msg[0] ? msg : "conversion failed");
                failures++;
            }
            if (r == 0 && (k == 0 || (size_t)only == k)) memcpy(first, arena, plan.arena_bytes);
            else
                same &= memcmp(first, arena, plan.arena_bytes) == 0;
            uint64_t file_bytes = plan.file_bytes;
            fb_model_view_free(&view);
            fb_model_close(m);
            plan_free(&plan);
            plan.file_bytes = file_bytes;
        }
        qsort(secs, (size_t)repeat, sizeof *secs, cmp_double);
        printf("%-42s %7d %9.3f %9.2f %9.2f %s\n", ways[k].name, ways[k].threads, secs[0],
               plan.file_bytes / secs[0] / 1e9, plan.file_bytes / secs[repeat / 2] / 1e9, same ? "same" : "DIFFERENT");
        fflush(stdout);
        failures += !same;
    }
    free(secs);
    free(arena);
    free(first);
    return failures ? 1 : 0;
}
