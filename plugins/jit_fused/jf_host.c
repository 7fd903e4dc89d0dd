/* jf_host.c - shapes, memory plan, weight conversion, source generation,
 * NVRTC and the kernel cache of jit_fused (no GPU needed; see jf_host.h). */
#include "jf_host.h"
#include "jf_prefill.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nvrtc.h>

#include "sha256.h"

// ----------------------------------------------------------------------------
// Shapes

int jf_padded(int n, int esize) {
    int per16 = 16 / esize;
    return (n + per16 - 1) / per16 * per16;
}

int jf_type_supported(uint32_t t) {
    switch (t) {
    case JF_T_F32:
    case JF_T_F16:
    case JF_T_BF16:
    case JF_T_Q8_0:
    case JF_T_Q4_0:
    case JF_T_Q4_1:
    case JF_T_Q4_K:
    case JF_T_Q5_K:
    case JF_T_Q6_K: return 1;
    default: return 0;
    }
}

static int64_t pad16(int64_t bytes) { return (bytes + 15) / 16 * 16; }

int64_t jf_row_bytes(uint32_t t, int64_t n) {
    if (n <= 0) return 0;
    switch (t) {
    case JF_T_F32: return pad16(4 * n);
    case JF_T_F16:
    case JF_T_BF16: return pad16(2 * n);
    case JF_T_Q8_0: return n % 32 ? 0 : n + pad16(n / 32 * 2);
    case JF_T_Q4_0: return n % 32 ? 0 : n / 2 + pad16(n / 32 * 2);
    case JF_T_Q4_1: return n % 32 ? 0 : n / 2 + pad16(n / 32 * 4);
    case JF_T_Q4_K: return n % 256 ? 0 : n / 256 * 144;
    case JF_T_Q5_K: return n % 256 ? 0 : n / 256 * 176;
    case JF_T_Q6_K: return n % 256 ? 0 : n / 256 * 208 + pad16(n / 256 * 2);
    default: return 0;
    }
}

uint32_t jf_device_type(const jf_config *c, uint32_t file_type) {
    switch (c->wtype) {
    case JF_F32: return JF_T_F32;
    case JF_F16: return JF_T_F16;
    case JF_BF16: return JF_T_BF16;
    default: return file_type;
    }
}

static jf_layer_types layer_types(const jf_config *c, const fb_layer_view *L) {
    return (jf_layer_types){jf_device_type(c, L->attn_q.type),   jf_device_type(c, L->attn_k.type),
                            jf_device_type(c, L->attn_v.type),   jf_device_type(c, L->attn_output.type),
                            jf_device_type(c, L->ffn_gate.type), jf_device_type(c, L->ffn_up.type),
                            jf_device_type(c, L->ffn_down.type)};
}

int jf_layer_kind(const jf_config *c, const fb_model_view *mv, int l) {
    jf_layer_types t = layer_types(c, FB_MODEL_LAYER(mv, l));
    for (int k = 0; k < c->n_kinds; k++)
        if (memcmp(&c->kinds[k], &t, sizeof t) == 0) return k;
    return -1;
}

/* At native: every matrix of a supported type, its rows whole blocks. */
static int check_native(const fb_model_view *mv, char *msg, size_t msg_size) {
    const fb_tensor_view *head[] = {mv->token_embd, mv->tied_output ? NULL : mv->output};
    for (uint32_t i = 0; i < 2 + 7 * mv->n_layer; i++) {
        const fb_tensor_view *t = NULL;
        if (i < 2) t = head[i];
        else {
            const fb_layer_view *L = FB_MODEL_LAYER(mv, (i - 2) / 7);
            const fb_tensor_view *m[] = {&L->attn_q,   &L->attn_k, &L->attn_v,  &L->attn_output,
                                         &L->ffn_gate, &L->ffn_up, &L->ffn_down};
            t = m[(i - 2) % 7];
        }
        if (!t) continue;
        if (!jf_type_supported(t->type) || jf_row_bytes(t->type, t->ne[0]) == 0) {
            snprintf(msg, msg_size,
                     "jit_fused: tensor '%s' is of GGUF type %u, which jit_fused cannot read in place "
                     "(native: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q4_K Q5_K Q6_K)",
                     t->name, (unsigned)t->type);
            return -1;
        }
    }
    return 0;
}

int jf_config_from_view(const fb_model_view *mv, uint32_t max_context, jf_wtype w, jf_config *c, char *msg,
                        size_t msg_size) {
    memset(c, 0, sizeof *c);
    if (mv->n_embd == 0 || mv->n_layer == 0 || mv->n_head == 0 || mv->n_head_kv == 0 || mv->head_dim == 0 ||
        mv->n_ff == 0 || mv->n_vocab == 0 || mv->n_ctx == 0) {
        snprintf(msg, msg_size, "jit_fused: the model has a zero dimension");
        return -1;
    }
    if (mv->n_head % mv->n_head_kv != 0) {
        snprintf(msg, msg_size, "jit_fused: %u query heads are not a multiple of %u KV heads", mv->n_head,
                 mv->n_head_kv);
        return -1;
    }
    if (mv->n_rot == 0 || mv->n_rot % 2 != 0 || mv->n_rot > mv->head_dim) {
        snprintf(msg, msg_size, "jit_fused: RoPE dimension %u must be even and at most head_dim %u", mv->n_rot,
                 mv->head_dim);
        return -1;
    }
    // One warp computes one RoPE pair of rows, so a pair must not straddle two heads.
    if (mv->head_dim % 2 != 0) {
        snprintf(msg, msg_size, "jit_fused: head_dim %u is odd; the fused Q/K/V kernel needs it even", mv->head_dim);
        return -1;
    }
    // Every index the kernels compute must fit an int, and a head must fit shared memory.
    const uint64_t limit = (uint64_t)1 << 30;
    if ((uint64_t)mv->n_head * mv->head_dim >= limit || mv->n_embd >= limit || mv->n_ff >= limit ||
        mv->n_vocab >= limit || mv->n_layer >= 65536 || mv->head_dim > 1024) {
        snprintf(msg, msg_size, "jit_fused: the model's dimensions are too large for this backend");
        return -1;
    }
    c->dim = (int)mv->n_embd;
    c->n_layers = (int)mv->n_layer;
    c->n_heads = (int)mv->n_head;
    c->n_kv_heads = (int)mv->n_head_kv;
    c->head_dim = (int)mv->head_dim;
    c->q_dim = c->n_heads * c->head_dim;
    c->kv_dim = c->n_kv_heads * c->head_dim;
    c->n_ff = (int)mv->n_ff;
    c->vocab = (int)mv->n_vocab;
    c->n_rot = (int)mv->n_rot;
    c->rms_eps = mv->rms_eps;
    c->tied = mv->tied_output != 0;
    uint32_t seq = max_context ? max_context : mv->n_ctx;
    if (seq > mv->n_ctx) seq = mv->n_ctx;
    if (seq >= (uint32_t)limit) seq = (uint32_t)limit - 1;
    c->max_seq = (int)seq;
    c->wtype = w;
    c->esize = w == JF_F32 ? 4 : 2;
    c->ld_dim = jf_padded(c->dim, c->esize);
    c->ld_q = jf_padded(c->q_dim, c->esize);
    c->ld_ff = jf_padded(c->n_ff, c->esize);
    c->nb = JF_PREFILL_POSITIONS;
    c->pf_chunk = w == JF_F16 || w == JF_BF16 ? JF_PF_CHUNK : 0; // tensor-core prefill (jf_prefill.h)
    // Up to about 256 attention items (KV head, split) per query on a long
    // context: enough to fill a large GPU, few enough that the merge stays
    // cheap. Short contexts use fewer splits (jf_att_chunk in the kernels).
    c->splits = 256 / c->n_kv_heads;
    if (c->splits < 1) c->splits = 1;
    if (c->splits > 64) c->splits = 64;
    // The types: one per matrix at native, the profile's everywhere else.
    if (w == JF_NATIVE &&
        (!mv->layers || !mv->token_embd || (!c->tied && !mv->output) || check_native(mv, msg, msg_size) != 0)) {
        if (!mv->layers || !mv->token_embd || (!c->tied && !mv->output))
            snprintf(msg, msg_size, "jit_fused: the model view has no tensors, so their types are unknown");
        return -1;
    }
    c->embd_type = jf_device_type(c, mv->token_embd ? mv->token_embd->type : JF_T_F32);
    c->out_type = c->tied ? c->embd_type : jf_device_type(c, mv->output ? mv->output->type : JF_T_F32);
    if (!mv->layers) { // shapes only (the NVRTC test): one kind at the profile's type
        c->n_kinds = 1;
        c->kinds[0] = layer_types(c, &(fb_layer_view){0});
        c->kind_layers[0] = c->n_layers;
        return 0;
    }
    for (int l = 0; l < c->n_layers; l++) {
        int k = jf_layer_kind(c, mv, l);
        if (k < 0) {
            if (c->n_kinds == JF_MAX_KINDS) {
                snprintf(msg, msg_size, "jit_fused: the model's layers mix their matrices' types in more than %d ways",
                         JF_MAX_KINDS);
                return -1;
            }
            k = c->n_kinds++;
            c->kinds[k] = layer_types(c, FB_MODEL_LAYER(mv, l));
        }
        c->kind_layers[k]++;
    }
    return 0;
}

void jf_plan_compute(const jf_config *c, jf_plan *plan) {
    const uint64_t f = sizeof(float), B = (uint64_t)c->nb;
    const uint64_t ld = (uint64_t)c->ld_dim, ldq = (uint64_t)c->ld_q, ldf = (uint64_t)c->ld_ff;
    const uint64_t dim = (uint64_t)c->dim, q = (uint64_t)c->q_dim, kv = (uint64_t)c->kv_dim, ff = (uint64_t)c->n_ff,
                   vocab = (uint64_t)c->vocab;
    memset(plan, 0, sizeof *plan);
    for (int k = 0; k < c->n_kinds; k++) {
        const jf_layer_types *t = &c->kinds[k];
        uint64_t per_layer = q * (uint64_t)jf_row_bytes(t->q, c->dim) + kv * (uint64_t)jf_row_bytes(t->k, c->dim) +
                             kv * (uint64_t)jf_row_bytes(t->v, c->dim) + dim * (uint64_t)jf_row_bytes(t->o, c->q_dim) +
                             ff * (uint64_t)jf_row_bytes(t->gate, c->dim) + ff * (uint64_t)jf_row_bytes(t->up, c->dim) +
                             dim * (uint64_t)jf_row_bytes(t->down, c->n_ff) + 2 * ld * f;
        plan->weights += (uint64_t)c->kind_layers[k] * per_layer;
    }
    plan->weights += vocab * (uint64_t)jf_row_bytes(c->embd_type, c->dim) +
                     (c->tied ? 0 : vocab * (uint64_t)jf_row_bytes(c->out_type, c->dim)) + ld * f +
                     (uint64_t)(c->n_rot / 2) * f;
    plan->kv_cache = 2 * (uint64_t)c->n_layers * (uint64_t)c->max_seq * kv * f;
    plan->activations = B * (ld + q + ldq + ldf + vocab) * f // x q att hb logits
                        + B * (uint64_t)c->n_heads * (uint64_t)c->splits * (uint64_t)(c->head_dim + 2) * f // partials
                        + (B + 1) * sizeof(int32_t) + sizeof(uint64_t)   // step, argmax key
                        + B * (uint64_t)c->n_kv_heads * sizeof(uint32_t) // attention arrivals
                        + (uint64_t)jf_sync_words(c) * sizeof(uint32_t)  // the persistent step's counters
                        + (uint64_t)c->n_layers * sizeof(jf_step_layer)  // and its table of layers
                        + jf_prefill_bytes(c, (uint64_t[6]){0});         // the tensor-core prefill's buffers
    plan->total = plan->weights + plan->kv_cache + plan->activations;
}

void jf_rope_inv_freq(float *inv_freq, int n_rot, float base, const float *factors) {
    for (int i = 0; i < n_rot / 2; i++) {
        double inv = pow((double)base, -2.0 * i / n_rot);
        if (factors) inv /= (double)factors[i];
        inv_freq[i] = (float)inv;
    }
}

// ----------------------------------------------------------------------------
// Weight conversion into padded rows, split over threads by rows

typedef struct ConvertJob {
    const fb_host *host;
    uint32_t src_type;
    const uint8_t *src;
    size_t src_row_bytes;
    int64_t cols, ld;
    uint8_t *dst;
    jf_wtype w;
    int64_t row_begin, row_end;
    int rc;
} ConvertJob;

static void *convert_worker(void *arg) {
    ConvertJob *j = arg;
    const size_t esize = j->w == JF_F32 ? 4 : 2;
    float *scratch = NULL;
    if (j->w == JF_BF16 && !(scratch = malloc((size_t)j->cols * sizeof(float)))) {
        j->rc = -2;
        return NULL;
    }
    j->rc = 0;
    for (int64_t r = j->row_begin; r < j->row_end && j->rc == 0; r++) {
        const uint8_t *in = j->src + (size_t)r * j->src_row_bytes;
        uint8_t *out = j->dst + (size_t)r * (size_t)j->ld * esize;
        int rc;
        if (j->w == JF_F32) {
            rc = j->host->dequantize_row_f32(j->src_type, in, (float *)(void *)out, j->cols);
        } else if (j->w == JF_F16) {
            rc = j->host->dequantize_row_f16(j->src_type, in, (uint16_t *)(void *)out, j->cols);
        } else {
            rc = j->host->dequantize_row_f32(j->src_type, in, scratch, j->cols);
            uint16_t *o = (uint16_t *)(void *)out;
            for (int64_t i = 0; i < j->cols && rc == 0; i++) o[i] = fb_f32_to_bf16(scratch[i]);
        }
        if (rc != 0) j->rc = -1;
        memset(out + (size_t)j->cols * esize, 0, (size_t)(j->ld - j->cols) * esize);
    }
    free(scratch);
    return NULL;
}

int jf_convert_rows(const fb_host *host, uint32_t src_type, const void *src, int64_t rows, int64_t cols, void *dst,
                    int64_t ld, jf_wtype w, int n_threads) {
    size_t src_row_bytes = (size_t)host->row_bytes(src_type, cols);
    if (src_row_bytes == 0 || ld < cols) return -1;
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 64) n_threads = 64;
    if ((int64_t)n_threads > rows / 16) n_threads = rows >= 32 ? (int)(rows / 16) : 1; // small tensors: one thread
    ConvertJob jobs[64];
    pthread_t tids[64];
    int on_thread[64] = {0};
    for (int t = 0; t < n_threads; t++)
        jobs[t] = (ConvertJob){.host = host,
                               .src_type = src_type,
                               .src = src,
                               .src_row_bytes = src_row_bytes,
                               .cols = cols,
                               .ld = ld,
                               .dst = dst,
                               .w = w,
                               .row_begin = rows * t / n_threads,
                               .row_end = rows * (t + 1) / n_threads};
    // Share 0 runs here, the others on threads of their own (or here, when a thread cannot start).
    for (int t = 1; t < n_threads; t++) {
        on_thread[t] = pthread_create(&tids[t], NULL, convert_worker, &jobs[t]) == 0;
        if (!on_thread[t]) convert_worker(&jobs[t]);
    }
    convert_worker(&jobs[0]);
    int rc = 0;
    for (int t = 0; t < n_threads; t++) {
        if (on_thread[t]) pthread_join(tids[t], NULL);
        if (jobs[t].rc != 0 && rc == 0) rc = jobs[t].rc;
    }
    return rc;
}

/* One row of n values of block type t, as stored, into its device layout
 * (jf_row_bytes): quants and scales moved apart where jf_row_bytes says. */
static void relayout_row(uint32_t t, const uint8_t *src, int64_t n, uint8_t *dst) {
    const int64_t bytes = jf_row_bytes(t, n);
    memset(dst, 0, (size_t)bytes);
    switch (t) {
    case JF_T_Q8_0: // block: d[2] qs[32]
        for (int64_t b = 0; b < n / 32; b++) {
            memcpy(dst + 32 * b, src + 34 * b + 2, 32);
            memcpy(dst + n + 2 * b, src + 34 * b, 2);
        }
        break;
    case JF_T_Q4_0: // block: d[2] qs[16]
        for (int64_t b = 0; b < n / 32; b++) {
            memcpy(dst + 16 * b, src + 18 * b + 2, 16);
            memcpy(dst + n / 2 + 2 * b, src + 18 * b, 2);
        }
        break;
    case JF_T_Q4_1: // block: d[2] m[2] qs[16]
        for (int64_t b = 0; b < n / 32; b++) {
            memcpy(dst + 16 * b, src + 20 * b + 4, 16);
            memcpy(dst + n / 2 + 4 * b, src + 20 * b, 4);
        }
        break;
    case JF_T_Q6_K: // block: ql[128] qh[64] scales[16] d[2]
        for (int64_t b = 0; b < n / 256; b++) {
            memcpy(dst + 208 * b, src + 210 * b, 208);
            memcpy(dst + n / 256 * 208 + 2 * b, src + 210 * b + 208, 2);
        }
        break;
    default: // Q4_K, Q5_K: as stored
        memcpy(dst, src, (size_t)bytes);
        break;
    }
}

int jf_layout_rows(const fb_host *host, uint32_t src_type, const void *src, int64_t rows, int64_t cols, void *dst,
                   uint32_t dev_type, int n_threads) {
    int64_t dst_row = jf_row_bytes(dev_type, cols);
    if (dst_row == 0) return -1;
    if (dev_type == JF_T_F32 || dev_type == JF_T_F16 || dev_type == JF_T_BF16) {
        jf_wtype w = dev_type == JF_T_F32 ? JF_F32 : dev_type == JF_T_F16 ? JF_F16 : JF_BF16;
        return jf_convert_rows(host, src_type, src, rows, cols, dst, dst_row / (w == JF_F32 ? 4 : 2), w, n_threads);
    }
    size_t src_row = (size_t)host->row_bytes(src_type, cols);
    if (src_type != dev_type || src_row == 0) return -1;
    for (int64_t r = 0; r < rows; r++)
        relayout_row(dev_type, (const uint8_t *)src + (size_t)r * src_row, cols,
                     (uint8_t *)dst + (size_t)(r * dst_row));
    return 0;
}

// ----------------------------------------------------------------------------
// Source generation

const char *const jf_kernel_names[JF_K_COUNT] = {
    "jf_embed",           "jf_attention_split", "jf_qkv_rope_1",       "jf_out_residual_1",
    "jf_gate_up_1",       "jf_down_residual_1", "jf_lm_head_1",        "jf_qkv_rope_nb",
    "jf_out_residual_nb", "jf_gate_up_nb",      "jf_down_residual_nb", "jf_lm_head_nb",
    "jf_decode_step",     "jf_pf_norm",         "jf_pf_qkv",           "jf_pf_attention",
    "jf_pf_out",          "jf_pf_gate_up",      "jf_pf_down",
};

int jf_kernel_per_layer(jf_kernel_id k) {
    return (k >= JF_K_QKV_ROPE_1 && k <= JF_K_DOWN_RESIDUAL_1) || (k >= JF_K_QKV_ROPE_NB && k <= JF_K_DOWN_RESIDUAL_NB);
}

int jf_kernel_present(const jf_config *c, jf_kernel_id k) { return k < JF_K_PF_NORM || c->pf_chunk > 0; }

void jf_kernel_name(jf_kernel_id k, int kind, char *out, size_t out_size) {
    if (jf_kernel_per_layer(k)) snprintf(out, out_size, "%s_k%d", jf_kernel_names[k], kind);
    else
        snprintf(out, out_size, "%s", jf_kernel_names[k]);
}

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static const char *type_macro(uint32_t t) {
    switch (t) {
    case JF_T_F32: return "JF_T_F32";
    case JF_T_F16: return "JF_T_F16";
    case JF_T_BF16: return "JF_T_BF16";
    case JF_T_Q8_0: return "JF_T_Q8_0";
    case JF_T_Q4_0: return "JF_T_Q4_0";
    case JF_T_Q4_1: return "JF_T_Q4_1";
    case JF_T_Q4_K: return "JF_T_Q4_K";
    case JF_T_Q5_K: return "JF_T_Q5_K";
    case JF_T_Q6_K: return "JF_T_Q6_K";
    default: return "JF_T_UNSUPPORTED";
    }
}

char *jf_generate_source(const jf_config *c) {
    static const char *wnames[] = {"f32", "f16", "bf16", "native"};
    float att_scale = 1.0f / sqrtf((float)c->head_dim); // as cpu_ref computes it
    char head[2048];
    int n = snprintf(head, sizeof head,
                     "// generated by jit_fused for this model and profile; the template follows\n"
                     "#define JF_DIM %d\n#define JF_N_HEADS %d\n#define JF_N_KV_HEADS %d\n#define JF_HEAD_DIM %d\n"
                     "#define JF_N_FF %d\n#define JF_VOCAB %d\n#define JF_N_ROT %d\n"
                     "#define JF_Q_DIM %d\n#define JF_KV_DIM %d\n"
                     "#define JF_LD_DIM %d\n#define JF_LD_Q %d\n#define JF_LD_FF %d\n"
                     "#define JF_WTYPE %d // %s\n#define JF_T_EMBD %s\n#define JF_T_OUT %s\n"
                     "#define JF_NB %d\n#define JF_SPLITS %d\n#define JF_N_LAYERS %d\n"
                     "#define JF_RMS_EPS __int_as_float(0x%08x) // %.9g\n"
                     "#define JF_ATT_SCALE __int_as_float(0x%08x) // 1/sqrt(%d) = %.9g\n"
                     "%s"
                     "#line 1 \"jit_fused_kernels.cuh\"\n",
                     c->dim, c->n_heads, c->n_kv_heads, c->head_dim, c->n_ff, c->vocab, c->n_rot, c->q_dim, c->kv_dim,
                     c->ld_dim, c->ld_q, c->ld_ff, (int)c->wtype, wnames[c->wtype], type_macro(c->embd_type),
                     type_macro(c->out_type), c->nb, c->splits, c->n_layers, float_bits(c->rms_eps), (double)c->rms_eps,
                     float_bits(att_scale), c->head_dim, (double)att_scale, c->pdl ? "#define JF_PDL 1\n" : "");
    if (n < 0 || (size_t)n >= sizeof head) return NULL;
    // The layers' entry points, one set per kind, after the template; then
    // the persistent step's dispatch of a layer op on the layer's kind.
    char tail[JF_MAX_KINDS * 512 + 512];
    size_t t = (size_t)snprintf(tail, sizeof tail, "\n#line 1 \"jit_fused (the layers' kinds)\"\n");
    for (int k = 0; k < c->n_kinds && k < JF_MAX_KINDS; k++) {
        const jf_layer_types *lt = &c->kinds[k];
        t += (size_t)snprintf(tail + t, sizeof tail - t,
                              "JF_LAYER_ENTRY_POINTS(k%d, %s, %s, %s, %s, %s, %s, %s) // %d layers\n", k,
                              type_macro(lt->q), type_macro(lt->k), type_macro(lt->v), type_macro(lt->o),
                              type_macro(lt->gate), type_macro(lt->up), type_macro(lt->down), c->kind_layers[k]);
        if (t >= sizeof tail) return NULL;
    }
    t += (size_t)snprintf(tail + t, sizeof tail - t,
                          "__device__ void jf_layer_op(int kind, int op, int item, const jf_step_params &p, int l, "
                          "float inv, bool prefetch) {\n    switch (kind) {\n");
    for (int k = 0; k < c->n_kinds && k < JF_MAX_KINDS && t < sizeof tail; k++) {
        const jf_layer_types *lt = &c->kinds[k];
        t += (size_t)snprintf(tail + t, sizeof tail - t,
                              "    case %d: jf_layer_op_of<%s, %s, %s, %s, %s, %s, %s>(op, item, p, l, inv, prefetch); "
                              "return;\n",
                              k, type_macro(lt->q), type_macro(lt->k), type_macro(lt->v), type_macro(lt->o),
                              type_macro(lt->gate), type_macro(lt->up), type_macro(lt->down));
    }
    if (t < sizeof tail) t += (size_t)snprintf(tail + t, sizeof tail - t, "    }\n}\n");
    if (t >= sizeof tail) return NULL;
    char *prefill = jf_prefill_source(c); // the tensor-core prefill's kernels, or ""
    if (!prefill) return NULL;
    size_t tlen = strlen(jf_kernel_template), plen = strlen(prefill);
    char *src = malloc((size_t)n + tlen + plen + t + 1);
    if (!src) {
        free(prefill);
        return NULL;
    }
    memcpy(src, head, (size_t)n);
    memcpy(src + n, jf_kernel_template, tlen);
    memcpy(src + n + tlen, prefill, plen);
    memcpy(src + n + tlen + plen, tail, t + 1);
    free(prefill);
    return src;
}

// ----------------------------------------------------------------------------
// One forward pass

static unsigned blocks_of(int rows) { return (unsigned)((rows + JF_WARPS - 1) / JF_WARPS); }

int jf_forward(const jf_config *c, const jf_buffers *b, int lm_grid, int nb, int logits_first, int with_lm_head,
               jf_launch_fn launch, void *ctx) {
    const int one = nb == 1;
    const unsigned T = JF_WARPS * 32;
    int rc;
    {
        void *args[] = {(void *)&b->step, (void *)&b->token_embd, (void *)&b->x, (void *)&b->argmax_key};
        if ((rc = launch(ctx, JF_K_EMBED, 0, (unsigned)nb, 1, 1, T, args))) return rc;
    }
    for (int l = 0; l < c->n_layers; l++) {
        const jf_layer_buffers *lw = &b->layers[l];
        float *kc = b->key_cache + (size_t)l * (size_t)c->max_seq * (size_t)c->kv_dim;
        float *vc = b->value_cache + (size_t)l * (size_t)c->max_seq * (size_t)c->kv_dim;
        // RMSNorm + Q, K, V + RoPE + KV write: one warp per pair of rows
        void *qkv[] = {(void *)&b->step,
                       &nb,
                       (void *)&b->x,
                       (void *)&lw->attn_norm,
                       (void *)&lw->w_qkv,
                       (void *)&b->rope_inv_freq,
                       (void *)&b->q,
                       &kc,
                       &vc};
        if ((rc = launch(ctx, one ? JF_K_QKV_ROPE_1 : JF_K_QKV_ROPE_NB, lw->kind,
                         blocks_of((c->q_dim + 2 * c->kv_dim) / 2), 1, 1, T, qkv)))
            return rc;
        // attention: (KV head, split, position) blocks; the last split of each merges
        void *att[] = {(void *)&b->step, (void *)&b->q,        &kc, &vc, (void *)&b->part,
                       (void *)&b->att,  (void *)&b->att_count};
        if ((rc = launch(ctx, JF_K_ATTENTION, 0, (unsigned)c->n_kv_heads, (unsigned)c->splits, (unsigned)nb, T, att)))
            return rc;
        // x += W_o . att; one warp per row
        void *out[] = {&nb, (void *)&b->att, (void *)&lw->w_o, (void *)&b->x};
        if ((rc = launch(ctx, one ? JF_K_OUT_RESIDUAL_1 : JF_K_OUT_RESIDUAL_NB, lw->kind, blocks_of(c->dim), 1, 1, T,
                         out)))
            return rc;
        // RMSNorm + gate, up + SiLU * ; one warp per row of each
        void *gu[] = {&nb,           (void *)&b->x, (void *)&lw->ffn_norm, (void *)&lw->w_gate, (void *)&lw->w_up,
                      (void *)&b->hb};
        if ((rc = launch(ctx, one ? JF_K_GATE_UP_1 : JF_K_GATE_UP_NB, lw->kind, blocks_of(c->n_ff), 1, 1, T, gu)))
            return rc;
        // x += W_down . h
        void *down[] = {&nb, (void *)&b->hb, (void *)&lw->w_down, (void *)&b->x};
        if ((rc = launch(ctx, one ? JF_K_DOWN_RESIDUAL_1 : JF_K_DOWN_RESIDUAL_NB, lw->kind, blocks_of(c->dim), 1, 1, T,
                         down)))
            return rc;
    }
    if (with_lm_head) {
        int n_out = nb - logits_first;
        float *x_first = b->x + (size_t)logits_first * (size_t)c->ld_dim;
        void *lm[] = {
            &n_out, &x_first, (void *)&b->output_norm, (void *)&b->output, (void *)&b->logits, (void *)&b->argmax_key};
        if ((rc = launch(ctx, n_out == 1 ? JF_K_LM_HEAD_1 : JF_K_LM_HEAD_NB, 0, (unsigned)lm_grid, 1, 1, T, lm)))
            return rc;
    }
    return 0;
}

// ----------------------------------------------------------------------------
// The persistent decode step

size_t jf_sync_words(const jf_config *c) { return 2 + 2 + 5 * (size_t)c->n_layers; } // JF_SYNC_WORDS

void jf_step_layers(const jf_config *c, const jf_buffers *b, jf_step_layer *out) {
    for (int l = 0; l < c->n_layers; l++) {
        const jf_layer_buffers *lw = &b->layers[l];
        out[l] = (jf_step_layer){lw->attn_norm, lw->w_qkv, lw->w_o,    lw->ffn_norm,
                                 lw->w_gate,    lw->w_up,  lw->w_down, (int64_t)lw->kind};
    }
}

jf_step_params jf_step_params_of(const jf_config *c, const jf_buffers *b) {
    return (jf_step_params){.step = b->step,
                            .token_embd = b->token_embd,
                            .layers = b->step_layers,
                            .output_norm = b->output_norm,
                            .output = b->output,
                            .rope_inv_freq = b->rope_inv_freq,
                            .x = b->x,
                            .q = b->q,
                            .part = b->part,
                            .att = b->att,
                            .hb = b->hb,
                            .logits = b->logits,
                            .key_cache = b->key_cache,
                            .value_cache = b->value_cache,
                            .argmax_key = b->argmax_key,
                            .sync = b->sync,
                            .att_count = b->att_count,
                            .max_seq = c->max_seq};
}

int jf_decode_persistent(const jf_config *c, const jf_buffers *b, unsigned grid, jf_launch_fn launch, void *ctx) {
    jf_step_params p = jf_step_params_of(c, b);
    void *args[] = {&p};
    return launch(ctx, JF_K_DECODE_STEP, 0, grid ? grid : 1, 1, 1, JF_WARPS * 32, args);
}

int32_t jf_token_of_key(uint64_t key) { return (int32_t)(0xFFFFFFFFu - (uint32_t)(key & 0xFFFFFFFFu)); }

// ----------------------------------------------------------------------------
// NVRTC

void jf_image_free(jf_image *img) {
    if (!img) return;
    free(img->data);
    free(img->log);
    memset(img, 0, sizeof *img);
}

const char *jf_nvrtc_version(void) {
    static char version[32];
    int major = 0, minor = 0;
    if (nvrtcVersion(&major, &minor) != NVRTC_SUCCESS) return "";
    snprintf(version, sizeof version, "%d.%d", major, minor);
    return version;
}

/* The newest architecture NVRTC supports that is at most `want` (70 for
 * 7.0 ...); 0 when there is none. */
static int best_arch(int want) {
    int n = 0, best = 0;
    if (nvrtcGetNumSupportedArchs(&n) != NVRTC_SUCCESS || n <= 0 || n > 256) return 0;
    int archs[256];
    if (nvrtcGetSupportedArchs(archs) != NVRTC_SUCCESS) return 0;
    for (int i = 0; i < n; i++)
        if (archs[i] <= want && archs[i] > best) best = archs[i];
    return best;
}

int jf_compile_options(int cc_major, int cc_minor, char *out, size_t out_size, int *is_ptx, char *msg,
                       size_t msg_size) {
    int want = cc_major * 10 + cc_minor;
    *is_ptx = 0;
    if (want < 80) {
        snprintf(msg, msg_size, "jit_fused: compute capability %d.%d; the fused kernels need 8.0 or newer", cc_major,
                 cc_minor);
        return -1;
    }
    int arch = best_arch(want);
    if (arch < 80) {
        snprintf(msg, msg_size, "jit_fused: NVRTC %s cannot compile for compute capability %d.%d", jf_nvrtc_version(),
                 cc_major, cc_minor);
        return -1;
    }
    // A device this NVRTC does not know: PTX for the newest architecture it
    // knows below it, which the driver finishes for the device.
    *is_ptx = arch != want;
    int n = snprintf(out, out_size, "--gpu-architecture=%s_%d -std=c++17 -default-device%s", *is_ptx ? "compute" : "sm",
                     arch, *is_ptx ? "" : " --ptxas-options=-v"); // -v: the log reports registers and spills
    if (n < 0 || (size_t)n >= out_size) {
        snprintf(msg, msg_size, "jit_fused: option buffer too small");
        return -1;
    }
    return 0;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int jf_compile(const char *source, int cc_major, int cc_minor, jf_image *out, char *msg, size_t msg_size) {
    memset(out, 0, sizeof *out);
    char options[256];
    int is_ptx = 0;
    if (jf_compile_options(cc_major, cc_minor, options, sizeof options, &is_ptx, msg, msg_size) != 0) return -1;
    // split the option string at spaces (none of ours contains one)
    char opt_buf[256];
    const char *opts[8];
    int n_opts = 0;
    memcpy(opt_buf, options, sizeof opt_buf);
    for (char *save = NULL, *tok = strtok_r(opt_buf, " ", &save); tok && n_opts < 8; tok = strtok_r(NULL, " ", &save))
        opts[n_opts++] = tok;

    double t0 = now_ms();
    nvrtcProgram prog = NULL;
    nvrtcResult r = nvrtcCreateProgram(&prog, source, "jit_fused.cu", 0, NULL, NULL);
    if (r != NVRTC_SUCCESS) {
        snprintf(msg, msg_size, "jit_fused: nvrtcCreateProgram failed: %s", nvrtcGetErrorString(r));
        return -1;
    }
    r = nvrtcCompileProgram(prog, n_opts, opts);
    size_t log_size = 0;
    if (nvrtcGetProgramLogSize(prog, &log_size) == NVRTC_SUCCESS && log_size > 1 && (out->log = malloc(log_size)))
        if (nvrtcGetProgramLog(prog, out->log) != NVRTC_SUCCESS) out->log[0] = '\0';
    if (r != NVRTC_SUCCESS) {
        snprintf(msg, msg_size, "jit_fused: NVRTC (%s) failed to compile the generated kernels: %s; log: %.300s",
                 options, nvrtcGetErrorString(r), out->log ? out->log : "(none)");
        nvrtcDestroyProgram(&prog);
        jf_image_free(out);
        return -1;
    }
    size_t size = 0;
    r = is_ptx ? nvrtcGetPTXSize(prog, &size) : nvrtcGetCUBINSize(prog, &size);
    if (r == NVRTC_SUCCESS && size > 0 && (out->data = malloc(size)))
        r = is_ptx ? nvrtcGetPTX(prog, out->data) : nvrtcGetCUBIN(prog, out->data);
    nvrtcDestroyProgram(&prog);
    if (r != NVRTC_SUCCESS || !out->data) {
        snprintf(msg, msg_size, "jit_fused: reading NVRTC's %s failed: %s", is_ptx ? "PTX" : "cubin",
                 r != NVRTC_SUCCESS ? nvrtcGetErrorString(r) : "out of memory");
        jf_image_free(out);
        return -1;
    }
    out->size = size;
    out->is_ptx = is_ptx;
    out->compile_ms = now_ms() - t0;
    return 0;
}

long jf_log_spill_bytes(const char *log) {
    if (!log) return -1;
    long total = 0;
    int seen = 0;
    for (const char *p = log; (p = strstr(p, "bytes spill ")) != NULL; p += 12) {
        // "... 0 bytes spill stores, 0 bytes spill loads": the number precedes
        const char *q = p;
        while (q > log && q[-1] == ' ') q--;
        while (q > log && q[-1] >= '0' && q[-1] <= '9') q--;
        total += strtol(q, NULL, 10);
        seen = 1;
    }
    return seen ? total : -1;
}

// ----------------------------------------------------------------------------
// The cache

int jf_cache_dir(const char *cache_dir, char *out, size_t out_size) {
    const char *env;
    int n;
    if (cache_dir && cache_dir[0]) n = snprintf(out, out_size, "%s", cache_dir);
    else if ((env = getenv("FAIRBENCH_JIT_CACHE")) && env[0])
        n = snprintf(out, out_size, "%s", env);
    else if ((env = getenv("XDG_CACHE_HOME")) && env[0])
        n = snprintf(out, out_size, "%s/fairbench/jit", env);
    else if ((env = getenv("HOME")) && env[0])
        n = snprintf(out, out_size, "%s/.cache/fairbench/jit", env);
    else
        return -1;
    return n < 0 || (size_t)n >= out_size ? -1 : 0;
}

int jf_cache_key(const char *source, const char *options, const char *nvrtc_version, int cc_major, int cc_minor,
                 char key[65]) {
    char tail[512];
    int n = snprintf(tail, sizeof tail, "%c%s%cnvrtc %s%csm_%d%d", 0, options, 0, nvrtc_version, 0, cc_major, cc_minor);
    size_t slen = strlen(source);
    char *buf = malloc(slen + (size_t)n);
    if (!buf || n < 0 || (size_t)n >= sizeof tail) {
        free(buf);
        return -1;
    }
    memcpy(buf, source, slen);
    memcpy(buf + slen, tail, (size_t)n);
    fb_sha256_buffer(buf, slen + (size_t)n, key);
    free(buf);
    return 0;
}

/* File layout: "FBJIT001", u32 is_ptx, u32 0, u64 payload size, the
 * payload's SHA-256 (64 hex characters), the payload. */
#define CACHE_MAGIC "FBJIT001"
#define CACHE_HEADER (8 + 4 + 4 + 8 + 64)

static int cache_path(const char *dir, const char *key, char *out, size_t out_size) {
    int n = snprintf(out, out_size, "%s/%s.fbjit", dir, key);
    return n < 0 || (size_t)n >= out_size ? -1 : 0;
}

int jf_cache_read(const char *dir, const char *key, jf_image *out, char *why, size_t why_size) {
    memset(out, 0, sizeof *out);
    char path[4096];
    if (cache_path(dir, key, path, sizeof path) != 0) {
        snprintf(why, why_size, "cache path too long");
        return 0;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, why_size, "no cached kernels (%s)", errno == ENOENT ? "absent" : strerror(errno));
        return 0;
    }
    unsigned char h[CACHE_HEADER];
    uint64_t size = 0;
    uint32_t is_ptx = 0;
    int hit = 0;
    if (fread(h, 1, sizeof h, f) != sizeof h || memcmp(h, CACHE_MAGIC, 8) != 0) {
        snprintf(why, why_size, "cached file %s has no valid header", path);
        goto done;
    }
    memcpy(&is_ptx, h + 8, 4);
    memcpy(&size, h + 16, 8);
    if (size == 0 || size > ((uint64_t)1 << 31) || is_ptx > 1) {
        snprintf(why, why_size, "cached file %s has an implausible header", path);
        goto done;
    }
    if (!(out->data = malloc((size_t)size))) {
        snprintf(why, why_size, "out of memory reading %s", path);
        goto done;
    }
    if (fread(out->data, 1, (size_t)size, f) != (size_t)size) {
        snprintf(why, why_size, "cached file %s is truncated", path);
        goto done;
    }
    char digest[65];
    fb_sha256_buffer(out->data, (size_t)size, digest);
    if (memcmp(digest, h + 24, 64) != 0) {
        snprintf(why, why_size, "cached file %s is corrupt (checksum mismatch)", path);
        goto done;
    }
    out->size = (size_t)size;
    out->is_ptx = (int)is_ptx;
    hit = 1;
    why[0] = '\0';
done:
    fclose(f);
    if (!hit) jf_image_free(out);
    return hit;
}

static int mkdir_p(const char *dir) {
    char path[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path) return -1;
    memcpy(path, dir, len + 1);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(path, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

int jf_cache_write(const char *dir, const char *key, const jf_image *img, char *msg, size_t msg_size) {
    char path[4096], tmp[4200];
    if (cache_path(dir, key, path, sizeof path) != 0) {
        snprintf(msg, msg_size, "jit_fused: cache path too long");
        return -1;
    }
    if (mkdir_p(dir) != 0) {
        snprintf(msg, msg_size, "jit_fused: cannot create the kernel cache folder %s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    unsigned char h[CACHE_HEADER] = {0};
    uint32_t is_ptx = (uint32_t)img->is_ptx;
    uint64_t size = img->size;
    char digest[65];
    fb_sha256_buffer(img->data, img->size, digest);
    memcpy(h, CACHE_MAGIC, 8);
    memcpy(h + 8, &is_ptx, 4);
    memcpy(h + 16, &size, 8);
    memcpy(h + 24, digest, 64);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(msg, msg_size, "jit_fused: cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    int ok = fwrite(h, 1, sizeof h, f) == sizeof h && fwrite(img->data, 1, img->size, f) == img->size;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(msg, msg_size, "jit_fused: cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
