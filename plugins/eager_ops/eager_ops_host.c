/* eager_ops_host.c - shapes, memory plan and weight conversion (no device). */
#include "eager_ops_host.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int eo_config_from_view(const fb_model_view *mv, uint32_t max_context, int max_batch, eo_config *c, char *msg,
                        size_t msg_size) {
    memset(c, 0, sizeof *c);
    if (mv->n_embd == 0 || mv->n_layer == 0 || mv->n_head == 0 || mv->n_head_kv == 0 || mv->head_dim == 0 ||
        mv->n_ff == 0 || mv->n_vocab == 0 || mv->n_ctx == 0) {
        snprintf(msg, msg_size, "eager_ops: the model has a zero dimension");
        return -1;
    }
    if (mv->n_head % mv->n_head_kv != 0) {
        snprintf(msg, msg_size, "eager_ops: %u query heads are not a multiple of %u KV heads", mv->n_head,
                 mv->n_head_kv);
        return -1;
    }
    if (mv->n_rot == 0 || mv->n_rot % 2 != 0 || mv->n_rot > mv->head_dim) {
        snprintf(msg, msg_size, "eager_ops: RoPE dimension %u must be even and at most head_dim %u", mv->n_rot,
                 mv->head_dim);
        return -1;
    }
    if (mv->head_dim > EO_ATTENTION_MAX_HEAD_DIM) {
        snprintf(msg, msg_size, "eager_ops: head_dim %u is over the %d its attention kernels handle", mv->head_dim,
                 EO_ATTENTION_MAX_HEAD_DIM);
        return -1;
    }
    /* Every product below must fit an int: the kernels index rows with int. */
    const uint64_t limit = (uint64_t)1 << 30;
    if ((uint64_t)mv->n_head * mv->head_dim >= limit || (uint64_t)mv->n_head_kv * mv->head_dim >= limit ||
        mv->n_embd >= limit || mv->n_ff >= limit || mv->n_vocab >= limit || mv->n_layer >= 65536) {
        snprintf(msg, msg_size, "eager_ops: the model's dimensions are too large for this backend");
        return -1;
    }
    c->dim = (int)mv->n_embd;
    c->n_layers = (int)mv->n_layer;
    c->n_heads = (int)mv->n_head;
    c->n_kv_heads = (int)mv->n_head_kv;
    c->head_dim = (int)mv->head_dim;
    c->kv_dim = c->n_kv_heads * c->head_dim;
    c->q_dim = c->n_heads * c->head_dim;
    c->hidden_dim = (int)mv->n_ff;
    c->vocab_size = (int)mv->n_vocab;
    c->n_rot = (int)mv->n_rot;
    c->rms_eps = mv->rms_eps;
    c->tied = mv->tied_output != 0;
    uint32_t seq = max_context ? max_context : mv->n_ctx;
    if (seq > mv->n_ctx) seq = mv->n_ctx;
    if (seq >= (uint32_t)limit) seq = (uint32_t)limit - 1;
    c->max_seq = (int)seq;
    c->max_batch = max_batch < c->max_seq ? max_batch : c->max_seq;
    if (c->max_batch < 1) c->max_batch = 1;
    c->widest = c->dim > c->hidden_dim ? c->dim : c->hidden_dim;
    if (c->q_dim > c->widest) c->widest = c->q_dim;
    return 0;
}

void eo_plan_compute(const eo_config *c, eo_dtype type, eo_plan *plan) {
    const uint64_t e = eo_dtype_size(type), f = sizeof(float), B = (uint64_t)c->max_batch;
    const uint64_t dim = (uint64_t)c->dim, q = (uint64_t)c->q_dim, kv = (uint64_t)c->kv_dim,
                   ff = (uint64_t)c->hidden_dim, vocab = (uint64_t)c->vocab_size;
    memset(plan, 0, sizeof *plan);
    uint64_t per_layer = (dim * q + 2 * dim * kv + q * dim + 3 * dim * ff) * e + 2 * dim * f;
    plan->weights = (uint64_t)c->n_layers * per_layer + vocab * dim * e * (c->tied ? 1 : 2) + dim * f +
                    (uint64_t)(c->n_rot / 2) * f;
    plan->kv_cache = 2 * (uint64_t)c->n_layers * (uint64_t)c->max_seq * kv * f;
    plan->activations = B * (2 * dim + 2 * q + 2 * kv + 2 * ff) * f // x xb2, q att_out, k v, hb hb2
                        + (uint64_t)eo_logits_rows(c) * vocab * f   // logits, a slice of rows
                        + eo_attention_decode_partials(c->n_heads, c->head_dim, EO_DECODE_SPLITS) * f +
                        (type == EO_F32 ? B * dim * f                  // xb: the f32 GEMM input
                                        : B * (uint64_t)c->widest * e) // xh: the 16-bit GEMM input
                        + (B + 2) * sizeof(int32_t);                   // pos, tokens, next token
    plan->workspace = EO_CUBLAS_WORKSPACE_BYTES;
    plan->total = plan->weights + plan->kv_cache + plan->activations + plan->workspace;
}

uint32_t eo_dtype_gguf_type(eo_dtype type) {
    return type == EO_F16 ? FB_TYPE_F16 : type == EO_BF16 ? FB_TYPE_BF16 : FB_TYPE_F32;
}

int eo_convert_rows(const fb_host *host, uint32_t src_type, const void *src, void *dst, eo_dtype dst_type, int64_t rows,
                    int64_t cols, float *scratch) {
    size_t src_row_bytes = (size_t)host->row_bytes(src_type, cols);
    size_t dst_row_bytes = (size_t)cols * eo_dtype_size(dst_type);
    if (src_row_bytes == 0) return -1;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *in = (const uint8_t *)src + (size_t)r * src_row_bytes;
        uint8_t *out = (uint8_t *)dst + (size_t)r * dst_row_bytes;
        int rc;
        if (dst_type == EO_F32) {
            rc = host->dequantize_row_f32(src_type, in, (float *)(void *)out, cols);
        } else if (dst_type == EO_F16) {
            rc = host->dequantize_row_f16(src_type, in, (uint16_t *)(void *)out, cols);
        } else {
            rc = host->dequantize_row_f32(src_type, in, scratch, cols);
            uint16_t *o = (uint16_t *)(void *)out;
            for (int64_t i = 0; i < cols && rc == 0; i++) o[i] = fb_f32_to_bf16(scratch[i]);
        }
        if (rc != 0) return -1;
    }
    return 0;
}

void eo_rope_inv_freq(float *inv_freq, int n_rot, float base, const float *factors) {
    for (int i = 0; i < n_rot / 2; i++) {
        double inv = pow((double)base, -2.0 * i / n_rot);
        if (factors) inv /= (double)factors[i];
        inv_freq[i] = (float)inv;
    }
}
