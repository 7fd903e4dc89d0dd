// jit_fused_kernels.cuh - the fused decode kernels of the jit_fused backend, a
// template for NVRTC. It is not compiled at build time: the build embeds this
// text into jit_fused.so, and at load the plugin prepends the model's shapes
// and the profile's precision as constants (plugins/jit_fused/jf_codegen.c)
// and compiles the result for the device in hand. No CUDA header is needed;
// NVRTC's built-ins (threadIdx, uint4, float4, expf, cos, ...) suffice.
//
// Constants the generator defines (all compile-time; loops over them unroll):
//   JF_DIM JF_N_HEADS JF_N_KV_HEADS JF_HEAD_DIM JF_N_FF JF_VOCAB JF_N_ROT
//   JF_Q_DIM JF_KV_DIM             n_head * head_dim, n_head_kv * head_dim
//   JF_LD_DIM JF_LD_Q JF_LD_FF     row strides of the weights and of the
//                                  activations they meet: the row length
//                                  rounded up to 16 bytes of weights, with
//                                  zeros in the padding (so no tail code)
//   JF_WTYPE                       0 f32, 1 f16, 2 bf16: how weights are stored
//   JF_NB                          positions per prefill pass
//   JF_SPLITS                      sequence splits of decode attention
//   JF_RMS_EPS JF_ATT_SCALE        floats, printed exactly
//   JF_PDL                         defined on sm_90+: programmatic dependent launch
//
// Numerics follow cpu_ref: every product accumulates in f32; norms,
// activations and the KV cache are f32; RoPE angles in double; softmax with
// expf. Only the order of additions differs.
//
// One decode step (JF_NB = 1 variants, one CUDA graph) launches:
//   jf_embed                  x = token_embd[token]; clears the argmax key
//   per layer:
//     jf_qkv_rope_1           RMSNorm folded in; Q, K, V rows in one matvec;
//                             RoPE and the KV-cache write in the epilogue
//     jf_attention            one block per (head, sequence split): online softmax
//     jf_attention_combine    one block per head: merges the splits
//     jf_out_residual_1       x += W_o . attention
//     jf_gate_up_1            RMSNorm folded in; gate and up rows together; h = silu(gate) * up
//     jf_down_residual_1      x += W_down . h
//   jf_lm_head_1              final RMSNorm folded in; logits; argmax by a 64-bit atomicMax
// Prefill runs the same kernels at JF_NB positions per pass (the _nb
// variants), reading each weight once per pass.

typedef unsigned short fb_u16;
typedef unsigned int fb_u32;
typedef unsigned long long fb_u64;

#define JF_WARPS 8
#define JF_NEG_INF (-__int_as_float(0x7f800000))
#define JF_THREADS (JF_WARPS * 32)

#if JF_WTYPE == 0
typedef float wtype;
#define JF_VEC 4 // weights per 16-byte load
#else
typedef fb_u16 wtype;
#define JF_VEC 8
#endif

// ------------------------------------------------------------------ loads and conversions

// 16 bytes of weights, read once per step: through the non-coherent path,
// not kept in L1 (they would only evict the activations).
__device__ __forceinline__ uint4 jf_load_weights(const void *p) {
#ifdef JF_EMULATE // tests/jf_emulate.h: the same kernels on the CPU
    return *(const uint4 *)p;
#else
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p));
    return r;
#endif
}

__device__ __forceinline__ float jf_half_to_float(fb_u32 bits) {
    fb_u16 h = (fb_u16)bits;
#ifdef JF_EMULATE
    return jf_emu_half_to_float(h);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#endif
}

__device__ __forceinline__ float jf_bf16_to_float(fb_u32 bits) { return __uint_as_float((bits & 0xFFFFu) << 16); }

// One stored weight to f32.
__device__ __forceinline__ float jf_weight(const wtype *p) {
#if JF_WTYPE == 0
    return *p;
#elif JF_WTYPE == 1
    return jf_half_to_float(*p);
#else
    return jf_bf16_to_float(*p);
#endif
}

// The JF_VEC weights of a 16-byte load, to f32.
__device__ __forceinline__ void jf_unpack(uint4 v, float w[JF_VEC]) {
#if JF_WTYPE == 0
    w[0] = __uint_as_float(v.x);
    w[1] = __uint_as_float(v.y);
    w[2] = __uint_as_float(v.z);
    w[3] = __uint_as_float(v.w);
#else
    fb_u32 u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
#if JF_WTYPE == 1
        w[2 * i] = jf_half_to_float(u[i]);
        w[2 * i + 1] = jf_half_to_float(u[i] >> 16);
#else
        w[2 * i] = jf_bf16_to_float(u[i]);
        w[2 * i + 1] = jf_bf16_to_float(u[i] >> 16);
#endif
    }
#endif
}

// JF_VEC activations (16-byte aligned: strides are multiples of JF_VEC).
__device__ __forceinline__ void jf_load_act(const float *p, float a[JF_VEC]) {
#pragma unroll
    for (int i = 0; i < JF_VEC; i += 4) {
        float4 f = *(const float4 *)(p + i);
        a[i] = f.x;
        a[i + 1] = f.y;
        a[i + 2] = f.z;
        a[i + 3] = f.w;
    }
}

__device__ __forceinline__ float jf_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float jf_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// ------------------------------------------------------------------ programmatic dependent launch
// With JF_PDL (sm_90+, launched with programmatic stream serialisation), a
// kernel lets the next one launch as soon as all its blocks are running, and
// the next one's blocks, placed as these retire, first pull their warp's
// first weights into L2 (weights never depend on the previous kernel), then
// wait until the previous kernel has finished and its writes are visible.
// Every kernel calls jf_begin before it reads or writes any activation.
// That hides most of the launch gap and the tail of each of the ~100
// kernels of a step. Without JF_PDL (sm_80, or FAIRBENCH_JIT_PDL=0): nothing.

__device__ __forceinline__ void jf_begin() {
#if defined(JF_PDL) && !defined(JF_EMULATE)
    asm volatile("griddepcontrol.launch_dependents;" :::);
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// jf_begin for a warp about to read rows w[0 .. NR) of LD weights (when valid).
template <int NR, int LD>
__device__ __forceinline__ void jf_begin_rows(const wtype *const w[NR], bool valid) {
#if defined(JF_PDL) && !defined(JF_EMULATE)
    asm volatile("griddepcontrol.launch_dependents;" :::);
    if (valid) {
        constexpr int NV = LD / JF_VEC, U = 8 / NR;
        const int lane = threadIdx.x & 31;
#pragma unroll
        for (int u = 0; u < U; u++) {
            int v = u * 32 + lane;
            if (v < NV)
#pragma unroll
                for (int j = 0; j < NR; j++) asm volatile("prefetch.global.L2 [%0];" ::"l"(w[j] + (size_t)v * JF_VEC));
        }
    }
    asm volatile("griddepcontrol.wait;" ::: "memory");
#else
    (void)w;
    (void)valid;
#endif
}

// ------------------------------------------------------------------ the matvec core

// One warp: acc[b][j] = sum over c < LD of W_j[c] * x_b[c] (* g[c] when g is
// given), for NR rows (row pointers w[j]) and the first nb <= NBT positions
// of x (rows of stride LD). The result is in every lane. Each lane keeps
// 8 / NR 16-byte weight loads in flight before it computes, so a block of
// 8 warps has 32 KiB of weights outstanding.
template <int NR, int NBT, int LD>
__device__ __forceinline__ void jf_matvec_warp(const wtype *const w[NR], const float *x, const float *g, int nb,
                                               float acc[NBT][NR]) {
    const int lane = threadIdx.x & 31;
    constexpr int NV = LD / JF_VEC; // 16-byte vectors per row
    constexpr int U = 8 / NR;       // loads in flight per row and lane
#pragma unroll
    for (int b = 0; b < NBT; b++)
#pragma unroll
        for (int j = 0; j < NR; j++) acc[b][j] = 0.0f;
#pragma unroll 1
    for (int base = 0; base < NV; base += 32 * U) {
        uint4 raw[U][NR];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int v = base + u * 32 + lane;
#pragma unroll
            for (int j = 0; j < NR; j++)
                raw[u][j] = v < NV ? jf_load_weights(w[j] + (size_t)v * JF_VEC) : make_uint4(0u, 0u, 0u, 0u);
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            int v = base + u * 32 + lane;
            if (v >= NV) break;
            float wf[NR][JF_VEC];
#pragma unroll
            for (int j = 0; j < NR; j++) jf_unpack(raw[u][j], wf[j]);
            float gv[JF_VEC];
            if (g) jf_load_act(g + (size_t)v * JF_VEC, gv);
#pragma unroll
            for (int b = 0; b < NBT; b++) {
                if (b >= nb) break;
                float xv[JF_VEC];
                jf_load_act(x + (size_t)b * LD + (size_t)v * JF_VEC, xv);
                if (g) {
#pragma unroll
                    for (int i = 0; i < JF_VEC; i++) xv[i] *= gv[i];
                }
#pragma unroll
                for (int j = 0; j < NR; j++)
#pragma unroll
                    for (int i = 0; i < JF_VEC; i++) acc[b][j] = fmaf(wf[j][i], xv[i], acc[b][j]);
            }
        }
    }
#pragma unroll
    for (int b = 0; b < NBT; b++)
#pragma unroll
        for (int j = 0; j < NR; j++) acc[b][j] = jf_warp_sum(acc[b][j]);
}

// The whole block: inv[b] = 1 / sqrt(mean(x_b^2) + eps) for the first nb
// positions of x (rows of stride JF_LD_DIM), as cpu_ref's rmsnorm computes it.
template <int NBT>
__device__ __forceinline__ void jf_block_inv_rms(const float *x, int nb, float inv[NBT]) {
    __shared__ float partial[NBT][JF_WARPS];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
    for (int b = 0; b < NBT; b++) {
        if (b >= nb) break;
        float ss = 0.0f;
        for (int i = threadIdx.x; i < JF_DIM; i += JF_THREADS) {
            float v = x[(size_t)b * JF_LD_DIM + i];
            ss = fmaf(v, v, ss);
        }
        ss = jf_warp_sum(ss);
        if (lane == 0) partial[b][warp] = ss;
    }
    __syncthreads();
#pragma unroll
    for (int b = 0; b < NBT; b++) {
        float ss = 0.0f;
        if (b < nb)
#pragma unroll
            for (int k = 0; k < JF_WARPS; k++) ss += partial[b][k];
        inv[b] = 1.0f / sqrtf(ss / (float)JF_DIM + JF_RMS_EPS);
    }
}

// ------------------------------------------------------------------ step inputs
// step[0] is the position of the first token, step[1 .. nb] the token ids:
// in device memory, so one captured graph serves every position.

// x[b] = token_embd[step[1 + b]] for b < gridDim.x; also clears the argmax key.
extern "C" __global__ void __launch_bounds__(JF_THREADS)
jf_embed(const int *step, const wtype *token_embd, float *x, fb_u64 *argmax_key) {
    jf_begin();
    const int b = blockIdx.x;
    const wtype *row = token_embd + (size_t)step[1 + b] * JF_LD_DIM;
    for (int i = threadIdx.x; i < JF_DIM; i += JF_THREADS) x[(size_t)b * JF_LD_DIM + i] = jf_weight(row + i);
    if (b == 0 && threadIdx.x == 0) *argmax_key = 0ull;
}

// ------------------------------------------------------------------ attention block

// RMSNorm, then Q, K and V in one matvec over the concatenated rows
// [W_q; W_k; W_v]; each warp computes one adjacent pair of rows, which is
// exactly a RoPE pair, and rotates it, then writes q, or k and v into the
// cache at the token's position.
template <int NBT>
__device__ __forceinline__ void jf_qkv_rope(const int *step, int nb, const float *x, const float *norm,
                                            const wtype *w_qkv, const float *rope_inv_freq, float *q,
                                            float *key_cache, float *value_cache) {
    constexpr int PAIRS = (JF_Q_DIM + 2 * JF_KV_DIM) / 2;
    const int pair = blockIdx.x * JF_WARPS + (threadIdx.x >> 5);
    const int r = 2 * pair;
    const wtype *rows[2] = {w_qkv + (size_t)r * JF_LD_DIM, w_qkv + (size_t)(r + 1) * JF_LD_DIM};
    jf_begin_rows<2, JF_LD_DIM>(rows, pair < PAIRS);
    float inv[NBT];
    jf_block_inv_rms<NBT>(x, nb, inv);
    if (pair >= PAIRS) return;
    float acc[NBT][2];
    jf_matvec_warp<2, NBT, JF_LD_DIM>(rows, x, norm, nb, acc);
    if ((threadIdx.x & 31) != 0) return;
    const int pos0 = step[0];
#pragma unroll
    for (int b = 0; b < NBT; b++) {
        if (b >= nb) break;
        const int pos = pos0 + b;
        float y0 = acc[b][0] * inv[b], y1 = acc[b][1] * inv[b];
        if (r < JF_Q_DIM + JF_KV_DIM) {
            const int i = ((r < JF_Q_DIM ? r : r - JF_Q_DIM) % JF_HEAD_DIM) / 2;
            if (i < JF_N_ROT / 2) {
                double angle = (double)pos * (double)rope_inv_freq[i];
                float c = (float)cos(angle), s = (float)sin(angle);
                float t = y0 * c - y1 * s;
                y1 = y0 * s + y1 * c;
                y0 = t;
            }
            if (r < JF_Q_DIM) {
                q[(size_t)b * JF_Q_DIM + r] = y0;
                q[(size_t)b * JF_Q_DIM + r + 1] = y1;
            } else {
                key_cache[(size_t)pos * JF_KV_DIM + (r - JF_Q_DIM)] = y0;
                key_cache[(size_t)pos * JF_KV_DIM + (r - JF_Q_DIM) + 1] = y1;
            }
        } else {
            value_cache[(size_t)pos * JF_KV_DIM + (r - JF_Q_DIM - JF_KV_DIM)] = y0;
            value_cache[(size_t)pos * JF_KV_DIM + (r - JF_Q_DIM - JF_KV_DIM) + 1] = y1;
        }
    }
}

#define JF_ATT_WARPS 4
#define JF_HEAD_PER_LANE ((JF_HEAD_DIM + 31) / 32)
#define JF_PART (JF_HEAD_DIM + 2) // a split's partial result: max, sum, then head_dim outputs

// Decode attention split over the sequence: block (head h, split s, query b)
// covers positions [s * chunk, min((s + 1) * chunk, n)) of the n = pos + 1
// the query sees, chunk = ceil(n / JF_SPLITS). Each warp runs an online
// softmax over every fourth position; the block merges its warps and writes
// (max, sum, unnormalised output) to part.
extern "C" __global__ void __launch_bounds__(JF_ATT_WARPS * 32)
jf_attention(const int *step, const float *q, const float *key_cache, const float *value_cache, float *part) {
    jf_begin();
    const int h = blockIdx.x, split = blockIdx.y, b = blockIdx.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int n = step[0] + b + 1;
    const int chunk = (n + JF_SPLITS - 1) / JF_SPLITS;
    const int t_begin = split * chunk, t_end = min(n, t_begin + chunk);
    const int kv_off = (h / (JF_N_HEADS / JF_N_KV_HEADS)) * JF_HEAD_DIM;

    float qr[JF_HEAD_PER_LANE], o[JF_HEAD_PER_LANE];
#pragma unroll
    for (int k = 0; k < JF_HEAD_PER_LANE; k++) {
        int d = lane + 32 * k;
        qr[k] = d < JF_HEAD_DIM ? q[(size_t)b * JF_Q_DIM + (size_t)h * JF_HEAD_DIM + d] : 0.0f;
        o[k] = 0.0f;
    }
    float m = JF_NEG_INF, l = 0.0f;
    for (int t = t_begin + warp; t < t_end; t += JF_ATT_WARPS) {
        const float *kr = key_cache + (size_t)t * JF_KV_DIM + kv_off;
        const float *vr = value_cache + (size_t)t * JF_KV_DIM + kv_off;
        float dot = 0.0f;
#pragma unroll
        for (int k = 0; k < JF_HEAD_PER_LANE; k++) {
            int d = lane + 32 * k;
            if (d < JF_HEAD_DIM) dot = fmaf(qr[k], kr[d], dot);
        }
        const float score = jf_warp_sum(dot) * JF_ATT_SCALE;
        const float m_new = fmaxf(m, score);
        const float correction = expf(m - m_new); // 0 on the first position (m = -inf)
        const float p = expf(score - m_new);
        l = l * correction + p;
#pragma unroll
        for (int k = 0; k < JF_HEAD_PER_LANE; k++) {
            int d = lane + 32 * k;
            o[k] = o[k] * correction + (d < JF_HEAD_DIM ? p * vr[d] : 0.0f);
        }
        m = m_new;
    }

    // merge the warps
    __shared__ float s_m[JF_ATT_WARPS], s_l[JF_ATT_WARPS], s_o[JF_ATT_WARPS][JF_HEAD_DIM];
    if (lane == 0) {
        s_m[warp] = m;
        s_l[warp] = l;
    }
#pragma unroll
    for (int k = 0; k < JF_HEAD_PER_LANE; k++) {
        int d = lane + 32 * k;
        if (d < JF_HEAD_DIM) s_o[warp][d] = o[k];
    }
    __syncthreads();
    float mx = JF_NEG_INF;
#pragma unroll
    for (int w = 0; w < JF_ATT_WARPS; w++) mx = fmaxf(mx, s_m[w]);
    float *out = part + (((size_t)b * JF_N_HEADS + h) * JF_SPLITS + split) * JF_PART;
    if (mx == JF_NEG_INF) { // an empty split (short sequences)
        if (threadIdx.x == 0) {
            out[0] = JF_NEG_INF;
            out[1] = 0.0f;
        }
        return;
    }
    float scale[JF_ATT_WARPS], sum = 0.0f;
#pragma unroll
    for (int w = 0; w < JF_ATT_WARPS; w++) {
        scale[w] = s_m[w] == JF_NEG_INF ? 0.0f : expf(s_m[w] - mx);
        sum += s_l[w] * scale[w];
    }
    if (threadIdx.x == 0) {
        out[0] = mx;
        out[1] = sum;
    }
    for (int d = threadIdx.x; d < JF_HEAD_DIM; d += JF_ATT_WARPS * 32) {
        float acc = 0.0f;
#pragma unroll
        for (int w = 0; w < JF_ATT_WARPS; w++) acc += s_o[w][d] * scale[w];
        out[2 + d] = acc;
    }
}

// Block (head h, query b): out = sum_s o_s e^(m_s - M) / sum_s l_s e^(m_s - M).
extern "C" __global__ void __launch_bounds__(64) jf_attention_combine(const float *part, float *att) {
    jf_begin();
    const int h = blockIdx.x, b = blockIdx.y;
    const float *p = part + ((size_t)b * JF_N_HEADS + h) * JF_SPLITS * JF_PART;
    float mx = JF_NEG_INF;
    for (int s = 0; s < JF_SPLITS; s++) mx = fmaxf(mx, p[(size_t)s * JF_PART]);
    float sum = 0.0f;
    for (int s = 0; s < JF_SPLITS; s++) {
        float m = p[(size_t)s * JF_PART];
        if (m != JF_NEG_INF) sum += p[(size_t)s * JF_PART + 1] * expf(m - mx);
    }
    for (int d = threadIdx.x; d < JF_HEAD_DIM; d += blockDim.x) {
        float acc = 0.0f;
        for (int s = 0; s < JF_SPLITS; s++) {
            float m = p[(size_t)s * JF_PART];
            if (m != JF_NEG_INF) acc += p[(size_t)s * JF_PART + 2 + d] * expf(m - mx);
        }
        att[(size_t)b * JF_LD_Q + (size_t)h * JF_HEAD_DIM + d] = acc / sum;
    }
}

// x += W_o . att, one row of W_o per warp.
template <int NBT>
__device__ __forceinline__ void jf_out_residual(int nb, const float *att, const wtype *w_o, float *x) {
    const int r = blockIdx.x * JF_WARPS + (threadIdx.x >> 5);
    const wtype *rows[1] = {w_o + (size_t)r * JF_LD_Q};
    jf_begin_rows<1, JF_LD_Q>(rows, r < JF_DIM);
    if (r >= JF_DIM) return;
    float acc[NBT][1];
    jf_matvec_warp<1, NBT, JF_LD_Q>(rows, att, (const float *)0, nb, acc);
    if ((threadIdx.x & 31) != 0) return;
#pragma unroll
    for (int b = 0; b < NBT; b++)
        if (b < nb) x[(size_t)b * JF_LD_DIM + r] += acc[b][0];
}

// ------------------------------------------------------------------ feed-forward block

// RMSNorm, then row r of W_gate and of W_up together: h = silu(gate) * up.
template <int NBT>
__device__ __forceinline__ void jf_gate_up(int nb, const float *x, const float *norm, const wtype *w_gate,
                                           const wtype *w_up, float *hb) {
    const int r = blockIdx.x * JF_WARPS + (threadIdx.x >> 5);
    const wtype *rows[2] = {w_gate + (size_t)r * JF_LD_DIM, w_up + (size_t)r * JF_LD_DIM};
    jf_begin_rows<2, JF_LD_DIM>(rows, r < JF_N_FF);
    float inv[NBT];
    jf_block_inv_rms<NBT>(x, nb, inv);
    if (r >= JF_N_FF) return;
    float acc[NBT][2];
    jf_matvec_warp<2, NBT, JF_LD_DIM>(rows, x, norm, nb, acc);
    if ((threadIdx.x & 31) != 0) return;
#pragma unroll
    for (int b = 0; b < NBT; b++) {
        if (b >= nb) break;
        float gate = acc[b][0] * inv[b], up = acc[b][1] * inv[b];
        hb[(size_t)b * JF_LD_FF + r] = gate / (1.0f + expf(-gate)) * up;
    }
}

// x += W_down . h, one row of W_down per warp.
template <int NBT>
__device__ __forceinline__ void jf_down_residual(int nb, const float *hb, const wtype *w_down, float *x) {
    const int r = blockIdx.x * JF_WARPS + (threadIdx.x >> 5);
    const wtype *rows[1] = {w_down + (size_t)r * JF_LD_FF};
    jf_begin_rows<1, JF_LD_FF>(rows, r < JF_DIM);
    if (r >= JF_DIM) return;
    float acc[NBT][1];
    jf_matvec_warp<1, NBT, JF_LD_FF>(rows, hb, (const float *)0, nb, acc);
    if ((threadIdx.x & 31) != 0) return;
#pragma unroll
    for (int b = 0; b < NBT; b++)
        if (b < nb) x[(size_t)b * JF_LD_DIM + r] += acc[b][0];
}

// ------------------------------------------------------------------ the classifier

// A logit as an orderable 64-bit key: larger logits give larger keys, and on
// equal logits the lower id wins (as cpu_ref's argmax).
__device__ __forceinline__ fb_u64 jf_argmax_key(float v, int id) {
    fb_u32 bits = __float_as_uint(v);
    fb_u32 ordered = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
    return ((fb_u64)ordered << 32) | (fb_u64)(0xFFFFFFFFu - (fb_u32)id);
}

// Final RMSNorm folded in; logits of the nb positions of x; the argmax of the
// last one into *argmax_key (cleared by jf_embed). A grid-stride loop over
// the vocabulary, so each block sends one atomic, not one per row.
template <int NBT>
__device__ __forceinline__ void jf_lm_head(int nb, const float *x, const float *norm, const wtype *w_out,
                                           float *logits, fb_u64 *argmax_key) {
    __shared__ fb_u64 s_best[JF_WARPS];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    {
        const int first = blockIdx.x * JF_WARPS + warp;
        const wtype *rows[1] = {w_out + (size_t)first * JF_LD_DIM};
        jf_begin_rows<1, JF_LD_DIM>(rows, first < JF_VOCAB);
    }
    float inv[NBT];
    jf_block_inv_rms<NBT>(x, nb, inv);
    fb_u64 best = 0ull;
    for (int r = blockIdx.x * JF_WARPS + warp; r < JF_VOCAB; r += gridDim.x * JF_WARPS) {
        const wtype *rows[1] = {w_out + (size_t)r * JF_LD_DIM};
        float acc[NBT][1];
        jf_matvec_warp<1, NBT, JF_LD_DIM>(rows, x, norm, nb, acc);
        if (lane == 0) {
#pragma unroll
            for (int b = 0; b < NBT; b++) {
                if (b >= nb) break;
                float v = acc[b][0] * inv[b];
                logits[(size_t)b * JF_VOCAB + r] = v;
                if (b == nb - 1) {
                    fb_u64 key = jf_argmax_key(v, r);
                    best = key > best ? key : best;
                }
            }
        }
    }
    if (lane == 0) s_best[warp] = best;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < JF_WARPS; w++) best = s_best[w] > best ? s_best[w] : best; // best is warp 0's
        atomicMax(argmax_key, best);
    }
}

// ------------------------------------------------------------------ entry points
// _1: one position (decode); _nb: up to JF_NB positions (prefill).
// __launch_bounds__(..., 1): without the minimum of one block per SM, ptxas
// aims at more resident warps and sinks each weight load down to its first
// use, leaving one or two 16-byte loads per lane in flight (seen in the SASS
// of the W_o and W_down kernels, whose grids are too small to supply those
// warps). With it, the loads of an iteration issue together: 8 per lane.

#define JF_ENTRY_POINTS(SUFFIX, NBT)                                                                             \
    extern "C" __global__ void __launch_bounds__(JF_THREADS, 1)                                                     \
    jf_qkv_rope_##SUFFIX(const int *step, int nb, const float *x, const float *norm, const wtype *w_qkv,         \
                         const float *rope_inv_freq, float *q, float *key_cache, float *value_cache) {           \
        jf_qkv_rope<NBT>(step, nb, x, norm, w_qkv, rope_inv_freq, q, key_cache, value_cache);                    \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(JF_THREADS, 1)                                                     \
    jf_out_residual_##SUFFIX(int nb, const float *att, const wtype *w_o, float *x) {                             \
        jf_out_residual<NBT>(nb, att, w_o, x);                                                                   \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(JF_THREADS, 1)                                                     \
    jf_gate_up_##SUFFIX(int nb, const float *x, const float *norm, const wtype *w_gate, const wtype *w_up,       \
                        float *hb) {                                                                             \
        jf_gate_up<NBT>(nb, x, norm, w_gate, w_up, hb);                                                          \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(JF_THREADS, 1)                                                     \
    jf_down_residual_##SUFFIX(int nb, const float *hb, const wtype *w_down, float *x) {                          \
        jf_down_residual<NBT>(nb, hb, w_down, x);                                                                \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(JF_THREADS, 1)                                                     \
    jf_lm_head_##SUFFIX(int nb, const float *x, const float *norm, const wtype *w_out, float *logits,            \
                        fb_u64 *argmax_key) {                                                                    \
        jf_lm_head<NBT>(nb, x, norm, w_out, logits, argmax_key);                                                 \
    }

JF_ENTRY_POINTS(1, 1)
JF_ENTRY_POINTS(nb, JF_NB)
