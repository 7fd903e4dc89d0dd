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
//   JF_WTYPE                       0 f32, 1 f16, 2 bf16, 3 native: the profile's
//                                  weight precision (informative: the types below rule)
//   JF_T_EMBD JF_T_OUT             device types (JF_T_*, GGUF ids) of token_embd and
//                                  of the LM head
//   JF_NB                          positions per prefill pass
//   JF_SPLITS                      sequence splits of decode attention
//   JF_RMS_EPS JF_ATT_SCALE        floats, printed exactly
//   JF_PDL                         defined on sm_90+: programmatic dependent launch
//
// After the template, one line per kind of layer (a set of matrix types;
// see jf_layer_types) instantiates that kind's entry points:
//   JF_LAYER_ENTRY_POINTS(k0, TQ, TK, TV, TO, TGATE, TUP, TDOWN)
//
// Weight types: F32, F16, BF16 rows (padded to 16 bytes), and the GGUF block
// formats Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K read in place and decoded in
// registers, in the device layouts jf_row_bytes (jf_host.h) describes: each
// decodes to exactly the f32 value core/quant.c gives (every product in a
// decode is exact in f32), so only the order of the sums differs from
// cpu_ref's native path.
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

typedef unsigned char fb_u8;

// Device types: GGUF type ids.
#define JF_T_F32 0
#define JF_T_F16 1
#define JF_T_Q4_0 2
#define JF_T_Q4_1 3
#define JF_T_Q8_0 8
#define JF_T_Q4_K 12
#define JF_T_Q5_K 13
#define JF_T_Q6_K 14
#define JF_T_BF16 30

__device__ constexpr bool jf_is_plain(int t) { return t == JF_T_F32 || t == JF_T_F16 || t == JF_T_BF16; }
__device__ constexpr int jf_pad16(int bytes) { return (bytes + 15) / 16 * 16; }

// Bytes of a device row of n values of type t: jf_row_bytes in jf_host.c,
// where the layouts are described.
__device__ constexpr int jf_row_bytes(int t, int n) {
    return t == JF_T_F32                      ? jf_pad16(4 * n)
           : t == JF_T_F16 || t == JF_T_BF16 ? jf_pad16(2 * n)
           : t == JF_T_Q8_0                  ? n + jf_pad16(n / 32 * 2)
           : t == JF_T_Q4_0                  ? n / 2 + jf_pad16(n / 32 * 2)
           : t == JF_T_Q4_1                  ? n / 2 + jf_pad16(n / 32 * 4)
           : t == JF_T_Q4_K                  ? n / 256 * 144
           : t == JF_T_Q5_K                  ? n / 256 * 176
           : t == JF_T_Q6_K                  ? n / 256 * 208 + jf_pad16(n / 256 * 2)
                                             : 0;
}

// Values per 16-byte load of a plain type.
__device__ constexpr int jf_vec(int t) { return t == JF_T_F32 ? 4 : 8; }

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

// The jf_vec(T) weights of a 16-byte load of a plain type, to f32.
template <int T> __device__ __forceinline__ void jf_unpack(uint4 v, float w[jf_vec(T)]) {
    if constexpr (T == JF_T_F32) {
        w[0] = __uint_as_float(v.x);
        w[1] = __uint_as_float(v.y);
        w[2] = __uint_as_float(v.z);
        w[3] = __uint_as_float(v.w);
    } else {
        fb_u32 u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            if constexpr (T == JF_T_F16) {
                w[2 * i] = jf_half_to_float(u[i]);
                w[2 * i + 1] = jf_half_to_float(u[i] >> 16);
            } else {
                w[2 * i] = jf_bf16_to_float(u[i]);
                w[2 * i + 1] = jf_bf16_to_float(u[i] >> 16);
            }
        }
    }
}

// ------------------------------------------------------------------ block formats
// A row of a block type is read in steps of 32 values: one Q8_0, Q4_0 or
// Q4_1 block, an eighth of a Q4_K, Q5_K or Q6_K super-block. A step is one
// or two 16-byte loads of quants plus the scales they need (jf_qload), and
// decodes as two runs of 16 consecutive values (jf_qrun gives where each run
// starts in the row, jf_qdecode its 16 weights), so the activations they
// meet are read as aligned float4s.
//
// Mutations for the tests (tests/test_jit_fused_emulated.c defines one and
// checks that agreement with cpu_ref fails): JF_MUTATE_SCALE reads each
// block's scale at a wrong offset (the next entry of the scale plane; Q4_K,
// Q5_K: dmin's place for d and d's for dmin), JF_MUTATE_NIBBLE swaps low and
// high nibbles, JF_MUTATE_SUBBLOCK gives each K-quant run its neighbour's
// sub-block scale.

struct jf_qraw {
    uint4 q;  // quants: Q8_0's first 16, the others' 16 bytes of nibbles (Q6_K: ql)
    uint4 a;  // Q8_0: the second 16 quants; K-quants: the 16-byte header (Q6_K: scales[16])
    uint4 b;  // Q5_K: qh[16]; Q6_K: qh[16]
    fb_u32 s; // Q8_0, Q4_0, Q6_K: d; Q4_1: d | m << 16
};

// Byte i (0..15) of a 16-byte load.
__device__ __forceinline__ fb_u32 jf_byte(uint4 v, int i) {
    fb_u32 w = i < 4 ? v.x : i < 8 ? v.y : i < 12 ? v.z : v.w;
    return (w >> (8 * (i & 3))) & 0xFFu;
}

// Entry blk of a scale plane of `slots` entries (its padding included).
#ifdef JF_MUTATE_SCALE
#define JF_SCALE_OF(blk, slots) (((blk) + 1) % (slots))
#define JF_HEADER(h) make_uint4(((h).x >> 16) | ((h).x << 16), (h).y, (h).z, (h).w)
#else
#define JF_SCALE_OF(blk, slots) (blk)
#define JF_HEADER(h) (h)
#endif
#ifdef JF_MUTATE_NIBBLE
#define JF_NIBBLE_RUN(run) ((run) ^ 1)
#else
#define JF_NIBBLE_RUN(run) (run)
#endif
#ifdef JF_MUTATE_SUBBLOCK
#define JF_SUB(x) ((x) ^ 1)
#else
#define JF_SUB(x) (x)
#endif

// Step s of a row of N values of block type T.
template <int T, int N> __device__ __forceinline__ jf_qraw jf_qload(const fb_u8 *row, int s) {
    jf_qraw r;
    r.a = r.b = make_uint4(0u, 0u, 0u, 0u);
    r.s = 0u;
    if constexpr (T == JF_T_Q8_0) {
        r.q = jf_load_weights(row + 32 * s);
        r.a = jf_load_weights(row + 32 * s + 16);
        r.s = *(const fb_u16 *)(row + N + 2 * JF_SCALE_OF(s, jf_pad16(N / 32 * 2) / 2));
    } else if constexpr (T == JF_T_Q4_0) {
        r.q = jf_load_weights(row + 16 * s);
        r.s = *(const fb_u16 *)(row + N / 2 + 2 * JF_SCALE_OF(s, jf_pad16(N / 32 * 2) / 2));
    } else if constexpr (T == JF_T_Q4_1) {
        r.q = jf_load_weights(row + 16 * s);
        r.s = *(const fb_u32 *)(row + N / 2 + 4 * JF_SCALE_OF(s, jf_pad16(N / 32 * 4) / 4));
    } else if constexpr (T == JF_T_Q4_K) {
        const int blk = s >> 3, k = s & 7;
        r.a = JF_HEADER(jf_load_weights(row + 144 * blk));
        r.q = jf_load_weights(row + 144 * blk + 16 + 16 * k);
    } else if constexpr (T == JF_T_Q5_K) {
        const int blk = s >> 3, k = s & 7;
        r.a = JF_HEADER(jf_load_weights(row + 176 * blk));
        r.b = jf_load_weights(row + 176 * blk + 16 + 16 * (k & 1));
        r.q = jf_load_weights(row + 176 * blk + 48 + 16 * k);
    } else { // Q6_K: step k of a block reads ql[64h + 32a + 16b ..], h = k / 4, a = k / 2 % 2, b = k % 2
        const int blk = s >> 3, k = s & 7, h = k >> 2, a = (k >> 1) & 1, b = k & 1;
        const fb_u8 *p = row + 208 * blk;
        r.q = jf_load_weights(p + 64 * h + 32 * a + 16 * b);
        r.b = jf_load_weights(p + 128 + 32 * h + 16 * b);
        r.a = jf_load_weights(p + 192);
        r.s = *(const fb_u16 *)(row + N / 256 * 208 + 2 * JF_SCALE_OF(blk, jf_pad16(N / 256 * 2) / 2));
    }
    return r;
}

// Where run `run` (0, 1) of step s starts in the row.
template <int T> __device__ __forceinline__ int jf_qrun(int s, int run) {
    if constexpr (T == JF_T_Q8_0 || T == JF_T_Q4_0 || T == JF_T_Q4_1) {
        return 32 * s + 16 * run; // Q4: low nibbles are values 0..15, high ones 16..31
    } else if constexpr (T == JF_T_Q4_K || T == JF_T_Q5_K) {
        const int k = s & 7; // qs[32c + l]: value 64c + l (low nibble), 64c + 32 + l (high)
        return 256 * (s >> 3) + 64 * (k >> 1) + 16 * (k & 1) + 32 * run;
    } else { // Q6_K: value 128h + 32j + l, j = a (low nibbles) or a + 2 (high)
        const int k = s & 7;
        return 256 * (s >> 3) + 128 * (k >> 2) + 32 * (((k >> 1) & 1) + 2 * run) + 16 * (k & 1);
    }
}

// Q4_K/Q5_K: the 6-bit scale and min of sub-block j from scales[12] (bytes
// 4..15 of the header): j < 4 in the low 6 bits of bytes j and j + 4; j >= 4
// from the low and high nibbles of byte j + 4 and the top bits of j - 4, j.
__device__ __forceinline__ void jf_scale_min_k4(uint4 header, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = (int)(jf_byte(header, 4 + j) & 63u);
        *m = (int)(jf_byte(header, 8 + j) & 63u);
    } else {
        *sc = (int)((jf_byte(header, 8 + j) & 0xFu) | ((jf_byte(header, j) >> 6) << 4));
        *m = (int)((jf_byte(header, 8 + j) >> 4) | ((jf_byte(header, 4 + j) >> 6) << 4));
    }
}

// The 16 weights of run `run` of step s, as core/quant.c decodes them.
template <int T> __device__ __forceinline__ void jf_qdecode(const jf_qraw &r, int s, int run, float w[16]) {
    if constexpr (T == JF_T_Q8_0) { // d * q
        const float d = jf_half_to_float(r.s);
        const uint4 v = run ? r.a : r.q;
#pragma unroll
        for (int i = 0; i < 16; i++) w[i] = (float)(signed char)jf_byte(v, i) * d;
    } else if constexpr (T == JF_T_Q4_0) { // d * (q - 8)
        const float d = jf_half_to_float(r.s);
        const int shift = 4 * JF_NIBBLE_RUN(run);
#pragma unroll
        for (int i = 0; i < 16; i++) w[i] = (float)((int)((jf_byte(r.q, i) >> shift) & 0xFu) - 8) * d;
    } else if constexpr (T == JF_T_Q4_1) { // d * q + m (the product is exact: one rounding either way)
        const float d = jf_half_to_float(r.s), m = jf_half_to_float(r.s >> 16);
        const int shift = 4 * JF_NIBBLE_RUN(run);
#pragma unroll
        for (int i = 0; i < 16; i++) w[i] = fmaf((float)((jf_byte(r.q, i) >> shift) & 0xFu), d, m);
    } else if constexpr (T == JF_T_Q4_K || T == JF_T_Q5_K) { // (d * sc) * q - dmin * m, per sub-block of 32
        const int c = (s & 7) >> 1;
        int sc, mn;
        jf_scale_min_k4(r.a, 2 * c + JF_SUB(run), &sc, &mn);
        const float dl = jf_half_to_float(r.a.x) * (float)sc, ml = jf_half_to_float(r.a.x >> 16) * (float)mn;
        const int shift = 4 * JF_NIBBLE_RUN(run);
#pragma unroll
        for (int i = 0; i < 16; i++) {
            fb_u32 q = (jf_byte(r.q, i) >> shift) & 0xFu;
            if constexpr (T == JF_T_Q5_K) q |= ((jf_byte(r.b, i) >> (2 * c + run)) & 1u) << 4;
            w[i] = fmaf(dl, (float)q, -ml); // dl * q is exact
        }
    } else { // Q6_K: (d * scales[v / 16]) * (q - 32), q = 4 low bits | 2 high bits << 4
        const int k = s & 7, h = k >> 2, a = (k >> 1) & 1, b = k & 1, j = a + 2 * run;
        const float dl = jf_half_to_float(r.s) * (float)(signed char)jf_byte(r.a, 8 * h + 2 * j + JF_SUB(b));
        const int shift = 4 * JF_NIBBLE_RUN(run);
#pragma unroll
        for (int i = 0; i < 16; i++) {
            const int q = (int)(((jf_byte(r.q, i) >> shift) & 0xFu) | (((jf_byte(r.b, i) >> (2 * j)) & 3u) << 4));
            w[i] = dl * (float)(q - 32);
        }
    }
}

// Value i of a row of N values of type T, for the embedding lookup (plain
// types), or whole steps of it (block types, see jf_embed).
template <int T> __device__ __forceinline__ float jf_weight(const fb_u8 *row, int i) {
    if constexpr (T == JF_T_F32) return ((const float *)row)[i];
    else if constexpr (T == JF_T_F16) return jf_half_to_float(((const fb_u16 *)row)[i]);
    else return jf_bf16_to_float(((const fb_u16 *)row)[i]);
}

// V activations (V a multiple of 4; 16-byte aligned: strides are multiples of 8).
template <int V> __device__ __forceinline__ void jf_load_act(const float *p, float a[V]) {
#pragma unroll
    for (int i = 0; i < V; i += 4) {
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

// jf_begin for a warp about to read rows w[0 .. NR) of RB bytes each (when valid).
template <int NR>
__device__ __forceinline__ void jf_begin_rows(const fb_u8 *const w[NR], int rb, bool valid) {
#if defined(JF_PDL) && !defined(JF_EMULATE)
    asm volatile("griddepcontrol.launch_dependents;" :::);
    if (valid) {
        constexpr int U = 8 / NR;
        const int lane = threadIdx.x & 31;
#pragma unroll
        for (int u = 0; u < U; u++) {
            int off = (u * 32 + lane) * 16;
            if (off < rb)
#pragma unroll
                for (int j = 0; j < NR; j++) asm volatile("prefetch.global.L2 [%0];" ::"l"(w[j] + off));
        }
    }
    asm volatile("griddepcontrol.wait;" ::: "memory");
#else
    (void)w;
    (void)rb;
    (void)valid;
#endif
}

// ------------------------------------------------------------------ the matvec core

// One warp: acc[b][j] = sum over c < N of W_j[c] * x_b[c] (* g[c] when g is
// given), for NR rows of type T (row pointers w[j]) and the first nb <= NBT
// positions of x (rows of stride XLD). The result is in every lane.
//   Plain types: each lane keeps 8 / NR 16-byte weight loads in flight
//   before it computes, so a block of 8 warps has 32 KiB outstanding.
//   Block types: each lane keeps 4 / NR steps of 32 values in flight (one
//   or two 16-byte loads of quants and the step's scales each), decodes a
//   run of 16 weights at a time in registers, and uses it for every position.
template <int T, int NR, int NBT, int N, int XLD>
__device__ __forceinline__ void jf_matvec_warp(const fb_u8 *const w[NR], const float *x, const float *g, int nb,
                                               float acc[NBT][NR]) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int b = 0; b < NBT; b++)
#pragma unroll
        for (int j = 0; j < NR; j++) acc[b][j] = 0.0f;
    if constexpr (jf_is_plain(T)) {
        constexpr int VEC = jf_vec(T);
        constexpr int NV = jf_row_bytes(T, N) / 16; // 16-byte vectors per row
        constexpr int U = 8 / NR;                   // loads in flight per row and lane
#pragma unroll 1
        for (int base = 0; base < NV; base += 32 * U) {
            uint4 raw[U][NR];
#pragma unroll
            for (int u = 0; u < U; u++) {
                int v = base + u * 32 + lane;
#pragma unroll
                for (int j = 0; j < NR; j++)
                    raw[u][j] = v < NV ? jf_load_weights(w[j] + (size_t)v * 16) : make_uint4(0u, 0u, 0u, 0u);
            }
#pragma unroll
            for (int u = 0; u < U; u++) {
                int v = base + u * 32 + lane;
                if (v >= NV) break;
                float wf[NR][VEC];
#pragma unroll
                for (int j = 0; j < NR; j++) jf_unpack<T>(raw[u][j], wf[j]);
                float gv[VEC];
                if (g) jf_load_act<VEC>(g + (size_t)v * VEC, gv);
#pragma unroll
                for (int b = 0; b < NBT; b++) {
                    if (b >= nb) break;
                    float xv[VEC];
                    jf_load_act<VEC>(x + (size_t)b * XLD + (size_t)v * VEC, xv);
                    if (g) {
#pragma unroll
                        for (int i = 0; i < VEC; i++) xv[i] *= gv[i];
                    }
#pragma unroll
                    for (int j = 0; j < NR; j++)
#pragma unroll
                        for (int i = 0; i < VEC; i++) acc[b][j] = fmaf(wf[j][i], xv[i], acc[b][j]);
                }
            }
        }
    } else {
        constexpr int S = N / 32; // steps of 32 values per row
        constexpr int U = 4 / NR; // steps in flight per row and lane
#pragma unroll 1
        for (int base = 0; base < S; base += 32 * U) {
            jf_qraw raw[U][NR];
#pragma unroll
            for (int u = 0; u < U; u++) {
                int st = base + u * 32 + lane;
#pragma unroll
                for (int j = 0; j < NR; j++)
                    if (st < S) raw[u][j] = jf_qload<T, N>(w[j], st);
            }
#pragma unroll
            for (int u = 0; u < U; u++) {
                int st = base + u * 32 + lane;
                if (st >= S) break;
#pragma unroll
                for (int run = 0; run < 2; run++) {
                    const int off = jf_qrun<T>(st, run);
                    float wf[NR][16];
#pragma unroll
                    for (int j = 0; j < NR; j++) jf_qdecode<T>(raw[u][j], st, run, wf[j]);
                    float gv[16];
                    if (g) jf_load_act<16>(g + off, gv);
#pragma unroll
                    for (int b = 0; b < NBT; b++) {
                        if (b >= nb) break;
                        float xv[16];
                        jf_load_act<16>(x + (size_t)b * XLD + off, xv);
                        if (g) {
#pragma unroll
                            for (int i = 0; i < 16; i++) xv[i] *= gv[i];
                        }
#pragma unroll
                        for (int j = 0; j < NR; j++)
#pragma unroll
                            for (int i = 0; i < 16; i++) acc[b][j] = fmaf(wf[j][i], xv[i], acc[b][j]);
                    }
                }
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

// out = row (N values of type T), decoded to f32 by the block.
template <int T, int N> __device__ __forceinline__ void jf_decode_row(const fb_u8 *row, float *out) {
    if constexpr (jf_is_plain(T)) {
        for (int i = threadIdx.x; i < N; i += JF_THREADS) out[i] = jf_weight<T>(row, i);
    } else { // a step of 32 values per thread, decoded as the matvec decodes them
        for (int st = threadIdx.x; st < N / 32; st += JF_THREADS) {
            const jf_qraw raw = jf_qload<T, N>(row, st);
#pragma unroll
            for (int run = 0; run < 2; run++) {
                float w[16];
                jf_qdecode<T>(raw, st, run, w);
                const int off = jf_qrun<T>(st, run);
#pragma unroll
                for (int i = 0; i < 16; i++) out[off + i] = w[i];
            }
        }
    }
}

// x[b] = token_embd[step[1 + b]] for b < gridDim.x, decoded to f32; also
// clears the argmax key.
extern "C" __global__ void __launch_bounds__(JF_THREADS)
jf_embed(const int *step, const fb_u8 *token_embd, float *x, fb_u64 *argmax_key) {
    jf_begin();
    const int b = blockIdx.x;
    jf_decode_row<JF_T_EMBD, JF_DIM>(token_embd + (size_t)step[1 + b] * jf_row_bytes(JF_T_EMBD, JF_DIM),
                                     x + (size_t)b * JF_LD_DIM);
    if (b == 0 && threadIdx.x == 0) *argmax_key = 0ull;
}

// ------------------------------------------------------------------ attention block

// RMSNorm, then Q, K and V in one matvec over the concatenated rows
// [W_q; W_k; W_v]; each warp computes one adjacent pair of rows, which is
// exactly a RoPE pair, and rotates it, then writes q, or k and v into the
// cache at the token's position.
// The stacked rows keep each matrix's own type and row stride: W_q's rows,
// then W_k's from byte JF_Q_DIM * RB_Q, then W_v's.
template <int NBT, int TQ, int TK, int TV>
__device__ __forceinline__ void jf_qkv_rope(const int *step, int nb, const float *x, const float *norm,
                                            const fb_u8 *w_qkv, const float *rope_inv_freq, float *q,
                                            float *key_cache, float *value_cache) {
    constexpr int PAIRS = (JF_Q_DIM + 2 * JF_KV_DIM) / 2;
    constexpr int RB_Q = jf_row_bytes(TQ, JF_DIM), RB_K = jf_row_bytes(TK, JF_DIM), RB_V = jf_row_bytes(TV, JF_DIM);
    const int pair = blockIdx.x * JF_WARPS + (threadIdx.x >> 5);
    const int r = 2 * pair;
    const fb_u8 *first;
    int rb;
    if (r < JF_Q_DIM) first = w_qkv + (size_t)r * RB_Q, rb = RB_Q;
    else if (r < JF_Q_DIM + JF_KV_DIM) first = w_qkv + (size_t)JF_Q_DIM * RB_Q + (size_t)(r - JF_Q_DIM) * RB_K, rb = RB_K;
    else
        first = w_qkv + (size_t)JF_Q_DIM * RB_Q + (size_t)JF_KV_DIM * RB_K + (size_t)(r - JF_Q_DIM - JF_KV_DIM) * RB_V,
        rb = RB_V;
    const fb_u8 *rows[2] = {first, first + rb};
    jf_begin_rows<2>(rows, rb, pair < PAIRS);
    float inv[NBT];
    jf_block_inv_rms<NBT>(x, nb, inv);
    if (pair >= PAIRS) return;
    float acc[NBT][2];
    if constexpr (TQ == TK && TK == TV) {
        jf_matvec_warp<TQ, 2, NBT, JF_DIM, JF_LD_DIM>(rows, x, norm, nb, acc);
    } else { // warp-uniform: a pair never straddles two matrices (their row counts are even)
        if (r < JF_Q_DIM) jf_matvec_warp<TQ, 2, NBT, JF_DIM, JF_LD_DIM>(rows, x, norm, nb, acc);
        else if (r < JF_Q_DIM + JF_KV_DIM) jf_matvec_warp<TK, 2, NBT, JF_DIM, JF_LD_DIM>(rows, x, norm, nb, acc);
        else jf_matvec_warp<TV, 2, NBT, JF_DIM, JF_LD_DIM>(rows, x, norm, nb, acc);
    }
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
template <int NBT, int TO>
__device__ __forceinline__ void jf_out_residual(int nb, const float *att, const fb_u8 *w_o, float *x) {
    constexpr int RB = jf_row_bytes(TO, JF_Q_DIM);
    const int r = blockIdx.x * JF_WARPS + (threadIdx.x >> 5);
    const fb_u8 *rows[1] = {w_o + (size_t)r * RB};
    jf_begin_rows<1>(rows, RB, r < JF_DIM);
    if (r >= JF_DIM) return;
    float acc[NBT][1];
    jf_matvec_warp<TO, 1, NBT, JF_Q_DIM, JF_LD_Q>(rows, att, (const float *)0, nb, acc);
    if ((threadIdx.x & 31) != 0) return;
#pragma unroll
    for (int b = 0; b < NBT; b++)
        if (b < nb) x[(size_t)b * JF_LD_DIM + r] += acc[b][0];
}

// ------------------------------------------------------------------ feed-forward block

// RMSNorm, then row r of W_gate and of W_up together: h = silu(gate) * up.
template <int NBT, int TG, int TU>
__device__ __forceinline__ void jf_gate_up(int nb, const float *x, const float *norm, const fb_u8 *w_gate,
                                           const fb_u8 *w_up, float *hb) {
    constexpr int RB_G = jf_row_bytes(TG, JF_DIM), RB_U = jf_row_bytes(TU, JF_DIM);
    const int r = blockIdx.x * JF_WARPS + (threadIdx.x >> 5);
    const fb_u8 *rows[2] = {w_gate + (size_t)r * RB_G, w_up + (size_t)r * RB_U};
    jf_begin_rows<2>(rows, RB_G > RB_U ? RB_G : RB_U, r < JF_N_FF);
    float inv[NBT];
    jf_block_inv_rms<NBT>(x, nb, inv);
    if (r >= JF_N_FF) return;
    float acc[NBT][2];
    if constexpr (TG == TU) {
        jf_matvec_warp<TG, 2, NBT, JF_DIM, JF_LD_DIM>(rows, x, norm, nb, acc);
    } else {
        float a1[NBT][1];
        jf_matvec_warp<TG, 1, NBT, JF_DIM, JF_LD_DIM>(rows, x, norm, nb, a1);
#pragma unroll
        for (int b = 0; b < NBT; b++) acc[b][0] = a1[b][0];
        jf_matvec_warp<TU, 1, NBT, JF_DIM, JF_LD_DIM>(rows + 1, x, norm, nb, a1);
#pragma unroll
        for (int b = 0; b < NBT; b++) acc[b][1] = a1[b][0];
    }
    if ((threadIdx.x & 31) != 0) return;
#pragma unroll
    for (int b = 0; b < NBT; b++) {
        if (b >= nb) break;
        float gate = acc[b][0] * inv[b], up = acc[b][1] * inv[b];
        hb[(size_t)b * JF_LD_FF + r] = gate / (1.0f + expf(-gate)) * up;
    }
}

// x += W_down . h, one row of W_down per warp.
template <int NBT, int TD>
__device__ __forceinline__ void jf_down_residual(int nb, const float *hb, const fb_u8 *w_down, float *x) {
    constexpr int RB = jf_row_bytes(TD, JF_N_FF);
    const int r = blockIdx.x * JF_WARPS + (threadIdx.x >> 5);
    const fb_u8 *rows[1] = {w_down + (size_t)r * RB};
    jf_begin_rows<1>(rows, RB, r < JF_DIM);
    if (r >= JF_DIM) return;
    float acc[NBT][1];
    jf_matvec_warp<TD, 1, NBT, JF_N_FF, JF_LD_FF>(rows, hb, (const float *)0, nb, acc);
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
__device__ __forceinline__ void jf_lm_head(int nb, const float *x, const float *norm, const fb_u8 *w_out,
                                           float *logits, fb_u64 *argmax_key) {
    constexpr int RB = jf_row_bytes(JF_T_OUT, JF_DIM);
    // Rows per warp and turn of the loop: a block type's row is 2-4x shorter
    // than an f16 one, so a warp takes two rows at once to keep as many
    // bytes in flight (the loop is serial per warp: one row's latency each).
    constexpr int LNR = jf_is_plain(JF_T_OUT) ? 1 : 2;
    __shared__ fb_u64 s_best[JF_WARPS];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    {
        const int first = (blockIdx.x * JF_WARPS + warp) * LNR;
        const fb_u8 *rows[1] = {w_out + (size_t)first * RB};
        jf_begin_rows<1>(rows, RB * LNR, first < JF_VOCAB);
    }
    float inv[NBT];
    jf_block_inv_rms<NBT>(x, nb, inv);
    fb_u64 best = 0ull;
    for (int r0 = (blockIdx.x * JF_WARPS + warp) * LNR; r0 < JF_VOCAB; r0 += gridDim.x * JF_WARPS * LNR) {
        const fb_u8 *rows[LNR];
#pragma unroll
        for (int j = 0; j < LNR; j++) rows[j] = w_out + (size_t)(r0 + j < JF_VOCAB ? r0 + j : r0) * RB; // the tail: row r0 again
        float acc[NBT][LNR];
        jf_matvec_warp<JF_T_OUT, LNR, NBT, JF_DIM, JF_LD_DIM>(rows, x, norm, nb, acc);
        if (lane == 0) {
#pragma unroll
            for (int j = 0; j < LNR; j++) {
                const int r = r0 + j;
                if (r >= JF_VOCAB) break;
#pragma unroll
                for (int b = 0; b < NBT; b++) {
                    if (b >= nb) break;
                    float v = acc[b][j] * inv[b];
                    logits[(size_t)b * JF_VOCAB + r] = v;
                    if (b == nb - 1) {
                        fb_u64 key = jf_argmax_key(v, r);
                        best = key > best ? key : best;
                    }
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

#define JF_ENTRY_POINTS(SUFFIX, NBT, TQ, TK, TV, TO, TG, TU, TD)                                           \
    extern "C" __global__ void __launch_bounds__(JF_THREADS, 1)                                                     \
    jf_qkv_rope_##SUFFIX(const int *step, int nb, const float *x, const float *norm, const fb_u8 *w_qkv,         \
                         const float *rope_inv_freq, float *q, float *key_cache, float *value_cache) {           \
        jf_qkv_rope<NBT, TQ, TK, TV>(step, nb, x, norm, w_qkv, rope_inv_freq, q, key_cache, value_cache);        \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(JF_THREADS, 1)                                                     \
    jf_out_residual_##SUFFIX(int nb, const float *att, const fb_u8 *w_o, float *x) {                             \
        jf_out_residual<NBT, TO>(nb, att, w_o, x);                                                               \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(JF_THREADS, 1)                                                     \
    jf_gate_up_##SUFFIX(int nb, const float *x, const float *norm, const fb_u8 *w_gate, const fb_u8 *w_up,       \
                        float *hb) {                                                                             \
        jf_gate_up<NBT, TG, TU>(nb, x, norm, w_gate, w_up, hb);                                                  \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(JF_THREADS, 1)                                                     \
    jf_down_residual_##SUFFIX(int nb, const float *hb, const fb_u8 *w_down, float *x) {                          \
        jf_down_residual<NBT, TD>(nb, hb, w_down, x);                                                            \
    }

// One kind of layer (the generator writes one line per kind after the
// template): jf_qkv_rope_1_k0, jf_qkv_rope_nb_k0, ...
#define JF_LAYER_ENTRY_POINTS(KIND, TQ, TK, TV, TO, TG, TU, TD)                                                  \
    JF_ENTRY_POINTS(1_##KIND, 1, TQ, TK, TV, TO, TG, TU, TD)                                                     \
    JF_ENTRY_POINTS(nb_##KIND, JF_NB, TQ, TK, TV, TO, TG, TU, TD)

extern "C" __global__ void __launch_bounds__(JF_THREADS, 1)
jf_lm_head_1(int nb, const float *x, const float *norm, const fb_u8 *w_out, float *logits, fb_u64 *argmax_key) {
    jf_lm_head<1>(nb, x, norm, w_out, logits, argmax_key);
}
extern "C" __global__ void __launch_bounds__(JF_THREADS, 1)
jf_lm_head_nb(int nb, const float *x, const float *norm, const fb_u8 *w_out, float *logits, fb_u64 *argmax_key) {
    jf_lm_head<JF_NB>(nb, x, norm, w_out, logits, argmax_key);
}
