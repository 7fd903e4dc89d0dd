/* example_naive.c - a complete fairbench backend in one file: LLaMA decode in
 * plain, single-threaded C, at f32.
 *
 * It is the worked example of PLUGINS.md, written against the installed
 * <fairbench/plugin.h> alone and built by this folder's CMakeLists.txt. It
 * is deliberately slow and simple: one token at a time, no threads, no
 * SIMD. What it shows is the contract every backend keeps:
 *
 *   - one exported symbol, fb_plugin_entry, returning a constant table;
 *   - create() converts the weights itself (here: every tensor to f32 with
 *     the host's dequantize_row_f32, so any block format of the file works)
 *     and refuses, with a sentence, any setting it cannot honour;
 *   - prefill/decode check everything before they touch the session, so a
 *     refused call (bad token id, context full) leaves it unchanged;
 *   - effective_settings() reports what the session really does;
 *   - no exit, no abort, nothing on stdout; errors come back as a status and
 *     the sentence last_error() returns.
 *
 * The network is the one cpu_ref computes (the host's correctness oracle),
 * so `fairbench conformance example_naive.so` and a profile that runs both
 * see them agree. Build: see README.md in this folder.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fairbench/plugin.h>

#define EXAMPLE_NAME "example_naive"
#define EXAMPLE_VERSION "1.0.0"

// ----------------------------------------------------------------------------
// Hyper-parameters (copied from the model view at create)

typedef struct Config {
    int dim;        // transformer width (n_embd)
    int n_layers;
    int n_heads;
    int n_kv_heads; // grouped-query attention: n_heads / n_kv_heads query heads share a KV head
    int head_dim;
    int q_dim;      // n_heads * head_dim
    int kv_dim;     // n_kv_heads * head_dim
    int hidden_dim; // feed-forward width (n_ff)
    int vocab_size;
    int n_rot;      // rotated dimensions per head (RoPE)
    int max_seq;    // KV-cache positions: settings->max_context, or the model's n_ctx
    float rms_eps;
} Config;

// ----------------------------------------------------------------------------
// Weights, all f32. A matrix W of shape (rows, cols) is row-major: row r is
// W + r * cols, and the GGUF tensor's ne[0] is cols, ne[1] is rows.

typedef struct LayerWeights {
    float *attn_norm; // (dim)
    float *wq;        // (q_dim, dim)
    float *wk, *wv;   // (kv_dim, dim)
    float *wo;        // (dim, q_dim)
    float *ffn_norm;  // (dim)
    float *w_gate;    // (hidden_dim, dim)
    float *w_up;      // (hidden_dim, dim)
    float *w_down;    // (dim, hidden_dim)
} LayerWeights;

typedef struct Weights {
    float *token_embd;    // (vocab_size, dim)
    LayerWeights *layers; // n_layers
    float *output_norm;   // (dim)
    float *output;        // (vocab_size, dim); the same array as token_embd when tied
    float *rope_inv_freq; // (n_rot / 2): base^(-2i / n_rot), divided by the Llama-3 factors if any
} Weights;

// ----------------------------------------------------------------------------
// Activations for one position, and the KV cache

typedef struct RunState {
    float *x;           // (dim) residual stream
    float *xb, *xb2;    // (dim) block input after the norm; block output
    float *q;           // (q_dim)
    float *att;         // (max_seq) attention scores of one head
    float *att_out;     // (q_dim) attention output, before wo
    float *hb, *hb2;    // (hidden_dim) gate, up
    float *logits;      // (vocab_size)
    float *key_cache;   // (n_layers, max_seq, kv_dim)
    float *value_cache; // (n_layers, max_seq, kv_dim)
} RunState;

// ----------------------------------------------------------------------------
// The session: everything one create() builds and one destroy() frees

struct fb_session {
    const fb_host *host; // valid for the plugin's lifetime
    Config c;
    Weights w;
    RunState r;
    int pos;             // the next position to fill (0 after create or reset)
    int tied_output;
    uint64_t host_bytes; // what this session allocated, for memory()
    char notes[256];
    char error[512];     // last_error()'s sentence
};

static fb_status fail(fb_session *s, fb_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static fb_status fail(fb_session *s, fb_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
    return status;
}

/* Zeroed floats, counted in host_bytes; NULL when out of memory. */
static float *alloc_floats(fb_session *s, size_t n) {
    float *p = calloc(n ? n : 1, sizeof *p);
    if (p) s->host_bytes += n * sizeof *p;
    return p;
}

// ----------------------------------------------------------------------------
// Loading: every tensor dequantised to f32, one row at a time

/* The tensor t, whatever its type in the file, as rows x cols floats. */
static fb_status load_tensor(fb_session *s, const fb_tensor_view *t, float **out) {
    const fb_host *host = s->host;
    int64_t cols = t->ne[0], rows = t->n_dims > 1 ? t->ne[1] : 1;
    uint64_t row_bytes = host->row_bytes(t->type, cols);
    if (row_bytes == 0)
        return fail(s, FB_ERR_UNSUPPORTED, EXAMPLE_NAME ": tensor '%s' has type %s, which the host cannot decode",
                    t->name, host->type_name(t->type));
    float *dst = alloc_floats(s, (size_t)(rows * cols));
    if (!dst) return fail(s, FB_ERR_OUT_OF_MEMORY, EXAMPLE_NAME ": out of memory for tensor '%s'", t->name);
    *out = dst;
    for (int64_t r = 0; r < rows; r++) {
        const unsigned char *src = (const unsigned char *)t->data + (size_t)r * row_bytes;
        if (host->dequantize_row_f32(t->type, src, dst + r * cols, cols) != 0)
            return fail(s, FB_ERR_UNSUPPORTED, EXAMPLE_NAME ": cannot decode tensor '%s' of type %s", t->name,
                        host->type_name(t->type));
    }
    if (host->is_cancelled(host)) return fail(s, FB_ERR_CANCELLED, EXAMPLE_NAME ": cancelled while loading '%s'", t->name);
    return FB_OK;
}

static fb_status load_weights(fb_session *s, const fb_model_view *mv) {
    const Config *c = &s->c;
    Weights *w = &s->w;
    fb_status st;
    if ((st = load_tensor(s, mv->token_embd, &w->token_embd))) return st;
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->layers) return fail(s, FB_ERR_OUT_OF_MEMORY, EXAMPLE_NAME ": out of memory");
    for (int l = 0; l < c->n_layers; l++) {
        const fb_layer_view *L = &mv->layers[l];
        LayerWeights *lw = &w->layers[l];
        if ((st = load_tensor(s, &L->attn_norm, &lw->attn_norm)) || (st = load_tensor(s, &L->attn_q, &lw->wq)) ||
            (st = load_tensor(s, &L->attn_k, &lw->wk)) || (st = load_tensor(s, &L->attn_v, &lw->wv)) ||
            (st = load_tensor(s, &L->attn_output, &lw->wo)) || (st = load_tensor(s, &L->ffn_norm, &lw->ffn_norm)) ||
            (st = load_tensor(s, &L->ffn_gate, &lw->w_gate)) || (st = load_tensor(s, &L->ffn_up, &lw->w_up)) ||
            (st = load_tensor(s, &L->ffn_down, &lw->w_down)))
            return st;
        s->host->progress(s->host, EXAMPLE_NAME ": converting weights", (double)(l + 1) / c->n_layers);
    }
    if ((st = load_tensor(s, mv->output_norm, &w->output_norm))) return st;
    // A tied model's LM head is the embedding: share the array, free it once.
    if (mv->tied_output) w->output = w->token_embd;
    else if ((st = load_tensor(s, mv->output, &w->output))) return st;

    // RoPE frequencies: theta_i = pos * base^(-2i / n_rot), divided by
    // rope_freqs[i] when the model has Llama-3 scaling factors.
    w->rope_inv_freq = alloc_floats(s, (size_t)(c->n_rot / 2));
    if (!w->rope_inv_freq) return fail(s, FB_ERR_OUT_OF_MEMORY, EXAMPLE_NAME ": out of memory");
    for (int i = 0; i < c->n_rot / 2; i++) {
        double inv = pow((double)mv->rope_freq_base, -2.0 * i / c->n_rot);
        if (mv->rope_freqs) inv /= (double)((const float *)mv->rope_freqs->data)[i];
        w->rope_inv_freq[i] = (float)inv;
    }
    return FB_OK;
}

static fb_status alloc_state(fb_session *s) {
    const Config *c = &s->c;
    RunState *r = &s->r;
    size_t kv = (size_t)c->n_layers * c->max_seq * c->kv_dim;
    r->x = alloc_floats(s, c->dim);
    r->xb = alloc_floats(s, c->dim);
    r->xb2 = alloc_floats(s, c->dim);
    r->q = alloc_floats(s, c->q_dim);
    r->att = alloc_floats(s, c->max_seq);
    r->att_out = alloc_floats(s, c->q_dim);
    r->hb = alloc_floats(s, c->hidden_dim);
    r->hb2 = alloc_floats(s, c->hidden_dim);
    r->logits = alloc_floats(s, c->vocab_size);
    r->key_cache = alloc_floats(s, kv);
    r->value_cache = alloc_floats(s, kv);
    if (!r->x || !r->xb || !r->xb2 || !r->q || !r->att || !r->att_out || !r->hb || !r->hb2 || !r->logits ||
        !r->key_cache || !r->value_cache)
        return fail(s, FB_ERR_OUT_OF_MEMORY, EXAMPLE_NAME ": out of memory for a KV cache of %d positions", c->max_seq);
    return FB_OK;
}

// ----------------------------------------------------------------------------
// The blocks of the network

/* o = x / sqrt(mean(x^2) + eps) * weight */
static void rmsnorm(float *o, const float *x, const float *weight, int n, float eps) {
    float ss = 0.0f;
    for (int j = 0; j < n; j++) ss += x[j] * x[j];
    float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (int j = 0; j < n; j++) o[j] = weight[j] * (scale * x[j]);
}

/* W (d, n) @ x (n) -> y (d) */
static void matmul(float *y, const float *x, const float *w, int n, int d) {
    for (int i = 0; i < d; i++) {
        const float *row = w + (size_t)i * n;
        float sum = 0.0f;
        for (int j = 0; j < n; j++) sum += row[j] * x[j];
        y[i] = sum;
    }
}

/* RoPE in the GGUF llama layout: rotate adjacent pairs (2i, 2i+1) of each
 * head by pos * inv_freq[i], for i < n_rot / 2. */
static void rope(float *vec, int n_heads, int head_dim, int n_rot, int pos, const float *inv_freq) {
    for (int i = 0; i < n_rot / 2; i++) {
        double angle = (double)pos * (double)inv_freq[i];
        float c = (float)cos(angle), sn = (float)sin(angle);
        for (int h = 0; h < n_heads; h++) {
            float *v = vec + (size_t)h * head_dim + 2 * i;
            float v0 = v[0], v1 = v[1];
            v[0] = v0 * c - v1 * sn;
            v[1] = v0 * sn + v1 * c;
        }
    }
}

static void softmax(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int i = 0; i < n; i++) x[i] /= sum;
}

static float silu(float x) { return x / (1.0f + expf(-x)); }

/* The lowest index of the largest value (the ABI's tie rule). */
static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

// ----------------------------------------------------------------------------
// forward: one token at position s->pos -> s->r.logits

static void forward(fb_session *s, int token) {
    const Config *c = &s->c;
    const Weights *w = &s->w;
    RunState *r = &s->r;
    int pos = s->pos, kv_mul = c->n_heads / c->n_kv_heads;
    float scale = 1.0f / sqrtf((float)c->head_dim);

    // the token's embedding row
    memcpy(r->x, w->token_embd + (size_t)token * c->dim, (size_t)c->dim * sizeof(float));

    for (int l = 0; l < c->n_layers; l++) {
        const LayerWeights *lw = &w->layers[l];
        float *k = r->key_cache + ((size_t)l * c->max_seq + pos) * c->kv_dim;   // this position's key ...
        float *v = r->value_cache + ((size_t)l * c->max_seq + pos) * c->kv_dim; // ... and value, in the cache

        // attention rmsnorm, then q, k, v
        rmsnorm(r->xb, r->x, lw->attn_norm, c->dim, c->rms_eps);
        matmul(r->q, r->xb, lw->wq, c->dim, c->q_dim);
        matmul(k, r->xb, lw->wk, c->dim, c->kv_dim);
        matmul(v, r->xb, lw->wv, c->dim, c->kv_dim);

        // RoPE on q and k
        rope(r->q, c->n_heads, c->head_dim, c->n_rot, pos, w->rope_inv_freq);
        rope(k, c->n_kv_heads, c->head_dim, c->n_rot, pos, w->rope_inv_freq);

        // each query head attends over positions 0..pos of its KV head
        for (int h = 0; h < c->n_heads; h++) {
            const float *q = r->q + (size_t)h * c->head_dim;
            size_t kv_off = (size_t)(h / kv_mul) * c->head_dim;
            const float *keys = r->key_cache + (size_t)l * c->max_seq * c->kv_dim + kv_off;
            const float *values = r->value_cache + (size_t)l * c->max_seq * c->kv_dim + kv_off;
            for (int t = 0; t <= pos; t++) {
                const float *kt = keys + (size_t)t * c->kv_dim;
                float score = 0.0f;
                for (int i = 0; i < c->head_dim; i++) score += q[i] * kt[i];
                r->att[t] = score * scale;
            }
            softmax(r->att, pos + 1);
            float *out = r->att_out + (size_t)h * c->head_dim;
            memset(out, 0, (size_t)c->head_dim * sizeof(float));
            for (int t = 0; t <= pos; t++) {
                const float *vt = values + (size_t)t * c->kv_dim;
                for (int i = 0; i < c->head_dim; i++) out[i] += r->att[t] * vt[i];
            }
        }

        // output projection and the residual connection back into x
        matmul(r->xb2, r->att_out, lw->wo, c->q_dim, c->dim);
        for (int i = 0; i < c->dim; i++) r->x[i] += r->xb2[i];

        // feed-forward rmsnorm, SwiGLU: w_down(silu(w_gate x) * (w_up x)), residual
        rmsnorm(r->xb, r->x, lw->ffn_norm, c->dim, c->rms_eps);
        matmul(r->hb, r->xb, lw->w_gate, c->dim, c->hidden_dim);
        matmul(r->hb2, r->xb, lw->w_up, c->dim, c->hidden_dim);
        for (int i = 0; i < c->hidden_dim; i++) r->hb[i] = silu(r->hb[i]) * r->hb2[i];
        matmul(r->xb2, r->hb, lw->w_down, c->hidden_dim, c->dim);
        for (int i = 0; i < c->dim; i++) r->x[i] += r->xb2[i];
    }

    // final rmsnorm and the classifier
    rmsnorm(r->xb, r->x, w->output_norm, c->dim, c->rms_eps);
    matmul(r->logits, r->xb, w->output, c->dim, c->vocab_size);
    s->pos++;
}

// ----------------------------------------------------------------------------
// The ABI calls

static const char *precision_name(fb_precision p) {
    switch (p) {
    case FB_PRECISION_F32: return "f32";
    case FB_PRECISION_F16: return "f16";
    case FB_PRECISION_BF16: return "bf16";
    case FB_PRECISION_NATIVE: return "native";
    }
    return "an unknown precision";
}

/* Cheap and always true: a CPU is here. [main thread] */
static fb_status example_probe(const fb_host *host, fb_probe_result *out) {
    (void)host;
    out->available = 1;
    snprintf(out->device, sizeof out->device, "CPU, one thread, plain C loops");
    out->reason[0] = '\0';
    return FB_OK;
}

static void example_destroy(fb_session *s);

static fb_status example_create(const fb_host *host, const fb_model_view *mv, const fb_settings *settings,
                                fb_session **out, char *message, size_t message_size) {
    *out = NULL;
    fb_session *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(message, message_size, EXAMPLE_NAME ": out of memory");
        return FB_ERR_OUT_OF_MEMORY;
    }
    s->host = host;
    fb_status st = FB_OK;
    // Refuse what we cannot honour, with a sentence: never a silent substitute.
    if (settings->weight_precision != FB_PRECISION_F32)
        st = fail(s, FB_ERR_UNSUPPORTED, EXAMPLE_NAME " holds weights at f32 only; the profile asks for %s",
                  precision_name(settings->weight_precision));
    else if (settings->accumulate_precision != FB_PRECISION_F32)
        st = fail(s, FB_ERR_UNSUPPORTED, EXAMPLE_NAME " accumulates in f32 only; the profile asks for %s",
                  precision_name(settings->accumulate_precision));
    if (st == FB_OK) {
        Config *c = &s->c;
        c->dim = (int)mv->n_embd;
        c->n_layers = (int)mv->n_layer;
        c->n_heads = (int)mv->n_head;
        c->n_kv_heads = (int)mv->n_head_kv;
        c->head_dim = (int)mv->head_dim;
        c->q_dim = c->n_heads * c->head_dim;
        c->kv_dim = c->n_kv_heads * c->head_dim;
        c->hidden_dim = (int)mv->n_ff;
        c->vocab_size = (int)mv->n_vocab;
        c->n_rot = (int)mv->n_rot;
        c->rms_eps = mv->rms_eps;
        // max_context 0 means the model's own context; never more than it
        c->max_seq = (int)(settings->max_context && settings->max_context < mv->n_ctx ? settings->max_context
                                                                                      : mv->n_ctx);
        s->tied_output = mv->tied_output;
        st = load_weights(s, mv);
    }
    if (st == FB_OK) st = alloc_state(s);
    if (st != FB_OK) {
        snprintf(message, message_size, "%s", s->error);
        example_destroy(s);
        return st;
    }
    snprintf(s->notes, sizeof s->notes, "weights f32 (dequantised at load from %s), one token at a time",
             host->type_name(mv->layers[0].attn_q.type));
    *out = s;
    return FB_OK;
}

/* Everything a run of n tokens needs, checked before the session changes. */
static fb_status check_run(fb_session *s, const int32_t *tokens, uint32_t n, uint32_t flags, const float *logits,
                           const int32_t *next_token) {
    if (!tokens || n == 0 || !next_token)
        return fail(s, FB_ERR_INVALID_ARGUMENT, EXAMPLE_NAME ": no tokens, or nowhere to write the next token");
    if ((flags & (FB_LOGITS_LAST | FB_LOGITS_ALL)) && !logits)
        return fail(s, FB_ERR_INVALID_ARGUMENT, EXAMPLE_NAME ": logits asked for, but no buffer given");
    if ((uint64_t)s->pos + n > (uint64_t)s->c.max_seq)
        return fail(s, FB_ERR_CONTEXT_FULL, EXAMPLE_NAME ": %u tokens at position %d would pass the context of %d", n,
                    s->pos, s->c.max_seq);
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= s->c.vocab_size)
            return fail(s, FB_ERR_INVALID_ARGUMENT, EXAMPLE_NAME ": token id %d at index %u is outside the vocabulary (%d)",
                        (int)tokens[i], i, s->c.vocab_size);
    return FB_OK;
}

/* Naive prefill: the tokens one at a time, as decode would run them. */
static fb_status example_prefill(fb_session *s, const int32_t *tokens, uint32_t n_tokens, uint32_t flags, float *logits,
                                 int32_t *next_token) {
    fb_status st = check_run(s, tokens, n_tokens, flags, logits, next_token);
    if (st != FB_OK) return st;
    size_t row = (size_t)s->c.vocab_size * sizeof(float);
    for (uint32_t i = 0; i < n_tokens; i++) {
        forward(s, tokens[i]);
        if (flags & FB_LOGITS_ALL) memcpy(logits + (size_t)i * s->c.vocab_size, s->r.logits, row);
    }
    if ((flags & FB_LOGITS_LAST) && !(flags & FB_LOGITS_ALL)) memcpy(logits, s->r.logits, row);
    *next_token = argmax(s->r.logits, s->c.vocab_size);
    return FB_OK;
}

static fb_status example_decode(fb_session *s, int32_t token, float *logits, int32_t *next_token) {
    fb_status st = check_run(s, &token, 1, logits ? FB_LOGITS_LAST : FB_LOGITS_NONE, logits, next_token);
    if (st != FB_OK) return st;
    forward(s, token);
    if (logits) memcpy(logits, s->r.logits, (size_t)s->c.vocab_size * sizeof(float));
    *next_token = argmax(s->r.logits, s->c.vocab_size);
    return FB_OK;
}

/* Positions past pos are never read, so the cache itself need not be cleared. */
static fb_status example_reset(fb_session *s) {
    s->pos = 0;
    return FB_OK;
}

static fb_status example_memory(fb_session *s, fb_memory_stats *out) {
    out->device_bytes = 0;      // a CPU backend has no device memory
    out->device_peak_bytes = 0;
    out->host_bytes = s->host_bytes;
    return FB_OK;
}

/* The truth, not the request: the host compares it with what was asked. */
static fb_status example_effective_settings(fb_session *s, fb_effective_settings *out) {
    out->weight_precision = FB_PRECISION_F32;
    out->accumulate_precision = FB_PRECISION_F32;
    out->jit = 0;
    out->graphs = 0;
    out->threads = 1;
    out->kernel_cache_hit = -1;
    snprintf(out->device, sizeof out->device, "CPU, one thread, plain C loops");
    snprintf(out->notes, sizeof out->notes, "%s", s->notes);
    return FB_OK;
}

static const char *example_last_error(fb_session *s) { return s ? s->error : ""; }

static void example_destroy(fb_session *s) {
    if (!s) return;
    Weights *w = &s->w;
    if (w->layers) {
        for (int l = 0; l < s->c.n_layers; l++) {
            LayerWeights *lw = &w->layers[l];
            float *arrays[] = {lw->attn_norm, lw->wq, lw->wk, lw->wv, lw->wo, lw->ffn_norm, lw->w_gate, lw->w_up, lw->w_down};
            for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
        }
        free(w->layers);
    }
    if (w->output != w->token_embd) free(w->output);
    free(w->token_embd);
    free(w->output_norm);
    free(w->rope_inv_freq);
    RunState *r = &s->r;
    float *buffers[] = {r->x, r->xb, r->xb2, r->q, r->att, r->att_out, r->hb, r->hb2, r->logits, r->key_cache,
                        r->value_cache};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
    free(s);
}

// ----------------------------------------------------------------------------
// The plugin table and the one exported symbol

static const fb_plugin example_plugin = {
    .abi_major = FB_ABI_MAJOR,
    .abi_minor = FB_ABI_MINOR,
    .struct_size = sizeof(fb_plugin),
    .capabilities = FB_CAP_CPU | FB_CAP_PRECISION_F32,
    .name = EXAMPLE_NAME,
    .version = EXAMPLE_VERSION,
    .description = "the SDK's worked example: naive single-threaded f32 LLaMA decode in plain C",
    .probe = example_probe,
    .create = example_create,
    .prefill = example_prefill,
    .decode = example_decode,
    .reset = example_reset,
    .memory = example_memory,
    .effective_settings = example_effective_settings,
    .last_error = example_last_error,
    .destroy = example_destroy,
    .copy_bandwidth = NULL, // optional: only GPU backends measure a copy ceiling
};

FB_PLUGIN_EXPORT const fb_plugin *fb_plugin_entry(void) { return &example_plugin; }
