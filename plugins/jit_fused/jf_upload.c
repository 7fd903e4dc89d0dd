/* jf_upload.c - the weights' places in the arena, and the pipeline that
 * converts them from the mapped file and copies them there (see jf_upload.h). */
#define _GNU_SOURCE
#include "jf_upload.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14; older kernels answer EINVAL and get MADV_WILLNEED */
#endif

#define DEFAULT_SLOT_BYTES ((size_t)4 << 20)

// ----------------------------------------------------------------------------
// The arena's layout

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

typedef struct Layout {
    jf_upload_item *items;
    size_t n, cap;
    uint64_t offset; /* where the next weight goes */
    char *msg;
    size_t msg_size;
} Layout;

/* Append t's rows as dev_type at the current offset; the next weight goes
 * after max(bytes, reserve), aligned unless `packed` (W_q, W_k, W_v). */
static int place(Layout *L, const fb_tensor_view *t, uint32_t dev_type, jf_weight_role role, int layer,
                 uint64_t reserve, bool packed) {
    int64_t row = jf_row_bytes(dev_type, t->ne[0]);
    if (row <= 0 || t->ne[1] < 1 || (uint64_t)t->ne[1] > UINT64_MAX / 2 / (uint64_t)row) {
        snprintf(L->msg, L->msg_size, "jit_fused: tensor '%s' of %" PRId64 " values per row has no device layout",
                 t->name, t->ne[0]);
        return -1;
    }
    if (L->n == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 64;
        jf_upload_item *grown = realloc(L->items, cap * sizeof *grown);
        if (!grown) {
            snprintf(L->msg, L->msg_size, "jit_fused: out of host memory planning the weights");
            return -2;
        }
        L->items = grown, L->cap = cap;
    }
    uint64_t bytes = (uint64_t)t->ne[1] * (uint64_t)row;
    L->items[L->n++] = (jf_upload_item){
        .src = *t, .dev_type = dev_type, .offset = L->offset, .bytes = bytes, .role = role, .layer = layer};
    uint64_t end = L->offset + (bytes > reserve ? bytes : reserve);
    L->offset = packed ? end : align_up(end, JF_ARENA_ALIGN);
    return 0;
}

int jf_upload_items(const jf_config *c, const fb_model_view *mv, const fb_tensor_view *rope, jf_upload_item **items,
                    size_t *n_items, uint64_t *arena_bytes, char *msg, size_t msg_size) {
    Layout L = {.msg = msg, .msg_size = msg_size};
    const uint64_t vec = (uint64_t)c->ld_dim * sizeof(float);
    int rc = place(&L, mv->token_embd, jf_device_type(c, mv->token_embd->type), JF_W_TOKEN_EMBD, -1, 0, false);
    for (int l = 0; l < c->n_layers && rc == 0; l++) {
        const fb_layer_view *y = FB_MODEL_LAYER(mv, l);
        rc = place(&L, &y->attn_norm, JF_T_F32, JF_W_ATTN_NORM, l, vec, false);
        // W_q, W_k, W_v stacked, each at its own type's row stride (jf_qkv_rope in the kernels)
        if (rc == 0) rc = place(&L, &y->attn_q, jf_device_type(c, y->attn_q.type), JF_W_Q, l, 0, true);
        if (rc == 0) rc = place(&L, &y->attn_k, jf_device_type(c, y->attn_k.type), JF_W_K, l, 0, true);
        if (rc == 0) rc = place(&L, &y->attn_v, jf_device_type(c, y->attn_v.type), JF_W_V, l, 0, false);
        if (rc == 0) rc = place(&L, &y->attn_output, jf_device_type(c, y->attn_output.type), JF_W_O, l, 0, false);
        if (rc == 0) rc = place(&L, &y->ffn_norm, JF_T_F32, JF_W_FFN_NORM, l, vec, false);
        if (rc == 0) rc = place(&L, &y->ffn_gate, jf_device_type(c, y->ffn_gate.type), JF_W_GATE, l, 0, false);
        if (rc == 0) rc = place(&L, &y->ffn_up, jf_device_type(c, y->ffn_up.type), JF_W_UP, l, 0, false);
        if (rc == 0) rc = place(&L, &y->ffn_down, jf_device_type(c, y->ffn_down.type), JF_W_DOWN, l, 0, false);
    }
    if (rc == 0) rc = place(&L, mv->output_norm, JF_T_F32, JF_W_OUTPUT_NORM, -1, vec, false);
    if (rc == 0 && !c->tied) rc = place(&L, mv->output, jf_device_type(c, mv->output->type), JF_W_OUTPUT, -1, 0, false);
    if (rc == 0 && rope) rc = place(&L, rope, JF_T_F32, JF_W_ROPE, -1, 0, false);
    if (rc != 0) {
        free(L.items);
        *items = NULL, *n_items = 0, *arena_bytes = 0;
        return rc;
    }
    *items = L.items, *n_items = L.n, *arena_bytes = L.offset;
    return 0;
}

void jf_upload_bind(const jf_upload_item *items, size_t n_items, void *arena, int tied, jf_buffers *b) {
    for (size_t i = 0; i < n_items; i++) {
        void *p = (uint8_t *)arena + items[i].offset;
        jf_layer_buffers *y = items[i].layer >= 0 ? &b->layers[items[i].layer] : NULL;
        switch (items[i].role) {
        case JF_W_TOKEN_EMBD: b->token_embd = p; break;
        case JF_W_OUTPUT_NORM: b->output_norm = p; break;
        case JF_W_OUTPUT: b->output = p; break;
        case JF_W_ROPE: b->rope_inv_freq = p; break;
        case JF_W_ATTN_NORM: y->attn_norm = p; break;
        case JF_W_Q: y->w_qkv = p; break; // W_k and W_v follow it
        case JF_W_K:
        case JF_W_V: break;
        case JF_W_O: y->w_o = p; break;
        case JF_W_FFN_NORM: y->ffn_norm = p; break;
        case JF_W_GATE: y->w_gate = p; break;
        case JF_W_UP: y->w_up = p; break;
        case JF_W_DOWN: y->w_down = p; break;
        }
    }
    if (tied) b->output = b->token_embd;
}

// ----------------------------------------------------------------------------
// Converting one chunk (what a worker does)

static int is_copy_type(uint32_t t) { return t == JF_T_F32 || t == JF_T_F16 || t == JF_T_BF16; }

/* Does a row of n values of type t (F32, F16, BF16) hold a NaN? NaN means
 * all exponent bits set and a mantissa: |x| above infinity's bits. Branch-
 * free, in blocks of a fixed 64 values, which gcc vectorises at -O2 (a loop
 * of unknown length it leaves scalar there: 3x slower for the whole load). */
#define NAN_BLOCK 64
static bool row_has_nan(uint32_t t, const void *row, int64_t n) {
    unsigned any = 0;
    int64_t i = 0;
    if (t == JF_T_F32) {
        const uint32_t *v = row;
        for (; i + NAN_BLOCK <= n; i += NAN_BLOCK)
            for (int k = 0; k < NAN_BLOCK; k++) any |= (v[i + k] & 0x7FFFFFFFu) > 0x7F800000u;
        for (; i < n; i++) any |= (v[i] & 0x7FFFFFFFu) > 0x7F800000u;
    } else {
        const uint16_t *v = row;
        const uint16_t inf = t == JF_T_F16 ? 0x7C00u : 0x7F80u;
        for (; i + NAN_BLOCK <= n; i += NAN_BLOCK)
            for (int k = 0; k < NAN_BLOCK; k++) any |= (uint16_t)(v[i + k] & 0x7FFFu) > inf;
        for (; i < n; i++) any |= (uint16_t)(v[i] & 0x7FFFu) > inf;
    }
    return any != 0;
}

int jf_upload_convert(const fb_host *host, const jf_upload_item *item, int64_t row0, int64_t rows, void *dst,
                      int fast_copy) {
    const fb_tensor_view *t = &item->src;
    const int64_t cols = t->ne[0];
    const size_t src_row = (size_t)host->row_bytes(t->type, cols), dst_row = (size_t)jf_row_bytes(item->dev_type, cols);
    if (src_row == 0 || dst_row == 0) return -1;
    const uint8_t *src = (const uint8_t *)t->data + (size_t)row0 * src_row;
    uint8_t *out = dst;
    if (!fast_copy || t->type != item->dev_type || !is_copy_type(t->type))
        return jf_layout_rows(host, t->type, src, rows, cols, out, item->dev_type, 1);
    // Same type: the host's decode and re-encode give back every value's bits,
    // except a NaN's (quieted): rows with one take the host's path.
    for (int64_t r = 0; r < rows; r++, src += src_row, out += dst_row) {
        memcpy(out, src, src_row);
        memset(out + src_row, 0, dst_row - src_row);
        if (row_has_nan(t->type, out, cols)) {
            int rc = jf_layout_rows(host, t->type, src, 1, cols, out, item->dev_type, 1);
            if (rc != 0) return rc;
        }
    }
    return 0;
}

/* Ask the kernel to map [p, p + bytes) of the file now, in one call, rather
 * than one page fault per 64 KiB when the rows are read; WILLNEED (read
 * ahead) where MADV_POPULATE_READ is not known. Advice only: errors ignored. */
static void prefault(const void *p, size_t bytes, uintptr_t page) {
    static atomic_int no_populate;
    uintptr_t start = (uintptr_t)p & ~(uintptr_t)(page - 1);
    size_t len = (size_t)((uintptr_t)p + bytes - start);
    if (!atomic_load_explicit(&no_populate, memory_order_relaxed)) {
        if (madvise((void *)start, len, MADV_POPULATE_READ) == 0) return;
        atomic_store_explicit(&no_populate, 1, memory_order_relaxed);
    }
    (void)madvise((void *)start, len, MADV_WILLNEED);
}

// ----------------------------------------------------------------------------
// The pipeline

typedef struct Chunk {
    const jf_upload_item *item;
    int64_t row0, rows;
} Chunk;

/* A ring of slot numbers. */
typedef struct Queue {
    int slot[JF_UPLOAD_MAX_SLOTS];
    int head, count;
} Queue;

static void queue_push(Queue *q, int s) { q->slot[(q->head + q->count++) % JF_UPLOAD_MAX_SLOTS] = s; }
static int queue_pop(Queue *q) {
    int s = q->slot[q->head];
    q->head = (q->head + 1) % JF_UPLOAD_MAX_SLOTS;
    q->count--;
    return s;
}

typedef struct Pipeline {
    const fb_host *host;
    bool prefault, fast_copy;
    uintptr_t page; /* bytes */
    uint8_t *slot_buf[JF_UPLOAD_MAX_SLOTS];
    // Under lock: the queues, what each queued slot holds, and its result.
    pthread_mutex_t lock;
    pthread_cond_t work_ready, work_done;
    Queue to_convert, converted;
    Chunk job[JF_UPLOAD_MAX_SLOTS];
    int rc[JF_UPLOAD_MAX_SLOTS];
    bool quit;
} Pipeline;

static void *worker(void *arg) {
    Pipeline *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->to_convert.count == 0 && !p->quit) pthread_cond_wait(&p->work_ready, &p->lock);
        if (p->to_convert.count == 0) break; // quit, and nothing left
        int s = queue_pop(&p->to_convert);
        Chunk job = p->job[s];
        pthread_mutex_unlock(&p->lock);
        const fb_tensor_view *t = &job.item->src;
        size_t src_row = (size_t)p->host->row_bytes(t->type, t->ne[0]);
        if (p->prefault)
            prefault((const uint8_t *)t->data + (size_t)job.row0 * src_row, (size_t)job.rows * src_row, p->page);
        int rc = jf_upload_convert(p->host, job.item, job.row0, job.rows, p->slot_buf[s], p->fast_copy);
        pthread_mutex_lock(&p->lock);
        p->rc[s] = rc;
        queue_push(&p->converted, s);
        pthread_cond_signal(&p->work_done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int jf_upload_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static fb_status fail(fb_status st, char *msg, size_t msg_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static fb_status fail(fb_status st, char *msg, size_t msg_size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msg_size, fmt, ap);
    va_end(ap);
    return st;
}

/* Every item decodable into its device rows, and sized as the layout says. */
static fb_status check_items(const fb_host *host, const jf_upload_item *items, size_t n, size_t *max_row, char *msg,
                             size_t msg_size) {
    *max_row = 0;
    for (size_t i = 0; i < n; i++) {
        const fb_tensor_view *t = &items[i].src;
        uint64_t src_row = host->row_bytes(t->type, t->ne[0]);
        int64_t dst_row = jf_row_bytes(items[i].dev_type, t->ne[0]);
        bool block = !is_copy_type(items[i].dev_type);
        if (src_row == 0 || dst_row <= 0 || (block && t->type != items[i].dev_type) || !t->data)
            return fail(FB_ERR_UNSUPPORTED, msg, msg_size,
                        "jit_fused: tensor '%s' is %s, which cannot be decoded into the device's %s rows", t->name,
                        host->type_name(t->type), host->type_name(items[i].dev_type));
        if (t->ne[1] < 1 || items[i].bytes != (uint64_t)t->ne[1] * (uint64_t)dst_row)
            return fail(FB_ERR_INTERNAL, msg, msg_size,
                        "jit_fused: tensor '%s' was given %" PRIu64 " device bytes for %" PRId64 " rows of %" PRId64,
                        t->name, items[i].bytes, t->ne[1], dst_row);
        if ((size_t)dst_row > *max_row) *max_row = (size_t)dst_row;
    }
    return FB_OK;
}

enum { SLOT_FREE, SLOT_CONVERTING, SLOT_COPYING };

fb_status jf_upload_run(const fb_host *host, const jf_upload_item *items, size_t n_items,
                        const jf_upload_options *options, const jf_upload_device *dev, jf_upload_stats *stats,
                        char *msg, size_t msg_size) {
    jf_upload_options o = options ? *options : (jf_upload_options){0};
    jf_upload_stats done = {0};
    size_t max_row;
    fb_status st = check_items(host, items, n_items, &max_row, msg, msg_size);
    if (st != FB_OK) return st;
    if (o.threads <= 0) o.threads = jf_upload_cpus();
    if (o.threads > JF_UPLOAD_MAX_THREADS) o.threads = JF_UPLOAD_MAX_THREADS;
    if (o.slots <= 0) o.slots = o.threads + 2;
    if (o.slots < 2) o.slots = 2;
    if (o.slots > JF_UPLOAD_MAX_SLOTS) o.slots = JF_UPLOAD_MAX_SLOTS;
    if (o.slot_bytes == 0) o.slot_bytes = DEFAULT_SLOT_BYTES;
    if (o.slot_bytes < max_row) o.slot_bytes = max_row;
    o.slot_bytes = (size_t)align_up(o.slot_bytes, 4096); // each slot starts page-aligned
    if (o.slot_bytes > SIZE_MAX / (size_t)o.slots)
        return fail(FB_ERR_OUT_OF_MEMORY, msg, msg_size, "jit_fused: a row of %zu bytes is too large to stage",
                    max_row);
    uint64_t file_total = 0;
    for (size_t i = 0; i < n_items; i++)
        file_total += (uint64_t)items[i].src.ne[1] * host->row_bytes(items[i].src.type, items[i].src.ne[0]);

    int pinned = 0;
    uint8_t *block = dev->staging_alloc(dev->ctx, (size_t)o.slots * o.slot_bytes, &pinned);
    if (!block)
        return fail(FB_ERR_OUT_OF_MEMORY, msg, msg_size,
                    "jit_fused: out of host memory for %d upload buffers of %zu MiB", o.slots, o.slot_bytes >> 20);
    long page = sysconf(_SC_PAGESIZE);
    Pipeline p = {.host = host,
                  .prefault = !o.no_prefault,
                  .fast_copy = !o.no_fast_copy,
                  .page = page > 0 ? (uintptr_t)page : 4096};
    for (int s = 0; s < o.slots; s++) p.slot_buf[s] = block + (size_t)s * o.slot_bytes;
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.work_ready, NULL);
    pthread_cond_init(&p.work_done, NULL);
    pthread_t tids[JF_UPLOAD_MAX_THREADS];
    int started = 0;
    while (started < o.threads && pthread_create(&tids[started], NULL, worker, &p) == 0) started++;
    if (started == 0)
        st = fail(FB_ERR_OUT_OF_MEMORY, msg, msg_size, "jit_fused: cannot start a thread to load weights");

    // The calling thread: hand free slots to the workers, enqueue each
    // converted slot's copy, reuse a slot once its copy has read it.
    int state[JF_UPLOAD_MAX_SLOTS] = {0};
    uint64_t copy_order[JF_UPLOAD_MAX_SLOTS] = {0}, copies = 0, file_done = 0;
    size_t next_item = 0;
    int64_t next_row = 0;
    int converting = 0;
    double reported = 0;
    pthread_mutex_lock(&p.lock);
    for (;;) {
        while (p.converted.count > 0) { // enqueue the copies of what is converted
            int s = queue_pop(&p.converted), rc = p.rc[s];
            Chunk job = p.job[s];
            pthread_mutex_unlock(&p.lock);
            converting--;
            state[s] = SLOT_FREE;
            const fb_tensor_view *t = &job.item->src;
            if (rc != 0 && st == FB_OK)
                st = rc == -2 ? fail(FB_ERR_OUT_OF_MEMORY, msg, msg_size,
                                     "jit_fused: out of host memory converting '%s'", t->name)
                              : fail(FB_ERR_UNSUPPORTED, msg, msg_size,
                                     "jit_fused: cannot decode rows %" PRId64 "..%" PRId64 " of tensor '%s' (%s)",
                                     job.row0, job.row0 + job.rows - 1, t->name, host->type_name(t->type));
            if (st == FB_OK) {
                size_t dst_row = (size_t)jf_row_bytes(job.item->dev_type, t->ne[0]);
                char why[400] = "";
                if (dev->copy(dev->ctx, s, job.item->offset + (uint64_t)job.row0 * dst_row, p.slot_buf[s],
                              (size_t)job.rows * dst_row, why, sizeof why) != 0)
                    st = fail(FB_ERR_INTERNAL, msg, msg_size, "%s (uploading '%s')", why, t->name);
                else {
                    state[s] = SLOT_COPYING;
                    copy_order[s] = ++copies;
                    done.device_bytes += (uint64_t)job.rows * dst_row;
                    file_done += (uint64_t)job.rows * host->row_bytes(t->type, t->ne[0]);
                }
            }
            if (st == FB_OK && host->progress && file_total &&
                ((double)file_done / (double)file_total >= reported + 0.01 || file_done == file_total)) {
                reported = (double)file_done / (double)file_total;
                host->progress(host, "jit_fused: converting and uploading weights", reported);
            }
            pthread_mutex_lock(&p.lock);
        }
        bool more = st == FB_OK && next_item < n_items;
        if (more && host->is_cancelled && host->is_cancelled(host)) {
            st = fail(FB_ERR_CANCELLED, msg, msg_size, "jit_fused: cancelled while loading '%s'",
                      items[next_item].src.name);
            more = false;
        }
        if (more) {
            int s = -1, oldest = -1;
            for (int k = 0; k < o.slots && s < 0; k++)
                if (state[k] == SLOT_FREE) s = k;
                else if (state[k] == SLOT_COPYING && (oldest < 0 || copy_order[k] < copy_order[oldest]))
                    oldest = k;
            if (s < 0 && oldest >= 0) { // every slot busy: the oldest copy finishes first
                pthread_mutex_unlock(&p.lock);
                char why[400] = "";
                if (dev->wait(dev->ctx, oldest, why, sizeof why) != 0)
                    st = fail(FB_ERR_INTERNAL, msg, msg_size, "%s", why);
                else
                    state[oldest] = SLOT_FREE;
                pthread_mutex_lock(&p.lock);
                continue;
            }
            if (s >= 0) { // the next chunk: whole rows of one tensor, at most a slot of device rows
                const jf_upload_item *it = &items[next_item];
                int64_t per_slot = (int64_t)(o.slot_bytes / (size_t)jf_row_bytes(it->dev_type, it->src.ne[0]));
                int64_t rows = it->src.ne[1] - next_row < per_slot ? it->src.ne[1] - next_row : per_slot;
                p.job[s] = (Chunk){.item = it, .row0 = next_row, .rows = rows};
                next_row += rows;
                if (next_row == it->src.ne[1]) next_item++, next_row = 0;
                state[s] = SLOT_CONVERTING;
                converting++;
                queue_push(&p.to_convert, s);
                pthread_cond_signal(&p.work_ready);
                continue;
            }
        }
        if (converting == 0) break; // all handed out (or stopping), and nothing left in a worker's hands
        pthread_cond_wait(&p.work_done, &p.lock);
    }
    p.quit = true;
    pthread_cond_broadcast(&p.work_ready);
    pthread_mutex_unlock(&p.lock);
    for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
    char why[400] = "";
    if (dev->drain(dev->ctx, why, sizeof why) != 0 && st == FB_OK) st = fail(FB_ERR_INTERNAL, msg, msg_size, "%s", why);
    dev->staging_free(dev->ctx, block, pinned);
    pthread_cond_destroy(&p.work_done);
    pthread_cond_destroy(&p.work_ready);
    pthread_mutex_destroy(&p.lock);
    done.file_bytes = file_done;
    done.chunks = copies;
    done.threads = started;
    done.slots = o.slots;
    done.slot_bytes = o.slot_bytes;
    done.pinned = pinned;
    if (stats) *stats = done;
    return st;
}
