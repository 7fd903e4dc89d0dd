/* eager_ops.c - the CUDA backend in the style of an eager framework.
 *
 * One precompiled kernel per op (plugins/eager_ops/eager_ops_kernels.cu), matmuls through
 * cuBLAS, every intermediate materialised in a device buffer between ops,
 * exactly the work an eager PyTorch decode loop launches. The structure
 * follows cpu_ref.c block for block, so the two read side by side:
 * Config/weights/run state, loading, then forward() with one call per op.
 *
 * Precision: weights are stored at the profile's precision (f32, f16 or
 * bf16, converted on the host at load, quantised types dequantised); the
 * GEMM inputs are converted to the same type by a kernel; every product
 * accumulates in f32 (CUBLAS_COMPUTE_32F; TF32 and reduced-precision
 * reductions disallowed, so f32 really is f32). Norms, activations and the
 * KV cache are f32, as cpu_ref's.
 *
 * Prefill runs the prompt in chunks of up to MAX_BATCH (512) positions, one
 * forward pass each, as an eager framework runs a batch: every projection
 * is one cuBLAS GEMM over the whole chunk, and attention is one launch per
 * layer for all the chunk's rows (eo_attention_prefill_forward: causal,
 * GQA-aware, flash-attention style: tiles of query rows per block, an online
 * softmax over tiles of keys and values held in shared memory, f32, like
 * PyTorch's scaled_dot_product_attention). Only the rows whose logits are
 * asked for reach the classifier, EO_LOGITS_ROWS at a time.
 *
 * Decode attention (one row) is split over the sequence (flash-decoding,
 * eo_attention_decode_forward): a block per (KV head, split) scores its
 * share of the positions against all the group's query heads, so each key
 * and value is read once, and a second kernel combines the splits. Its grid
 * (EO_DECODE_SPLITS splits) does not depend on the position, so a longer
 * context adds only the cache it reads and scores: no launch, no padding.
 *
 * CUDA graphs (the analogue of a framework's "reduce-overhead" mode): when
 * the profile allows them, decode() captures the ops of one step once,
 * right after the session's first step ran plainly (which warms kernels and
 * cuBLAS), and replays that graph at every position: kernels read the token
 * and the position from device memory. Prefill always launches.
 *
 * Errors: every CUDA and cuBLAS call is checked; a failure becomes a status
 * and a sentence naming the call, file:line and CUDA's own error string.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "eager_ops_kernels.h"
#include "eager_ops_host.h"
#include "fairbench/plugin.h"
#include "fb_cuda_common.h"

#define EAGER_OPS_VERSION "1.0.0"
/* prefill chunk: positions per forward pass (tests/CMakeLists.txt builds the
 * emulated plugin once more with a small one, so that prefills run in chunks) */
#ifndef EO_MAX_BATCH
#define EO_MAX_BATCH 512
#endif
#define MAX_BATCH EO_MAX_BATCH
#define STAGING_BYTES ((size_t)64 << 20)

// ----------------------------------------------------------------------------
// Weights (device pointers)

typedef struct LayerWeights {
    float *attn_norm;    // (dim) f32
    void *wq;            // (q_dim rows, dim cols) in wtype
    void *wk, *wv;       // (kv_dim, dim)
    void *wo;            // (dim, q_dim)
    float *ffn_norm;     // (dim) f32
    void *w_gate, *w_up; // (hidden_dim, dim)
    void *w_down;        // (dim, hidden_dim)
} LayerWeights;

typedef struct TransformerWeights {
    void *token_embd;     // (vocab_size, dim) in wtype
    LayerWeights *layers; // n_layers (host array of device pointers)
    float *output_norm;   // (dim)
    void *output;         // (vocab_size, dim); == token_embd when tied
    float *rope_inv_freq; // (n_rot / 2)
} TransformerWeights;

// ----------------------------------------------------------------------------
// Activations (device), allocated once for up to max_batch positions

typedef struct RunState {
    int32_t *step;        // (1 + max_batch): [0] position of row 0, then the token ids
    int32_t *pos;         // = step
    int32_t *tokens;      // = step + 1
    int32_t *next_token;  // (1) argmax of the last row's logits
    float *x;             // (batch, dim) residual stream
    float *xb;            // (batch, dim) normed input of a block (f32 only; else in xh)
    float *q;             // (batch, q_dim)
    float *k, *v;         // (batch, kv_dim)
    float *att_out;       // (batch, q_dim)
    float *xb2;           // (batch, dim) block output before the residual add
    float *hb, *hb2;      // (batch, hidden_dim) gate, up
    float *logits;        // (logits_rows, vocab_size): the classifier runs over the rows in slices
    float *attn_partials; // (n_heads, EO_DECODE_SPLITS, head_dim + 2) decode attention per split
    void *xh;             // (batch, widest) GEMM input in wtype (16-bit precisions only):
                          // normed input, attention output or SwiGLU product
    float *key_cache;     // (layer, max_seq, kv_dim)
    float *value_cache;   // (layer, max_seq, kv_dim)
    int32_t *pinned;      // host, page-locked: (2 + max_batch) staging for step and next token
} RunState;

// ----------------------------------------------------------------------------
// The session

struct fb_session {
    const fb_host *host;
    eo_config config;
    eo_dtype wtype;
    fb_precision precision;
    TransformerWeights weights;
    RunState state;
    int device;
    char device_name[128];
    cudaStream_t stream;
    cublasHandle_t cublas;
    void *workspace;
    int pos; // next position to fill
    // device memory: our own accounting, and cudaMemGetInfo's view
    fbc_memory mem; // device memory: our allocations and cudaMemGetInfo's view
    uint64_t host_bytes;
    // CUDA graphs
    bool allow_graphs;
    bool graphs_failed;    // capture failed once: plain launches from then on
    cudaGraphExec_t graph; // one decode step, captured after the first and replayed at every position
    uint64_t graph_replays;
    size_t graph_nodes; // nodes of the last captured decode graph (0: none captured)
    char notes[256];
    char error[512];
};

static fb_status fail(fb_session *s, fb_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static fb_status fail(fb_session *s, fb_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
    return status;
}

static fb_status cuda_fail(fb_session *s, cudaError_t err, const char *call, const char *file, int line) {
    return fbc_cuda_fail(s->error, sizeof s->error, "eager_ops", err, call, file, line);
}

static fb_status cublas_fail(fb_session *s, cublasStatus_t st, const char *call, const char *file, int line) {
    fb_status status = st == CUBLAS_STATUS_ALLOC_FAILED                                         ? FB_ERR_OUT_OF_MEMORY
                       : st == CUBLAS_STATUS_NOT_INITIALIZED                                    ? FB_ERR_UNAVAILABLE
                       : st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_ARCH_MISMATCH ? FB_ERR_UNSUPPORTED
                                                                                                : FB_ERR_INTERNAL;
    return fail(s, status, "eager_ops: %s failed at %s:%d: %s (%s)", call, fbc_base_name(file), line,
                cublasGetStatusString(st), cublasGetStatusName(st));
}

/* cudaCheck / cublasCheck in llm.c's manner, returning a status instead of exiting. */
#define CUDA_CHECK(s, call)                                                              \
    do {                                                                                 \
        cudaError_t err_ = (call);                                                       \
        if (err_ != cudaSuccess) return cuda_fail((s), err_, #call, __FILE__, __LINE__); \
    } while (0)
#define CUBLAS_CHECK(s, call)                                                                      \
    do {                                                                                           \
        cublasStatus_t st_ = (call);                                                               \
        if (st_ != CUBLAS_STATUS_SUCCESS) return cublas_fail((s), st_, #call, __FILE__, __LINE__); \
    } while (0)
#define TRY(call)                     \
    do {                              \
        fb_status st_ = (call);       \
        if (st_ != FB_OK) return st_; \
    } while (0)

// ----------------------------------------------------------------------------
// Device memory with accounting

static fb_status dev_alloc(fb_session *s, void **out, size_t bytes, const char *what) {
    cudaError_t err = fbc_memory_alloc(&s->mem, out, bytes, "eager_ops", what, s->error, sizeof s->error);
    return err == cudaSuccess ? FB_OK : fbc_status_of_cuda(err);
}

#define DEV_ALLOC(s, ptr, bytes, what)             \
    do {                                           \
        void *p_;                                  \
        TRY(dev_alloc((s), &p_, (bytes), (what))); \
        (ptr) = p_;                                \
    } while (0)

// ----------------------------------------------------------------------------
// Loading: weights converted on the host to the storage type, then uploaded

/* Upload tensor t as (rows, cols) of s->wtype to a new device buffer. When
 * the file already holds that type, the mapped bytes go up as they are. */
static fb_status upload_matrix(fb_session *s, const fb_tensor_view *t, void **out, void *staging, float *scratch) {
    const fb_host *host = s->host;
    int64_t rows = t->ne[1], cols = t->ne[0];
    size_t elem = eo_dtype_size(s->wtype), row_bytes = (size_t)cols * elem;
    size_t bytes = row_bytes * (size_t)rows;
    DEV_ALLOC(s, *out, bytes, t->name);
    if (t->type == eo_dtype_gguf_type(s->wtype)) {
        if (t->n_bytes < bytes)
            return fail(s, FB_ERR_INVALID_ARGUMENT, "eager_ops: tensor '%s' has %llu bytes, expected %zu", t->name,
                        (unsigned long long)t->n_bytes, bytes);
        CUDA_CHECK(s, cudaMemcpy(*out, t->data, bytes, cudaMemcpyHostToDevice));
        return FB_OK;
    }
    size_t src_row_bytes = (size_t)host->row_bytes(t->type, cols);
    if (src_row_bytes == 0)
        return fail(s, FB_ERR_UNSUPPORTED, "eager_ops: tensor '%s' is %s, which cannot be decoded", t->name,
                    host->type_name(t->type));
    int64_t chunk_rows = (int64_t)(STAGING_BYTES / row_bytes);
    if (chunk_rows < 1) chunk_rows = 1;
    for (int64_t r = 0; r < rows; r += chunk_rows) {
        int64_t n = rows - r < chunk_rows ? rows - r : chunk_rows;
        if (eo_convert_rows(host, t->type, (const uint8_t *)t->data + (size_t)r * src_row_bytes, staging, s->wtype, n,
                            cols, scratch) != 0)
            return fail(s, FB_ERR_UNSUPPORTED, "eager_ops: cannot decode tensor '%s' of type %s", t->name,
                        host->type_name(t->type));
        CUDA_CHECK(s, cudaMemcpy((uint8_t *)*out + (size_t)r * row_bytes, staging, (size_t)n * row_bytes,
                                 cudaMemcpyHostToDevice));
        if (host->is_cancelled(host))
            return fail(s, FB_ERR_CANCELLED, "eager_ops: cancelled while loading '%s'", t->name);
    }
    return FB_OK;
}

/* Norm vectors are always f32. */
static fb_status upload_vector(fb_session *s, const fb_tensor_view *t, float **out, float *scratch) {
    DEV_ALLOC(s, *out, (size_t)t->ne[0] * sizeof(float), t->name);
    if (s->host->dequantize_row_f32(t->type, t->data, scratch, t->ne[0]) != 0)
        return fail(s, FB_ERR_UNSUPPORTED, "eager_ops: cannot decode '%s' of type %s", t->name,
                    s->host->type_name(t->type));
    CUDA_CHECK(s, cudaMemcpy(*out, scratch, (size_t)t->ne[0] * sizeof(float), cudaMemcpyHostToDevice));
    return FB_OK;
}

static fb_status load_weights_with(fb_session *s, const fb_model_view *mv, void *staging, float *scratch) {
    const eo_config *p = &s->config;
    TransformerWeights *w = &s->weights;
    TRY(upload_matrix(s, mv->token_embd, &w->token_embd, staging, scratch));
    for (int l = 0; l < p->n_layers; l++) {
        const fb_layer_view *L = FB_MODEL_LAYER(mv, l);
        LayerWeights *lw = &w->layers[l];
        TRY(upload_vector(s, &L->attn_norm, &lw->attn_norm, scratch));
        TRY(upload_matrix(s, &L->attn_q, &lw->wq, staging, scratch));
        TRY(upload_matrix(s, &L->attn_k, &lw->wk, staging, scratch));
        TRY(upload_matrix(s, &L->attn_v, &lw->wv, staging, scratch));
        TRY(upload_matrix(s, &L->attn_output, &lw->wo, staging, scratch));
        TRY(upload_vector(s, &L->ffn_norm, &lw->ffn_norm, scratch));
        TRY(upload_matrix(s, &L->ffn_gate, &lw->w_gate, staging, scratch));
        TRY(upload_matrix(s, &L->ffn_up, &lw->w_up, staging, scratch));
        TRY(upload_matrix(s, &L->ffn_down, &lw->w_down, staging, scratch));
        s->host->progress(s->host, "eager_ops: converting and uploading weights", (double)(l + 1) / p->n_layers);
    }
    TRY(upload_vector(s, mv->output_norm, &w->output_norm, scratch));
    if (mv->tied_output) w->output = w->token_embd;
    else
        TRY(upload_matrix(s, mv->output, &w->output, staging, scratch));
    // RoPE frequencies: theta_i = pos * base^(-2i / n_rot) / factor_i
    eo_rope_inv_freq(scratch, p->n_rot, mv->rope_freq_base,
                     mv->rope_freqs ? (const float *)mv->rope_freqs->data : NULL);
    DEV_ALLOC(s, w->rope_inv_freq, (size_t)(p->n_rot / 2) * sizeof(float), "rope frequencies");
    CUDA_CHECK(s,
               cudaMemcpy(w->rope_inv_freq, scratch, (size_t)(p->n_rot / 2) * sizeof(float), cudaMemcpyHostToDevice));
    return FB_OK;
}

static size_t n_layers_bytes(const fb_session *s) { return (size_t)s->config.n_layers * sizeof(LayerWeights); }

static fb_status load_weights(fb_session *s, const fb_model_view *mv) {
    const eo_config *p = &s->config;
    s->weights.layers = calloc((size_t)p->n_layers, sizeof *s->weights.layers);
    int widest = p->widest > p->vocab_size ? p->widest : p->vocab_size;
    size_t row_bytes = (size_t)widest * sizeof(float);
    size_t staging_bytes = STAGING_BYTES > row_bytes ? STAGING_BYTES : row_bytes;
    void *staging = NULL;
    float *scratch = malloc(row_bytes);
    // page-locked staging uploads at full PCIe speed; pageable works too
    bool pinned = cudaMallocHost(&staging, staging_bytes) == cudaSuccess;
    if (!pinned) {
        cudaGetLastError();
        staging = malloc(staging_bytes);
    }
    if (!s->weights.layers || !staging || !scratch) {
        free(scratch);
        if (!pinned) free(staging);
        else
            cudaFreeHost(staging);
        return fail(s, FB_ERR_OUT_OF_MEMORY, "eager_ops: out of host memory for the weight staging buffer");
    }
    s->host_bytes += (uint64_t)n_layers_bytes(s); // the staging buffers are freed before create() returns
    fb_status st = load_weights_with(s, mv, staging, scratch);
    if (pinned) cudaFreeHost(staging);
    else
        free(staging);
    free(scratch);
    return st;
}

static fb_status alloc_state(fb_session *s) {
    const eo_config *p = &s->config;
    RunState *r = &s->state;
    size_t B = (size_t)p->max_batch, f = sizeof(float);
    size_t kv = (size_t)p->n_layers * p->max_seq * p->kv_dim;
    DEV_ALLOC(s, r->step, (B + 1) * sizeof(int32_t), "step inputs");
    r->pos = r->step;
    r->tokens = r->step + 1;
    DEV_ALLOC(s, r->next_token, sizeof(int32_t), "next token");
    DEV_ALLOC(s, r->x, B * p->dim * f, "activations");
    if (s->wtype == EO_F32) DEV_ALLOC(s, r->xb, B * p->dim * f, "activations");
    DEV_ALLOC(s, r->xb2, B * p->dim * f, "activations");
    DEV_ALLOC(s, r->q, B * p->q_dim * f, "activations");
    DEV_ALLOC(s, r->att_out, B * p->q_dim * f, "activations");
    DEV_ALLOC(s, r->k, B * p->kv_dim * f, "activations");
    DEV_ALLOC(s, r->v, B * p->kv_dim * f, "activations");
    DEV_ALLOC(s, r->hb, B * p->hidden_dim * f, "activations");
    DEV_ALLOC(s, r->hb2, B * p->hidden_dim * f, "activations");
    DEV_ALLOC(s, r->logits, (size_t)eo_logits_rows(p) * p->vocab_size * f, "logits");
    DEV_ALLOC(s, r->attn_partials, eo_attention_decode_partials(p->n_heads, p->head_dim, EO_DECODE_SPLITS) * f,
              "decode attention partials");
    if (s->wtype != EO_F32) DEV_ALLOC(s, r->xh, B * p->widest * eo_dtype_size(s->wtype), "GEMM inputs");
    DEV_ALLOC(s, r->key_cache, kv * f, "the key cache");
    DEV_ALLOC(s, r->value_cache, kv * f, "the value cache");
    // Zeroed once, so that no uninitialised memory is ever in the cache (the
    // attention kernels read no position past the query's own).
    // (On our stream: a non-blocking stream does not wait for the legacy one.)
    CUDA_CHECK(s, cudaMemsetAsync(r->key_cache, 0, kv * f, s->stream));
    CUDA_CHECK(s, cudaMemsetAsync(r->value_cache, 0, kv * f, s->stream));
    CUDA_CHECK(s, cudaMallocHost((void **)&r->pinned, (B + 2) * sizeof(int32_t)));
    s->host_bytes += (B + 2) * sizeof(int32_t);
    return FB_OK;
}

// ----------------------------------------------------------------------------
// The blocks of the network (each op is one launch; see plugins/eager_ops/eager_ops_kernels.cu)

/* Where an op that feeds a GEMM writes its output, in the weights' type:
 * xb (f32) or xh (16-bit). rmsnorm and mul store their results there
 * directly, as an eager framework's f16 ops produce f16 tensors. */
static void *gemm_input_buffer(fb_session *s, float *f32_buffer) {
    return s->wtype == EO_F32 ? (void *)f32_buffer : s->state.xh;
}

/* The attention output (f32 from cuBLAS) as a GEMM input: itself at f32, else converted into xh. */
static fb_status convert_to_gemm_input(fb_session *s, float *x, size_t n, void **out) {
    if (s->wtype == EO_F32) {
        *out = x;
        return FB_OK;
    }
    CUDA_CHECK(s, eo_convert_forward(s->state.xh, s->wtype, x, n, s->stream));
    *out = s->state.xh;
    return FB_OK;
}

/* y (batch, n_out) = x (batch, n_in, already in wtype) @ W^T */
static fb_status matmul(fb_session *s, float *y, const void *x, const void *w, int batch, int n_in, int n_out) {
    CUBLAS_CHECK(s, eo_matmul_forward(s->cublas, y, x, w, s->wtype, batch, n_in, n_out));
    return FB_OK;
}

/* Causal grouped-query attention of the step's rows (position *state.pos + b)
 * over layer l's cache, which already holds their keys and values: one
 * flash-attention launch for every row of a prefill chunk; for one row (a
 * decode step), the split-over-the-sequence kernel and its combine, whose
 * grid does not depend on the position, so one captured graph serves every
 * position. */
static fb_status attention(fb_session *s, int l, int batch) {
    const eo_config *p = &s->config;
    RunState *r = &s->state;
    size_t layer = (size_t)l * p->max_seq * p->kv_dim;
    if (batch == 1)
        CUDA_CHECK(s, eo_attention_decode_forward(r->att_out, r->attn_partials, r->q, r->key_cache + layer,
                                                  r->value_cache + layer, p->n_heads, p->n_kv_heads, p->head_dim,
                                                  EO_DECODE_SPLITS, r->pos, s->stream));
    else
        CUDA_CHECK(s, eo_attention_prefill_forward(r->att_out, r->q, r->key_cache + layer, r->value_cache + layer,
                                                   batch, p->n_heads, p->n_kv_heads, p->head_dim, r->pos, s->stream));
    return FB_OK;
}

// ----------------------------------------------------------------------------
// forward: `batch` tokens (already in state.tokens, the position of the
// first in state.pos) -> the argmax of the last position's logits in
// state.next_token, and logits: of the last position (logits_all false) or
// of every position (true), computed in slices of logits_rows rows; each
// slice is copied to logits_out (host; NULL: not copied), so state.logits
// holds the last slice afterwards (row 0 of it, when logits_all is false).
// Nothing here reads the position on the host, so a decode step can be
// captured as a graph.

static fb_status forward(fb_session *s, int batch, bool logits_all, float *logits_out) {
    const eo_config *p = &s->config;
    const TransformerWeights *w = &s->weights;
    RunState *r = &s->state;
    cudaStream_t st = s->stream;
    int dim = p->dim;
    void *in;

    CUDA_CHECK(s, eo_embedding_forward(r->x, w->token_embd, s->wtype, r->tokens, batch, dim, st));

    for (int l = 0; l < p->n_layers; l++) {
        const LayerWeights *lw = &w->layers[l];
        size_t layer = (size_t)l * p->max_seq * p->kv_dim;

        // attention rmsnorm, stored as the GEMMs' input type
        in = gemm_input_buffer(s, r->xb);
        CUDA_CHECK(s, eo_rmsnorm_forward(in, s->wtype, r->x, lw->attn_norm, batch, dim, p->rms_eps, st));

        // q, k, v = W_q x, W_k x, W_v x
        TRY(matmul(s, r->q, in, lw->wq, batch, dim, p->q_dim));
        TRY(matmul(s, r->k, in, lw->wk, batch, dim, p->kv_dim));
        TRY(matmul(s, r->v, in, lw->wv, batch, dim, p->kv_dim));

        // RoPE on q and k, then k and v into the cache at their positions
        CUDA_CHECK(s, eo_rope_forward(r->q, r->k, batch, p->n_heads, p->n_kv_heads, p->head_dim, p->n_rot, r->pos,
                                      w->rope_inv_freq, st));
        CUDA_CHECK(s, eo_kv_append_forward(r->key_cache + layer, r->value_cache + layer, r->k, r->v, batch, p->kv_dim,
                                           r->pos, st));

        // multi-head attention over the cache, every row in one launch
        TRY(attention(s, l, batch));

        // output projection, then the residual connection back into x
        TRY(convert_to_gemm_input(s, r->att_out, (size_t)batch * p->q_dim, &in));
        TRY(matmul(s, r->xb2, in, lw->wo, batch, p->q_dim, dim));
        CUDA_CHECK(s, eo_add_forward(r->x, r->x, r->xb2, (size_t)batch * dim, st));

        // feed-forward rmsnorm
        in = gemm_input_buffer(s, r->xb);
        CUDA_CHECK(s, eo_rmsnorm_forward(in, s->wtype, r->x, lw->ffn_norm, batch, dim, p->rms_eps, st));

        // SwiGLU: w_down( silu(w_gate x) * (w_up x) ), the product stored as w_down's input type
        TRY(matmul(s, r->hb, in, lw->w_gate, batch, dim, p->hidden_dim));
        TRY(matmul(s, r->hb2, in, lw->w_up, batch, dim, p->hidden_dim));
        CUDA_CHECK(s, eo_silu_forward(r->hb, r->hb, (size_t)batch * p->hidden_dim, st));
        in = gemm_input_buffer(s, r->hb);
        CUDA_CHECK(s, eo_mul_forward(in, s->wtype, r->hb, r->hb2, (size_t)batch * p->hidden_dim, st));
        TRY(matmul(s, r->xb2, in, lw->w_down, batch, p->hidden_dim, dim));

        // residual connection
        CUDA_CHECK(s, eo_add_forward(r->x, r->x, r->xb2, (size_t)batch * dim, st));
    }

    // final rmsnorm and the classifier, for the positions asked for, a slice
    // of logits_rows at a time (each copied out before the next); argmax of the last
    int first = logits_all ? 0 : batch - 1, n_out = batch - first;
    in = gemm_input_buffer(s, r->xb);
    CUDA_CHECK(
        s, eo_rmsnorm_forward(in, s->wtype, r->x + (size_t)first * dim, w->output_norm, n_out, dim, p->rms_eps, st));
    size_t in_row = (size_t)dim * eo_dtype_size(s->wtype), vocab_row = (size_t)p->vocab_size * sizeof(float);
    int rows = eo_logits_rows(p), n_last = 0;
    for (int done = 0; done < n_out; done += n_last) {
        n_last = n_out - done < rows ? n_out - done : rows;
        TRY(matmul(s, r->logits, (const uint8_t *)in + (size_t)done * in_row, w->output, n_last, dim, p->vocab_size));
        if (logits_out)
            CUDA_CHECK(s, cudaMemcpyAsync(logits_out + (size_t)done * p->vocab_size, r->logits,
                                          (size_t)n_last * vocab_row, cudaMemcpyDeviceToHost, st));
    }
    CUDA_CHECK(s,
               eo_argmax_forward(r->next_token, r->logits + (size_t)(n_last - 1) * p->vocab_size, p->vocab_size, st));
    return FB_OK;
}

// ----------------------------------------------------------------------------
// CUDA graphs: one decode step, captured once, replayed at every position

/* Capture forward(batch 1). Every kernel reads the token and the position
 * from device memory, and the attention's grid is fixed (EO_DECODE_SPLITS
 * splits of whatever length the position gives), so the graph is the same
 * at every position. */
static fb_status capture_decode_graph(fb_session *s, cudaGraphExec_t *exec) {
    cudaGraph_t graph = NULL;
    *exec = NULL;
    CUDA_CHECK(s, cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal));
    fb_status st = forward(s, 1, false, NULL);
    cudaError_t end = cudaStreamEndCapture(s->stream, &graph);
    if (st != FB_OK) {
        if (graph) cudaGraphDestroy(graph);
        cudaGetLastError();
        return st;
    }
    if (end != cudaSuccess) return cuda_fail(s, end, "cudaStreamEndCapture(s->stream, &graph)", __FILE__, __LINE__);
    size_t nodes = 0; // kernels, cuBLAS's included, and memsets: the work of one decode step
    if (cudaGraphGetNodes(graph, NULL, &nodes) == cudaSuccess) s->graph_nodes = nodes;
    cudaError_t err = cudaGraphInstantiate(exec, graph, 0);
    cudaGraphDestroy(graph);
    if (err != cudaSuccess) {
        *exec = NULL;
        return cuda_fail(s, err, "cudaGraphInstantiate(exec, graph, 0)", __FILE__, __LINE__);
    }
    fbc_memory_sample(&s->mem);
    return FB_OK;
}

/* Run one decode step (inputs already uploaded) through the graph. The
 * session's first decode step is launched plainly, which also warms every
 * kernel and cuBLAS's choice of algorithm, and the graph is captured after
 * it (capture records, it does not run): later steps replay it. When capture
 * fails, plain launches from then on, and the effective settings say so. */
static fb_status decode_with_graph(fb_session *s) {
    if (s->graph) {
        CUDA_CHECK(s, cudaGraphLaunch(s->graph, s->stream));
        s->graph_replays++;
        return FB_OK;
    }
    TRY(forward(s, 1, false, NULL));
    if (capture_decode_graph(s, &s->graph) != FB_OK) {
        s->graphs_failed = true;
        snprintf(s->notes, sizeof s->notes, "graph capture failed, so plain launches: %.200s", s->error);
        s->error[0] = '\0';
    }
    return FB_OK;
}

// ----------------------------------------------------------------------------
// The ABI calls

static fb_status eager_ops_probe(const fb_host *host, fb_probe_result *out) {
    (void)host;
    int count = 0;
    out->available = 0;
    out->device[0] = '\0';
    out->reason[0] = '\0';
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        fbc_no_device_reason(err != cudaSuccess ? err : cudaErrorNoDevice, out->reason, sizeof out->reason);
        cudaGetLastError();
        return FB_OK;
    }
    struct cudaDeviceProp prop;
    err = cudaGetDeviceProperties(&prop, 0);
    if (err != cudaSuccess) {
        snprintf(out->reason, sizeof out->reason, "%s", cudaGetErrorString(err));
        cudaGetLastError();
        return FB_OK;
    }
    char dev[128];
    fbc_format_device(dev, sizeof dev, &prop);
    if (prop.major < 8) {
        snprintf(out->reason, sizeof out->reason,
                 "%.64s has compute capability %d.%d; eager_ops is built for 8.0 and newer", prop.name, prop.major,
                 prop.minor);
        return FB_OK;
    }
    snprintf(out->device, sizeof out->device, "%.100s%s", dev, count > 1 ? ", device 0 of several" : "");
    out->available = 1;
    return FB_OK;
}

static void eager_ops_destroy(fb_session *s);

static fb_status setup_device(fb_session *s, int device) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        char why[200];
        fbc_no_device_reason(err != cudaSuccess ? err : cudaErrorNoDevice, why, sizeof why);
        cudaGetLastError();
        return fail(s, FB_ERR_UNAVAILABLE, "eager_ops: %s", why);
    }
    if (device < 0 || device >= count)
        return fail(s, FB_ERR_INVALID_ARGUMENT, "eager_ops: device_index %d, but this machine has %d CUDA device%s",
                    device, count, count > 1 ? "s" : "");
    struct cudaDeviceProp prop;
    CUDA_CHECK(s, cudaGetDeviceProperties(&prop, device));
    if (prop.major < 8)
        return fail(s, FB_ERR_UNAVAILABLE,
                    "eager_ops: %.64s has compute capability %d.%d; eager_ops is built for 8.0 and newer", prop.name,
                    prop.major, prop.minor);
    fbc_format_device(s->device_name, sizeof s->device_name, &prop);
    s->device = device;
    CUDA_CHECK(s, cudaSetDevice(device));
    CUDA_CHECK(s, cudaFree(NULL)); // create the context now, so the baseline below excludes it
    size_t free_bytes = 0, total = 0;
    CUDA_CHECK(s, cudaMemGetInfo(&free_bytes, &total));
    s->mem.free_at_start = free_bytes;
    eo_plan plan;
    eo_plan_compute(&s->config, s->wtype, &plan);
    uint64_t need = plan.total;
    if (need > free_bytes)
        return fail(s, FB_ERR_OUT_OF_MEMORY,
                    "eager_ops: the session needs %.2f GiB on %s (weights %.2f, KV cache %.2f for %d positions) but "
                    "%.2f GiB are free",
                    (double)need / (1u << 30), prop.name, (double)plan.weights / (1u << 30),
                    (double)plan.kv_cache / (1u << 30), s->config.max_seq, (double)free_bytes / (1u << 30));
    CUDA_CHECK(s, cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(s, cublasCreate(&s->cublas));
    CUBLAS_CHECK(s, cublasSetStream(s->cublas, s->stream));
    // A true f32 path: no TF32, no reduced-precision split-K reductions.
    CUBLAS_CHECK(s, cublasSetMathMode(s->cublas, (cublasMath_t)(CUBLAS_DEFAULT_MATH |
                                                                CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
    // Our own workspace, so cuBLAS allocates nothing while a graph is captured.
    DEV_ALLOC(s, s->workspace, EO_CUBLAS_WORKSPACE_BYTES, "the cuBLAS workspace");
    CUBLAS_CHECK(s, cublasSetWorkspace(s->cublas, s->workspace, EO_CUBLAS_WORKSPACE_BYTES));
    return FB_OK;
}

static fb_status eager_ops_create(const fb_host *host, const fb_model_view *mv, const fb_settings *settings,
                                  fb_session **out, char *message, size_t message_size) {
    *out = NULL;
    fb_session *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(message, message_size, "eager_ops: out of host memory");
        return FB_ERR_OUT_OF_MEMORY;
    }
    s->host = host;
    s->host_bytes = sizeof *s;
    fb_status st = FB_OK;
    switch (settings->weight_precision) {
    case FB_PRECISION_F32: s->wtype = EO_F32; break;
    case FB_PRECISION_F16: s->wtype = EO_F16; break;
    case FB_PRECISION_BF16: s->wtype = EO_BF16; break;
    case FB_PRECISION_NATIVE:
        // As an eager framework does with a quantised GGUF, eager_ops can only dequantise it at load; calling
        // that "native" would hide the difference from the audit, so native is refused (docs/quantized-gpu.md).
        st = fail(s, FB_ERR_UNSUPPORTED,
                  "eager_ops has no kernels for GGUF block formats: like an eager framework, "
                  "it dequantises them at load, so it refuses weight_precision = native; run it "
                  "at f16 or bf16 (the audit then shows its weights differ from the file's)");
        break;
    default:
        st = fail(s, FB_ERR_UNSUPPORTED, "eager_ops: unknown weight precision %d", (int)settings->weight_precision);
    }
    if (st == FB_OK && settings->accumulate_precision != FB_PRECISION_F32)
        st = fail(s, FB_ERR_UNSUPPORTED, "eager_ops accumulates in f32 only; the profile asks for another precision");
    if (st == FB_OK) {
        s->precision = settings->weight_precision;
        s->allow_graphs = settings->allow_graphs != 0;
        char msg[256];
        if (eo_config_from_view(mv, settings->max_context, MAX_BATCH, &s->config, msg, sizeof msg) != 0)
            st = fail(s, FB_ERR_UNSUPPORTED, "%s", msg);
    }
    if (st == FB_OK)
        st = setup_device(s, settings->struct_size >= offsetof(fb_settings, device_index) + sizeof(int32_t)
                                 ? settings->device_index
                                 : 0);
    if (st == FB_OK) st = load_weights(s, mv);
    if (st == FB_OK) st = alloc_state(s);
    if (st == FB_OK) {
        // Uploads went through the legacy stream, the zeroing through ours: wait for both.
        cudaError_t err = cudaDeviceSynchronize();
        if (err != cudaSuccess) st = cuda_fail(s, err, "cudaDeviceSynchronize()", __FILE__, __LINE__);
    }
    if (st != FB_OK) {
        snprintf(message, message_size, "%s", s->error);
        eager_ops_destroy(s);
        return st;
    }
    fbc_memory_sample(&s->mem);
    static const char *names[] = {"f32", "f16", "bf16"};
    snprintf(s->notes, sizeof s->notes,
             "weights and GEMM inputs %s (from %s), f32 accumulation (no TF32), f32 residual stream and KV cache; "
             "%s",
             names[s->wtype], host->type_name(FB_MODEL_LAYER(mv, 0)->attn_q.type),
             s->allow_graphs ? "decode: one CUDA graph for every position (split-K attention), prefill launched"
                             : "plain launches");
    s->error[0] = '\0';
    *out = s;
    return FB_OK;
}

static fb_status check_tokens(fb_session *s, const int32_t *tokens, uint32_t n, uint32_t flags, const float *logits,
                              const int32_t *next_token) {
    const eo_config *p = &s->config;
    if (!tokens || n == 0 || !next_token) return fail(s, FB_ERR_INVALID_ARGUMENT, "eager_ops: no tokens or no output");
    if ((flags & (FB_LOGITS_LAST | FB_LOGITS_ALL)) && !logits)
        return fail(s, FB_ERR_INVALID_ARGUMENT, "eager_ops: logits asked for but no buffer given");
    if ((uint64_t)s->pos + n > (uint64_t)p->max_seq)
        return fail(s, FB_ERR_CONTEXT_FULL, "eager_ops: %u tokens at position %d would pass the context of %d", n,
                    s->pos, p->max_seq);
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= p->vocab_size)
            return fail(s, FB_ERR_INVALID_ARGUMENT, "eager_ops: token id %d at index %u is outside the vocabulary (%d)",
                        tokens[i], i, p->vocab_size);
    return FB_OK;
}

/* The CUDA device is per host thread, and a session's calls may come from
 * any one thread at a time: select ours at the start of each call. */
static fb_status use_device(fb_session *s) {
    CUDA_CHECK(s, cudaSetDevice(s->device));
    return FB_OK;
}

/* Copy position and tokens to the device (through the pinned staging). */
static fb_status upload_step(fb_session *s, int pos0, const int32_t *tokens, int batch) {
    RunState *r = &s->state;
    r->pinned[0] = pos0;
    memcpy(r->pinned + 1, tokens, (size_t)batch * sizeof(int32_t));
    CUDA_CHECK(s, cudaMemcpyAsync(r->step, r->pinned, (size_t)(batch + 1) * sizeof(int32_t), cudaMemcpyHostToDevice,
                                  s->stream));
    return FB_OK;
}

static fb_status eager_ops_prefill(fb_session *s, const int32_t *tokens, uint32_t n, uint32_t flags, float *logits,
                                   int32_t *next_token) {
    const eo_config *p = &s->config;
    RunState *r = &s->state;
    TRY(check_tokens(s, tokens, n, flags, logits, next_token));
    TRY(use_device(s));
    bool all = (flags & FB_LOGITS_ALL) != 0;
    int pos = s->pos;
    // chunks of up to max_batch positions, each one forward pass (every
    // GEMM over the whole chunk, one attention launch per layer)
    for (uint32_t done = 0; done < n;) {
        int batch = (int)(n - done) < p->max_batch ? (int)(n - done) : p->max_batch;
        bool last_chunk = done + (uint32_t)batch == n;
        TRY(upload_step(s, pos, tokens + done, batch));
        // every position's logits (ALL), or the prompt's last (LAST), straight to the caller's buffer
        float *out = all                                      ? logits + (size_t)done * p->vocab_size
                     : last_chunk && (flags & FB_LOGITS_LAST) ? logits
                                                              : NULL;
        TRY(forward(s, batch, all, out));
        if (last_chunk)
            CUDA_CHECK(s, cudaMemcpyAsync(r->pinned + 1 + p->max_batch, r->next_token, sizeof(int32_t),
                                          cudaMemcpyDeviceToHost, s->stream));
        CUDA_CHECK(s, cudaStreamSynchronize(s->stream)); // the pinned staging is reused by the next chunk
        pos += batch;
        done += (uint32_t)batch;
    }
    s->pos = pos;
    *next_token = r->pinned[1 + p->max_batch];
    return FB_OK;
}

static fb_status eager_ops_decode(fb_session *s, int32_t token, float *logits, int32_t *next_token) {
    const eo_config *p = &s->config;
    RunState *r = &s->state;
    TRY(check_tokens(s, &token, 1, logits ? FB_LOGITS_LAST : FB_LOGITS_NONE, logits, next_token));
    TRY(use_device(s));
    TRY(upload_step(s, s->pos, &token, 1));
    if (s->allow_graphs && !s->graphs_failed) TRY(decode_with_graph(s));
    else
        TRY(forward(s, 1, false, NULL));
    CUDA_CHECK(s, cudaMemcpyAsync(r->pinned + 1 + p->max_batch, r->next_token, sizeof(int32_t), cudaMemcpyDeviceToHost,
                                  s->stream));
    if (logits)
        CUDA_CHECK(s, cudaMemcpyAsync(logits, r->logits, (size_t)p->vocab_size * sizeof(float), cudaMemcpyDeviceToHost,
                                      s->stream));
    CUDA_CHECK(s, cudaStreamSynchronize(s->stream));
    s->pos++;
    *next_token = r->pinned[1 + p->max_batch];
    return FB_OK;
}

static fb_status eager_ops_reset(fb_session *s) {
    // Positions past pos are masked or never read; their (finite) old values may stay.
    s->pos = 0;
    return FB_OK;
}

static fb_status eager_ops_memory(fb_session *s, fb_memory_stats *out) {
    if (cudaSetDevice(s->device) == cudaSuccess) fbc_memory_sample(&s->mem);
    out->device_bytes = s->mem.bytes;
    out->device_peak_bytes = fbc_memory_peak(&s->mem); // ours, or what cudaMemGetInfo saw (cuBLAS, graphs)
    out->host_bytes = s->host_bytes;
    return FB_OK;
}

static fb_status eager_ops_effective_settings(fb_session *s, fb_effective_settings *out) {
    out->weight_precision = s->precision;
    out->accumulate_precision = FB_PRECISION_F32;
    out->jit = 0;
    out->graphs = s->graph_replays > 0; // only when a step really was replayed
    out->threads = 0;
    out->kernel_cache_hit = -1;
    snprintf(out->device, sizeof out->device, "%s", s->device_name);
    fbc_format_notes(out->notes, sizeof out->notes, s->notes, s->graphs_failed ? 0 : s->graph_nodes);
    return FB_OK;
}

static const char *eager_ops_last_error(fb_session *s) { return s ? s->error : ""; }

/* The roofline's ceiling: fbc_copy_bandwidth (a large device-to-device
 * copy, bytes read plus written per second; its buffers are not counted). */
static fb_status eager_ops_copy_bandwidth(fb_session *s, double *bytes_per_second) {
    *bytes_per_second = 0;
    TRY(use_device(s));
    const char *step = "";
    cudaError_t err = fbc_copy_bandwidth(s->stream, bytes_per_second, &step);
    return err == cudaSuccess ? FB_OK : cuda_fail(s, err, step, __FILE__, __LINE__);
}

static void eager_ops_destroy(fb_session *s) {
    if (!s) return;
    if (s->stream) {
        cudaSetDevice(s->device);
        cudaStreamSynchronize(s->stream);
    }
    if (s->graph) cudaGraphExecDestroy(s->graph);
    if (s->cublas) cublasDestroy(s->cublas);
    fbc_memory_free_all(&s->mem);
    if (s->state.pinned) cudaFreeHost(s->state.pinned);
    if (s->stream) cudaStreamDestroy(s->stream);
    cudaGetLastError();
    free(s->weights.layers);
    free(s);
}

// ----------------------------------------------------------------------------

static const fb_plugin eager_ops_plugin = {
    .abi_major = FB_ABI_MAJOR,
    .abi_minor = FB_ABI_MINOR,
    .struct_size = sizeof(fb_plugin),
    .capabilities = FB_CAP_GPU | FB_CAP_PRECISION_F32 | FB_CAP_PRECISION_F16 | FB_CAP_PRECISION_BF16 | FB_CAP_GRAPHS |
                    FB_CAP_COPY_PROBE,
    .name = "eager_ops",
    .version = EAGER_OPS_VERSION,
    .description = "CUDA, eager: one precompiled kernel per op, cuBLAS matmuls, optional CUDA graph per decode step",
    .probe = eager_ops_probe,
    .create = eager_ops_create,
    .prefill = eager_ops_prefill,
    .decode = eager_ops_decode,
    .reset = eager_ops_reset,
    .memory = eager_ops_memory,
    .effective_settings = eager_ops_effective_settings,
    .last_error = eager_ops_last_error,
    .destroy = eager_ops_destroy,
    .copy_bandwidth = eager_ops_copy_bandwidth,
};

FB_PLUGIN_EXPORT const fb_plugin *fb_plugin_entry(void) { return &eager_ops_plugin; }
