/* eager_ops_host.h - the host-side half of the eager_ops backend that needs
 * no device: shapes, the device-memory plan, weight conversion to the
 * storage type, and the RoPE frequencies. Kept apart from the CUDA calls so
 * tests/test_eager_ops_host.c can check it on a machine without a GPU. */
#ifndef FB_EAGER_OPS_HOST_H
#define FB_EAGER_OPS_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "bf16.h"
#include "eager_ops_kernels.h" /* eo_dtype */
#include "fairbench/plugin.h"

/* Hyper-parameters, copied from the model view (names as cpu_ref's Config). */
typedef struct eo_config {
    int dim; // transformer width (n_embd)
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int kv_dim;     // n_kv_heads * head_dim
    int q_dim;      // n_heads * head_dim
    int hidden_dim; // feed-forward width (n_ff)
    int vocab_size;
    int n_rot;     // rotated dimensions per head
    int max_seq;   // KV-cache positions allocated
    int max_batch; // positions one forward pass runs at most (prefill chunk)
    int widest;    // max(dim, hidden_dim, q_dim): the longest GEMM input row
    int tied;      // the LM head is token_embd
    float rms_eps;
} eo_config;

/* Fill c from the model view; max_context 0 means the model's n_ctx (and is
 * capped by it). Returns 0, or -1 with a sentence in msg (also for a
 * head_dim over EO_ATTENTION_MAX_HEAD_DIM, which the attention kernels do
 * not handle). */
int eo_config_from_view(const fb_model_view *mv, uint32_t max_context, int max_batch, eo_config *c, char *msg,
                        size_t msg_size);

/* Splits of the sequence in decode attention (eo_attention_decode_forward):
 * 8 KV heads x 32 splits give an H100/H200's 132 SMs about two blocks each,
 * whatever the position. */
#define EO_DECODE_SPLITS 32

/* The classifier's output buffer holds this many rows (at most); a prefill
 * chunk that asks for every position's logits gets them a slice at a time
 * (a 512 x 128256 f32 buffer would be 262 MB). */
#define EO_LOGITS_ROWS 64

static inline int eo_logits_rows(const eo_config *c) {
    return c->max_batch < EO_LOGITS_ROWS ? c->max_batch : EO_LOGITS_ROWS;
}

/* Device bytes the session allocates itself, by purpose. */
typedef struct eo_plan {
    uint64_t weights;     // matrices at the storage type, norms and RoPE frequencies at f32
    uint64_t kv_cache;    // K and V, f32, every layer and position
    uint64_t activations; // the per-op intermediates for max_batch positions, logits slice, decode
                          // attention partials, step inputs
    uint64_t workspace;   // the cuBLAS workspace (graph capture needs one set by us)
    uint64_t total;
} eo_plan;

#define EO_CUBLAS_WORKSPACE_BYTES ((uint64_t)32 << 20) /* cuBLAS's recommendation for Hopper */

void eo_plan_compute(const eo_config *c, eo_dtype type, eo_plan *plan);

/* Convert `rows` rows of `cols` values of GGUF type src_type (rows of
 * host->row_bytes(src_type, cols) bytes) to `dst_type`, rows packed. F16
 * through host->dequantize_row_f16 (as cpu_ref stores f16), F32 through
 * dequantize_row_f32, BF16 through f32 then fb_f32_to_bf16 (plugins/common/bf16.h). `scratch` holds
 * cols floats. Returns 0, or -1 when the type cannot be decoded. */
int eo_convert_rows(const fb_host *host, uint32_t src_type, const void *src, void *dst, eo_dtype dst_type, int64_t rows,
                    int64_t cols, float *scratch);

/* inv_freq[i] = base^(-2i / n_rot) / factors[i] (factors may be NULL), in
 * double then rounded, exactly as cpu_ref computes it. */
void eo_rope_inv_freq(float *inv_freq, int n_rot, float base, const float *factors);

/* GGUF type id of a storage type (F32, F16, BF16). */
uint32_t eo_dtype_gguf_type(eo_dtype type);

#endif
