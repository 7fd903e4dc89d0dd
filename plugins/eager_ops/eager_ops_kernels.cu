/* eager_ops_kernels.cu - one precompiled kernel per op, and the cuBLAS matmuls, for
 * the eager_ops backend (see eager_ops_kernels.h for each op's contract).
 *
 * Each kernel is the plain CUDA twin of the cpu_ref function it names, with
 * f32 arithmetic throughout (RoPE's angle in double, as cpu_ref), so the
 * tests can hold it to cpu_ref op by op. Nothing is fused: between two ops
 * the intermediate goes through a device buffer, as in an eager framework.
 * An op whose output is a GEMM's input (rmsnorm, mul) stores it in the
 * GEMM's type, as an eager framework's f16 op yields an f16 tensor: there
 * is no conversion op between them (the residual stream, the arithmetic of
 * every op and the KV cache stay f32, as in cpu_ref).
 * Where a kernel needs a reduction it is one block per row with a
 * warp-shuffle tree. The two attention kernels are the exception to "plain":
 * as PyTorch's scaled_dot_product_attention does, they tile (flash
 * attention for prefill, split over the sequence for decode) so that
 * attention is one or two launches per layer and reads each key and value
 * once per tile of queries; their comments give the tiling.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

#include "eager_ops_kernels.h"

// ----------------------------------------------------------------------------
// Helpers

/* kernel<<<blocks, threads, 0, stream>>>(...). tests/eager_ops_emulated.cc
 * builds this file as host C++ with EO_EMULATE defined, and every launch
 * then runs the kernel's blocks on the CPU (tests/cuda_emulate.h). */
#ifdef EO_EMULATE
#define EO_LAUNCH(kernel, blocks, threads, stream, ...) \
    ((void)(stream), eo_emu_launch(#kernel, kernel, blocks, threads, __VA_ARGS__))
#else
#define EO_LAUNCH(kernel, blocks, threads, stream, ...) kernel<<<blocks, threads, 0, stream>>>(__VA_ARGS__)
#endif

/* #pragma unroll, which the host compiler of the emulation does not know. */
#ifdef EO_EMULATE
#define EO_UNROLL
#else
#define EO_UNROLL _Pragma("unroll")
#endif

static const int kBlock = 256;

static unsigned elementwise_blocks(size_t n) {
    size_t blocks = (n + kBlock - 1) / kBlock;
    if (blocks > 8192) blocks = 8192; // grid-stride loops cover the rest
    return blocks ? (unsigned)blocks : 1u;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

/* Sum (or max) of one value per thread over the block; every thread gets it.
 * blockDim.x is a multiple of 32, at most 1024. */
__device__ float block_sum(float v) {
    __shared__ float partial[32];
    __shared__ float total;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < n_warps ? partial[lane] : 0.0f;
        w = warp_sum(w);
        if (lane == 0) total = w;
    }
    __syncthreads();
    float result = total;
    __syncthreads(); // partial and total may be reused by the next call
    return result;
}

__device__ float block_max(float v) {
    __shared__ float partial[32];
    __shared__ float total;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_max(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < n_warps ? partial[lane] : -INFINITY;
        w = warp_max(w);
        if (lane == 0) total = w;
    }
    __syncthreads();
    float result = total;
    __syncthreads();
    return result;
}

template <typename T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// ----------------------------------------------------------------------------
// embed

template <typename T> __global__ void embedding_kernel(float *x, const T *table, const int32_t *tokens, int dim) {
    int b = blockIdx.x;
    const T *row = table + (size_t)tokens[b] * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) x[(size_t)b * dim + i] = to_f32<T>(row[i]);
}

extern "C" cudaError_t eo_embedding_forward(float *x, const void *table, eo_dtype type, const int32_t *tokens,
                                            int batch, int dim, cudaStream_t stream) {
    if (batch <= 0) return cudaSuccess;
    switch (type) {
    case EO_F32: EO_LAUNCH(embedding_kernel<float>, batch, kBlock, stream, x, (const float *)table, tokens, dim); break;
    case EO_F16:
        EO_LAUNCH(embedding_kernel<__half>, batch, kBlock, stream, x, (const __half *)table, tokens, dim);
        break;
    case EO_BF16:
        EO_LAUNCH(embedding_kernel<__nv_bfloat16>, batch, kBlock, stream, x, (const __nv_bfloat16 *)table, tokens, dim);
        break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

// ----------------------------------------------------------------------------
// rmsnorm: one block per row; the output in the type of the GEMM it feeds

template <typename T> __global__ void rmsnorm_kernel(T *out, const float *x, const float *weight, int dim, float eps) {
    const float *xr = x + (size_t)blockIdx.x * dim;
    T *outr = out + (size_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss);
    float scale = 1.0f / sqrtf(ss / (float)dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) outr[i] = from_f32<T>(weight[i] * (scale * xr[i]));
}

extern "C" cudaError_t eo_rmsnorm_forward(void *out, eo_dtype out_type, const float *x, const float *weight, int batch,
                                          int dim, float eps, cudaStream_t stream) {
    if (batch <= 0) return cudaSuccess;
    switch (out_type) {
    case EO_F32: EO_LAUNCH(rmsnorm_kernel<float>, batch, kBlock, stream, (float *)out, x, weight, dim, eps); break;
    case EO_F16: EO_LAUNCH(rmsnorm_kernel<__half>, batch, kBlock, stream, (__half *)out, x, weight, dim, eps); break;
    case EO_BF16:
        EO_LAUNCH(rmsnorm_kernel<__nv_bfloat16>, batch, kBlock, stream, (__nv_bfloat16 *)out, x, weight, dim, eps);
        break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

// ----------------------------------------------------------------------------
// rope: one thread per (row, pair index); it rotates that pair in every head
// of q, then of k (one op for both, as a model's rotary embedding is applied)

__device__ __forceinline__ void rope_rotate(float *row, int n_heads, int head_dim, int i, float c, float sn) {
    for (int h = 0; h < n_heads; h++) {
        float *v = row + (size_t)h * head_dim + 2 * i;
        float v0 = v[0], v1 = v[1];
        v[0] = v0 * c - v1 * sn;
        v[1] = v0 * sn + v1 * c;
    }
}

__global__ void rope_kernel(float *q, float *k, int batch, int n_heads, int n_kv_heads, int head_dim, int n_rot,
                            const int32_t *pos, const float *inv_freq) {
    int half_rot = n_rot / 2;
    int item = blockIdx.x * blockDim.x + threadIdx.x;
    if (item >= batch * half_rot) return;
    int b = item / half_rot, i = item % half_rot;
    double angle = (double)(*pos + b) * (double)inv_freq[i];
    float c = (float)cos(angle), sn = (float)sin(angle);
    rope_rotate(q + (size_t)b * n_heads * head_dim, n_heads, head_dim, i, c, sn);
    rope_rotate(k + (size_t)b * n_kv_heads * head_dim, n_kv_heads, head_dim, i, c, sn);
}

extern "C" cudaError_t eo_rope_forward(float *q, float *k, int batch, int n_heads, int n_kv_heads, int head_dim,
                                       int n_rot, const int32_t *pos, const float *inv_freq, cudaStream_t stream) {
    int items = batch * (n_rot / 2);
    if (items <= 0) return cudaSuccess;
    EO_LAUNCH(rope_kernel, (items + 127) / 128, 128, stream, q, k, batch, n_heads, n_kv_heads, head_dim, n_rot, pos,
              inv_freq);
    return cudaGetLastError();
}

// ----------------------------------------------------------------------------
// KV-cache append

__global__ void kv_append_kernel(float *key_cache, float *value_cache, const float *k, const float *v, int batch,
                                 int kv_dim, const int32_t *pos) {
    size_t n = (size_t)batch * kv_dim;
    size_t at = (size_t)(*pos) * kv_dim; // row b of k goes to position *pos + b: contiguous
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        key_cache[at + i] = k[i];
        value_cache[at + i] = v[i];
    }
}

extern "C" cudaError_t eo_kv_append_forward(float *key_cache, float *value_cache, const float *k, const float *v,
                                            int batch, int kv_dim, const int32_t *pos, cudaStream_t stream) {
    size_t n = (size_t)batch * kv_dim;
    if (n == 0) return cudaSuccess;
    EO_LAUNCH(kv_append_kernel, elementwise_blocks(n), kBlock, stream, key_cache, value_cache, k, v, batch, kv_dim,
              pos);
    return cudaGetLastError();
}

// ----------------------------------------------------------------------------
// attention, prefill: every query row of the chunk in one launch
// (flash-attention style; cpu_ref's attention_worker is the twin)
//
// Shapes: q and out (batch, n_heads * head_dim), one layer's key_cache and
// value_cache (max_seq, kv_dim); row b is at position *pos + b.
// A block owns kAttnQueries query vectors: rows_per_block consecutive rows
// times heads_per_block query heads, all of one KV head g (its whole GQA
// group, or a slice of it when the group has more than kAttnQueries heads).
// Four adjacent lanes serve one query vector. The block walks positions
// 0 .. (its last row's position) in tiles of KV_TILE:
//   load:    the tile's keys and values of head g into shared memory, once
//            for all the block's queries
//   scores:  each lane scores a quarter of the tile: q . k_t * scale, and
//            -inf past the query's own position (the causal mask)
//   softmax: online: the query's running maximum m and sum l take in the
//            tile's, and what was accumulated so far is rescaled by
//            exp(m_old - m_new)
//   values:  each lane adds p_t * v_t to its quarter of the output dimensions
//            (every fourth group of four)
// and at the end divides by l. Row tiles are issued latest first: the latest
// rows have the most positions to attend to. f32 throughout.

static const int kAttnThreads = 128;
static const int kAttnQueries = 32;                        // query vectors per block
static const int kAttnLanes = kAttnThreads / kAttnQueries; // threads per query vector (4)

template <int HD_MAX>
__global__ void __launch_bounds__(kAttnThreads)
    attention_prefill_kernel(float *out, const float *q, const float *key_cache, const float *value_cache, int batch,
                             int n_heads, int n_kv_heads, int head_dim, const int32_t *pos, float scale,
                             int heads_per_block, int head_chunks, int rows_per_block) {
    const int KV_TILE = HD_MAX <= 64 ? 32 : 16; // positions per tile: the shared arrays stay under 48 KiB
    const int kScores = KV_TILE / kAttnLanes;   // scores per lane per tile
    const int kChunks = HD_MAX / 16;            // float4 chunks of output dimensions per lane
    // Rows of head_dim padded with zeros to whole float4s, read 16 bytes at a
    // time; q and k rows 4 floats longer, so that the rows that lanes read
    // together start in different banks.
    __shared__ __align__(16) float q_tile[kAttnQueries][HD_MAX + 4];
    __shared__ __align__(16) float k_tile[KV_TILE][HD_MAX + 4];
    __shared__ __align__(16) float v_tile[KV_TILE][HD_MAX];
    __shared__ float p_tile[kAttnQueries][KV_TILE + 1];

    const int kv_mul = n_heads / n_kv_heads, kv_dim = n_kv_heads * head_dim, q_dim = n_heads * head_dim;
    const int hd4 = (head_dim + 3) / 4, hd_pad = 4 * hd4;
    // this block: a tile of rows (latest first), KV head g, a chunk of g's query heads
    const int n_row_tiles = (batch + rows_per_block - 1) / rows_per_block, per_row_tile = n_kv_heads * head_chunks;
    const int row_tile = n_row_tiles - 1 - (int)blockIdx.x / per_row_tile;
    const int g = (int)blockIdx.x % per_row_tile / head_chunks, chunk = (int)blockIdx.x % head_chunks;
    const int b0 = row_tile * rows_per_block, pos0 = *pos;
    const int b_end = b0 + rows_per_block < batch ? b0 + rows_per_block : batch;
    const int kv_end = pos0 + b_end; // the block's rows attend to positions 0 .. kv_end - 1
    // this thread: lane `lane` of query vector `query` = (row b, head h)
    const int query = (int)threadIdx.x / kAttnLanes, lane = (int)threadIdx.x % kAttnLanes;
    const int r = query / heads_per_block, j = chunk * heads_per_block + query % heads_per_block;
    const int b = b0 + r, h = g * kv_mul + j;
    const bool active = r < rows_per_block && b < batch && j < kv_mul;
    const int q_pos = active ? pos0 + b : pos0; // an idle query still sees position 0: its maximum stays finite

    // load: the block's queries (zeros for idle ones and past head_dim)
    for (int i = threadIdx.x; i < kAttnQueries * hd_pad; i += kAttnThreads) {
        int qq = i / hd_pad, d = i % hd_pad;
        int rr = qq / heads_per_block, jj = chunk * heads_per_block + qq % heads_per_block, bb = b0 + rr;
        bool on = rr < rows_per_block && bb < batch && jj < kv_mul && d < head_dim;
        q_tile[qq][d] = on ? q[(size_t)bb * q_dim + (size_t)(g * kv_mul + jj) * head_dim + d] : 0.0f;
    }

    const float *k_head = key_cache + (size_t)g * head_dim, *v_head = value_cache + (size_t)g * head_dim;
    float m = -INFINITY, l = 0.0f, acc[4 * kChunks]; // acc[4 * cc + e]: dimension 4 * (lane + 4 * cc) + e
    EO_UNROLL
    for (int k = 0; k < 4 * kChunks; k++) acc[k] = 0.0f;
    for (int t0 = 0; t0 < kv_end; t0 += KV_TILE) {
        __syncthreads(); // the queries are loaded; the previous tile is no longer read
        // load: keys and values of positions t0 .. t0 + KV_TILE - 1 (zeros from kv_end on)
        for (int i = threadIdx.x; i < KV_TILE * hd_pad; i += kAttnThreads) {
            int tt = i / hd_pad, d = i % hd_pad, t = t0 + tt;
            bool in = t < kv_end && d < head_dim;
            k_tile[tt][d] = in ? k_head[(size_t)t * kv_dim + d] : 0.0f;
            v_tile[tt][d] = in ? v_head[(size_t)t * kv_dim + d] : 0.0f;
        }
        __syncthreads();
        // scores against this lane's positions t0 + lane + 4k; -inf past the query's own
        float s[kScores];
        EO_UNROLL
        for (int k = 0; k < kScores; k++) s[k] = 0.0f;
        for (int c = 0; c < hd4; c++) {
            const float4 qc = *(const float4 *)&q_tile[query][4 * c];
            EO_UNROLL
            for (int k = 0; k < kScores; k++) {
                const float4 kc = *(const float4 *)&k_tile[lane + k * kAttnLanes][4 * c];
                s[k] += qc.x * kc.x; // in order of d, as cpu_ref sums
                s[k] += qc.y * kc.y;
                s[k] += qc.z * kc.z;
                s[k] += qc.w * kc.w;
            }
        }
        float tile_max = -INFINITY;
        EO_UNROLL
        for (int k = 0; k < kScores; k++) {
            s[k] = t0 + lane + k * kAttnLanes <= q_pos ? s[k] * scale : -INFINITY;
            tile_max = fmaxf(tile_max, s[k]);
        }
        // softmax, online: the query's four lanes agree on the maximum, then on the tile's sum
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
        const float m_new = fmaxf(m, tile_max); // finite: the first tile holds position 0
        const float rescale = expf(m - m_new);  // 0 at the first tile
        float sum = 0.0f;
        EO_UNROLL
        for (int k = 0; k < kScores; k++) {
            float p = expf(s[k] - m_new); // 0 where masked
            p_tile[query][lane + k * kAttnLanes] = p;
            sum += p;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        l = l * rescale + sum;
        m = m_new;
        __syncthreads(); // every lane's probabilities are in p_tile

        // values: this lane's float4 chunks lane + 4cc of the output (each probability read once)
        EO_UNROLL
        for (int k = 0; k < 4 * kChunks; k++) acc[k] *= rescale;
        for (int tt = 0; tt < KV_TILE; tt++) {
            const float p = p_tile[query][tt];
            EO_UNROLL
            for (int cc = 0; cc < kChunks; cc++)
                if (lane + 4 * cc < hd4) {
                    const float4 vc = *(const float4 *)&v_tile[tt][4 * (lane + 4 * cc)];
                    acc[4 * cc + 0] += p * vc.x;
                    acc[4 * cc + 1] += p * vc.y;
                    acc[4 * cc + 2] += p * vc.z;
                    acc[4 * cc + 3] += p * vc.w;
                }
        }
    }
    if (active) {
        float *o = out + (size_t)b * q_dim + (size_t)h * head_dim;
        EO_UNROLL
        for (int k = 0; k < 4 * kChunks; k++) {
            int d = 4 * (lane + 4 * (k / 4)) + k % 4;
            if (d < head_dim) o[d] = acc[k] / l;
        }
    }
}

static bool attention_shape_ok(int n_heads, int n_kv_heads, int head_dim) {
    return n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0 && head_dim > 0 &&
           head_dim <= EO_ATTENTION_MAX_HEAD_DIM;
}

extern "C" cudaError_t eo_attention_prefill_forward(float *out, const float *q, const float *key_cache,
                                                    const float *value_cache, int batch, int n_heads, int n_kv_heads,
                                                    int head_dim, const int32_t *pos, cudaStream_t stream) {
    if (batch <= 0) return cudaSuccess;
    if (!attention_shape_ok(n_heads, n_kv_heads, head_dim)) return cudaErrorInvalidValue;
    int kv_mul = n_heads / n_kv_heads;
    int heads_per_block = kv_mul < kAttnQueries ? kv_mul : kAttnQueries;
    int head_chunks = (kv_mul + heads_per_block - 1) / heads_per_block;
    int rows_per_block = kAttnQueries / heads_per_block;
    unsigned blocks = (unsigned)((batch + rows_per_block - 1) / rows_per_block * n_kv_heads * head_chunks);
    float scale = 1.0f / sqrtf((float)head_dim); // as cpu_ref
    if (head_dim <= 64)
        EO_LAUNCH(attention_prefill_kernel<64>, blocks, kAttnThreads, stream, out, q, key_cache, value_cache, batch,
                  n_heads, n_kv_heads, head_dim, pos, scale, heads_per_block, head_chunks, rows_per_block);
    else
        EO_LAUNCH(attention_prefill_kernel<128>, blocks, kAttnThreads, stream, out, q, key_cache, value_cache, batch,
                  n_heads, n_kv_heads, head_dim, pos, scale, heads_per_block, head_chunks, rows_per_block);
    return cudaGetLastError();
}

// ----------------------------------------------------------------------------
// attention, decode: one query row, split over the sequence (flash-decoding)
//
// Shapes: q and out (n_heads * head_dim), one layer's caches (max_seq,
// kv_dim), partials (n_heads, n_splits, head_dim + 2).
// attention_decode_kernel: block (g, chunk, split) takes the positions
// [split * len, (split + 1) * len) of 0 .. *pos, len = ceil((*pos + 1) /
// n_splits), and up to kDecodeHeads query heads of KV head g (its whole
// group when it has at most kDecodeHeads). It walks its positions in tiles
// of kAttnThreads:
//   scores:  thread i scores position t0 + i against every head of the block
//            (lanes parallel over positions; each key row read once)
//   softmax: online, one warp per head: the running maximum and sum take in
//            the tile's, and each thread's accumulators are rescaled
//   values:  thread (phase, d) adds p_t * v_t[d] for every head, over the
//            tile's positions t0 + phase + k * n_phases (each value read once)
// then, per head, writes its unnormalised output, maximum and sum to
// partials (an empty split: 0, -inf, 0).
// attention_decode_combine_kernel: one block per query head weights each
// split by exp(m_split - m), m the largest, and divides by the total sum.

static const int kDecodeHeads = 8; // query heads per decode block (LLaMA groups have 4 to 8)

__global__ void __launch_bounds__(kAttnThreads)
    attention_decode_kernel(float *partials, const float *q, const float *key_cache, const float *value_cache,
                            int n_heads, int n_kv_heads, int head_dim, int n_splits, int head_chunks,
                            const int32_t *pos, float scale) {
    __shared__ float q_s[kDecodeHeads][EO_ATTENTION_MAX_HEAD_DIM];
    __shared__ float p_s[kDecodeHeads][kAttnThreads]; // scores, then probabilities; at the end the phases' sums
    __shared__ float m_s[kDecodeHeads], l_s[kDecodeHeads], rescale_s[kDecodeHeads];

    const int kv_mul = n_heads / n_kv_heads, kv_dim = n_kv_heads * head_dim;
    const int split = (int)blockIdx.x % n_splits, chunk = (int)blockIdx.x / n_splits % head_chunks;
    const int g = (int)blockIdx.x / n_splits / head_chunks;
    const int j0 = chunk * kDecodeHeads; // the block's first head within the group
    const int n_h = kv_mul - j0 < kDecodeHeads ? kv_mul - j0 : kDecodeHeads;
    const int h0 = g * kv_mul + j0;
    const int n_pos = *pos + 1, len = (n_pos + n_splits - 1) / n_splits;
    const int t_begin = split * len < n_pos ? split * len : n_pos;
    const int t_end = t_begin + len < n_pos ? t_begin + len : n_pos;

    for (int i = threadIdx.x; i < n_h * head_dim; i += kAttnThreads)
        q_s[i / head_dim][i % head_dim] = q[(size_t)h0 * head_dim + i];
    if ((int)threadIdx.x < kDecodeHeads) m_s[threadIdx.x] = -INFINITY, l_s[threadIdx.x] = 0.0f;
    // for the values: this thread's output dimension d and phase
    const int n_phases = kAttnThreads / head_dim; // >= 1: head_dim <= 128
    const int phase = (int)threadIdx.x / head_dim, d = (int)threadIdx.x % head_dim;
    const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
    const float *k_head = key_cache + (size_t)g * head_dim, *v_head = value_cache + (size_t)g * head_dim;
    float acc[kDecodeHeads];
    EO_UNROLL
    for (int jj = 0; jj < kDecodeHeads; jj++) acc[jj] = 0.0f;

    for (int t0 = t_begin; t0 < t_end; t0 += kAttnThreads) {
        __syncthreads(); // q_s and m_s set; the previous tile's probabilities consumed
        // scores: this thread's position against every head of the block
        const int t = t0 + (int)threadIdx.x;
        float s[kDecodeHeads];
        EO_UNROLL
        for (int jj = 0; jj < kDecodeHeads; jj++) s[jj] = 0.0f;
        if (t < t_end) {
            const float *k = k_head + (size_t)t * kv_dim;
            for (int i = 0; i < head_dim; i++) {
                float ki = k[i];
                EO_UNROLL
                for (int jj = 0; jj < kDecodeHeads; jj++)
                    if (jj < n_h) s[jj] += q_s[jj][i] * ki;
            }
        }
        EO_UNROLL
        for (int jj = 0; jj < kDecodeHeads; jj++)
            if (jj < n_h) p_s[jj][threadIdx.x] = t < t_end ? s[jj] * scale : -INFINITY;
        __syncthreads();
        // softmax, online: warp w updates heads w, w + 4, ...
        for (int jj = warp; jj < n_h; jj += kAttnThreads / 32) {
            float tile_max = -INFINITY;
            for (int i = lane; i < kAttnThreads; i += 32) tile_max = fmaxf(tile_max, p_s[jj][i]);
            tile_max = warp_max(tile_max);
            const float m_new = fmaxf(m_s[jj], tile_max); // finite: position t0 is in the tile
            float sum = 0.0f;
            for (int i = lane; i < kAttnThreads; i += 32) {
                float p = expf(p_s[jj][i] - m_new); // 0 past t_end
                p_s[jj][i] = p;
                sum += p;
            }
            sum = warp_sum(sum); // every lane has read m_s[jj] before lane 0 writes it below
            if (lane == 0) {
                rescale_s[jj] = expf(m_s[jj] - m_new); // 0 at the first tile
                l_s[jj] = l_s[jj] * rescale_s[jj] + sum;
                m_s[jj] = m_new;
            }
        }
        __syncthreads();
        // values: out_j[d] += p_j(t) v_t[d], this phase's positions of the tile
        if (phase < n_phases) {
            const int n_t = t_end - t0 < kAttnThreads ? t_end - t0 : kAttnThreads;
            EO_UNROLL
            for (int jj = 0; jj < kDecodeHeads; jj++)
                if (jj < n_h) acc[jj] *= rescale_s[jj];
            for (int u = phase; u < n_t; u += n_phases) {
                float v = v_head[(size_t)(t0 + u) * kv_dim + d];
                EO_UNROLL
                for (int jj = 0; jj < kDecodeHeads; jj++)
                    if (jj < n_h) acc[jj] += p_s[jj][u] * v;
            }
        }
    }
    // the phases' sums, through p_s, then this split's partials
    __syncthreads();
    if (phase < n_phases) {
        EO_UNROLL
        for (int jj = 0; jj < kDecodeHeads; jj++)
            if (jj < n_h) p_s[jj][threadIdx.x] = acc[jj];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < n_h * head_dim; i += kAttnThreads) {
        int jj = i / head_dim, dd = i % head_dim;
        float o = 0.0f;
        for (int ph = 0; ph < n_phases; ph++) o += p_s[jj][ph * head_dim + dd];
        float *part = partials + ((size_t)(h0 + jj) * n_splits + split) * (head_dim + 2);
        part[dd] = o;
        if (dd == 0) part[head_dim] = m_s[jj], part[head_dim + 1] = l_s[jj];
    }
}

__global__ void attention_decode_combine_kernel(float *out, const float *partials, int head_dim, int n_splits) {
    const int h = blockIdx.x, stride = head_dim + 2;
    const float *part = partials + (size_t)h * n_splits * stride;
    float m = -INFINITY, l = 0.0f;
    for (int sp = 0; sp < n_splits; sp++) m = fmaxf(m, part[sp * stride + head_dim]); // finite: split 0 holds t = 0
    for (int sp = 0; sp < n_splits; sp++)
        l += part[sp * stride + head_dim + 1] * expf(part[sp * stride + head_dim] - m);
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float o = 0.0f;
        for (int sp = 0; sp < n_splits; sp++) o += part[sp * stride + d] * expf(part[sp * stride + head_dim] - m);
        out[(size_t)h * head_dim + d] = o / l;
    }
}

extern "C" cudaError_t eo_attention_decode_forward(float *out, float *partials, const float *q, const float *key_cache,
                                                   const float *value_cache, int n_heads, int n_kv_heads, int head_dim,
                                                   int n_splits, const int32_t *pos, cudaStream_t stream) {
    if (!attention_shape_ok(n_heads, n_kv_heads, head_dim) || n_splits < 1) return cudaErrorInvalidValue;
    int kv_mul = n_heads / n_kv_heads, head_chunks = (kv_mul + kDecodeHeads - 1) / kDecodeHeads;
    unsigned blocks = (unsigned)(n_kv_heads * head_chunks * n_splits);
    float scale = 1.0f / sqrtf((float)head_dim); // as cpu_ref
    EO_LAUNCH(attention_decode_kernel, blocks, kAttnThreads, stream, partials, q, key_cache, value_cache, n_heads,
              n_kv_heads, head_dim, n_splits, head_chunks, pos, scale);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    EO_LAUNCH(attention_decode_combine_kernel, n_heads, kAttnThreads, stream, out, partials, head_dim, n_splits);
    return cudaGetLastError();
}

// ----------------------------------------------------------------------------
// Elementwise: silu, mul, add, convert

__global__ void silu_kernel(float *out, const float *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = x[i] / (1.0f + expf(-x[i]));
}

template <typename T> __global__ void mul_kernel(T *out, const float *a, const float *b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = from_f32<T>(a[i] * b[i]);
}

__global__ void add_kernel(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

template <typename T> __global__ void convert_kernel(T *out, const float *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = from_f32<T>(x[i]);
}

extern "C" cudaError_t eo_silu_forward(float *out, const float *x, size_t n, cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    EO_LAUNCH(silu_kernel, elementwise_blocks(n), kBlock, stream, out, x, n);
    return cudaGetLastError();
}

extern "C" cudaError_t eo_mul_forward(void *out, eo_dtype out_type, const float *a, const float *b, size_t n,
                                      cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    unsigned blocks = elementwise_blocks(n);
    switch (out_type) {
    case EO_F32: EO_LAUNCH(mul_kernel<float>, blocks, kBlock, stream, (float *)out, a, b, n); break;
    case EO_F16: EO_LAUNCH(mul_kernel<__half>, blocks, kBlock, stream, (__half *)out, a, b, n); break;
    case EO_BF16: EO_LAUNCH(mul_kernel<__nv_bfloat16>, blocks, kBlock, stream, (__nv_bfloat16 *)out, a, b, n); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t eo_add_forward(float *out, const float *a, const float *b, size_t n, cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    EO_LAUNCH(add_kernel, elementwise_blocks(n), kBlock, stream, out, a, b, n);
    return cudaGetLastError();
}

extern "C" cudaError_t eo_convert_forward(void *out, eo_dtype type, const float *x, size_t n, cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    unsigned blocks = elementwise_blocks(n);
    switch (type) {
    case EO_F32: EO_LAUNCH(convert_kernel<float>, blocks, kBlock, stream, (float *)out, x, n); break;
    case EO_F16: EO_LAUNCH(convert_kernel<__half>, blocks, kBlock, stream, (__half *)out, x, n); break;
    case EO_BF16: EO_LAUNCH(convert_kernel<__nv_bfloat16>, blocks, kBlock, stream, (__nv_bfloat16 *)out, x, n); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

// ----------------------------------------------------------------------------
// argmax: one block; lowest index on ties, as cpu_ref's `x[i] > x[best]` scan

static const int kArgmaxBlock = 1024;

__device__ __forceinline__ bool argmax_better(float v, int i, float best_v, int best_i) {
    return v > best_v || (v == best_v && i < best_i);
}

__global__ void argmax_kernel(int32_t *out, const float *x, int n) {
    __shared__ float values[kArgmaxBlock];
    __shared__ int indices[kArgmaxBlock];
    float best_v = x[0];
    int best_i = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        if (argmax_better(x[i], i, best_v, best_i)) best_v = x[i], best_i = i;
    values[threadIdx.x] = best_v;
    indices[threadIdx.x] = best_i;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if ((int)threadIdx.x < stride) {
            int o = threadIdx.x + stride;
            if (argmax_better(values[o], indices[o], values[threadIdx.x], indices[threadIdx.x])) {
                values[threadIdx.x] = values[o];
                indices[threadIdx.x] = indices[o];
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) *out = indices[0];
}

extern "C" cudaError_t eo_argmax_forward(int32_t *out, const float *x, int n, cudaStream_t stream) {
    if (n <= 0) return cudaErrorInvalidValue;
    EO_LAUNCH(argmax_kernel, 1, kArgmaxBlock, stream, out, x, n);
    return cudaGetLastError();
}

// ----------------------------------------------------------------------------
// matmul: cuBLAS, f32 accumulation

static cudaDataType_t cuda_type(eo_dtype type) {
    return type == EO_F16 ? CUDA_R_16F : type == EO_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

extern "C" cublasStatus_t eo_matmul_forward(cublasHandle_t handle, float *y, const void *x, const void *w,
                                            eo_dtype type, int batch, int n_in, int n_out) {
    const float one = 1.0f, zero = 0.0f;
    cudaDataType_t t = cuda_type(type);
    // column-major: C (n_out x batch) = A^T (n_out x n_in) B (n_in x batch), A = W as n_in x n_out
    return cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n_out, batch, n_in, &one, w, t, n_in, x, t, n_in, &zero, y,
                        CUDA_R_32F, n_out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}
