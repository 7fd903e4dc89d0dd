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
 * No kernel here is clever; where one needs a reduction it is one block per
 * row with a warp-shuffle tree.
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
// softmax with the causal mask: one block per row

__global__ void softmax_kernel(float *att, int row_stride, int n_cols, const int32_t *pos, int pos_offset,
                               float scale) {
    float *x = att + (size_t)blockIdx.x * row_stride;
    int len = *pos + pos_offset + 1;
    if (len > n_cols) len = n_cols;
    float max = -INFINITY;
    for (int t = threadIdx.x; t < len; t += blockDim.x) {
        float v = x[t] * scale;
        x[t] = v;
        max = fmaxf(max, v);
    }
    max = block_max(max);
    float sum = 0.0f;
    for (int t = threadIdx.x; t < len; t += blockDim.x) {
        float e = expf(x[t] - max);
        x[t] = e;
        sum += e;
    }
    sum = block_sum(sum);
    for (int t = threadIdx.x; t < n_cols; t += blockDim.x) x[t] = t < len ? x[t] / sum : 0.0f;
}

extern "C" cudaError_t eo_softmax_forward(float *att, int n_rows, int row_stride, int n_cols, const int32_t *pos,
                                          int pos_offset, float scale, cudaStream_t stream) {
    if (n_rows <= 0 || n_cols <= 0) return cudaSuccess;
    EO_LAUNCH(softmax_kernel, n_rows, kBlock, stream, att, row_stride, n_cols, pos, pos_offset, scale);
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
// matmul and attention: cuBLAS, f32 accumulation

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

extern "C" cublasStatus_t eo_attention_scores_forward(cublasHandle_t handle, float *att, const float *q,
                                                      const float *key_cache, int n_pos, int n_heads, int n_kv_heads,
                                                      int head_dim, int max_seq) {
    const float one = 1.0f, zero = 0.0f;
    int kv_mul = n_heads / n_kv_heads, kv_dim = n_kv_heads * head_dim;
    // per KV head g: C_g (n_pos x kv_mul, ld max_seq) = A_g^T B_g, with
    //   A_g = K_g: head_dim x n_pos at key_cache + g*head_dim, lda kv_dim  (used transposed)
    //   B_g = Q_g: head_dim x kv_mul at q + g*kv_mul*head_dim, ldb head_dim
    //   C_g at att + g*kv_mul*max_seq: column j is head g*kv_mul + j's row of att
    return cublasGemmStridedBatchedEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n_pos, kv_mul, head_dim, &one, key_cache,
                                      CUDA_R_32F, kv_dim, (long long)head_dim, q, CUDA_R_32F, head_dim,
                                      (long long)kv_mul * head_dim, &zero, att, CUDA_R_32F, max_seq,
                                      (long long)kv_mul * max_seq, n_kv_heads, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

extern "C" cublasStatus_t eo_attention_values_forward(cublasHandle_t handle, float *out, const float *att,
                                                      const float *value_cache, int n_pos, int n_heads, int n_kv_heads,
                                                      int head_dim, int max_seq) {
    const float one = 1.0f, zero = 0.0f;
    int kv_mul = n_heads / n_kv_heads, kv_dim = n_kv_heads * head_dim;
    // per KV head g: C_g (head_dim x kv_mul, ld head_dim) = A_g B_g, with
    //   A_g = V_g: head_dim x n_pos at value_cache + g*head_dim, lda kv_dim
    //   B_g = P_g: n_pos x kv_mul at att + g*kv_mul*max_seq, ldb max_seq
    //   C_g at out + g*kv_mul*head_dim: column j is head g*kv_mul + j's output
    return cublasGemmStridedBatchedEx(
        handle, CUBLAS_OP_N, CUBLAS_OP_N, head_dim, kv_mul, n_pos, &one, value_cache, CUDA_R_32F, kv_dim,
        (long long)head_dim, att, CUDA_R_32F, max_seq, (long long)kv_mul * max_seq, &zero, out, CUDA_R_32F, head_dim,
        (long long)kv_mul * head_dim, n_kv_heads, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}
