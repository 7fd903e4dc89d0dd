/* jf_upload.h - jit_fused's weight loading: where each weight goes in one
 * device allocation (the "arena"), and the pipeline that fills it.
 *
 * The pipeline: a pool of worker threads converts chunks of rows (at most
 * slot_bytes of device rows, of one tensor) from the mapped file into a ring
 * of staging buffers ("slots"), each worker first asking the kernel to map
 * its chunk's pages (madvise); the calling thread hands free slots to the
 * workers, enqueues each converted slot's copy as soon as it is ready (in
 * whatever order the workers finish), and reuses a slot only once its copy
 * has finished reading it. The device side (staging allocation, the copy,
 * the wait for a slot's copy, the final drain) is a table of function
 * pointers, so that the whole pipeline runs without a GPU in the tests
 * (tests/test_jf_upload.c: memcpy into host memory, copies deferred as a
 * stream would) and in bench/bench_jf_load.c.
 *
 * The bytes are those of jf_layout_rows, single-threaded, tensor by tensor:
 * same-type F32, F16 and BF16 rows are copied (a row holding a NaN goes
 * through jf_layout_rows instead, which may quiet it), every other row goes
 * through jf_layout_rows. */
#ifndef FB_JF_UPLOAD_H
#define FB_JF_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "fairbench/plugin.h"
#include "jf_host.h"

/* ------------------------------------------------------------------ the arena's layout */

/* What a weight is to the forward pass (the jf_buffers field it lands in). */
typedef enum jf_weight_role {
    JF_W_TOKEN_EMBD,
    JF_W_OUTPUT_NORM,
    JF_W_OUTPUT,
    JF_W_ROPE, /* rope_inv_freq: computed on the host, uploaded like a tensor */
    JF_W_ATTN_NORM,
    JF_W_Q, /* W_q, W_k, W_v: stacked, one after the other, into w_qkv */
    JF_W_K,
    JF_W_V,
    JF_W_O,
    JF_W_FFN_NORM,
    JF_W_GATE,
    JF_W_UP,
    JF_W_DOWN
} jf_weight_role;

/* One tensor's rows into the arena. */
typedef struct jf_upload_item {
    fb_tensor_view src; /* rows of src.type, host->row_bytes(src.type, src.ne[0]) apart, from src.data */
    uint32_t dev_type;  /* the device rows' type (jf_row_bytes) */
    uint64_t offset;    /* where the first row goes, in bytes from the arena's start (a multiple of 256) */
    uint64_t bytes;     /* src.ne[1] device rows */
    jf_weight_role role;
    int layer; /* for the per-layer roles; -1 otherwise */
} jf_upload_item;

#define JF_ARENA_ALIGN 256 /* every weight (and the stacked Q, K, V block) starts this aligned */

/* The items of every weight of mv at c's storage types, in the order the
 * file holds them (token_embd, then layer by layer, then output_norm and
 * the LM head unless tied; rope last: a view of n_rot / 2 f32 values the
 * caller keeps alive). Vectors (norms) reserve ld_dim floats; the bytes the
 * rows do not cover stay as the arena was (the plugin zeroes it). *items is
 * malloc'd (the caller frees it); *arena_bytes is what the arena needs.
 * Returns 0, or with a sentence -1 (a row of no device layout) or -2 (out
 * of memory). */
int jf_upload_items(const jf_config *c, const fb_model_view *mv, const fb_tensor_view *rope, jf_upload_item **items,
                    size_t *n_items, uint64_t *arena_bytes, char *msg, size_t msg_size);

/* Point b's weight fields (and b->layers[l]'s, an array the caller made of
 * c->n_layers entries) at arena + each item's offset; output is token_embd
 * when tied. The layers' kind is left alone. */
void jf_upload_bind(const jf_upload_item *items, size_t n_items, void *arena, int tied, jf_buffers *b);

/* ------------------------------------------------------------------ the pipeline */

#define JF_UPLOAD_MAX_THREADS 64
#define JF_UPLOAD_MAX_SLOTS (JF_UPLOAD_MAX_THREADS + 4)

/* The device side. Called from the thread that called jf_upload_run only,
 * never from the workers. Every function returns 0, or -1 with a sentence
 * in msg (the pipeline then stops, drains and returns FB_ERR_INTERNAL with
 * it). */
typedef struct jf_upload_device {
    void *ctx;
    /* One block of `bytes` for every staging buffer: page-locked when it can
     * be (*pinned = 1), else pageable (*pinned = 0); NULL when neither. */
    void *(*staging_alloc)(void *ctx, size_t bytes, int *pinned);
    void (*staging_free)(void *ctx, void *block, int pinned);
    /* Enqueue a copy of `bytes` from src (inside staging slot `slot`) to
     * arena + dst_offset; it may still be reading src when this returns. */
    int (*copy)(void *ctx, int slot, uint64_t dst_offset, const void *src, size_t bytes, char *msg, size_t msg_size);
    /* Return once the last copy enqueued from `slot` has finished reading it. */
    int (*wait)(void *ctx, int slot, char *msg, size_t msg_size);
    /* Return once every enqueued copy has finished (also called after an
     * error, before the staging block is freed). */
    int (*drain)(void *ctx, char *msg, size_t msg_size);
} jf_upload_device;

typedef struct jf_upload_options {
    int threads;       /* converting workers, 1 .. JF_UPLOAD_MAX_THREADS (0: every CPU this process may use) */
    int slots;         /* staging buffers, 2 .. JF_UPLOAD_MAX_SLOTS (0: threads + 2) */
    size_t slot_bytes; /* bytes per staging buffer (0: 4 MiB); raised to the largest device row */
    int no_prefault;   /* 1: the workers do not madvise the source (to measure what it gives) */
    int no_fast_copy;  /* 1: same-type rows through jf_layout_rows too (to measure what the copy gives) */
} jf_upload_options;

typedef struct jf_upload_stats {
    uint64_t file_bytes;   /* source bytes read: the tensors' rows in the file */
    uint64_t device_bytes; /* bytes copied to the arena */
    uint64_t chunks;       /* copies enqueued */
    int threads, slots;    /* as run */
    size_t slot_bytes;
    int pinned; /* 1: page-locked staging; 0: pageable (a copy then holds the calling thread while it reads) */
} jf_upload_stats;

/* Every item into the arena through dev. Reports progress through
 * host->progress ("jit_fused: converting and uploading weights"), checks
 * host->is_cancelled between chunks. Returns FB_OK; FB_ERR_UNSUPPORTED (a
 * tensor of a type that cannot be decoded into its device type),
 * FB_ERR_OUT_OF_MEMORY (staging, threads), FB_ERR_INTERNAL (a device call
 * failed), FB_ERR_CANCELLED; each with a sentence in msg. In every case the
 * workers have ended, every copy has been drained and the staging block is
 * freed before it returns. stats may be NULL. */
fb_status jf_upload_run(const fb_host *host, const jf_upload_item *items, size_t n_items,
                        const jf_upload_options *options, const jf_upload_device *dev, jf_upload_stats *stats,
                        char *msg, size_t msg_size);

/* Convert rows [row0, row0 + rows) of item into dst (device rows) as the
 * pipeline's workers do: 0, or as jf_layout_rows. For the tests and the
 * benchmark. */
int jf_upload_convert(const fb_host *host, const jf_upload_item *item, int64_t row0, int64_t rows, void *dst,
                      int fast_copy);

/* CPUs this process may run on (sched_getaffinity), at least 1. */
int jf_upload_cpus(void);

#endif
