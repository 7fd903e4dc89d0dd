/* cupti_recorder.c - fb_cupti_recorder.so: records every kernel, copy and
 * set a process runs on the GPU through CUPTI's activity API, and writes
 * them as lines of the fairbench trace format (core/why/trace.h).
 *
 * A shared object of its own, built only where the CUDA toolkit's CUPTI is
 * found and linked against libcupti; the core dlopen()s it in a backend's
 * child process for the profiling pass (core/why/cupti.c), so fairbench
 * itself links nothing of CUDA. Start it before the backend creates its CUDA
 * context, and stop it after the last recorded step; the step markers are
 * taken with fb_cupti_recorder_now(), CUPTI's own clock, so records and steps
 * share one timeline. Single-threaded use (the child's main thread); CUPTI
 * calls the buffer callbacks from its own thread, guarded by a mutex. */
#include <cupti.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
#define BUFFER_BYTES (8u << 20)
#define NAME_MAX_BYTES 159

typedef struct rec {
    char kind;                 /* 'k' kernel, 'c' memcpy, 's' memset */
    uint64_t start, end, bytes;
    int32_t grid[3];
    char name[NAME_MAX_BYTES + 1];
} rec;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static rec *recs;
static size_t n_recs, cap_recs;
static size_t n_dropped;

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records) {
    *buffer = aligned_alloc(8, BUFFER_BYTES);
    *size = *buffer ? BUFFER_BYTES : 0;
    *max_records = 0;
}

static void keep(const rec *r) {
    pthread_mutex_lock(&lock);
    if (n_recs == cap_recs) {
        size_t cap = cap_recs ? 2 * cap_recs : 4096;
        rec *v = realloc(recs, cap * sizeof *v);
        if (v) recs = v, cap_recs = cap;
    }
    if (n_recs < cap_recs) recs[n_recs++] = *r;
    else n_dropped++;
    pthread_mutex_unlock(&lock);
}

static const char *copy_kind(uint8_t k) {
    switch (k) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD: return "HtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH: return "DtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD: return "DtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_PTOP: return "PtoP";
    default: return "copy";
    }
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buffer, size_t size, size_t valid) {
    (void)ctx, (void)stream, (void)size;
    CUpti_Activity *a = NULL;
    while (cuptiActivityGetNextRecord(buffer, valid, &a) == CUPTI_SUCCESS) {
        rec r;
        memset(&r, 0, sizeof r);
        if (a->kind == CUPTI_ACTIVITY_KIND_KERNEL || a->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) {
            const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)a;
            r.kind = 'k';
            r.start = k->start, r.end = k->end;
            r.grid[0] = k->gridX, r.grid[1] = k->gridY, r.grid[2] = k->gridZ;
            snprintf(r.name, sizeof r.name, "%s", k->name ? k->name : "unnamed");
        } else if (a->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
            const CUpti_ActivityMemcpy6 *m = (const CUpti_ActivityMemcpy6 *)a;
            r.kind = 'c';
            r.start = m->start, r.end = m->end, r.bytes = m->bytes;
            snprintf(r.name, sizeof r.name, "%s", copy_kind(m->copyKind));
        } else if (a->kind == CUPTI_ACTIVITY_KIND_MEMSET) {
            const CUpti_ActivityMemset4 *m = (const CUpti_ActivityMemset4 *)a;
            r.kind = 's';
            r.start = m->start, r.end = m->end, r.bytes = m->bytes;
            snprintf(r.name, sizeof r.name, "memset");
        } else {
            continue;
        }
        /* names end at the line: the trace format's NAME is the rest of it */
        for (char *p = r.name; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
        keep(&r);
    }
    free(buffer);
}

static int failed(CUptiResult rc, const char *what, char *msg, size_t msg_size) {
    const char *s = NULL;
    cuptiGetResultString(rc, &s);
    snprintf(msg, msg_size, "CUPTI %s failed: %s", what, s ? s : "unknown error");
    return -1;
}

/* Start recording. 0, or -1 with a sentence in msg. */
EXPORT int fb_cupti_recorder_start(char *msg, size_t msg_size) {
    CUptiResult rc = cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
    if (rc != CUPTI_SUCCESS) return failed(rc, "cuptiActivityRegisterCallbacks", msg, msg_size);
    static const CUpti_ActivityKind kinds[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY,
                                               CUPTI_ACTIVITY_KIND_MEMSET};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        rc = cuptiActivityEnable(kinds[i]);
        if (rc != CUPTI_SUCCESS) return failed(rc, "cuptiActivityEnable", msg, msg_size);
    }
    return 0;
}

/* CUPTI's clock, in nanoseconds: the step markers' clock. 0 on failure. */
EXPORT uint64_t fb_cupti_recorder_now(void) {
    uint64_t t = 0;
    return cuptiGetTimestamp(&t) == CUPTI_SUCCESS ? t : 0;
}

/* Flush, stop, and write every record as trace lines to out (no header).
 * Returns the number of records, or -1 with a sentence in msg. */
EXPORT long fb_cupti_recorder_stop(FILE *out, char *msg, size_t msg_size) {
    CUptiResult rc = cuptiActivityFlushAll(1);
    if (rc != CUPTI_SUCCESS) return failed(rc, "cuptiActivityFlushAll", msg, msg_size);
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_MEMCPY);
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_MEMSET);
    pthread_mutex_lock(&lock);
    long n = (long)n_recs;
    for (size_t i = 0; i < n_recs; i++) {
        const rec *r = &recs[i];
        if (r->kind == 'k')
            fprintf(out, "kernel %llu %llu %d %d %d %s\n", (unsigned long long)r->start, (unsigned long long)r->end,
                    r->grid[0], r->grid[1], r->grid[2], r->name);
        else
            fprintf(out, "%s %llu %llu %llu %s\n", r->kind == 'c' ? "memcpy" : "memset", (unsigned long long)r->start,
                    (unsigned long long)r->end, (unsigned long long)r->bytes, r->name);
    }
    if (n_dropped) fprintf(out, "# %zu records dropped (out of memory)\n", n_dropped);
    free(recs);
    recs = NULL;
    n_recs = cap_recs = n_dropped = 0;
    pthread_mutex_unlock(&lock);
    return n;
}
