/* cpu_ref.c - the reference backend: LLaMA decode in plain C11.
 *
 * This file is the correctness oracle every other backend is checked
 * against, so it is written to be read top to bottom: the model's
 * hyper-parameters, its weights, the activation buffers, then one small
 * function per block of the network, and forward() which reads like the
 * paper. The only speed work lives in dot.c (one row dot-product kernel per
 * weight format, picked at run time for the CPU's SIMD level) and in the
 * thread pool (threadpool.c) that splits each matrix's rows across cores.
 *
 * Precision: weights are held as the profile asks (f32, f16, bf16, or the
 * file's own block formats decoded on the fly); every product is accumulated
 * in f32; activations, norms and the KV cache are f32.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#endif
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dot.h"
#include "bf16.h"
#include "blocks.h"
#include "fairbench/plugin.h"
#include "threadpool.h"

#define CPU_REF_VERSION "1.0.0"

// ----------------------------------------------------------------------------
// Hyper-parameters (copied from the model view)

typedef struct Config {
    int dim;        // transformer width (n_embd)
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int kv_dim;     // n_kv_heads * head_dim
    int q_dim;      // n_heads * head_dim
    int hidden_dim; // feed-forward width (n_ff)
    int vocab_size;
    int n_rot;      // rotated dimensions per head
    int max_seq;    // KV-cache positions allocated
    float rms_eps;
} Config;

// ----------------------------------------------------------------------------
// Weights

/* A weight matrix of `rows` rows, each `cols` values stored in GGUF `type`. */
typedef struct Matrix {
    uint32_t type;
    int rows, cols;
    const uint8_t *data;  // rows * row_bytes bytes: into the file (native) or owned
    size_t row_bytes;
    void *owned;          // converted copy, or NULL when data points into the file
    cr_dot_fn dot;        // row . x kernel for `type`
} Matrix;

typedef struct LayerWeights {
    float *attn_norm;     // (dim)
    Matrix wq;            // (q_dim rows, dim cols)
    Matrix wk, wv;        // (kv_dim, dim)
    Matrix wo;            // (dim, q_dim)
    float *ffn_norm;      // (dim)
    Matrix w_gate, w_up;  // (hidden_dim, dim)
    Matrix w_down;        // (dim, hidden_dim)
} LayerWeights;

typedef struct TransformerWeights {
    Matrix token_embd;    // (vocab_size, dim)
    LayerWeights *layers; // n_layers
    float *output_norm;   // (dim)
    Matrix output;        // (vocab_size, dim); aliases token_embd when tied
    float *rope_inv_freq; // (n_rot / 2): base^(-2i/n_rot), divided by Llama-3 factors
} TransformerWeights;

// ----------------------------------------------------------------------------
// Activations, allocated once for up to `max_batch` positions at a time

typedef struct RunState {
    int max_batch;
    float *x;       // (batch, dim) residual stream
    float *xb;      // (batch, dim) normed input of a block
    float *q;       // (batch, q_dim)
    float *k, *v;   // (batch, kv_dim) this step's keys and values
    float *att_out; // (batch, q_dim) attention output, before wo
    float *xb2;     // (batch, dim) block output, before the residual add
    float *hb;      // (batch, hidden_dim) gate
    float *hb2;     // (batch, hidden_dim) up
    float *att;     // (n_threads, max_seq) attention scores scratch, one row per thread
    float *logits;  // (batch, vocab_size)
    float *key_cache;   // (layer, max_seq, kv_dim)
    float *value_cache; // (layer, max_seq, kv_dim)
} RunState;

// ----------------------------------------------------------------------------
// The session

struct fb_session {
    const fb_host *host;
    Config config;
    TransformerWeights weights;
    RunState state;
    ThreadPool pool;
    fb_precision precision;
    int pos;                 // next position to fill
    uint64_t host_bytes;     // everything this session allocated
    char notes[256];
    char error[512];
    // profiling (ABI 1.1 profile_spans): NULL sink = off, the only cost a branch per op
    void (*span_sink)(void *data, const char *name, int32_t layer, uint64_t begin_ns, uint64_t end_ns);
    void *span_data;
    const char *span_name;   // the span running since span_begin_ns, or NULL
    int span_layer;
    uint64_t span_begin_ns;
    fb_kernel_class classes[5]; // the matmuls' class and bytes per call, for the host's breakdown
};

/* Profiling: close the running span and open `name` (NULL: open none). Spans
 * follow each other without gaps, so together they cover the step. */
static void span_next(fb_session *s, const char *name, int layer) {
    if (!s->span_sink) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (s->span_name) s->span_sink(s->span_data, s->span_name, s->span_layer, s->span_begin_ns, now);
    s->span_name = name;
    s->span_layer = layer;
    s->span_begin_ns = now;
}

static fb_status fail(fb_session *s, fb_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static fb_status fail(fb_session *s, fb_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
    return status;
}

static void *session_alloc(fb_session *s, size_t bytes) {
    void *p = calloc(1, bytes ? bytes : 1);
    if (p) s->host_bytes += bytes;
    return p;
}

// ----------------------------------------------------------------------------
// Loading: weights converted to the requested precision

/* Store tensor t as a Matrix in precision p. */
static fb_status load_matrix(fb_session *s, const fb_tensor_view *t, fb_precision p, Matrix *m) {
    const fb_host *host = s->host;
    m->rows = (int)t->ne[1];
    m->cols = (int)t->ne[0];
    m->owned = NULL;
    switch (p) {
    case FB_PRECISION_NATIVE: m->type = t->type; break;
    case FB_PRECISION_F32: m->type = FB_TYPE_F32; break;
    case FB_PRECISION_F16: m->type = FB_TYPE_F16; break;
    case FB_PRECISION_BF16: m->type = FB_TYPE_BF16; break;
    }
    m->dot = cr_dot_for_type(m->type);
    m->row_bytes = (size_t)host->row_bytes(m->type, m->cols);
    if (!m->dot || m->row_bytes == 0)
        return fail(s, FB_ERR_UNSUPPORTED, "cpu_ref: tensor '%s' is %s, which cpu_ref cannot compute with", t->name,
                    host->type_name(t->type));
    if (m->type == t->type) { // the file's bytes are already in the wanted format
        m->data = t->data;
        return FB_OK;
    }
    size_t src_row_bytes = (size_t)host->row_bytes(t->type, m->cols);
    uint8_t *dst = session_alloc(s, m->row_bytes * (size_t)m->rows);
    float *row = malloc((size_t)m->cols * sizeof *row);
    if (!dst || !row) {
        free(row);
        return fail(s, FB_ERR_OUT_OF_MEMORY, "cpu_ref: out of memory converting '%s'", t->name);
    }
    m->owned = dst;
    m->data = dst;
    for (int r = 0; r < m->rows; r++) {
        const uint8_t *src = (const uint8_t *)t->data + (size_t)r * src_row_bytes;
        uint8_t *out = dst + (size_t)r * m->row_bytes;
        int rc = 0;
        if (m->type == FB_TYPE_F32) rc = host->dequantize_row_f32(t->type, src, (float *)(void *)out, m->cols);
        else if (m->type == FB_TYPE_F16) rc = host->dequantize_row_f16(t->type, src, (uint16_t *)(void *)out, m->cols);
        else {
            rc = host->dequantize_row_f32(t->type, src, row, m->cols);
            for (int i = 0; i < m->cols && rc == 0; i++) {
                uint16_t b = fb_f32_to_bf16(row[i]);
                memcpy(out + 2 * i, &b, 2);
            }
        }
        if (rc != 0) {
            free(row);
            return fail(s, FB_ERR_UNSUPPORTED, "cpu_ref: cannot decode tensor '%s' of type %s", t->name,
                        host->type_name(t->type));
        }
        if ((r & 1023) == 0 && host->is_cancelled(host)) {
            free(row);
            return fail(s, FB_ERR_CANCELLED, "cpu_ref: cancelled while loading '%s'", t->name);
        }
    }
    free(row);
    return FB_OK;
}

/* Norm vectors are always f32. */
static fb_status load_vector(fb_session *s, const fb_tensor_view *t, float **out) {
    *out = session_alloc(s, (size_t)t->ne[0] * sizeof(float));
    if (!*out) return fail(s, FB_ERR_OUT_OF_MEMORY, "cpu_ref: out of memory for '%s'", t->name);
    if (s->host->dequantize_row_f32(t->type, t->data, *out, t->ne[0]) != 0)
        return fail(s, FB_ERR_UNSUPPORTED, "cpu_ref: cannot decode '%s' of type %s", t->name,
                    s->host->type_name(t->type));
    return FB_OK;
}

static fb_status load_weights(fb_session *s, const fb_model_view *mv) {
    TransformerWeights *w = &s->weights;
    const Config *p = &s->config;
    fb_status st;
    if ((st = load_matrix(s, mv->token_embd, s->precision, &w->token_embd))) return st;
    w->layers = session_alloc(s, (size_t)p->n_layers * sizeof *w->layers);
    if (!w->layers) return fail(s, FB_ERR_OUT_OF_MEMORY, "cpu_ref: out of memory");
    for (int l = 0; l < p->n_layers; l++) {
        const fb_layer_view *L = FB_MODEL_LAYER(mv, l);
        LayerWeights *lw = &w->layers[l];
        if ((st = load_vector(s, &L->attn_norm, &lw->attn_norm)) || (st = load_matrix(s, &L->attn_q, s->precision, &lw->wq)) ||
            (st = load_matrix(s, &L->attn_k, s->precision, &lw->wk)) || (st = load_matrix(s, &L->attn_v, s->precision, &lw->wv)) ||
            (st = load_matrix(s, &L->attn_output, s->precision, &lw->wo)) || (st = load_vector(s, &L->ffn_norm, &lw->ffn_norm)) ||
            (st = load_matrix(s, &L->ffn_gate, s->precision, &lw->w_gate)) || (st = load_matrix(s, &L->ffn_up, s->precision, &lw->w_up)) ||
            (st = load_matrix(s, &L->ffn_down, s->precision, &lw->w_down)))
            return st;
        s->host->progress(s->host, "cpu_ref: converting weights", (double)(l + 1) / p->n_layers);
    }
    if ((st = load_vector(s, mv->output_norm, &w->output_norm))) return st;
    if (mv->tied_output) {
        w->output = w->token_embd;
        w->output.owned = NULL; // owned once, by token_embd
    } else if ((st = load_matrix(s, mv->output, s->precision, &w->output))) {
        return st;
    }
    // RoPE frequencies: theta_i = pos * base^(-2i / n_rot) / factor_i
    w->rope_inv_freq = session_alloc(s, (size_t)(p->n_rot / 2) * sizeof(float));
    if (!w->rope_inv_freq) return fail(s, FB_ERR_OUT_OF_MEMORY, "cpu_ref: out of memory");
    for (int i = 0; i < p->n_rot / 2; i++) {
        double inv = pow((double)mv->rope_freq_base, -2.0 * i / p->n_rot);
        if (mv->rope_freqs) inv /= (double)((const float *)mv->rope_freqs->data)[i];
        w->rope_inv_freq[i] = (float)inv;
    }
    return FB_OK;
}

static fb_status alloc_state(fb_session *s, int max_batch) {
    const Config *p = &s->config;
    RunState *r = &s->state;
    int nt = s->pool.n_threads;
    size_t kv = (size_t)p->n_layers * p->max_seq * p->kv_dim;
    r->max_batch = max_batch;
    r->x = session_alloc(s, (size_t)max_batch * p->dim * sizeof(float));
    r->xb = session_alloc(s, (size_t)max_batch * p->dim * sizeof(float));
    r->xb2 = session_alloc(s, (size_t)max_batch * p->dim * sizeof(float));
    r->q = session_alloc(s, (size_t)max_batch * p->q_dim * sizeof(float));
    r->att_out = session_alloc(s, (size_t)max_batch * p->q_dim * sizeof(float));
    r->k = session_alloc(s, (size_t)max_batch * p->kv_dim * sizeof(float));
    r->v = session_alloc(s, (size_t)max_batch * p->kv_dim * sizeof(float));
    r->hb = session_alloc(s, (size_t)max_batch * p->hidden_dim * sizeof(float));
    r->hb2 = session_alloc(s, (size_t)max_batch * p->hidden_dim * sizeof(float));
    r->logits = session_alloc(s, (size_t)max_batch * p->vocab_size * sizeof(float));
    r->att = session_alloc(s, (size_t)nt * p->max_seq * sizeof(float));
    r->key_cache = session_alloc(s, kv * sizeof(float));
    r->value_cache = session_alloc(s, kv * sizeof(float));
    if (!r->x || !r->xb || !r->xb2 || !r->q || !r->att_out || !r->k || !r->v || !r->hb || !r->hb2 || !r->logits ||
        !r->att || !r->key_cache || !r->value_cache)
        return fail(s, FB_ERR_OUT_OF_MEMORY, "cpu_ref: out of memory for activations and a KV cache of %d positions",
                    p->max_seq);
    return FB_OK;
}

static void free_state(RunState *r) {
    void *bufs[] = {r->x, r->xb, r->xb2, r->q, r->att_out, r->k, r->v, r->hb, r->hb2, r->logits, r->att,
                    r->key_cache, r->value_cache};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    memset(r, 0, sizeof *r);
}

// ----------------------------------------------------------------------------
// The blocks of the network (the element-wise ones, rmsnorm, rope, softmax,
// silu and argmax, are in blocks.h, shared with the CUDA kernels' tests)

/* Y (batch, rows) = X (batch, cols) @ W^T, i.e. y[b][r] = W[r] . x[b].
 * One job per call; rows are split across threads. Each row is read from
 * memory once and dotted, in its stored format, with every position of the
 * batch while it sits in cache: prefill reads the weights once per matrix,
 * not once per token. (Decoding each row to f32 first cost more than the
 * dots: on SmolLM2 in cpu.ini, prefill at f16 went from 74 to 257 tok/s.) */
typedef struct MatmulJob {
    fb_session *s;
    const Matrix *w[3];   // up to three matrices with the same input, fused in one job
    float *y[3];
    int n_mats;
    const float *x;
    int batch;
    atomic_int next_row;  // work sharing across threads
} MatmulJob;

static void matmul_rows(MatmulJob *job, int begin, int end) {
    for (int g = begin; g < end; g++) {
        int m = 0, r = g; // which matrix, which row of it
        while (r >= job->w[m]->rows) r -= job->w[m++]->rows;
        const Matrix *w = job->w[m];
        const uint8_t *row = w->data + (size_t)r * w->row_bytes;
        // the row stays in cache while it meets every position of the batch
        for (int b = 0; b < job->batch; b++)
            job->y[m][(size_t)b * w->rows + r] = w->dot(row, job->x + (size_t)b * w->cols, w->cols);
    }
}

static void matmul_worker(void *arg, int thread, int n_threads) {
    MatmulJob *job = arg;
    int total_rows = 0;
    for (int m = 0; m < job->n_mats; m++) total_rows += job->w[m]->rows;
    int chunk = total_rows / (8 * n_threads) + 1, begin, end;
    (void)thread;
    while ((begin = next_chunk(&job->next_row, total_rows, chunk, &end)) >= 0) matmul_rows(job, begin, end);
}

static void matmul(fb_session *s, float *y, const float *x, const Matrix *w, int batch) {
    MatmulJob job = {.s = s, .w = {w}, .y = {y}, .n_mats = 1, .x = x, .batch = batch};
    pool_run(&s->pool, matmul_worker, &job);
}

/* Three matrices over the same input in one job (Q, K, V). */
static void matmul3(fb_session *s, const float *x, int batch, const Matrix *w0, float *y0, const Matrix *w1, float *y1,
                    const Matrix *w2, float *y2) {
    MatmulJob job = {.s = s, .w = {w0, w1, w2}, .y = {y0, y1, y2}, .n_mats = 3, .x = x, .batch = batch};
    pool_run(&s->pool, matmul_worker, &job);
}

/* Two matrices over the same input in one job (gate, up). */
static void matmul2(fb_session *s, const float *x, int batch, const Matrix *w0, float *y0, const Matrix *w1, float *y1) {
    MatmulJob job = {.s = s, .w = {w0, w1}, .y = {y0, y1}, .n_mats = 2, .x = x, .batch = batch};
    pool_run(&s->pool, matmul_worker, &job);
}

/* Causal grouped-query attention for `batch` positions starting at pos0,
 * whose keys and values are already in the cache. One job: (position, head)
 * pairs are split across threads. */
typedef struct AttentionJob {
    fb_session *s;
    int layer, pos0, batch;
    atomic_int next_item;  // work sharing across threads
} AttentionJob;

static void attention_worker(void *arg, int thread, int n_threads) {
    AttentionJob *job = arg;
    const Config *p = &job->s->config;
    RunState *r = &job->s->state;
    int kv_mul = p->n_heads / p->n_kv_heads; // query heads per KV head
    float scale = 1.0f / sqrtf((float)p->head_dim);
    float *att = r->att + (size_t)thread * p->max_seq;
    const float *key_cache = r->key_cache + (size_t)job->layer * p->max_seq * p->kv_dim;
    const float *value_cache = r->value_cache + (size_t)job->layer * p->max_seq * p->kv_dim;
    int total = job->batch * p->n_heads;
    (void)n_threads;
    for (int item, end; (item = next_chunk(&job->next_item, total, 1, &end)) >= 0;) {
        int b = item / p->n_heads, h = item % p->n_heads, pos = job->pos0 + b;
        const float *q = r->q + (size_t)b * p->q_dim + (size_t)h * p->head_dim;
        int kv_head = h / kv_mul;
        // scores against every earlier position (and this one)
        for (int t = 0; t <= pos; t++) {
            const float *k = key_cache + (size_t)t * p->kv_dim + (size_t)kv_head * p->head_dim;
            float score = 0.0f;
            for (int i = 0; i < p->head_dim; i++) score += q[i] * k[i];
            att[t] = score * scale;
        }
        softmax(att, pos + 1);
        // weighted sum of the values
        float *out = r->att_out + (size_t)b * p->q_dim + (size_t)h * p->head_dim;
        memset(out, 0, (size_t)p->head_dim * sizeof(float));
        for (int t = 0; t <= pos; t++) {
            const float *v = value_cache + (size_t)t * p->kv_dim + (size_t)kv_head * p->head_dim;
            for (int i = 0; i < p->head_dim; i++) out[i] += att[t] * v[i];
        }
    }
}

/* Token embedding: row `token` of token_embd, decoded to f32. */
static void embed(fb_session *s, float *x, int token) {
    const Matrix *e = &s->weights.token_embd;
    s->host->dequantize_row_f32(e->type, e->data + (size_t)token * e->row_bytes, x, e->cols);
}


// ----------------------------------------------------------------------------
// forward: `batch` tokens at positions pos..pos+batch-1 -> logits of the
// positions asked for (all: logits_all; else only the last)

static void forward(fb_session *s, const int32_t *tokens, int batch, bool logits_all) {
    const Config *p = &s->config;
    const TransformerWeights *w = &s->weights;
    RunState *r = &s->state;
    int dim = p->dim, pos0 = s->pos;

    span_next(s, "embed", -1);
    for (int b = 0; b < batch; b++) embed(s, r->x + (size_t)b * dim, tokens[b]);

    for (int l = 0; l < p->n_layers; l++) {
        const LayerWeights *lw = &w->layers[l];

        // attention rmsnorm
        span_next(s, "attn_norm", l);
        for (int b = 0; b < batch; b++) rmsnorm(r->xb + (size_t)b * dim, r->x + (size_t)b * dim, lw->attn_norm, dim, p->rms_eps);

        // q, k, v = W_q x, W_k x, W_v x
        span_next(s, "qkv", l);
        matmul3(s, r->xb, batch, &lw->wq, r->q, &lw->wk, r->k, &lw->wv, r->v);

        // RoPE on q and k, then k and v into the cache at their positions
        span_next(s, "rope_kv", l);
        for (int b = 0; b < batch; b++) {
            int pos = pos0 + b;
            rope(r->q + (size_t)b * p->q_dim, p->n_heads, p->head_dim, p->n_rot, pos, w->rope_inv_freq);
            rope(r->k + (size_t)b * p->kv_dim, p->n_kv_heads, p->head_dim, p->n_rot, pos, w->rope_inv_freq);
            size_t at = ((size_t)l * p->max_seq + (size_t)pos) * p->kv_dim;
            memcpy(r->key_cache + at, r->k + (size_t)b * p->kv_dim, (size_t)p->kv_dim * sizeof(float));
            memcpy(r->value_cache + at, r->v + (size_t)b * p->kv_dim, (size_t)p->kv_dim * sizeof(float));
        }

        // multi-head attention over the cache
        span_next(s, "attention", l);
        AttentionJob job = {s, l, pos0, batch, 0};
        pool_run(&s->pool, attention_worker, &job);

        // output projection, then the residual connection back into x
        span_next(s, "attn_output", l);
        matmul(s, r->xb2, r->att_out, &lw->wo, batch);
        span_next(s, "residual", l);
        for (size_t i = 0; i < (size_t)batch * dim; i++) r->x[i] += r->xb2[i];

        // feed-forward rmsnorm
        span_next(s, "ffn_norm", l);
        for (int b = 0; b < batch; b++) rmsnorm(r->xb + (size_t)b * dim, r->x + (size_t)b * dim, lw->ffn_norm, dim, p->rms_eps);

        // SwiGLU: w_down( silu(w_gate x) * (w_up x) )
        span_next(s, "ffn_gate_up", l);
        matmul2(s, r->xb, batch, &lw->w_gate, r->hb, &lw->w_up, r->hb2);
        span_next(s, "swiglu", l);
        for (size_t i = 0; i < (size_t)batch * p->hidden_dim; i++) r->hb[i] = silu(r->hb[i]) * r->hb2[i];
        span_next(s, "ffn_down", l);
        matmul(s, r->xb2, r->hb, &lw->w_down, batch);

        // residual connection
        span_next(s, "residual", l);
        for (size_t i = 0; i < (size_t)batch * dim; i++) r->x[i] += r->xb2[i];
    }

    // final rmsnorm and the classifier, for the positions asked for
    int first = logits_all ? 0 : batch - 1, n_out = batch - first;
    span_next(s, "output_norm", -1);
    for (int b = first; b < batch; b++)
        rmsnorm(r->xb + (size_t)(b - first) * dim, r->x + (size_t)b * dim, w->output_norm, dim, p->rms_eps);
    span_next(s, "lm_head", -1);
    matmul(s, r->logits, r->xb, &w->output, n_out);
}

// ----------------------------------------------------------------------------
// The ABI calls

/* The CPU's model name (/proc/cpuinfo), or "unknown model". */
static const char *cpu_model_name(char *buf, size_t size) {
    snprintf(buf, size, "unknown model");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp) return buf;
    char line[512];
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *colon = strchr(line, ':');
            if (colon) {
                colon++;
                while (*colon == ' ') colon++;
                colon[strcspn(colon, "\n")] = '\0';
                snprintf(buf, size, "%s", colon);
            }
            break;
        }
    }
    fclose(fp);
    return buf;
}

/* threads = 0 means every CPU this process may run on: those in its
 * affinity mask (taskset, cgroup cpusets), not every CPU online. */
static int affinity_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static fb_status cpu_ref_probe(const fb_host *host, fb_probe_result *out) {
    (void)host;
    char cpu[96];
    out->available = 1;
    snprintf(out->device, sizeof out->device, "CPU: %s, %d cores, %s", cpu_model_name(cpu, sizeof cpu), affinity_cpus(),
             cr_dot_simd_level());
    out->reason[0] = '\0';
    return FB_OK;
}

static void cpu_ref_destroy(fb_session *s);

static fb_status cpu_ref_create(const fb_host *host, const fb_model_view *mv, const fb_settings *settings,
                                fb_session **out, char *message, size_t message_size) {
    *out = NULL;
    fb_session *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(message, message_size, "cpu_ref: out of memory");
        return FB_ERR_OUT_OF_MEMORY;
    }
    s->host = host;
    fb_status st = FB_OK;
    if (settings->weight_precision > FB_PRECISION_NATIVE)
        st = fail(s, FB_ERR_UNSUPPORTED, "cpu_ref: unknown weight precision %d", (int)settings->weight_precision);
    else if (settings->accumulate_precision != FB_PRECISION_F32)
        st = fail(s, FB_ERR_UNSUPPORTED, "cpu_ref accumulates in f32 only; the profile asks for another precision");
    else if (settings->threads < 0)
        st = fail(s, FB_ERR_INVALID_ARGUMENT, "cpu_ref: threads = %d must be 0 (all cores) or positive",
                  (int)settings->threads);
    if (st == FB_OK) {
        s->precision = settings->weight_precision;
        Config *p = &s->config;
        p->dim = (int)mv->n_embd;
        p->n_layers = (int)mv->n_layer;
        p->n_heads = (int)mv->n_head;
        p->n_kv_heads = (int)mv->n_head_kv;
        p->head_dim = (int)mv->head_dim;
        p->kv_dim = p->n_kv_heads * p->head_dim;
        p->q_dim = p->n_heads * p->head_dim;
        p->hidden_dim = (int)mv->n_ff;
        p->vocab_size = (int)mv->n_vocab;
        p->n_rot = (int)mv->n_rot;
        p->rms_eps = mv->rms_eps;
        p->max_seq = (int)(settings->max_context ? settings->max_context : mv->n_ctx);
        if (p->max_seq > (int)mv->n_ctx) p->max_seq = (int)mv->n_ctx;
        int threads = settings->threads > 0 ? settings->threads : affinity_cpus();
        if (pool_start(&s->pool, threads) != 0) st = fail(s, FB_ERR_OUT_OF_MEMORY, "cpu_ref: cannot start threads");
    }
    if (st == FB_OK) st = load_weights(s, mv);
    if (st == FB_OK) st = alloc_state(s, 64);
    if (st != FB_OK) {
        snprintf(message, message_size, "%s", s->error);
        cpu_ref_destroy(s);
        return st;
    }
    static const char *names[] = {"f32", "f16", "bf16", "native"};
    snprintf(s->notes, sizeof s->notes, "weights %s (matrices %s, embedding %s), f32 activations and KV cache",
             names[s->precision], host->type_name(s->weights.layers[0].wq.type), host->type_name(s->weights.token_embd.type));
    *out = s;
    return FB_OK;
}

/* Run tokens through the network in batches of at most max_batch. */
static fb_status run_tokens(fb_session *s, const int32_t *tokens, uint32_t n, uint32_t flags, float *logits,
                            int32_t *next_token) {
    const Config *p = &s->config;
    if (!tokens || n == 0 || !next_token) return fail(s, FB_ERR_INVALID_ARGUMENT, "cpu_ref: no tokens or no output");
    if ((flags & (FB_LOGITS_LAST | FB_LOGITS_ALL)) && !logits)
        return fail(s, FB_ERR_INVALID_ARGUMENT, "cpu_ref: logits asked for but no buffer given");
    if ((uint64_t)s->pos + n > (uint64_t)p->max_seq)
        return fail(s, FB_ERR_CONTEXT_FULL, "cpu_ref: %u tokens at position %d would pass the context of %d", n, s->pos,
                    p->max_seq);
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= p->vocab_size)
            return fail(s, FB_ERR_INVALID_ARGUMENT, "cpu_ref: token id %d at index %u is outside the vocabulary (%d)",
                        tokens[i], i, p->vocab_size);
    for (uint32_t done = 0; done < n;) {
        int batch = (int)(n - done) < s->state.max_batch ? (int)(n - done) : s->state.max_batch;
        bool last_chunk = done + (uint32_t)batch == n;
        bool all = (flags & FB_LOGITS_ALL) != 0;
        forward(s, tokens + done, batch, all);
        if (all) memcpy(logits + (size_t)done * p->vocab_size, s->state.logits, (size_t)batch * p->vocab_size * sizeof(float));
        s->pos += batch;
        done += (uint32_t)batch;
        if (last_chunk) {
            const float *last = s->state.logits + (all ? (size_t)(batch - 1) * p->vocab_size : 0);
            span_next(s, "argmax", -1);
            *next_token = argmax(last, p->vocab_size);
            span_next(s, NULL, -1);
            if (flags & FB_LOGITS_LAST) memcpy(logits, last, (size_t)p->vocab_size * sizeof(float));
        }
    }
    return FB_OK;
}

static fb_status cpu_ref_prefill(fb_session *s, const int32_t *tokens, uint32_t n_tokens, uint32_t flags, float *logits,
                                 int32_t *next_token) {
    return run_tokens(s, tokens, n_tokens, flags, logits, next_token);
}

static fb_status cpu_ref_decode(fb_session *s, int32_t token, float *logits, int32_t *next_token) {
    return run_tokens(s, &token, 1, logits ? FB_LOGITS_LAST : FB_LOGITS_NONE, logits, next_token);
}

/* ABI 1.1 profiling: named spans per layer and op (span_next in forward). */
static fb_status cpu_ref_profile_spans(fb_session *s,
                                       void (*sink)(void *data, const char *name, int32_t layer, uint64_t begin_ns,
                                                    uint64_t end_ns),
                                       void *sink_data) {
    s->span_sink = sink;
    s->span_data = sink_data;
    s->span_name = NULL;
    return FB_OK;
}

/* ABI 1.1 profiling: the matmul spans are matvecs (by name alone "attn_output"
 * would read as attention, "lm_head" as other), with the weight bytes each
 * call reads, so the host can give their bandwidth. */
static uint64_t matrix_bytes(const Matrix *m) { return (uint64_t)m->rows * m->row_bytes; }

static fb_status cpu_ref_kernel_classes(fb_session *s, const fb_kernel_class **table, uint32_t *n) {
    const Config *p = &s->config;
    uint64_t qkv = 0, wo = 0, gate_up = 0, down = 0; // summed over the layers (types may differ per layer)
    for (int l = 0; l < p->n_layers; l++) {
        const LayerWeights *lw = &s->weights.layers[l];
        qkv += matrix_bytes(&lw->wq) + matrix_bytes(&lw->wk) + matrix_bytes(&lw->wv);
        wo += matrix_bytes(&lw->wo);
        gate_up += matrix_bytes(&lw->w_gate) + matrix_bytes(&lw->w_up);
        down += matrix_bytes(&lw->w_down);
    }
    uint64_t layers = (uint64_t)p->n_layers;
    s->classes[0] = (fb_kernel_class){"qkv", "matvec", qkv / layers};
    s->classes[1] = (fb_kernel_class){"attn_output", "matvec", wo / layers};
    s->classes[2] = (fb_kernel_class){"ffn_gate_up", "matvec", gate_up / layers};
    s->classes[3] = (fb_kernel_class){"ffn_down", "matvec", down / layers};
    s->classes[4] = (fb_kernel_class){"lm_head", "matvec", matrix_bytes(&s->weights.output)};
    *table = s->classes;
    *n = 5;
    return FB_OK;
}

static fb_status cpu_ref_reset(fb_session *s) {
    s->pos = 0; // positions past pos are never read, so the cache need not be cleared
    return FB_OK;
}

static fb_status cpu_ref_memory(fb_session *s, fb_memory_stats *out) {
    out->device_bytes = 0;
    out->device_peak_bytes = 0;
    out->host_bytes = s->host_bytes;
    return FB_OK;
}

static fb_status cpu_ref_effective_settings(fb_session *s, fb_effective_settings *out) {
    char cpu[96];
    out->weight_precision = s->precision;
    out->accumulate_precision = FB_PRECISION_F32;
    out->jit = 0;
    out->graphs = 0;
    out->threads = s->pool.n_threads;
    out->kernel_cache_hit = -1;
    snprintf(out->device, sizeof out->device, "CPU: %s, %s", cpu_model_name(cpu, sizeof cpu), cr_dot_simd_level());
    snprintf(out->notes, sizeof out->notes, "%s", s->notes);
    return FB_OK;
}

static const char *cpu_ref_last_error(fb_session *s) { return s ? s->error : ""; }

static void free_matrix(Matrix *m) { free(m->owned); }

static void cpu_ref_destroy(fb_session *s) {
    if (!s) return;
    pool_stop(&s->pool);
    TransformerWeights *w = &s->weights;
    free_matrix(&w->token_embd);
    if (w->layers) {
        for (int l = 0; l < s->config.n_layers; l++) {
            LayerWeights *lw = &w->layers[l];
            free(lw->attn_norm);
            free(lw->ffn_norm);
            Matrix *mats[] = {&lw->wq, &lw->wk, &lw->wv, &lw->wo, &lw->w_gate, &lw->w_up, &lw->w_down};
            for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) free_matrix(mats[i]);
        }
    }
    free(w->layers);
    free(w->output_norm);
    free_matrix(&w->output);
    free(w->rope_inv_freq);
    free_state(&s->state);
    free(s);
}

// ----------------------------------------------------------------------------

static const fb_plugin cpu_ref_plugin = {
    .abi_major = FB_ABI_MAJOR,
    .abi_minor = FB_ABI_MINOR,
    .struct_size = sizeof(fb_plugin),
    .capabilities = FB_CAP_CPU | FB_CAP_PRECISION_F32 | FB_CAP_PRECISION_F16 | FB_CAP_PRECISION_BF16 |
                    FB_CAP_PRECISION_NATIVE | FB_CAP_THREADS,
    .name = "cpu_ref",
    .version = CPU_REF_VERSION,
    .description = "readable C reference decode (the correctness oracle), threaded",
    .probe = cpu_ref_probe,
    .create = cpu_ref_create,
    .prefill = cpu_ref_prefill,
    .decode = cpu_ref_decode,
    .reset = cpu_ref_reset,
    .memory = cpu_ref_memory,
    .effective_settings = cpu_ref_effective_settings,
    .last_error = cpu_ref_last_error,
    .destroy = cpu_ref_destroy,
    .copy_bandwidth = NULL,
    .profile_spans = cpu_ref_profile_spans,
    .kernel_classes = cpu_ref_kernel_classes,
};

FB_PLUGIN_EXPORT const fb_plugin *fb_plugin_entry(void) { return &cpu_ref_plugin; }
