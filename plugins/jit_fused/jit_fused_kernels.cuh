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
    return t == JF_T_F32                     ? jf_pad16(4 * n)
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
    else if constexpr (T == JF_T_F16)
        return jf_half_to_float(((const fb_u16 *)row)[i]);
    else
        return jf_bf16_to_float(((const fb_u16 *)row)[i]);
}

// Activations (x, q, the KV cache, attention partials, h): read from L2,
// never from L1. In the persistent decode step other blocks, on other SMs,
// wrote them moments ago, and an SM's L1 is not coherent with their writes;
// ld.global.cg skips it. (Writes go through to L2 anyway.) Weights, which
// never change, take the non-coherent path of jf_load_weights.
__device__ __forceinline__ float jf_ld(const float *p) {
#ifdef JF_EMULATE
    return *p;
#else
    float v;
    asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p));
    return v;
#endif
}

__device__ __forceinline__ float4 jf_ld4(const float *p) {
#ifdef JF_EMULATE
    return *(const float4 *)p;
#else
    float4 v;
    asm volatile("ld.global.cg.v4.f32 {%0, %1, %2, %3}, [%4];" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(p));
    return v;
#endif
}

// V activations (V a multiple of 4; 16-byte aligned: strides are multiples of 8).
template <int V> __device__ __forceinline__ void jf_load_act(const float *p, float a[V]) {
#pragma unroll
    for (int i = 0; i < V; i += 4) {
        float4 f = jf_ld4(p + i);
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

// ------------------------------------------------------------------ waiting and prefetching

// Shared memory: one copy per block. (The CPU emulation runs the blocks of
// the persistent step at once and gives each its own copy; see
// tests/cuda_emulate.h.)
#ifdef JF_EMULATE
#define JF_SHARED(T, name, dims) EMU_SHARED(T, name, dims)
#else
#define JF_SHARED(T, name, dims) __shared__ T name dims
#endif

// Bring the 128-byte lines of [p, p + bytes) into L2, spread over the warp's
// lanes. Fire and forget: nothing waits for them.
__device__ __forceinline__ void jf_prefetch_l2(const void *p, int bytes) {
#ifdef JF_EMULATE
    (void)p;
    (void)bytes;
#else
    for (int off = (threadIdx.x & 31) * 128; off < bytes; off += 32 * 128)
        asm volatile("prefetch.global.L2 [%0];" ::"l"((const fb_u8 *)p + off));
#endif
}

// A counter another block raises (see jf_decode_step), read with acquire
// semantics: what that block wrote before raising it is visible after.
__device__ __forceinline__ fb_u32 jf_load_acquire(const fb_u32 *p) {
#ifdef JF_EMULATE
    return *(volatile const fb_u32 *)p;
#else
    fb_u32 v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
#endif
}

// A spin-wait's pause. On the CPU emulation it lets the other blocks run.
__device__ __forceinline__ void jf_spin_pause() {
#ifdef JF_EMULATE
    emu_spin();
#else
    __nanosleep(32);
#endif
}

// ------------------------------------------------------------------ programmatic dependent launch
// With JF_PDL (sm_90+, launched with programmatic stream serialisation), a
// kernel of the per-op decode (decode = kernels) lets the next one launch as
// soon as all its blocks are running, and the next one's blocks, placed as
// these retire, first pull their warp's weights into L2 (weights never
// depend on the previous kernel), then wait until the previous kernel has
// finished and its writes are visible. Every kernel calls jf_begin before it
// reads or writes any activation. Without JF_PDL (sm_80, or
// FAIRBENCH_JIT_PDL=0): nothing. The persistent step has no kernel
// boundaries to hide, and does without.

__device__ __forceinline__ void jf_begin() {
#if defined(JF_PDL) && !defined(JF_EMULATE)
    asm volatile("griddepcontrol.launch_dependents;" :::);
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// jf_begin for a warp about to read rows w[0 .. NR) of rb bytes each (when valid).
template <int NR> __device__ __forceinline__ void jf_begin_rows(const fb_u8 *const w[NR], int rb, bool valid) {
#if defined(JF_PDL) && !defined(JF_EMULATE)
    asm volatile("griddepcontrol.launch_dependents;" :::);
    if (valid)
#pragma unroll
        for (int j = 0; j < NR; j++) jf_prefetch_l2(w[j], rb);
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
template <int NBT> __device__ __forceinline__ void jf_block_inv_rms(const float *x, int nb, float inv[NBT]) {
    JF_SHARED(float, partial, [NBT][JF_WARPS]);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
    for (int b = 0; b < NBT; b++) {
        if (b >= nb) break;
        float ss = 0.0f;
        for (int i = threadIdx.x; i < JF_DIM; i += JF_THREADS) {
            float v = jf_ld(x + (size_t)b * JF_LD_DIM + i);
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
    __syncthreads(); // partial is free again
}

// ------------------------------------------------------------------ the work items
// Every fused op is a set of work items, each the work of one block of
// JF_WARPS warps (one or two weight rows per warp, or one attention split).
// The per-op kernels (decode = kernels, and prefill) run item blockIdx.x;
// the persistent decode step (jf_decode_step, below) runs every item of a
// step in dependency order. For each op: jf_<op>_rows gives the weight rows
// a warp of an item reads (to prefetch them), jf_<op> does the item.
//
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

// Item b: x[b] = token_embd[step[1 + b]], decoded to f32; item 0 also
// clears the argmax key.
__device__ __forceinline__ void jf_embed_item(int b, const int *step, const fb_u8 *token_embd, float *x,
                                              fb_u64 *argmax_key) {
    jf_decode_row<JF_T_EMBD, JF_DIM>(token_embd + (size_t)step[1 + b] * jf_row_bytes(JF_T_EMBD, JF_DIM),
                                     x + (size_t)b * JF_LD_DIM);
    if (b == 0 && threadIdx.x == 0) *argmax_key = 0ull;
}

// ------------------------------------------------------------------ attention block

#define JF_QKV_PAIRS ((JF_Q_DIM + 2 * JF_KV_DIM) / 2)
#define JF_QKV_ITEMS ((JF_QKV_PAIRS + JF_WARPS - 1) / JF_WARPS)

// The first of the two rows (a RoPE pair) of warp `warp` of item `item` in
// the stacked [W_q; W_k; W_v], which keep each matrix's own type and row
// stride: W_q's rows, then W_k's from byte JF_Q_DIM * RB_Q, then W_v's.
// Sets *rb to the rows' stride; false past the last pair.
template <int TQ, int TK, int TV>
__device__ __forceinline__ bool jf_qkv_rows(int item, int warp, const fb_u8 *w_qkv, const fb_u8 *rows[2], int *rb) {
    constexpr int RB_Q = jf_row_bytes(TQ, JF_DIM), RB_K = jf_row_bytes(TK, JF_DIM), RB_V = jf_row_bytes(TV, JF_DIM);
    const int pair = item * JF_WARPS + warp, r = 2 * pair;
    const fb_u8 *first;
    if (r < JF_Q_DIM) first = w_qkv + (size_t)r * RB_Q, *rb = RB_Q;
    else if (r < JF_Q_DIM + JF_KV_DIM)
        first = w_qkv + (size_t)JF_Q_DIM * RB_Q + (size_t)(r - JF_Q_DIM) * RB_K, *rb = RB_K;
    else
        first = w_qkv + (size_t)JF_Q_DIM * RB_Q + (size_t)JF_KV_DIM * RB_K + (size_t)(r - JF_Q_DIM - JF_KV_DIM) * RB_V,
        *rb = RB_V;
    rows[0] = first;
    rows[1] = first + *rb;
    return pair < JF_QKV_PAIRS;
}

// RoPE of the pair (y0, y1) = rows (r, r + 1) of [q; k] at position pos, r
// even and below JF_Q_DIM + JF_KV_DIM: angles in double, as cpu_ref's. One
// home for the decode and the tensor-core prefill epilogues.
__device__ __forceinline__ void jf_rope_pair(int r, int pos, const float *rope_inv_freq, float &y0, float &y1) {
    const int i = ((r < JF_Q_DIM ? r : r - JF_Q_DIM) % JF_HEAD_DIM) / 2;
    if (i >= JF_N_ROT / 2) return;
    const double angle = (double)pos * (double)rope_inv_freq[i];
    const float c = (float)cos(angle), s = (float)sin(angle);
    const float t = y0 * c - y1 * s;
    y1 = y0 * s + y1 * c;
    y0 = t;
}

// RMSNorm (inv: jf_block_inv_rms of x), then Q, K and V in one matvec over
// the stacked rows; each warp computes one adjacent pair of rows, which is
// exactly a RoPE pair, and rotates it, then writes q, or k and v into the
// cache at the token's position.
template <int NBT, int TQ, int TK, int TV>
__device__ __forceinline__ void jf_qkv_rope(int item, const int *step, int nb, const float *x, const float *norm,
                                            const fb_u8 *w_qkv, const float *rope_inv_freq, const float inv[NBT],
                                            float *q, float *key_cache, float *value_cache) {
    const fb_u8 *rows[2];
    int rb;
    if (!jf_qkv_rows<TQ, TK, TV>(item, threadIdx.x >> 5, w_qkv, rows, &rb)) return;
    const int r = 2 * (item * JF_WARPS + (threadIdx.x >> 5));
    float acc[NBT][2];
    if constexpr (TQ == TK && TK == TV) {
        jf_matvec_warp<TQ, 2, NBT, JF_DIM, JF_LD_DIM>(rows, x, norm, nb, acc);
    } else { // warp-uniform: a pair never straddles two matrices (their row counts are even)
        if (r < JF_Q_DIM) jf_matvec_warp<TQ, 2, NBT, JF_DIM, JF_LD_DIM>(rows, x, norm, nb, acc);
        else if (r < JF_Q_DIM + JF_KV_DIM)
            jf_matvec_warp<TK, 2, NBT, JF_DIM, JF_LD_DIM>(rows, x, norm, nb, acc);
        else
            jf_matvec_warp<TV, 2, NBT, JF_DIM, JF_LD_DIM>(rows, x, norm, nb, acc);
    }
    if ((threadIdx.x & 31) != 0) return;
    const int pos0 = step[0];
#pragma unroll
    for (int b = 0; b < NBT; b++) {
        if (b >= nb) break;
        const int pos = pos0 + b;
        float y0 = acc[b][0] * inv[b], y1 = acc[b][1] * inv[b];
        if (r < JF_Q_DIM + JF_KV_DIM) {
            jf_rope_pair(r, pos, rope_inv_freq, y0, y1);
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

// Decode attention, split over the sequence (flash-decoding). An item is a
// (KV head g, split s) pair for query b: it covers positions [s * chunk,
// min((s + 1) * chunk, n)) of the n = pos + 1 the query sees, for every
// query head of g's group at once, so each K and V row is read once per
// group, not once per head. Lanes work on several positions at a time:
// JF_ATT_L lanes share a position (each holds JF_ATT_DPL of its head_dim
// values, a stride of JF_ATT_L apart, so a group's loads are contiguous),
// JF_ATT_PPW positions per warp, JF_ATT_STEP per block; each lane group runs
// an online softmax over its positions, then the groups and warps merge.
// The split's (max, sum, unnormalised output) per head go to part; the last
// split of (b, g) to finish (an arrival counter per (b, g), left at zero
// again) merges them into att. The chunk grows with n so that about
// JF_SPLITS splits share a long sequence, and is at least JF_ATT_STEP, so a
// short one takes one split: the work of a step grows with the context, the
// number of items only as far as it helps.
#define JF_HPG (JF_N_HEADS / JF_N_KV_HEADS) // query heads per KV head
// Heads per pass over a split: at most 8 (registers), and few enough that
// the warps' partial outputs fit 32 KiB of shared memory.
#define JF_ATT_HPC_MAX (1024 / JF_HEAD_DIM < 1 ? 1 : 1024 / JF_HEAD_DIM < 8 ? 1024 / JF_HEAD_DIM : 8)
#define JF_ATT_HPC (JF_HPG < JF_ATT_HPC_MAX ? JF_HPG : JF_ATT_HPC_MAX)
#define JF_ATT_L_MIN ((JF_HEAD_DIM + 3) / 4)
#define JF_ATT_L             \
    (JF_ATT_L_MIN > 16  ? 32 \
     : JF_ATT_L_MIN > 8 ? 16 \
     : JF_ATT_L_MIN > 4 ? 8  \
     : JF_ATT_L_MIN > 2 ? 4  \
     : JF_ATT_L_MIN > 1 ? 2  \
                        : 1)
#define JF_ATT_DPL ((JF_HEAD_DIM + JF_ATT_L - 1) / JF_ATT_L) // head_dim values per lane
#define JF_ATT_PPW (32 / JF_ATT_L)                           // positions per warp at a time
#define JF_ATT_STEP (JF_WARPS * JF_ATT_PPW)                  // positions per block at a time
#define JF_PART (JF_HEAD_DIM + 2) // a split's partial result of a head: max, sum, then head_dim outputs

#ifdef JF_MUTATE_KV_GROUP // tests: query heads read another group's K and V
#define JF_KV_OF(g) (((g) + 1) % JF_N_KV_HEADS)
#else
#define JF_KV_OF(g) (g)
#endif

// Positions per split, and splits in use, for a query that sees n positions.
__device__ __forceinline__ int jf_att_chunk(int n) {
    const int c = (n + JF_SPLITS - 1) / JF_SPLITS;
    return c > JF_ATT_STEP ? c : JF_ATT_STEP;
}
__device__ __forceinline__ int jf_att_active(int n) { return (n + jf_att_chunk(n) - 1) / jf_att_chunk(n); }

// Pull split s of (query b, KV head g) of the K and V caches into L2.
__device__ __forceinline__ void jf_attention_prefetch(int g, int split, int b, const int *step, const float *key_cache,
                                                      const float *value_cache) {
    const int n = step[0] + b + 1, chunk = jf_att_chunk(n);
    const int t_begin = split * chunk, t_end = min(n, t_begin + chunk);
    for (int t = t_begin + (threadIdx.x >> 5); t < t_end; t += JF_WARPS) {
        jf_prefetch_l2(key_cache + (size_t)t * JF_KV_DIM + (size_t)JF_KV_OF(g) * JF_HEAD_DIM, JF_HEAD_DIM * 4);
        jf_prefetch_l2(value_cache + (size_t)t * JF_KV_DIM + (size_t)JF_KV_OF(g) * JF_HEAD_DIM, JF_HEAD_DIM * 4);
    }
}

// Merge (m2, l2, o2) into (m, l, o): two online-softmax states.
__device__ __forceinline__ void jf_softmax_merge(float &m, float &l, float o[JF_ATT_DPL], float m2, float l2,
                                                 const float o2[JF_ATT_DPL]) {
    const float mx = fmaxf(m, m2);
    const float a = m == JF_NEG_INF ? 0.0f : expf(m - mx), c = m2 == JF_NEG_INF ? 0.0f : expf(m2 - mx);
    l = l * a + l2 * c;
#pragma unroll
    for (int k = 0; k < JF_ATT_DPL; k++) o[k] = o[k] * a + o2[k] * c;
    m = mx;
}

__device__ __forceinline__ void jf_attention(int g, int split, int b, const int *step, const float *q,
                                             const float *key_cache, const float *value_cache, float *part, float *att,
                                             fb_u32 *att_count) {
    const int n = step[0] + b + 1, chunk = jf_att_chunk(n), active = (n + chunk - 1) / chunk;
    if (split >= active) return; // the whole block: this split is empty
    const int t_begin = split * chunk, t_end = min(n, t_begin + chunk);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, grp = lane / JF_ATT_L, sub = lane % JF_ATT_L;
    const size_t kv_off = (size_t)JF_KV_OF(g) * JF_HEAD_DIM;
    JF_SHARED(float, s_m, [JF_WARPS][JF_ATT_HPC]);
    JF_SHARED(float, s_l, [JF_WARPS][JF_ATT_HPC]);
    JF_SHARED(float, s_o, [JF_WARPS][JF_ATT_HPC][JF_HEAD_DIM]);
    for (int hp = 0; hp < JF_HPG; hp += JF_ATT_HPC) { // passes over the group's heads
        float qr[JF_ATT_HPC][JF_ATT_DPL], o[JF_ATT_HPC][JF_ATT_DPL], m[JF_ATT_HPC], l[JF_ATT_HPC];
#pragma unroll
        for (int i = 0; i < JF_ATT_HPC; i++) {
            const int h = g * JF_HPG + hp + i;
            m[i] = JF_NEG_INF;
            l[i] = 0.0f;
#pragma unroll
            for (int k = 0; k < JF_ATT_DPL; k++) {
                const int d = sub + JF_ATT_L * k;
                qr[i][k] = hp + i < JF_HPG && d < JF_HEAD_DIM
                               ? jf_ld(q + (size_t)b * JF_Q_DIM + (size_t)h * JF_HEAD_DIM + d)
                               : 0.0f;
                o[i][k] = 0.0f;
            }
        }
        // warp-uniform loop (the shuffles need every lane); t: this lane group's position
        for (int base = t_begin; base < t_end; base += JF_ATT_STEP) {
            const int t = base + warp * JF_ATT_PPW + grp;
            const bool valid = t < t_end;
            const float *kr = key_cache + (size_t)(valid ? t : t_begin) * JF_KV_DIM + kv_off;
            const float *vr = value_cache + (size_t)(valid ? t : t_begin) * JF_KV_DIM + kv_off;
            float kv[JF_ATT_DPL], vv[JF_ATT_DPL];
#pragma unroll
            for (int k = 0; k < JF_ATT_DPL; k++) {
                const int d = sub + JF_ATT_L * k;
                kv[k] = d < JF_HEAD_DIM ? jf_ld(kr + d) : 0.0f;
                vv[k] = d < JF_HEAD_DIM ? jf_ld(vr + d) : 0.0f;
            }
#pragma unroll
            for (int i = 0; i < JF_ATT_HPC; i++) {
                float dot = 0.0f;
#pragma unroll
                for (int k = 0; k < JF_ATT_DPL; k++) dot = fmaf(qr[i][k], kv[k], dot);
#pragma unroll
                for (int off = JF_ATT_L / 2; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
                if (valid) {
                    const float score = dot * JF_ATT_SCALE;
                    const float m_new = fmaxf(m[i], score);
#ifdef JF_MUTATE_RESCALE // tests: forget to rescale what was summed under a smaller max
                    const float correction = 1.0f;
#else
                    const float correction = expf(m[i] - m_new); // 0 on the first position (m = -inf)
#endif
                    const float p = expf(score - m_new);
                    l[i] = l[i] * correction + p;
#pragma unroll
                    for (int k = 0; k < JF_ATT_DPL; k++) o[i][k] = o[i][k] * correction + p * vv[k];
                    m[i] = m_new;
                }
            }
        }
        // merge the lane groups of the warp, then the warps through shared memory
#pragma unroll
        for (int off = JF_ATT_L; off < 32; off <<= 1)
#pragma unroll
            for (int i = 0; i < JF_ATT_HPC; i++) {
                float o2[JF_ATT_DPL];
#pragma unroll
                for (int k = 0; k < JF_ATT_DPL; k++) o2[k] = __shfl_xor_sync(0xffffffffu, o[i][k], off);
                const float m2 = __shfl_xor_sync(0xffffffffu, m[i], off), l2 = __shfl_xor_sync(0xffffffffu, l[i], off);
                jf_softmax_merge(m[i], l[i], o[i], m2, l2, o2);
            }
        if (grp == 0)
#pragma unroll
            for (int i = 0; i < JF_ATT_HPC; i++) {
                if (sub == 0) {
                    s_m[warp][i] = m[i];
                    s_l[warp][i] = l[i];
                }
#pragma unroll
                for (int k = 0; k < JF_ATT_DPL; k++) {
                    const int d = sub + JF_ATT_L * k;
                    if (d < JF_HEAD_DIM) s_o[warp][i][d] = o[i][k];
                }
            }
        __syncthreads();
        for (int idx = threadIdx.x; idx < JF_ATT_HPC * JF_HEAD_DIM; idx += JF_THREADS) {
            const int i = idx / JF_HEAD_DIM, d = idx % JF_HEAD_DIM, h = g * JF_HPG + hp + i;
            if (hp + i >= JF_HPG) continue;
            float mx = JF_NEG_INF;
#pragma unroll
            for (int w = 0; w < JF_WARPS; w++) mx = fmaxf(mx, s_m[w][i]);
            float sum = 0.0f, acc = 0.0f; // the split has positions, so mx is finite
#pragma unroll
            for (int w = 0; w < JF_WARPS; w++) {
                const float scale = s_m[w][i] == JF_NEG_INF ? 0.0f : expf(s_m[w][i] - mx);
                sum += s_l[w][i] * scale;
                acc += s_o[w][i][d] * scale;
            }
            float *out = part + (((size_t)b * JF_N_HEADS + h) * JF_SPLITS + split) * JF_PART;
            if (d == 0) {
                out[0] = mx;
                out[1] = sum;
            }
            out[2 + d] = acc;
        }
        __syncthreads(); // s_* are free for the next pass
    }
    // The last split of (b, g) to arrive merges: out = sum_s o_s e^(m_s - M) / sum_s l_s e^(m_s - M).
    JF_SHARED(int, s_last, [1]);
    if (threadIdx.x == 0) {
        __threadfence(); // this block's partials, before its arrival
        s_last[0] = atomicAdd(&att_count[b * JF_N_KV_HEADS + g], 1u) == (fb_u32)active - 1;
    }
    __syncthreads();
    if (!s_last[0]) return;
    __threadfence(); // every other split's partials, after its arrival
    for (int idx = threadIdx.x; idx < JF_HPG * JF_HEAD_DIM; idx += JF_THREADS) {
        const int h = g * JF_HPG + idx / JF_HEAD_DIM, d = idx % JF_HEAD_DIM;
        const float *p = part + ((size_t)b * JF_N_HEADS + h) * JF_SPLITS * JF_PART;
        float mx = JF_NEG_INF;
        for (int s = 0; s < active; s++) mx = fmaxf(mx, jf_ld(p + (size_t)s * JF_PART));
        float sum = 0.0f, acc = 0.0f;
        for (int s = 0; s < active; s++) {
            const float e = expf(jf_ld(p + (size_t)s * JF_PART) - mx);
            sum += jf_ld(p + (size_t)s * JF_PART + 1) * e;
            acc += jf_ld(p + (size_t)s * JF_PART + 2 + d) * e;
        }
        att[(size_t)b * JF_LD_Q + (size_t)h * JF_HEAD_DIM + d] = acc / sum;
    }
    if (threadIdx.x == 0) att_count[b * JF_N_KV_HEADS + g] = 0u; // for the next layer's attention
}

#define JF_ROW_ITEMS(rows) (((rows) + JF_WARPS - 1) / JF_WARPS)

// x += W_o . att, one row of W_o per warp.
template <int NBT, int TO>
__device__ __forceinline__ void jf_out_residual(int item, int nb, const float *att, const fb_u8 *w_o, float *x) {
    constexpr int RB = jf_row_bytes(TO, JF_Q_DIM);
    const int r = item * JF_WARPS + (threadIdx.x >> 5);
    if (r >= JF_DIM) return;
    const fb_u8 *rows[1] = {w_o + (size_t)r * RB};
    float acc[NBT][1];
    jf_matvec_warp<TO, 1, NBT, JF_Q_DIM, JF_LD_Q>(rows, att, (const float *)0, nb, acc);
    if ((threadIdx.x & 31) != 0) return;
#pragma unroll
    for (int b = 0; b < NBT; b++)
        if (b < nb) x[(size_t)b * JF_LD_DIM + r] = jf_ld(x + (size_t)b * JF_LD_DIM + r) + acc[b][0];
}

// ------------------------------------------------------------------ feed-forward block

// RMSNorm (inv), then row r of W_gate and of W_up together: h = silu(gate) * up.
template <int NBT, int TG, int TU>
__device__ __forceinline__ void jf_gate_up(int item, int nb, const float *x, const float *norm, const fb_u8 *w_gate,
                                           const fb_u8 *w_up, const float inv[NBT], float *hb) {
    constexpr int RB_G = jf_row_bytes(TG, JF_DIM), RB_U = jf_row_bytes(TU, JF_DIM);
    const int r = item * JF_WARPS + (threadIdx.x >> 5);
    if (r >= JF_N_FF) return;
    const fb_u8 *rows[2] = {w_gate + (size_t)r * RB_G, w_up + (size_t)r * RB_U};
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
__device__ __forceinline__ void jf_down_residual(int item, int nb, const float *hb, const fb_u8 *w_down, float *x) {
    constexpr int RB = jf_row_bytes(TD, JF_N_FF);
    const int r = item * JF_WARPS + (threadIdx.x >> 5);
    if (r >= JF_DIM) return;
    const fb_u8 *rows[1] = {w_down + (size_t)r * RB};
    float acc[NBT][1];
    jf_matvec_warp<TD, 1, NBT, JF_N_FF, JF_LD_FF>(rows, hb, (const float *)0, nb, acc);
    if ((threadIdx.x & 31) != 0) return;
#pragma unroll
    for (int b = 0; b < NBT; b++)
        if (b < nb) x[(size_t)b * JF_LD_DIM + r] = jf_ld(x + (size_t)b * JF_LD_DIM + r) + acc[b][0];
}

// ------------------------------------------------------------------ the classifier

// A logit as an orderable 64-bit key: larger logits give larger keys, and on
// equal logits the lower id wins (as cpu_ref's argmax).
__device__ __forceinline__ fb_u64 jf_argmax_key(float v, int id) {
    fb_u32 bits = __float_as_uint(v);
    fb_u32 ordered = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
    return ((fb_u64)ordered << 32) | (fb_u64)(0xFFFFFFFFu - (fb_u32)id);
}

// Rows per warp and turn of the LM head: a block type's row is 2-4x shorter
// than an f16 one, so a warp takes two rows at once to keep as many bytes in
// flight (each turn is serial per warp: one row's latency each).
#define JF_LM_NR (jf_is_plain(JF_T_OUT) ? 1 : 2)
#define JF_LM_TURNS 2 // turns per warp and item
#define JF_LM_ROWS (JF_WARPS * JF_LM_NR * JF_LM_TURNS)
#define JF_LM_ITEMS ((JF_VOCAB + JF_LM_ROWS - 1) / JF_LM_ROWS)

// Final RMSNorm (inv) folded in; the logits of rows [item * JF_LM_ROWS, ..)
// for the nb positions of x; returns, in thread 0, the item's largest
// argmax key of the last position (the others return 0).
template <int NBT>
__device__ __forceinline__ fb_u64 jf_lm_head(int item, int nb, const float *x, const float *norm, const fb_u8 *w_out,
                                             const float inv[NBT], float *logits) {
    constexpr int RB = jf_row_bytes(JF_T_OUT, JF_DIM), LNR = JF_LM_NR;
    JF_SHARED(fb_u64, s_best, [JF_WARPS]);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    fb_u64 best = 0ull;
#pragma unroll 1
    for (int turn = 0; turn < JF_LM_TURNS; turn++) {
        const int r0 = item * JF_LM_ROWS + (turn * JF_WARPS + warp) * LNR;
        if (r0 >= JF_VOCAB) break;
        const fb_u8 *rows[LNR];
#pragma unroll
        for (int j = 0; j < LNR; j++)
            rows[j] = w_out + (size_t)(r0 + j < JF_VOCAB ? r0 + j : r0) * RB; // the tail: row r0 again
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
    if (threadIdx.x == 0)
        for (int w = 1; w < JF_WARPS; w++) best = s_best[w] > best ? s_best[w] : best; // best is warp 0's
    __syncthreads();                                                                   // s_best is free again
    return threadIdx.x == 0 ? best : 0ull;
}

// Pull the LM head rows of an item into L2.
__device__ __forceinline__ void jf_lm_head_prefetch(int item, const fb_u8 *w_out) {
    constexpr int RB = jf_row_bytes(JF_T_OUT, JF_DIM);
    const int first = item * JF_LM_ROWS + (threadIdx.x >> 5) * (JF_LM_ROWS / JF_WARPS);
    const int last = min(first + JF_LM_ROWS / JF_WARPS, JF_VOCAB);
    if (first < last) jf_prefetch_l2(w_out + (size_t)first * RB, (last - first) * RB);
}

// ------------------------------------------------------------------ per-op entry points
// _1: one position (decode = kernels); _nb: up to JF_NB positions (prefill).
// __launch_bounds__(..., 1): without the minimum of one block per SM, ptxas
// aims at more resident warps and sinks each weight load down to its first
// use, leaving one or two 16-byte loads per lane in flight (seen in the SASS
// of the W_o and W_down kernels, whose grids are too small to supply those
// warps). With it, the loads of an iteration issue together: 8 per lane.

#define JF_ENTRY_POINTS(SUFFIX, NBT, TQ, TK, TV, TO, TG, TU, TD)                                             \
    extern "C" __global__ void __launch_bounds__(JF_THREADS, 1)                                              \
        jf_qkv_rope_##SUFFIX(const int *step, int nb, const float *x, const float *norm, const fb_u8 *w_qkv, \
                             const float *rope_inv_freq, float *q, float *key_cache, float *value_cache) {   \
        const fb_u8 *rows[2];                                                                                \
        int rb;                                                                                              \
        bool valid = jf_qkv_rows<TQ, TK, TV>(blockIdx.x, threadIdx.x >> 5, w_qkv, rows, &rb);                \
        jf_begin_rows<2>(rows, rb, valid);                                                                   \
        float inv[NBT];                                                                                      \
        jf_block_inv_rms<NBT>(x, nb, inv);                                                                   \
        jf_qkv_rope<NBT, TQ, TK, TV>(blockIdx.x, step, nb, x, norm, w_qkv, rope_inv_freq, inv, q, key_cache, \
                                     value_cache);                                                           \
    }                                                                                                        \
    extern "C" __global__ void __launch_bounds__(JF_THREADS, 1)                                              \
        jf_out_residual_##SUFFIX(int nb, const float *att, const fb_u8 *w_o, float *x) {                     \
        const int r = blockIdx.x * JF_WARPS + (threadIdx.x >> 5);                                            \
        const fb_u8 *rows[1] = {w_o + (size_t)r * jf_row_bytes(TO, JF_Q_DIM)};                               \
        jf_begin_rows<1>(rows, jf_row_bytes(TO, JF_Q_DIM), r < JF_DIM);                                      \
        jf_out_residual<NBT, TO>(blockIdx.x, nb, att, w_o, x);                                               \
    }                                                                                                        \
    extern "C" __global__ void __launch_bounds__(JF_THREADS, 1) jf_gate_up_##SUFFIX(                         \
        int nb, const float *x, const float *norm, const fb_u8 *w_gate, const fb_u8 *w_up, float *hb) {      \
        const int r = blockIdx.x * JF_WARPS + (threadIdx.x >> 5);                                            \
        const fb_u8 *rows[2] = {w_gate + (size_t)r * jf_row_bytes(TG, JF_DIM),                               \
                                w_up + (size_t)r * jf_row_bytes(TU, JF_DIM)};                                \
        jf_begin_rows<2>(rows, jf_row_bytes(TG, JF_DIM), r < JF_N_FF);                                       \
        float inv[NBT];                                                                                      \
        jf_block_inv_rms<NBT>(x, nb, inv);                                                                   \
        jf_gate_up<NBT, TG, TU>(blockIdx.x, nb, x, norm, w_gate, w_up, inv, hb);                             \
    }                                                                                                        \
    extern "C" __global__ void __launch_bounds__(JF_THREADS, 1)                                              \
        jf_down_residual_##SUFFIX(int nb, const float *hb, const fb_u8 *w_down, float *x) {                  \
        const int r = blockIdx.x * JF_WARPS + (threadIdx.x >> 5);                                            \
        const fb_u8 *rows[1] = {w_down + (size_t)r * jf_row_bytes(TD, JF_N_FF)};                             \
        jf_begin_rows<1>(rows, jf_row_bytes(TD, JF_N_FF), r < JF_DIM);                                       \
        jf_down_residual<NBT, TD>(blockIdx.x, nb, hb, w_down, x);                                            \
    }

// x[b] = token_embd[step[1 + b]] for b < gridDim.x; clears the argmax key.
extern "C" __global__ void __launch_bounds__(JF_THREADS)
    jf_embed(const int *step, const fb_u8 *token_embd, float *x, fb_u64 *argmax_key) {
    jf_begin();
    jf_embed_item(blockIdx.x, step, token_embd, x, argmax_key);
}

// Blocks (KV head, split, query): see jf_attention.
extern "C" __global__ void __launch_bounds__(JF_THREADS, 1)
    jf_attention_split(const int *step, const float *q, const float *key_cache, const float *value_cache, float *part,
                       float *att, fb_u32 *att_count) {
    jf_begin();
    jf_attention(blockIdx.x, blockIdx.y, blockIdx.z, step, q, key_cache, value_cache, part, att, att_count);
}

// The LM head over the items blockIdx.x, + gridDim.x, ...; one atomic per block.
template <int NBT>
__device__ __forceinline__ void jf_lm_head_kernel(int nb, const float *x, const float *norm, const fb_u8 *w_out,
                                                  float *logits, fb_u64 *argmax_key) {
    {
        const int first = blockIdx.x * JF_LM_ROWS + (threadIdx.x >> 5) * (JF_LM_ROWS / JF_WARPS);
        const fb_u8 *rows[1] = {w_out + (size_t)(first < JF_VOCAB ? first : 0) * jf_row_bytes(JF_T_OUT, JF_DIM)};
        jf_begin_rows<1>(rows, jf_row_bytes(JF_T_OUT, JF_DIM) * (JF_LM_ROWS / JF_WARPS), first < JF_VOCAB);
    }
    float inv[NBT];
    jf_block_inv_rms<NBT>(x, nb, inv);
    fb_u64 best = 0ull;
    for (int item = blockIdx.x; item < JF_LM_ITEMS; item += gridDim.x) {
        fb_u64 b = jf_lm_head<NBT>(item, nb, x, norm, w_out, inv, logits);
        best = b > best ? b : best;
    }
    if (threadIdx.x == 0) atomicMax(argmax_key, best);
}

extern "C" __global__ void __launch_bounds__(JF_THREADS, 1)
    jf_lm_head_1(int nb, const float *x, const float *norm, const fb_u8 *w_out, float *logits, fb_u64 *argmax_key) {
    jf_lm_head_kernel<1>(nb, x, norm, w_out, logits, argmax_key);
}
extern "C" __global__ void __launch_bounds__(JF_THREADS, 1)
    jf_lm_head_nb(int nb, const float *x, const float *norm, const fb_u8 *w_out, float *logits, fb_u64 *argmax_key) {
    jf_lm_head_kernel<JF_NB>(nb, x, norm, w_out, logits, argmax_key);
}

// One kind of layer (the generator writes one line per kind after the
// template): jf_qkv_rope_1_k0, jf_qkv_rope_nb_k0, ...
#define JF_LAYER_ENTRY_POINTS(KIND, TQ, TK, TV, TO, TG, TU, TD) \
    JF_ENTRY_POINTS(1_##KIND, 1, TQ, TK, TV, TO, TG, TU, TD)    \
    JF_ENTRY_POINTS(nb_##KIND, JF_NB, TQ, TK, TV, TO, TG, TU, TD)

// ------------------------------------------------------------------ the persistent decode step
// decode = persistent (the default): one kernel runs a whole decode step.
// Its blocks, as many as the GPU holds at once, take the step's work items
// by ticket from a counter (an atomicAdd), in the order of the step: the
// embedding, then per layer the items of Q/K/V + RoPE, attention, W_o,
// gate/up, W_down, then the LM head. Before an item, a block waits until
// every item of the previous op is done (a counter per op, raised after
// each item and read with acquire semantics); ops chain, so that implies
// every earlier one. There are no kernel boundaries left, so no launch gaps
// or tails between the ~100 ops of a step, and while a block waits it
// already holds its next item, whose weights (which never depend on the
// activations) it has asked L2 for: the weight stream does not stop at an
// op boundary.
// No deadlock, however many blocks are resident: tickets go out in order,
// only running blocks hold them, and an item waits only for items with
// smaller tickets. The last block out sets the counters back to zero for
// the next step. The CPU emulation runs a few blocks at once (their waits
// yield to each other) and checks the result against cpu_ref.

// What the step reads and writes: jf_step_params in jf_host.h, field for
// field (every field 8 bytes, so C and C++ lay it out alike).
struct jf_step_layer {
    const float *attn_norm;
    const fb_u8 *w_qkv, *w_o;
    const float *ffn_norm;
    const fb_u8 *w_gate, *w_up, *w_down;
    long long kind;
};
struct jf_step_params {
    const int *step;
    const fb_u8 *token_embd;
    const jf_step_layer *layers;
    const float *output_norm;
    const fb_u8 *output;
    const float *rope_inv_freq;
    float *x, *q, *part, *att, *hb, *logits, *key_cache, *value_cache;
    fb_u64 *argmax_key;
    fb_u32 *sync;      // JF_SYNC_WORDS counters, zero between steps
    fb_u32 *att_count; // (JF_N_KV_HEADS) arrival counters of attention splits, zero between layers
    long long max_seq; // positions per layer of the KV cache
};

// The layer ops, in step order.
enum { JF_OP_QKV, JF_OP_ATT, JF_OP_OUT, JF_OP_GATE_UP, JF_OP_DOWN, JF_OPS };
// sync: [0] the next ticket, [1] blocks that have finished, [2 + s] items done of stage s
// (0: the embedding, 1 + JF_OPS * layer + op, then the LM head).
#define JF_SYNC_TICKET 0
#define JF_SYNC_EXIT 1
#define JF_SYNC_DONE 2
#define JF_STAGES (2 + JF_OPS * JF_N_LAYERS)
#define JF_SYNC_WORDS (JF_SYNC_DONE + JF_STAGES)

__device__ __forceinline__ int jf_op_items(int op, int att_items) {
    return op == JF_OP_QKV       ? JF_QKV_ITEMS
           : op == JF_OP_ATT     ? att_items
           : op == JF_OP_GATE_UP ? JF_ROW_ITEMS(JF_N_FF)
                                 : JF_ROW_ITEMS(JF_DIM);
}

__device__ __forceinline__ int jf_layer_items(int att_items) {
    return JF_QKV_ITEMS + att_items + JF_ROW_ITEMS(JF_DIM) + JF_ROW_ITEMS(JF_N_FF) + JF_ROW_ITEMS(JF_DIM);
}

// Ticket t of a step: its stage, layer, op (-1 the embedding, JF_OPS the LM head) and item.
struct jf_work {
    int stage, layer, op, item;
};
__device__ __forceinline__ jf_work jf_work_of(int t, int att_items) {
    jf_work w;
    if (t == 0) {
        w.stage = 0, w.layer = 0, w.op = -1, w.item = 0;
        return w;
    }
    const int per_layer = jf_layer_items(att_items);
    t -= 1;
    if (t >= JF_N_LAYERS * per_layer) {
        w.stage = JF_STAGES - 1, w.layer = JF_N_LAYERS, w.op = JF_OPS, w.item = t - JF_N_LAYERS * per_layer;
        return w;
    }
    w.layer = t / per_layer;
    t -= w.layer * per_layer;
    w.op = 0;
    while (t >= jf_op_items(w.op, att_items)) t -= jf_op_items(w.op++, att_items);
    w.item = t;
    w.stage = 1 + JF_OPS * w.layer + w.op;
    return w;
}

// Items of stage s.
__device__ __forceinline__ int jf_stage_items(int s, int att_items) {
    return s == 0 ? 1 : s == JF_STAGES - 1 ? JF_LM_ITEMS : jf_op_items((s - 1) % JF_OPS, att_items);
}

// Item `item` of layer op `op` (not attention) of layer l, whose matrices
// have the types of a kind; or, with prefetch, only pull its weight rows
// into L2. inv: the layer's RMSNorm factor (ops that need one).
template <int TQ, int TK, int TV, int TO, int TG, int TU, int TD>
__device__ __forceinline__ void jf_layer_op_of(int op, int item, const jf_step_params &p, int l, float inv,
                                               bool prefetch) {
    const jf_step_layer &L = p.layers[l];
    const float inv1[1] = {inv};
    const int warp = threadIdx.x >> 5;
    float *kc = p.key_cache + (size_t)l * (size_t)p.max_seq * JF_KV_DIM;
    float *vc = p.value_cache + (size_t)l * (size_t)p.max_seq * JF_KV_DIM;
    if (op == JF_OP_QKV) {
        const fb_u8 *rows[2];
        int rb;
        if (prefetch) {
            if (jf_qkv_rows<TQ, TK, TV>(item, warp, L.w_qkv, rows, &rb)) jf_prefetch_l2(rows[0], 2 * rb);
        } else
            jf_qkv_rope<1, TQ, TK, TV>(item, p.step, 1, p.x, L.attn_norm, L.w_qkv, p.rope_inv_freq, inv1, p.q, kc, vc);
    } else if (op == JF_OP_OUT) {
        constexpr int RB = jf_row_bytes(TO, JF_Q_DIM);
        const int r = item * JF_WARPS + warp;
        if (prefetch) {
            if (r < JF_DIM) jf_prefetch_l2(L.w_o + (size_t)r * RB, RB);
        } else
            jf_out_residual<1, TO>(item, 1, p.att, L.w_o, p.x);
    } else if (op == JF_OP_GATE_UP) {
        constexpr int RB_G = jf_row_bytes(TG, JF_DIM), RB_U = jf_row_bytes(TU, JF_DIM);
        const int r = item * JF_WARPS + warp;
        if (prefetch) {
            if (r < JF_N_FF) {
                jf_prefetch_l2(L.w_gate + (size_t)r * RB_G, RB_G);
                jf_prefetch_l2(L.w_up + (size_t)r * RB_U, RB_U);
            }
        } else
            jf_gate_up<1, TG, TU>(item, 1, p.x, L.ffn_norm, L.w_gate, L.w_up, inv1, p.hb);
    } else if (op == JF_OP_DOWN) {
        constexpr int RB = jf_row_bytes(TD, JF_N_FF);
        const int r = item * JF_WARPS + warp;
        if (prefetch) {
            if (r < JF_DIM) jf_prefetch_l2(L.w_down + (size_t)r * RB, RB);
        } else
            jf_down_residual<1, TD>(item, 1, p.hb, L.w_down, p.x);
    }
}

// The dispatch of a layer op on the layer's kind: generated after the
// template, one case per kind (jf_generate_source).
__device__ void jf_layer_op(int kind, int op, int item, const jf_step_params &p, int l, float inv, bool prefetch);

// Pull the weights (or the K/V rows) of work w into L2.
__device__ __forceinline__ void jf_prefetch_work(const jf_step_params &p, jf_work w) {
    if (w.op == JF_OPS) jf_lm_head_prefetch(w.item, p.output);
    else if (w.op == JF_OP_ATT) {
        const int g = w.item % JF_N_KV_HEADS, split = w.item / JF_N_KV_HEADS;
        jf_attention_prefetch(g, split, 0, p.step, p.key_cache + (size_t)w.layer * (size_t)p.max_seq * JF_KV_DIM,
                              p.value_cache + (size_t)w.layer * (size_t)p.max_seq * JF_KV_DIM);
    } else if (w.op >= 0)
        jf_layer_op((int)p.layers[w.layer].kind, w.op, w.item, p, w.layer, 0.0f, true);
}

// Mutations for the tests: JF_MUTATE_NO_WAIT starts items before the op
// they read from is done (wrong results); JF_MUTATE_WAIT_MORE waits for one
// item more than the op has (a deadlock, which the emulation reports).
#ifdef JF_MUTATE_WAIT_MORE
#define JF_WAIT_EXTRA 1u
#else
#define JF_WAIT_EXTRA 0u
#endif

extern "C" __global__ void __launch_bounds__(JF_THREADS, 1) jf_decode_step(jf_step_params p) {
    JF_SHARED(int, s_ticket, [2]);    // the ticket thread 0 claimed for after the next one, by turn
    JF_SHARED(int, s_first, [2]);     // the first two tickets
    JF_SHARED(float, s_inv, [1]);     // the RMSNorm factor of stage s_inv_stage
    JF_SHARED(int, s_inv_stage, [1]); // -1: none yet
    JF_SHARED(int, s_seen_done, [1]); // the last stage seen complete (thread 0)
    fb_u32 *sync = p.sync;
    const int att_items = JF_N_KV_HEADS * jf_att_active(p.step[0] + 1);
    const int total = 1 + JF_N_LAYERS * jf_layer_items(att_items) + JF_LM_ITEMS;
    if (threadIdx.x == 0) {
        s_first[0] = (int)atomicAdd(&sync[JF_SYNC_TICKET], 1u);
        s_first[1] = (int)atomicAdd(&sync[JF_SYNC_TICKET], 1u);
        s_inv_stage[0] = -1;
        s_seen_done[0] = -1;
    }
    __syncthreads();
    int t = s_first[0], t_next = s_first[1], parity = 0;
    if (t < total) jf_prefetch_work(p, jf_work_of(t, att_items));
    while (t < total) {
        fb_u32 claimed = 0; // the ticket after t_next, used only at the end of this turn
        if (threadIdx.x == 0) claimed = atomicAdd(&sync[JF_SYNC_TICKET], 1u);
        if (t_next < total) jf_prefetch_work(p, jf_work_of(t_next, att_items));
        const jf_work w = jf_work_of(t, att_items);
        // Wait until the previous stage is complete, unless this block has seen it so
        // (block-uniform: s_seen_done changes only between barriers).
        if (w.stage > 0 && s_seen_done[0] < w.stage - 1) {
            if (threadIdx.x == 0) {
                const fb_u32 need = (fb_u32)jf_stage_items(w.stage - 1, att_items) + JF_WAIT_EXTRA;
#ifndef JF_MUTATE_NO_WAIT
                while (jf_load_acquire(&sync[JF_SYNC_DONE + w.stage - 1]) < need) jf_spin_pause();
#endif
                __threadfence(); // as cooperative groups' grid sync: the other blocks' writes, before the barrier
            }
            __syncthreads();
            if (threadIdx.x == 0) s_seen_done[0] = w.stage - 1; // after the barrier: every thread has tested it
        }
        if (w.op == -1) jf_embed_item(0, p.step, p.token_embd, p.x, p.argmax_key);
        else if (w.op == JF_OP_ATT)
            jf_attention(w.item % JF_N_KV_HEADS, w.item / JF_N_KV_HEADS, 0, p.step, p.q,
                         p.key_cache + (size_t)w.layer * (size_t)p.max_seq * JF_KV_DIM,
                         p.value_cache + (size_t)w.layer * (size_t)p.max_seq * JF_KV_DIM, p.part, p.att, p.att_count);
        else {
            // RMSNorm factor, once per stage and block: x does not change while a stage that reads it runs
            const bool normed = w.op == JF_OP_QKV || w.op == JF_OP_GATE_UP || w.op == JF_OPS;
            if (normed && s_inv_stage[0] != w.stage) {
                float inv[1];
                jf_block_inv_rms<1>(p.x, 1, inv);
                if (threadIdx.x == 0) {
                    s_inv[0] = inv[0];
                    s_inv_stage[0] = w.stage;
                }
                __syncthreads();
            }
            const float inv = normed ? s_inv[0] : 0.0f;
            if (w.op == JF_OPS) {
                const float inv1[1] = {inv};
                const fb_u64 best = jf_lm_head<1>(w.item, 1, p.x, p.output_norm, p.output, inv1, p.logits);
                if (threadIdx.x == 0) atomicMax(p.argmax_key, best);
            } else
                jf_layer_op((int)p.layers[w.layer].kind, w.op, w.item, p, w.layer, inv, false);
        }
        if (threadIdx.x == 0) s_ticket[parity] = (int)claimed;
        __syncthreads();        // the item's writes are all made, and the ticket after next published
        if (threadIdx.x == 0) { // while the other warps go on to the next item
            __threadfence();    // the item's writes visible before the count says so
            atomicAdd(&sync[JF_SYNC_DONE + w.stage], 1u);
        }
        t = t_next;
        t_next = s_ticket[parity]; // thread 0 writes this slot again only after the next barrier
        parity ^= 1;
    }
    if (threadIdx.x == 0) { // the last block out resets the counters for the next step
        __threadfence();
        if (atomicAdd(&sync[JF_SYNC_EXIT], 1u) == gridDim.x - 1) {
            for (int i = 0; i < JF_SYNC_WORDS; i++) sync[i] = 0u;
            __threadfence();
        }
    }
}
