/* test_jf_upload.c - jit_fused's loading pipeline (plugins/jit_fused/jf_upload.c)
 * without a GPU: the device is host memory behind jf_upload_device, its
 * copies deferred as a stream's are (each runs when a wait or the final
 * drain reaches it, from a snapshot taken when it was enqueued, and a
 * staging buffer that changed in between is counted as a violation).
 *
 *   - random tensors of F32, F16, BF16 (copied, NaNs included), converted
 *     (F32 -> F16, F16 -> BF16, Q4_K -> F16, Q8_0 -> F32) and re-laid out
 *     (Q8_0, Q6_K, Q4_K), with odd row counts, odd row lengths, staging
 *     buffers of a few rows to a MiB, 1 to 5 workers and 2 slots or more:
 *     the arena equals jf_layout_rows of each tensor, single-threaded;
 *   - every F16 and every BF16 bit pattern through the copying path;
 *   - the arena's layout of a synthetic model (Q, K, V stacked, 256-byte
 *     alignment, no overlap, tied head) and its upload from the mapped file;
 *   - errors: a conversion failing mid-way, a failing copy, a failing wait,
 *     cancellation, no staging memory, an undecodable tensor; each returns
 *     its status with a sentence, the workers end, every copy is drained
 *     before the staging is freed, nothing is left allocated;
 *   - page-locked memory refused: pageable staging, same bytes;
 *   - progress: non-decreasing, ending at 1.
 * A hang fails by SIGALRM. Mutations of jf_upload.c each check catches
 * (made, seen failing, reverted):
 *   slot handed out again without waiting for its copy  violations (buffer changed under its copy), 0 waits
 *   chunk's destination one row off                     bytes differ
 *   a chunk one row longer than its slot                 bytes, violations (copy outside the arena, guard)
 *   copied rows without the NaN fallback                 bytes differ (f16 signalling NaN, every-pattern row)
 *   copied rows' padding not zeroed                      bytes differ (stale 0xAB)
 *   no drain after an error                              staging freed under pending copies, 0 drains
 *   cancellation not checked                             status OK instead of FB_ERR_CANCELLED
 *   a failed conversion ignored                          status OK instead of FB_ERR_UNSUPPORTED
 *   a failing copy ignored                               status OK, copies after the failing one
 *   a failing wait ignored                               status OK instead of FB_ERR_INTERNAL
 *   W_k not right after W_q (Q, K, V unpacked)          layout checks on the odd shape
 *
 *   test_jf_upload TMP_DIR [SEED]
 */
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cpu_ref_session.h"
#include "jf_upload.h"
#include "quant.h"
#include "synth.h"

static uint64_t rng_state;
static uint32_t rnd_u32(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 32);
}
static float rnd(void) { return (float)((rnd_u32() >> 8) * (1.0 / (1 << 23))) - 1.0f; } /* [-1, 1) */

// ----------------------------------------------------------------------------
// The fake device: host memory, copies deferred until a wait or the drain

typedef struct Pending {
    int slot;
    uint64_t offset;
    const uint8_t *src;
    uint8_t *snapshot; /* src's bytes when the copy was enqueued */
    size_t bytes;
} Pending;

typedef struct FakeDevice {
    uint8_t *arena;
    uint64_t arena_bytes;
    Pending *pending; /* in the order enqueued */
    size_t n_pending, cap_pending;
    /* faults to inject */
    int refuse_pinned, refuse_staging;
    long fail_copy_at, fail_wait_at; /* 1-based call number; 0: never */
    /* what happened */
    long copies, waits, drains, staging_live;
    size_t staging_bytes;
    int violations; /* a staging buffer changed under its copy, a copy outside the arena, staging freed under a copy */
    char first_violation[200];
} FakeDevice;

static void violation(FakeDevice *d, const char *what) {
    if (d->violations++ == 0) snprintf(d->first_violation, sizeof d->first_violation, "%s", what);
}

enum { GUARD_BYTES = 1 << 16 };

static void *fake_staging_alloc(void *ctx, size_t bytes, int *pinned) {
    FakeDevice *d = ctx;
    if (d->refuse_staging) return NULL;
    uint8_t *block = malloc(bytes + GUARD_BYTES);
    if (block) {
        memset(block, 0xAB, bytes); /* stale bytes, as a reused buffer has */
        memset(block + bytes, 0xCD, GUARD_BYTES);
    }
    d->staging_bytes = bytes;
    *pinned = !d->refuse_pinned;
    d->staging_live += block != NULL;
    return block;
}

static void fake_staging_free(void *ctx, void *block, int pinned) {
    FakeDevice *d = ctx;
    (void)pinned;
    if (d->n_pending) violation(d, "staging freed while copies from it were pending");
    for (size_t i = 0; i < GUARD_BYTES; i++)
        if (((uint8_t *)block)[d->staging_bytes + i] != 0xCD) {
            violation(d, "a worker wrote past the staging block");
            break;
        }
    d->staging_live--;
    free(block);
}

/* Run the pending copies [0, n) in order, as the stream would. */
static void run_pending(FakeDevice *d, size_t n) {
    if (n == 0) return;
    for (size_t i = 0; i < n; i++) {
        Pending *p = &d->pending[i];
        if (memcmp(p->src, p->snapshot, p->bytes) != 0) violation(d, "a staging buffer changed before its copy ran");
        memcpy(d->arena + p->offset, p->snapshot, p->bytes);
        free(p->snapshot);
    }
    memmove(d->pending, d->pending + n, (d->n_pending - n) * sizeof *d->pending);
    d->n_pending -= n;
}

static int fake_copy(void *ctx, int slot, uint64_t offset, const void *src, size_t bytes, char *msg, size_t msg_size) {
    FakeDevice *d = ctx;
    if (++d->copies == d->fail_copy_at) {
        snprintf(msg, msg_size, "fake device: copy %ld failed", d->copies);
        return -1;
    }
    if (offset > d->arena_bytes || bytes > d->arena_bytes - offset) {
        violation(d, "a copy outside the arena");
        return 0;
    }
    if (d->n_pending == d->cap_pending) {
        d->cap_pending = d->cap_pending ? 2 * d->cap_pending : 64;
        d->pending = realloc(d->pending, d->cap_pending * sizeof *d->pending);
    }
    uint8_t *snapshot = malloc(bytes);
    memcpy(snapshot, src, bytes);
    d->pending[d->n_pending++] = (Pending){slot, offset, src, snapshot, bytes};
    return 0;
}

static int fake_wait(void *ctx, int slot, char *msg, size_t msg_size) {
    FakeDevice *d = ctx;
    if (++d->waits == d->fail_wait_at) {
        snprintf(msg, msg_size, "fake device: wait %ld failed", d->waits);
        return -1;
    }
    size_t last = 0; /* the slot's last pending copy, and every copy before it */
    for (size_t i = 0; i < d->n_pending; i++)
        if (d->pending[i].slot == slot) last = i + 1;
    run_pending(d, last);
    return 0;
}

static int fake_drain(void *ctx, char *msg, size_t msg_size) {
    FakeDevice *d = ctx;
    (void)msg, (void)msg_size;
    d->drains++;
    run_pending(d, d->n_pending);
    return 0;
}

static jf_upload_device fake_ops(FakeDevice *d) {
    return (jf_upload_device){.ctx = d,
                              .staging_alloc = fake_staging_alloc,
                              .staging_free = fake_staging_free,
                              .copy = fake_copy,
                              .wait = fake_wait,
                              .drain = fake_drain};
}

static void fake_init(FakeDevice *d, uint64_t arena_bytes) {
    memset(d, 0, sizeof *d);
    d->arena_bytes = arena_bytes;
    d->arena = calloc(1, arena_bytes ? arena_bytes : 1);
}

static void fake_free(FakeDevice *d) {
    run_pending(d, d->n_pending);
    free(d->pending);
    free(d->arena);
}

// ----------------------------------------------------------------------------
// A host whose decoding fails after a number of rows, that cancels after a
// number of checks, and that records progress

static atomic_long decode_calls, decode_fail_after; /* 0: never fail */
static atomic_long cancel_checks, cancel_after;     /* 0: never cancel */
static int progress_calls, progress_backwards;
static double progress_last;

static int counting_f32(uint32_t type, const void *src, float *dst, int64_t n) {
    long fail = atomic_load(&decode_fail_after);
    if (atomic_fetch_add(&decode_calls, 1) + 1 >= fail && fail > 0) return -1;
    return fb_host_services()->dequantize_row_f32(type, src, dst, n);
}
static int counting_f16(uint32_t type, const void *src, uint16_t *dst, int64_t n) {
    long fail = atomic_load(&decode_fail_after);
    if (atomic_fetch_add(&decode_calls, 1) + 1 >= fail && fail > 0) return -1;
    return fb_host_services()->dequantize_row_f16(type, src, dst, n);
}
static int counting_cancel(const fb_host *host) {
    (void)host;
    long after = atomic_load(&cancel_after);
    return after > 0 && atomic_fetch_add(&cancel_checks, 1) + 1 >= after;
}
static void recording_progress(const fb_host *host, const char *stage, double fraction) {
    (void)host, (void)stage;
    if (fraction < progress_last) progress_backwards++;
    progress_last = fraction;
    progress_calls++;
}

static fb_host test_host;
static void test_host_reset(void) {
    test_host = *fb_host_services();
    test_host.dequantize_row_f32 = counting_f32;
    test_host.dequantize_row_f16 = counting_f16;
    test_host.is_cancelled = counting_cancel;
    test_host.progress = recording_progress;
    atomic_store(&decode_calls, 0), atomic_store(&decode_fail_after, 0);
    atomic_store(&cancel_checks, 0), atomic_store(&cancel_after, 0);
    progress_calls = progress_backwards = 0, progress_last = 0;
}

// ----------------------------------------------------------------------------
// Random tensors

typedef struct TestTensor {
    char name[48];
    fb_tensor_view view;
    uint32_t dev_type;
    void *data;
} TestTensor;

/* rows x cols of `type` from random values; for F32/F16/BF16 a few NaNs
 * (quiet and signalling), infinities and subnormals among them. */
static void make_tensor(TestTensor *t, const char *name, uint32_t type, uint32_t dev_type, int64_t rows, int64_t cols) {
    const fb_host *host = fb_host_services();
    size_t row_bytes = (size_t)host->row_bytes(type, cols);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->data = malloc((size_t)rows * row_bytes);
    float *values = malloc((size_t)cols * sizeof *values);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < cols; i++) values[i] = rnd() * (r % 5 == 0 ? 1e-6f : 3.0f);
        uint8_t *row = (uint8_t *)t->data + (size_t)r * row_bytes;
        quant_row_from_f32(type, values, row, cols);
        if (r % 7 == 3 && (type == GGUF_TYPE_F16 || type == GGUF_TYPE_BF16)) {
            static const uint16_t f16_specials[] = {0x7C01, 0xFE00, 0x7C00, 0x0001, 0x8000};
            static const uint16_t bf16_specials[] = {0x7F81, 0xFFC0, 0x7F80, 0x0001, 0x8000};
            for (int k = 0; k < 5; k++) {
                uint16_t h = type == GGUF_TYPE_F16 ? f16_specials[k] : bf16_specials[k];
                memcpy(row + 2 * (size_t)(rnd_u32() % (uint32_t)cols), &h, 2);
            }
        }
        if (r % 7 == 3 && type == GGUF_TYPE_F32) {
            static const uint32_t specials[] = {0x7F800001u, 0xFFC00000u, 0x7F800000u, 0x00000001u};
            for (int k = 0; k < 4; k++) memcpy(row + 4 * (size_t)(rnd_u32() % (uint32_t)cols), &specials[k], 4);
        }
    }
    free(values);
    t->dev_type = dev_type;
    t->view = (fb_tensor_view){.name = t->name,
                               .type = type,
                               .n_dims = 2,
                               .ne = {cols, rows, 1, 1},
                               .data = t->data,
                               .n_bytes = (uint64_t)rows * row_bytes};
}

/* Items for tensors, one after the other, 256-byte aligned, a gap between. */
static jf_upload_item *items_of(TestTensor *t, size_t n, uint64_t *arena_bytes) {
    jf_upload_item *items = calloc(n, sizeof *items);
    uint64_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t bytes = (uint64_t)t[i].view.ne[1] * (uint64_t)jf_row_bytes(t[i].dev_type, t[i].view.ne[0]);
        items[i] = (jf_upload_item){
            .src = t[i].view, .dev_type = t[i].dev_type, .offset = offset, .bytes = bytes, .layer = -1};
        offset = (offset + bytes + 300 + JF_ARENA_ALIGN - 1) / JF_ARENA_ALIGN * JF_ARENA_ALIGN;
    }
    *arena_bytes = offset;
    return items;
}

/* jf_layout_rows of each item, single-threaded, into a zeroed arena. */
static uint8_t *reference_arena(const jf_upload_item *items, size_t n, uint64_t arena_bytes) {
    uint8_t *ref = calloc(1, arena_bytes ? arena_bytes : 1);
    for (size_t i = 0; i < n; i++) {
        int rc = jf_layout_rows(fb_host_services(), items[i].src.type, items[i].src.data, items[i].src.ne[1],
                                items[i].src.ne[0], ref + items[i].offset, items[i].dev_type, 1);
        CHECK(rc == 0, "reference layout of %s", items[i].src.name);
    }
    return ref;
}

/* The first byte where the arena and the reference differ, as "item name, row r, byte b", or "". */
static void first_difference(const uint8_t *got, const uint8_t *want, const jf_upload_item *items, size_t n,
                             uint64_t arena_bytes, char *out, size_t out_size) {
    out[0] = '\0';
    for (uint64_t b = 0; b < arena_bytes; b++) {
        if (got[b] == want[b]) continue;
        for (size_t i = 0; i < n; i++) {
            uint64_t row = (uint64_t)jf_row_bytes(items[i].dev_type, items[i].src.ne[0]);
            if (b >= items[i].offset && b < items[i].offset + items[i].bytes) {
                snprintf(out, out_size, "%s (%s -> %s), row %" PRIu64 ", byte %" PRIu64 ": %02x, want %02x",
                         items[i].src.name, fb_host_services()->type_name(items[i].src.type),
                         fb_host_services()->type_name(items[i].dev_type), (b - items[i].offset) / row,
                         (b - items[i].offset) % row, got[b], want[b]);
                return;
            }
        }
        snprintf(out, out_size, "byte %" PRIu64 " outside every tensor: %02x", b, got[b]);
        return;
    }
}

// ----------------------------------------------------------------------------
// The checks

enum { N_TENSORS = 14 };

static TestTensor tensors[N_TENSORS];

static void make_tensors(void) {
    size_t k = 0;
    make_tensor(&tensors[k++], "f32 copied", GGUF_TYPE_F32, JF_T_F32, 333, 37);
    make_tensor(&tensors[k++], "f16 copied", GGUF_TYPE_F16, JF_T_F16, 1001, 90);
    make_tensor(&tensors[k++], "bf16 copied", GGUF_TYPE_BF16, JF_T_BF16, 77, 250);
    make_tensor(&tensors[k++], "one row", GGUF_TYPE_F16, JF_T_F16, 1, 8);
    make_tensor(&tensors[k++], "f32 to f16", GGUF_TYPE_F32, JF_T_F16, 129, 90);
    make_tensor(&tensors[k++], "f16 to bf16", GGUF_TYPE_F16, JF_T_BF16, 65, 250);
    make_tensor(&tensors[k++], "f16 to f32", GGUF_TYPE_F16, JF_T_F32, 31, 18);
    make_tensor(&tensors[k++], "q4_k to f16", GGUF_TYPE_Q4_K, JF_T_F16, 19, 512);
    make_tensor(&tensors[k++], "q8_0 to f32", GGUF_TYPE_Q8_0, JF_T_F32, 23, 96);
    make_tensor(&tensors[k++], "q8_0 re-laid", GGUF_TYPE_Q8_0, JF_T_Q8_0, 301, 160);
    make_tensor(&tensors[k++], "q6_k re-laid", GGUF_TYPE_Q6_K, JF_T_Q6_K, 41, 512);
    make_tensor(&tensors[k++], "q4_k as stored", GGUF_TYPE_Q4_K, JF_T_Q4_K, 57, 256);
    make_tensor(&tensors[k++], "f32 vector", GGUF_TYPE_F32, JF_T_F32, 1, 90);
    make_tensor(&tensors[k++], "f32 copied, wide", GGUF_TYPE_F32, JF_T_F32, 45, 200);
}

/* Run the pipeline over items into a fresh fake device. */
static fb_status run_fake(const jf_upload_item *items, size_t n, uint64_t arena_bytes, const jf_upload_options *o,
                          FakeDevice *d, jf_upload_stats *stats, char *msg, size_t msg_size) {
    fake_init(d, arena_bytes);
    jf_upload_device ops = fake_ops(d);
    msg[0] = '\0';
    return jf_upload_run(&test_host, items, n, o, &ops, stats, msg, msg_size);
}

static void test_bytes(void) {
    uint64_t arena_bytes;
    jf_upload_item *items = items_of(tensors, N_TENSORS, &arena_bytes);
    uint8_t *ref = reference_arena(items, N_TENSORS, arena_bytes);
    uint64_t file_bytes = 0;
    for (size_t i = 0; i < N_TENSORS; i++) file_bytes += tensors[i].view.n_bytes;
    static const struct {
        int threads, slots;
        size_t slot_bytes;
    } runs[] = {{1, 2, 1}, {2, 2, 1000}, {3, 0, 4096}, {5, 3, 12345}, {4, 0, 1 << 20}, {2, 5, 7777}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        for (int fast = 0; fast <= 1; fast++) {
            test_host_reset();
            jf_upload_options o = {.threads = runs[r].threads,
                                   .slots = runs[r].slots,
                                   .slot_bytes = runs[r].slot_bytes,
                                   .no_fast_copy = !fast};
            FakeDevice d;
            jf_upload_stats stats;
            char msg[512], diff[300];
            fb_status st = run_fake(items, N_TENSORS, arena_bytes, &o, &d, &stats, msg, sizeof msg);
            first_difference(d.arena, ref, items, N_TENSORS, arena_bytes, diff, sizeof diff);
            CHECK(st == FB_OK && diff[0] == '\0' && d.violations == 0,
                  "%d threads, %d slots of %zu bytes, fast copy %d: status %d %s; first difference: %s; %d violations "
                  "(%s)",
                  runs[r].threads, stats.slots, stats.slot_bytes, fast, (int)st, msg, diff, d.violations,
                  d.first_violation);
            CHECK(stats.file_bytes == file_bytes && stats.threads == runs[r].threads && stats.pinned == 1 &&
                      d.staging_live == 0 && d.drains == 1,
                  "stats: %" PRIu64 " of %" PRIu64 " file bytes, %d threads, staging left %ld, %ld drains",
                  stats.file_bytes, file_bytes, stats.threads, d.staging_live, d.drains);
            /* small slots: many chunks, and the slots were recycled through waits */
            if (runs[r].slot_bytes < 20000)
                CHECK(stats.chunks > (uint64_t)N_TENSORS && d.waits > 0, "%" PRIu64 " chunks, %ld waits", stats.chunks,
                      d.waits);
            CHECK(progress_backwards == 0 && progress_last == 1.0 && progress_calls >= 2,
                  "progress: %d calls, %d backwards, last %.3f", progress_calls, progress_backwards, progress_last);
            fake_free(&d);
        }
    }
    free(ref);
    free(items);
}

/* Every F16 and BF16 bit pattern, copied: the bytes of the host's path. */
static void test_every_pattern(void) {
    TestTensor t[2];
    const uint32_t types[2] = {GGUF_TYPE_F16, GGUF_TYPE_BF16};
    for (int k = 0; k < 2; k++) {
        uint16_t *all = malloc(65536 * sizeof *all);
        for (uint32_t i = 0; i < 65536; i++) all[i] = (uint16_t)i;
        snprintf(t[k].name, sizeof t[k].name, "every %s pattern", k ? "bf16" : "f16");
        t[k].data = all;
        t[k].dev_type = types[k];
        /* 512 rows of 128: the rows with NaNs take the host's path, the others are copied */
        t[k].view = (fb_tensor_view){
            .name = t[k].name, .type = types[k], .n_dims = 2, .ne = {128, 512, 1, 1}, .data = all, .n_bytes = 131072};
    }
    uint64_t arena_bytes;
    jf_upload_item *items = items_of(t, 2, &arena_bytes);
    uint8_t *ref = reference_arena(items, 2, arena_bytes);
    test_host_reset();
    FakeDevice d;
    char msg[512], diff[300];
    fb_status st = run_fake(items, 2, arena_bytes, &(jf_upload_options){.threads = 2, .slot_bytes = 8192}, &d, NULL,
                            msg, sizeof msg);
    first_difference(d.arena, ref, items, 2, arena_bytes, diff, sizeof diff);
    CHECK(st == FB_OK && diff[0] == '\0', "every 16-bit pattern copied as the host converts it: %s", diff);
    fake_free(&d);
    free(ref), free(items), free(t[0].data), free(t[1].data);
}

/* One error: the status, the sentence, and a clean end. */
static void check_error(const char *what, fb_status st, fb_status want, const char *msg, const char *needle,
                        const FakeDevice *d) {
    CHECK(st == want && strstr(msg, needle), "%s: status %d (want %d): %s", what, (int)st, (int)want, msg);
    CHECK(d->staging_live == 0 && d->n_pending == 0 && d->drains == 1 && d->violations == 0,
          "%s: staging left %ld, %zu copies pending, %ld drains, %d violations (%s)", what, d->staging_live,
          d->n_pending, d->drains, d->violations, d->first_violation);
}

static void test_errors(void) {
    uint64_t arena_bytes;
    jf_upload_item *items = items_of(tensors, N_TENSORS, &arena_bytes);
    const jf_upload_options o = {.threads = 3, .slots = 4, .slot_bytes = 2048};
    FakeDevice d;
    jf_upload_stats stats;
    char msg[512];

    /* a row that cannot be decoded, half-way through (F32 -> F16 and beyond decode row by row) */
    test_host_reset();
    atomic_store(&decode_fail_after, 150);
    fb_status st = run_fake(items, N_TENSORS, arena_bytes, &o, &d, &stats, msg, sizeof msg);
    check_error("a conversion failing mid-way", st, FB_ERR_UNSUPPORTED, msg, "cannot decode rows", &d);
    CHECK(d.copies > 0 && stats.chunks > 0, "the failure came mid-way: %ld copies before it", d.copies);
    fake_free(&d);

    FakeDevice e;
    {
        /* the 9th copy fails */
        test_host_reset();
        fake_init(&e, arena_bytes);
        e.fail_copy_at = 9;
        jf_upload_device ops = fake_ops(&e);
        msg[0] = '\0';
        st = jf_upload_run(&test_host, items, N_TENSORS, &o, &ops, &stats, msg, sizeof msg);
        check_error("a failing copy", st, FB_ERR_INTERNAL, msg, "copy 9 failed", &e);
        CHECK(e.copies == 9, "no copy after the failing one: %ld", e.copies);
        fake_free(&e);

        /* the 3rd wait fails */
        test_host_reset();
        fake_init(&e, arena_bytes);
        e.fail_wait_at = 3;
        ops = fake_ops(&e);
        msg[0] = '\0';
        st = jf_upload_run(&test_host, items, N_TENSORS, &o, &ops, &stats, msg, sizeof msg);
        check_error("a failing wait", st, FB_ERR_INTERNAL, msg, "wait 3 failed", &e);
        fake_free(&e);

        /* cancelled at the 20th check */
        test_host_reset();
        atomic_store(&cancel_after, 20);
        fake_init(&e, arena_bytes);
        ops = fake_ops(&e);
        msg[0] = '\0';
        st = jf_upload_run(&test_host, items, N_TENSORS, &o, &ops, &stats, msg, sizeof msg);
        check_error("cancellation", st, FB_ERR_CANCELLED, msg, "cancelled while loading", &e);
        CHECK(stats.chunks > 0 && atomic_load(&cancel_checks) == 20, "cancelled after %" PRIu64 " copies, %ld checks",
              stats.chunks, atomic_load(&cancel_checks));
        fake_free(&e);

        /* no staging memory at all */
        test_host_reset();
        fake_init(&e, arena_bytes);
        e.refuse_staging = 1;
        ops = fake_ops(&e);
        msg[0] = '\0';
        st = jf_upload_run(&test_host, items, N_TENSORS, &o, &ops, &stats, msg, sizeof msg);
        CHECK(st == FB_ERR_OUT_OF_MEMORY && strstr(msg, "upload buffers") && e.copies == 0,
              "no staging memory: status %d: %s", (int)st, msg);
        fake_free(&e);

        /* a tensor that cannot be decoded: refused before anything starts */
        jf_upload_item bad[2] = {items[0], items[9]};
        bad[1].dev_type = JF_T_Q4_0; /* Q8_0 rows are never turned into Q4_0 */
        bad[1].bytes = (uint64_t)bad[1].src.ne[1] * (uint64_t)jf_row_bytes(JF_T_Q4_0, bad[1].src.ne[0]);
        test_host_reset();
        fake_init(&e, arena_bytes);
        ops = fake_ops(&e);
        msg[0] = '\0';
        st = jf_upload_run(&test_host, bad, 2, &o, &ops, &stats, msg, sizeof msg);
        CHECK(st == FB_ERR_UNSUPPORTED && strstr(msg, "q8_0 re-laid") && e.copies == 0 && e.staging_live == 0,
              "an undecodable tensor refused up front: status %d: %s", (int)st, msg);
        fake_free(&e);

        /* page-locked memory refused: pageable staging, the same bytes */
        uint8_t *ref = reference_arena(items, N_TENSORS, arena_bytes);
        test_host_reset();
        fake_init(&e, arena_bytes);
        e.refuse_pinned = 1;
        ops = fake_ops(&e);
        msg[0] = '\0';
        st = jf_upload_run(&test_host, items, N_TENSORS, &o, &ops, &stats, msg, sizeof msg);
        CHECK(st == FB_OK && stats.pinned == 0 && memcmp(e.arena, ref, arena_bytes) == 0 && e.violations == 0,
              "pageable staging: status %d, pinned %d: %s", (int)st, stats.pinned, msg);
        fake_free(&e);
        free(ref);
    }
    free(items);
}

/* The arena's layout of a synthetic model, and its upload from the mapped
 * file: a Q4_K_M mix of 3 layers (two kinds at native), and an odd shape
 * whose W_q takes no whole number of 256-byte blocks. */
static void test_model_layout(const char *tmp_dir, int odd) {
    fb_synth_spec spec;
    fb_synth_preset("tiny", &spec);
    spec.n_embd = 256, spec.n_head = 4, spec.n_head_kv = 2, spec.n_ff = 512, spec.n_layer = 3, spec.n_vocab = 301;
    spec.tied_output = false, spec.mix = FB_SYNTH_MIX_Q4_K_M;
    if (odd) {
        spec.n_embd = 90, spec.n_head = 5, spec.n_head_kv = 1, spec.n_ff = 250, spec.n_vocab = 1001;
        spec.mix = FB_SYNTH_MIX_NONE, spec.type = GGUF_TYPE_F16;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/jf_upload_%s.gguf", tmp_dir, odd ? "odd" : "q4_k_m");
    fb_error err;
    CHECK(fb_synth_write(&spec, path, NULL, &err) == 0, "synth: %s", err.msg);
    test_model tm;
    if (test_model_open(path, &tm) != 0) return;
    const fb_model_view *mv = &tm.view.view;
    float rope_values[32];
    int n_rot = (int)mv->n_rot;
    jf_rope_inv_freq(rope_values, n_rot, 10000.0f, NULL);
    const fb_tensor_view rope = {.name = "rope",
                                 .type = JF_T_F32,
                                 .n_dims = 1,
                                 .ne = {n_rot / 2, 1, 1, 1},
                                 .data = rope_values,
                                 .n_bytes = (uint64_t)(n_rot / 2) * 4};
    for (int w = JF_F32; w <= (odd ? JF_BF16 : JF_NATIVE); w++) {
        jf_config c;
        char msg[512];
        CHECK(jf_config_from_view(mv, 0, (jf_wtype)w, &c, msg, sizeof msg) == 0, "config: %s", msg);
        jf_upload_item *items;
        size_t n;
        uint64_t arena_bytes;
        CHECK(jf_upload_items(&c, mv, &rope, &items, &n, &arena_bytes, msg, sizeof msg) == 0, "items: %s", msg);
        jf_plan plan;
        jf_plan_compute(&c, &plan);
        /* 2 + 9 per layer + output + rope; aligned, in order, not overlapping; Q, K, V packed */
        int ordered = 1, aligned = 1, packed = 1;
        for (size_t i = 0; i < n; i++) {
            if (items[i].role != JF_W_K && items[i].role != JF_W_V) aligned &= items[i].offset % JF_ARENA_ALIGN == 0;
            if (i > 0) ordered &= items[i].offset >= items[i - 1].offset + items[i - 1].bytes;
            if (items[i].role == JF_W_K || items[i].role == JF_W_V)
                packed &= items[i].offset == items[i - 1].offset + items[i - 1].bytes;
        }
        CHECK(n == 2 + 9 * (size_t)c.n_layers + 2 && ordered && aligned && packed && arena_bytes >= plan.weights &&
                  arena_bytes < plan.weights + n * JF_ARENA_ALIGN,
              "%s, wtype %d: %zu items, ordered %d, aligned %d, Q/K/V packed %d, arena %" PRIu64
              " for a plan of %" PRIu64,
              odd ? "odd" : "Q4_K_M", w, n, ordered, aligned, packed, arena_bytes, plan.weights);
        jf_buffers b = {0};
        jf_layer_buffers layers[3] = {0};
        b.layers = layers;
        uint8_t *arena = calloc(1, arena_bytes);
        jf_upload_bind(items, n, arena, c.tied, &b);
        const fb_layer_view *L1 = FB_MODEL_LAYER(mv, 1);
        uint64_t q_bytes =
            (uint64_t)L1->attn_q.ne[1] * (uint64_t)jf_row_bytes(jf_device_type(&c, L1->attn_q.type), L1->attn_q.ne[0]);
        CHECK(b.token_embd == arena && b.output && b.output != b.token_embd && b.rope_inv_freq && b.output_norm &&
                  layers[2].w_down && layers[1].ffn_norm &&
                  (uint8_t *)layers[1].w_qkv + q_bytes == arena + items[1 + 9 + 2].offset,
              "wtype %d: bound; layer 1's W_k right after its W_q", w);

        /* from the mapped file, with prefaulting, against jf_layout_rows */
        uint8_t *ref = reference_arena(items, n, arena_bytes);
        test_host_reset();
        FakeDevice d;
        jf_upload_stats stats;
        char diff[300];
        fb_status st = run_fake(items, n, arena_bytes, &(jf_upload_options){.threads = 2, .slot_bytes = 65536}, &d,
                                &stats, msg, sizeof msg);
        first_difference(d.arena, ref, items, n, arena_bytes, diff, sizeof diff);
        CHECK(st == FB_OK && diff[0] == '\0' && d.violations == 0, "wtype %d from the file: %s %s", w, msg, diff);
        fake_free(&d);
        free(ref), free(arena), free(items);
    }
    /* tied: the head is token_embd, and no item for it */
    fb_model_view tied = *mv;
    tied.tied_output = 1;
    jf_config c;
    char msg[512];
    jf_upload_item *items;
    size_t n;
    uint64_t arena_bytes;
    CHECK(jf_config_from_view(&tied, 0, JF_F16, &c, msg, sizeof msg) == 0 &&
              jf_upload_items(&c, &tied, NULL, &items, &n, &arena_bytes, msg, sizeof msg) == 0,
          "tied items: %s", msg);
    jf_buffers b = {0};
    jf_layer_buffers layers[3] = {0};
    b.layers = layers;
    uint8_t arena[1];
    jf_upload_bind(items, n, arena, c.tied, &b);
    CHECK(n == 2 + 9 * 3 && b.output == b.token_embd && !b.rope_inv_freq, "tied: %zu items, the head is token_embd", n);
    free(items);
    test_model_close(&tm);
    unlink(path);
}

int main(int argc, char **argv) {
    const char *tmp_dir = argc > 1 ? argv[1] : "/tmp";
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 0) : (uint64_t)time(NULL);
    printf("seed %" PRIu64 "\n", seed);
    rng_state = seed;
    alarm(240); /* a hang is a failure */
    make_tensors();
    test_bytes();
    test_every_pattern();
    test_errors();
    test_model_layout(tmp_dir, 0);
    test_model_layout(tmp_dir, 1);
    for (int i = 0; i < N_TENSORS; i++) free(tensors[i].data);
    return check_summary();
}
