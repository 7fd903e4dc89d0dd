/* eager_ops_kernels.h - the eager_ops backend's device operations, one per block of
 * the network, each the CUDA twin of a cpu_ref function of the same name
 * (llm.c style: `rmsnorm` in cpu_ref.c, eo_rmsnorm_forward here).
 *
 * Every launcher runs on `stream` and returns at once: the kernels return
 * cudaGetLastError() after their launch, the cuBLAS ones cuBLAS's status.
 * Nothing here allocates, synchronises or reads a position on the host, so
 * every call may be captured into a CUDA graph: the positions of a step are
 * read on the device from `pos` (the position of row 0; row b is at
 * *pos + b).
 *
 * Layouts (row-major, like cpu_ref):
 *   activations     (batch, n) f32, rows of n contiguous values
 *   weight matrix   (n_out rows, n_in cols), dtype `type`: GGUF order, ne[0] = n_in contiguous
 *   KV cache        (max_seq, kv_dim) f32 per layer; position t's key at key_cache + t * kv_dim,
 *                   KV head g's part at + g * head_dim
 *
 * Plain C declarations (C and CUDA both include this file). */
#ifndef FB_EAGER_OPS_KERNELS_H
#define FB_EAGER_OPS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Storage type of weights and of GEMM inputs. */
typedef enum eo_dtype { EO_F32 = 0, EO_F16 = 1, EO_BF16 = 2 } eo_dtype;

/* Bytes of one element of `type`. */
static inline size_t eo_dtype_size(eo_dtype type) { return type == EO_F32 ? 4 : 2; }

/* embed: x (batch, dim) = rows tokens[b] of table (n_vocab, dim), widened to f32. */
cudaError_t eo_embedding_forward(float *x, const void *table, eo_dtype type, const int32_t *tokens, int batch, int dim,
                                 cudaStream_t stream);

/* rmsnorm: out (batch, dim) = x / sqrt(mean(x^2) + eps) * weight, row by
 * row, computed in f32 and stored as out_type (rounded to nearest even: the
 * input of the GEMM that follows, so no separate conversion op is needed).
 * out may be x when out_type is EO_F32. */
cudaError_t eo_rmsnorm_forward(void *out, eo_dtype out_type, const float *x, const float *weight, int batch, int dim,
                               float eps, cudaStream_t stream);

/* rope: rotate adjacent pairs (2i, 2i+1), i < n_rot / 2, of each of the
 * n_heads heads of row b of q (batch, n_heads * head_dim) and of the
 * n_kv_heads heads of row b of k (batch, n_kv_heads * head_dim) by
 * (*pos + b) * inv_freq[i]: one op for queries and keys, as a model applies
 * its rotary embedding. The angle, its cosine and sine are computed in
 * double, as cpu_ref does. */
cudaError_t eo_rope_forward(float *q, float *k, int batch, int n_heads, int n_kv_heads, int head_dim, int n_rot,
                            const int32_t *pos, const float *inv_freq, cudaStream_t stream);

/* KV-cache append: rows b of k and v (batch, kv_dim) into position *pos + b
 * of one layer's key_cache and value_cache (max_seq, kv_dim). */
cudaError_t eo_kv_append_forward(float *key_cache, float *value_cache, const float *k, const float *v, int batch,
                                 int kv_dim, const int32_t *pos, cudaStream_t stream);

/* silu: out = x / (1 + exp(-x)), n values. out may be x. */
cudaError_t eo_silu_forward(float *out, const float *x, size_t n, cudaStream_t stream);

/* out = a * b, elementwise, n values, computed in f32 and stored as out_type
 * (the input of the down projection). out may be a or b when out_type is EO_F32. */
cudaError_t eo_mul_forward(void *out, eo_dtype out_type, const float *a, const float *b, size_t n, cudaStream_t stream);

/* out = a + b, elementwise, n values (the residual connection). out may be a or b. */
cudaError_t eo_add_forward(float *out, const float *a, const float *b, size_t n, cudaStream_t stream);

/* argmax: *out = the index of the largest of x's n values, lowest on ties. */
cudaError_t eo_argmax_forward(int32_t *out, const float *x, int n, cudaStream_t stream);

/* out (n values of `type`) = x (n f32), rounded to nearest even (the
 * attention output, which cuBLAS writes as f32, as the input of W_o at
 * 16-bit precisions). type EO_F32 copies. */
cudaError_t eo_convert_forward(void *out, eo_dtype type, const float *x, size_t n, cudaStream_t stream);

/* matmul: y (batch, n_out) f32 = x (batch, n_in) @ W^T, W (n_out, n_in) in
 * `type`, x already in `type` (see eo_convert_forward); f32 accumulation
 * (CUBLAS_COMPUTE_32F). cuBLAS is column-major: W is the n_in x n_out matrix
 * A (lda = n_in) used transposed, x the n_in x batch matrix B (ldb = n_in),
 * y the n_out x batch matrix C (ldc = n_out). */
cublasStatus_t eo_matmul_forward(cublasHandle_t handle, float *y, const void *x, const void *w, eo_dtype type,
                                 int batch, int n_in, int n_out);

/* The attention kernels handle heads of at most this many dimensions
 * (LLaMA-family models have 64 or 128); eo_config_from_view refuses more. */
#define EO_ATTENTION_MAX_HEAD_DIM 128

/* attention, prefill: causal grouped-query attention of `batch` query rows
 * in one launch, the CUDA twin of cpu_ref's attention_worker. Row b of q
 * (batch, n_heads * head_dim), at position *pos + b, attends to positions
 * 0..*pos + b of one layer's key_cache and value_cache (max_seq, kv_dim),
 * which already hold the chunk's own keys and values (kv append first):
 *   out_h(b) = sum over t <= *pos + b of softmax_t(q_h(b) . k_t / sqrt(head_dim)) v_t
 * with k and v of KV head h / (n_heads / n_kv_heads). out (batch, q_dim)
 * f32. Flash-attention style: a block takes a tile of query rows times the
 * query heads of one KV head, streams that head's keys and values through
 * shared memory a tile at a time (each read once per query tile, whatever the
 * group size) and keeps an online softmax, so no score matrix is stored.
 * f32 arithmetic throughout. head_dim <= EO_ATTENTION_MAX_HEAD_DIM. */
cudaError_t eo_attention_prefill_forward(float *out, const float *q, const float *key_cache, const float *value_cache,
                                         int batch, int n_heads, int n_kv_heads, int head_dim, const int32_t *pos,
                                         cudaStream_t stream);

/* attention, decode: the same for one query row at position *pos, split
 * over the sequence (flash-decoding), so that a long context still fills
 * the GPU: positions 0..*pos are cut into n_splits contiguous ranges, and a
 * block per (KV head, split) scores them against every query head of the
 * group (lanes parallel over positions; keys and values read once), keeping
 * an online softmax; its unnormalised output, running maximum and sum go to
 * `partials`, and a second kernel combines the splits of each head into out
 * (n_heads * head_dim) f32. The grid does not depend on *pos, so the two
 * launches can be captured once and replayed at every position.
 * partials holds eo_attention_decode_partials(...) floats. */
cudaError_t eo_attention_decode_forward(float *out, float *partials, const float *q, const float *key_cache,
                                        const float *value_cache, int n_heads, int n_kv_heads, int head_dim,
                                        int n_splits, const int32_t *pos, cudaStream_t stream);

/* Floats of eo_attention_decode_forward's partials: per query head and split,
 * head_dim output values, the maximum and the sum. */
static inline size_t eo_attention_decode_partials(int n_heads, int head_dim, int n_splits) {
    return (size_t)n_heads * (size_t)n_splits * ((size_t)head_dim + 2);
}

#ifdef __cplusplus
}
#endif

#endif
