/* dot.c - cpu_ref's row dot-product kernels, one per GGUF type, in two sets:
 *
 *   scalar  plain C that reads like the format description: decode a block's
 *           values exactly as core/quant.c does, multiply by x, accumulate.
 *           Built on every architecture; the loops are written so that a
 *           compiler can vectorise them without reassociating anything.
 *   avx2    x86-64 AVX2 + FMA + F16C, compiled per function with a target
 *           attribute (the file itself is built for the baseline ISA) and
 *           chosen at run time when the CPU has all three.
 *
 * Both sets decode every weight to the same f32 value (see dot.h); they
 * differ only in the order of the sum. In the AVX2 kernels a weight is
 * decoded with one FMA where the format says `q*d + m` or `dl*q - ml`: the
 * product is exact in f32 (a half's 11 significant bits times small integer
 * scales and quants: at most 24 bits, for Q6_K), so the fused result rounds
 * exactly as the separate multiply and add do.
 *
 * Blocks sit at any byte offset (inside an mmap'd file), so block structs hold
 * only uint8_t arrays and multi-byte fields are read as little-endian bytes.
 */
#include "dot.h"

#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* scalar kernels round w = q*d + m as quant.c does (GCC's ISO mode never contracts) */
#endif

#define QK 32    /* values per block of the legacy formats */
#define QK_K 256 /* values per super-block of the K-quants */

// ----------------------------------------------------------------------------
// Block layouts (core/quant.h documents them; all fields little-endian).

typedef struct {
    uint8_t d[2];
    uint8_t qs[QK / 2]; /* low nibbles: x[0..15], high nibbles: x[16..31] */
} block_q4_0;

typedef struct {
    uint8_t d[2];
    uint8_t m[2];
    uint8_t qs[QK / 2];
} block_q4_1;

typedef struct {
    uint8_t d[2];
    uint8_t qh[4]; /* u32: bit j is the 5th bit of x[j] */
    uint8_t qs[QK / 2];
} block_q5_0;

typedef struct {
    uint8_t d[2];
    uint8_t m[2];
    uint8_t qh[4];
    uint8_t qs[QK / 2];
} block_q5_1;

typedef struct {
    uint8_t d[2];
    uint8_t qs[QK]; /* int8 */
} block_q8_0;

/* Q4_K/Q5_K: 4 chunks of 64 values; qs[32c + l] holds x[64c + l] in its low
 * nibble and x[64c + 32 + l] in its high nibble, and Q5_K's qh[l] bit 2c
 * (2c + 1) is the 5th bit of x[64c + l] (x[64c + 32 + l]). Sub-block j (32
 * values) has a 6-bit scale sc[j] and min m[j] packed in scales[12]. */
typedef struct {
    uint8_t d[2];
    uint8_t dmin[2];
    uint8_t scales[12];
    uint8_t qs[QK_K / 2];
} block_q4_k;

typedef struct {
    uint8_t d[2];
    uint8_t dmin[2];
    uint8_t scales[12];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_k;

/* Q6_K, per half h (128 values) and l in 0..31, 6-bit q stored as q + 32:
 *   x[128h + l]      low 4 bits: ql[64h + l]      & 0xF, high 2: qh[32h + l] bits 0-1
 *   x[128h + l + 32] low 4 bits: ql[64h + l + 32] & 0xF, high 2: qh[32h + l] bits 2-3
 *   x[128h + l + 64] low 4 bits: ql[64h + l]      >> 4,  high 2: qh[32h + l] bits 4-5
 *   x[128h + l + 96] low 4 bits: ql[64h + l + 32] >> 4,  high 2: qh[32h + l] bits 6-7
 * and x[i] uses the int8 scale scales[i / 16]. */
typedef struct {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    uint8_t scales[QK_K / 16];
    uint8_t d[2];
} block_q6_k;

_Static_assert(sizeof(block_q4_0) == 18, "Q4_0 block is 18 bytes");
_Static_assert(sizeof(block_q4_1) == 20, "Q4_1 block is 20 bytes");
_Static_assert(sizeof(block_q5_0) == 22, "Q5_0 block is 22 bytes");
_Static_assert(sizeof(block_q5_1) == 24, "Q5_1 block is 24 bytes");
_Static_assert(sizeof(block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(block_q4_k) == 144, "Q4_K block is 144 bytes");
_Static_assert(sizeof(block_q5_k) == 176, "Q5_K block is 176 bytes");
_Static_assert(sizeof(block_q6_k) == 210, "Q6_K block is 210 bytes");

// ----------------------------------------------------------------------------
// Field access: little-endian at any byte offset; halves and bfloat16.

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
static inline uint16_t load_le16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline uint32_t load_le32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
#else
static inline uint16_t load_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
#endif

static inline float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* IEEE half to f32, exact and branch-free, so that the F16 loop vectorises
 * (after M. Dukhan's FP16 library, fp16_ieee_to_fp32_value). Both candidates
 * are computed and one is picked with a bit mask (a C conditional here
 * becomes a branch, which stops the vectorisation):
 *   normal    exponent and mantissa shifted into an f32's places, rebiased
 *             by +224 in the exponent field and a multiply by 2^-112 (exact);
 *             the all-ones exponent (inf/NaN) lands on 255, as it should;
 *   subnormal mant * 2^-24, built as (0.5 + mant * 2^-24) - 0.5 (exact; no
 *             f32 subnormal is ever formed, so the FPU's DAZ/FTZ modes do
 *             not matter); zero comes out as +0.
 * Same values as quant.c's fp16_to_f32 (a NaN stays a NaN). */
static inline float half_to_f32(uint16_t h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w; /* exponent and mantissa at the top, sign shifted out */
    const float normal = f32_from_bits((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const float subnormal = f32_from_bits((two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t is_subnormal = 0u - (uint32_t)(two_w < (1u << 27)); /* all ones when the exponent is 0 */
    return f32_from_bits(sign | (f32_bits(subnormal) & is_subnormal) | (f32_bits(normal) & ~is_subnormal));
}

static inline float load_half(const uint8_t *p) { return half_to_f32(load_le16(p)); }

static inline float bf16_to_f32(uint16_t b) { return f32_from_bits((uint32_t)b << 16); }

/* Q4_K/Q5_K scales[12] pack 8 six-bit scales sc[j] and mins m[j]:
 *   bytes 0-3:  sc[0..3] in bits 0-5, top 2 bits of sc[4..7] in bits 6-7
 *   bytes 4-7:  m[0..3]  in bits 0-5, top 2 bits of m[4..7]  in bits 6-7
 *   bytes 8-11: low 4 bits of sc[4..7] in bits 0-3, of m[4..7] in bits 4-7 */
static inline void scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// ----------------------------------------------------------------------------
// Scalar kernels.
//
// Each keeps LANES partial sums, acc[k] += w[i + k] * x[i + k]: independent
// sums that a compiler maps onto one vector register without reassociating a
// single sum (which it may not do under ISO C floating point). A block is
// decoded into w[] first, with quant.c's expressions, then accumulated.

#define LANES 8

static inline void accumulate(float acc[LANES], const float *restrict w, const float *restrict x, int n) {
    for (int i = 0; i < n; i += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += w[i + k] * x[i + k];
}

static inline float sum_lanes(const float acc[LANES]) {
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* The one-value-per-element types: decode LANES at a time, then the tail. */
#define PLAIN_SCALAR_KERNEL(name, elem_bytes, decode)                                   \
    static float name(const void *restrict w_row, const float *restrict x, int64_t n) { \
        const uint8_t *p = (const uint8_t *)w_row;                                      \
        float acc[LANES] = {0};                                                         \
        int64_t i = 0;                                                                  \
        for (; i + LANES <= n; i += LANES) {                                            \
            float w[LANES];                                                             \
            for (int k = 0; k < LANES; k++) w[k] = decode(p + (elem_bytes) * (i + k));  \
            accumulate(acc, w, x + i, LANES);                                           \
        }                                                                               \
        for (; i < n; i++) acc[0] += decode(p + (elem_bytes)*i) * x[i];                 \
        return sum_lanes(acc);                                                          \
    }

static inline float decode_f32_at(const uint8_t *p) { return f32_from_bits(load_le32(p)); }
static inline float decode_f16_at(const uint8_t *p) { return half_to_f32(load_le16(p)); }
static inline float decode_bf16_at(const uint8_t *p) { return bf16_to_f32(load_le16(p)); }

PLAIN_SCALAR_KERNEL(dot_f32_scalar, 4, decode_f32_at)
PLAIN_SCALAR_KERNEL(dot_f16_scalar, 2, decode_f16_at)
PLAIN_SCALAR_KERNEL(dot_bf16_scalar, 2, decode_bf16_at)

/* x = d * (q - 8) */
static float dot_q4_0_scalar(const void *restrict w_row, const float *restrict x, int64_t n) {
    const block_q4_0 *blocks = (const block_q4_0 *)w_row;
    float acc[LANES] = {0}, w[QK];
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        const float d = load_half(blocks[b].d);
        for (int j = 0; j < QK / 2; j++) {
            w[j] = (float)((blocks[b].qs[j] & 0xF) - 8) * d;
            w[j + QK / 2] = (float)((blocks[b].qs[j] >> 4) - 8) * d;
        }
        accumulate(acc, w, x, QK);
    }
    return sum_lanes(acc);
}

/* x = d*q + m */
static float dot_q4_1_scalar(const void *restrict w_row, const float *restrict x, int64_t n) {
    const block_q4_1 *blocks = (const block_q4_1 *)w_row;
    float acc[LANES] = {0}, w[QK];
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        const float d = load_half(blocks[b].d);
        const float m = load_half(blocks[b].m);
        for (int j = 0; j < QK / 2; j++) {
            w[j] = (float)(blocks[b].qs[j] & 0xF) * d + m;
            w[j + QK / 2] = (float)(blocks[b].qs[j] >> 4) * d + m;
        }
        accumulate(acc, w, x, QK);
    }
    return sum_lanes(acc);
}

/* Q5_0/Q5_1: bit j of qh is the 5th bit of value j; hi[j] = that bit << 4.
 * Tested against a table of masks rather than shifted by j: SSE2 has no
 * per-lane variable shift, and with one this loop stays scalar (on the
 * Zen 3 here the scalar Q5_0 kernel ran at 0.5 Gweights/s with the shift in
 * the decode loop, 0.9 with it in a loop here, 1.5 with the masks). */
#define MASKS4(j) 1u << (j), 1u << ((j) + 1), 1u << ((j) + 2), 1u << ((j) + 3)
static const uint32_t bit_mask[QK] = {MASKS4(0),  MASKS4(4),  MASKS4(8),  MASKS4(12),
                                      MASKS4(16), MASKS4(20), MASKS4(24), MASKS4(28)};
#undef MASKS4

static inline void q5_high_bits_scalar(uint32_t qh, uint8_t hi[QK]) {
    for (int j = 0; j < QK; j++) hi[j] = (qh & bit_mask[j]) ? 16 : 0;
}

/* x = d * (q - 16), q = low nibble | qh bit << 4 */
static float dot_q5_0_scalar(const void *restrict w_row, const float *restrict x, int64_t n) {
    const block_q5_0 *blocks = (const block_q5_0 *)w_row;
    float acc[LANES] = {0}, w[QK];
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        const float d = load_half(blocks[b].d);
        uint8_t hi[QK]; /* the 5th bits, as 0 or 16 */
        q5_high_bits_scalar(load_le32(blocks[b].qh), hi);
        for (int j = 0; j < QK / 2; j++) {
            const int hi0 = hi[j], hi1 = hi[j + QK / 2];
            w[j] = (float)(((blocks[b].qs[j] & 0xF) | hi0) - 16) * d;
            w[j + QK / 2] = (float)(((blocks[b].qs[j] >> 4) | hi1) - 16) * d;
        }
        accumulate(acc, w, x, QK);
    }
    return sum_lanes(acc);
}

/* x = d*q + m, q 5 bits as Q5_0 */
static float dot_q5_1_scalar(const void *restrict w_row, const float *restrict x, int64_t n) {
    const block_q5_1 *blocks = (const block_q5_1 *)w_row;
    float acc[LANES] = {0}, w[QK];
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        const float d = load_half(blocks[b].d);
        const float m = load_half(blocks[b].m);
        uint8_t hi[QK];
        q5_high_bits_scalar(load_le32(blocks[b].qh), hi);
        for (int j = 0; j < QK / 2; j++) {
            const int hi0 = hi[j], hi1 = hi[j + QK / 2];
            w[j] = (float)((blocks[b].qs[j] & 0xF) | hi0) * d + m;
            w[j + QK / 2] = (float)((blocks[b].qs[j] >> 4) | hi1) * d + m;
        }
        accumulate(acc, w, x, QK);
    }
    return sum_lanes(acc);
}

/* x = d * q */
static float dot_q8_0_scalar(const void *restrict w_row, const float *restrict x, int64_t n) {
    const block_q8_0 *blocks = (const block_q8_0 *)w_row;
    float acc[LANES] = {0}, w[QK];
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        const float d = load_half(blocks[b].d);
        for (int j = 0; j < QK; j++) w[j] = (float)(int8_t)blocks[b].qs[j] * d;
        accumulate(acc, w, x, QK);
    }
    return sum_lanes(acc);
}

/* sub-block j: x = (d*sc[j]) * q - (dmin*m[j]) */
static float dot_q4_k_scalar(const void *restrict w_row, const float *restrict x, int64_t n) {
    const block_q4_k *blocks = (const block_q4_k *)w_row;
    float acc[LANES] = {0}, w[64];
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = load_half(blocks[b].d);
        const float dmin = load_half(blocks[b].dmin);
        const uint8_t *q = blocks[b].qs;
        for (int c = 0; c < 4; c++, q += 32, x += 64) {
            int sc, m;
            scale_min_k4(2 * c, blocks[b].scales, &sc, &m);
            const float dl0 = d * (float)sc, ml0 = dmin * (float)m;
            scale_min_k4(2 * c + 1, blocks[b].scales, &sc, &m);
            const float dl1 = d * (float)sc, ml1 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                w[l] = dl0 * (float)(q[l] & 0xF) - ml0;
                w[l + 32] = dl1 * (float)(q[l] >> 4) - ml1;
            }
            accumulate(acc, w, x, 64);
        }
    }
    return sum_lanes(acc);
}

/* as Q4_K with a 5th bit per value from qh */
static float dot_q5_k_scalar(const void *restrict w_row, const float *restrict x, int64_t n) {
    const block_q5_k *blocks = (const block_q5_k *)w_row;
    float acc[LANES] = {0}, w[64];
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = load_half(blocks[b].d);
        const float dmin = load_half(blocks[b].dmin);
        const uint8_t *q = blocks[b].qs;
        const uint8_t *qh = blocks[b].qh;
        for (int c = 0; c < 4; c++, q += 32, x += 64) {
            int sc, m;
            scale_min_k4(2 * c, blocks[b].scales, &sc, &m);
            const float dl0 = d * (float)sc, ml0 = dmin * (float)m;
            scale_min_k4(2 * c + 1, blocks[b].scales, &sc, &m);
            const float dl1 = d * (float)sc, ml1 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                const int hi0 = ((qh[l] >> (2 * c)) & 1) << 4;
                const int hi1 = ((qh[l] >> (2 * c + 1)) & 1) << 4;
                w[l] = dl0 * (float)((q[l] & 0xF) | hi0) - ml0;
                w[l + 32] = dl1 * (float)((q[l] >> 4) | hi1) - ml1;
            }
            accumulate(acc, w, x, 64);
        }
    }
    return sum_lanes(acc);
}

/* x[i] = (d * scales[i/16]) * (q - 32), the products in that order (both exact) */
static float dot_q6_k_scalar(const void *restrict w_row, const float *restrict x, int64_t n) {
    const block_q6_k *blocks = (const block_q6_k *)w_row;
    float acc[LANES] = {0}, w[128];
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = load_half(blocks[b].d);
        const uint8_t *ql = blocks[b].ql;
        const uint8_t *qh = blocks[b].qh;
        const uint8_t *sc = blocks[b].scales;
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, x += 128) {
            for (int is = 0; is < 2; is++) { /* values l = 16is .. 16is+15 (+ 32, 64, 96) */
                const float dl1 = d * (float)(int8_t)sc[is + 0], dl2 = d * (float)(int8_t)sc[is + 2];
                const float dl3 = d * (float)(int8_t)sc[is + 4], dl4 = d * (float)(int8_t)sc[is + 6];
                for (int l = 16 * is; l < 16 * is + 16; l++) {
                    const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    w[l] = dl1 * (float)q1;
                    w[l + 32] = dl2 * (float)q2;
                    w[l + 64] = dl3 * (float)q3;
                    w[l + 96] = dl4 * (float)q4;
                }
            }
            accumulate(acc, w, x, 128);
        }
    }
    return sum_lanes(acc);
}

static cr_dot_fn scalar_kernel(uint32_t type) {
    switch (type) {
    case CR_TYPE_F32: return dot_f32_scalar;
    case CR_TYPE_F16: return dot_f16_scalar;
    case CR_TYPE_BF16: return dot_bf16_scalar;
    case CR_TYPE_Q4_0: return dot_q4_0_scalar;
    case CR_TYPE_Q4_1: return dot_q4_1_scalar;
    case CR_TYPE_Q5_0: return dot_q5_0_scalar;
    case CR_TYPE_Q5_1: return dot_q5_1_scalar;
    case CR_TYPE_Q8_0: return dot_q8_0_scalar;
    case CR_TYPE_Q4_K: return dot_q4_k_scalar;
    case CR_TYPE_Q5_K: return dot_q5_k_scalar;
    case CR_TYPE_Q6_K: return dot_q6_k_scalar;
    default: return NULL;
    }
}

// ----------------------------------------------------------------------------
// AVX2 + FMA + F16C kernels (x86-64 only).
//
// Weights are decoded 8 at a time into a __m256 and dotted with 8 floats of x
// by one FMA. Every kernel keeps 4 independent accumulators: one FMA chain has
// a latency of 4 cycles, so a single accumulator would cap a kernel at 2
// weights per cycle; 4 chains lift that cap to 8 per cycle, above what the
// decode itself sustains.
//
// Unaligned loads: rows sit at any byte offset, so every vector load is a
// loadu; the pointer casts to the intrinsics' vector types are the ones
// <immintrin.h> defines for unaligned, may-alias access.

#if defined(__x86_64__)

#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline float hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline float sum4_avx2(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    return hsum_avx2(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

AVX2 static inline float load_half_f16c(const uint8_t *p) { return _cvtsh_ss(load_le16(p)); }

/* The half at p, converted and broadcast to 8 lanes. */
AVX2 static inline __m256 broadcast_half(const uint8_t *p) {
    return _mm256_cvtph_ps(_mm_set1_epi16((short)load_le16(p)));
}

AVX2 static inline __m256 load_x(const float *x) { return _mm256_loadu_ps(x); }

/* Software prefetch of the weights PREFETCH_AHEAD bytes ahead of p. A row is
 * read once, front to back, so the hardware prefetchers should cover it; but
 * in the kernels that spend the most time per byte they fell behind: on the
 * Zen 3 VM here, 2048 x 8192 matrices read from DRAM, Q8_0 went from 5.0-5.7
 * to 6.7-9.4 GB/s and Q4_1 from 4.9-5.2 to 5.3-6.1 GB/s (three alternating
 * runs each; 1024 bytes ahead did about as well). Used in the legacy-block
 * kernels; F32/F16/BF16 already read at 85-110% of the streaming-read speed
 * without it, and the K-quant kernels are limited by their decode. A
 * prefetch past the end of the row is harmless: prefetches never fault. */
#define PREFETCH_AHEAD 2048
AVX2 static inline void prefetch_ahead(const void *p) { _mm_prefetch((const char *)p + PREFETCH_AHEAD, _MM_HINT_T0); }

/* 8 bytes at p, widened to 8 int32 lanes (zero- / sign-extended). Widening
 * straight from memory is the simplest way to get bytes into 32-bit lanes in
 * order, and on the Zen 3 here it was as fast as the alternatives tried or
 * faster (Q4_1: 7.8-9 cycles per block, against 8-10 for one 16-byte load
 * split by vpmovzxbd/vpsrldq or by vpshufb on a broadcast; runs on that busy
 * 2-core VM varied by about 15%). */
AVX2 static inline __m256i load_u8x8(const uint8_t *p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}
AVX2 static inline __m256i load_i8x8(const uint8_t *p) {
    return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p));
}

/* The low / high nibble of each int32 lane holding a byte. */
AVX2 static inline __m256i low_nibbles(__m256i bytes) { return _mm256_and_si256(bytes, _mm256_set1_epi32(0x0F)); }
AVX2 static inline __m256i high_nibbles(__m256i bytes) { return _mm256_srli_epi32(bytes, 4); }

AVX2 static inline __m256 to_float(__m256i v) { return _mm256_cvtepi32_ps(v); }

// ---- plain types

AVX2 static float dot_f32_avx2(const void *restrict w_row, const float *restrict x, int64_t n) {
    const uint8_t *p = (const uint8_t *)w_row;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(p + 4 * i)), load_x(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(p + 4 * i + 32)), load_x(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(p + 4 * i + 64)), load_x(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(p + 4 * i + 96)), load_x(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(p + 4 * i)), load_x(x + i), a0);
    float sum = sum4_avx2(a0, a1, a2, a3);
    for (; i < n; i++) sum += decode_f32_at(p + 4 * i) * x[i];
    return sum;
}

AVX2 static inline __m256 load_f16x8(const uint8_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

AVX2 static float dot_f16_avx2(const void *restrict w_row, const float *restrict x, int64_t n) {
    const uint8_t *p = (const uint8_t *)w_row;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(load_f16x8(p + 2 * i), load_x(x + i), a0);
        a1 = _mm256_fmadd_ps(load_f16x8(p + 2 * i + 16), load_x(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(load_f16x8(p + 2 * i + 32), load_x(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(load_f16x8(p + 2 * i + 48), load_x(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load_f16x8(p + 2 * i), load_x(x + i), a0);
    float sum = sum4_avx2(a0, a1, a2, a3);
    for (; i < n; i++) sum += load_half_f16c(p + 2 * i) * x[i];
    return sum;
}

/* bf16 is the top half of an f32: widen to 32 bits, shift up. */
AVX2 static inline __m256 load_bf16x8(const uint8_t *p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

AVX2 static float dot_bf16_avx2(const void *restrict w_row, const float *restrict x, int64_t n) {
    const uint8_t *p = (const uint8_t *)w_row;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(load_bf16x8(p + 2 * i), load_x(x + i), a0);
        a1 = _mm256_fmadd_ps(load_bf16x8(p + 2 * i + 16), load_x(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(load_bf16x8(p + 2 * i + 32), load_x(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(load_bf16x8(p + 2 * i + 48), load_x(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load_bf16x8(p + 2 * i), load_x(x + i), a0);
    float sum = sum4_avx2(a0, a1, a2, a3);
    for (; i < n; i++) sum += decode_bf16_at(p + 2 * i) * x[i];
    return sum;
}

// ---- legacy blocks of 32: four groups of 8 values, one accumulator each.
// For the 4- and 5-bit formats, qs bytes 0-7 give values 0-7 (low nibbles)
// and 16-23 (high nibbles); bytes 8-15 give values 8-15 and 24-31.

/* x = d * q */
AVX2 static float dot_q8_0_avx2(const void *restrict w_row, const float *restrict x, int64_t n) {
    const block_q8_0 *blocks = (const block_q8_0 *)w_row;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        prefetch_ahead(&blocks[b]);
        const __m256 d = broadcast_half(blocks[b].d);
        const uint8_t *qs = blocks[b].qs;
        a0 = _mm256_fmadd_ps(_mm256_mul_ps(to_float(load_i8x8(qs + 0)), d), load_x(x + 0), a0);
        a1 = _mm256_fmadd_ps(_mm256_mul_ps(to_float(load_i8x8(qs + 8)), d), load_x(x + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_mul_ps(to_float(load_i8x8(qs + 16)), d), load_x(x + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_mul_ps(to_float(load_i8x8(qs + 24)), d), load_x(x + 24), a3);
    }
    return sum4_avx2(a0, a1, a2, a3);
}

/* x = d * (q - 8), the subtraction done on the integers (exact either way) */
AVX2 static float dot_q4_0_avx2(const void *restrict w_row, const float *restrict x, int64_t n) {
    const block_q4_0 *blocks = (const block_q4_0 *)w_row;
    const __m256i eight = _mm256_set1_epi32(8);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        prefetch_ahead(&blocks[b]);
        const __m256 d = broadcast_half(blocks[b].d);
        const __m256i bytes0 = load_u8x8(blocks[b].qs), bytes1 = load_u8x8(blocks[b].qs + 8);
        const __m256 w0 = _mm256_mul_ps(to_float(_mm256_sub_epi32(low_nibbles(bytes0), eight)), d);
        const __m256 w1 = _mm256_mul_ps(to_float(_mm256_sub_epi32(low_nibbles(bytes1), eight)), d);
        const __m256 w2 = _mm256_mul_ps(to_float(_mm256_sub_epi32(high_nibbles(bytes0), eight)), d);
        const __m256 w3 = _mm256_mul_ps(to_float(_mm256_sub_epi32(high_nibbles(bytes1), eight)), d);
        a0 = _mm256_fmadd_ps(w0, load_x(x + 0), a0);
        a1 = _mm256_fmadd_ps(w1, load_x(x + 8), a1);
        a2 = _mm256_fmadd_ps(w2, load_x(x + 16), a2);
        a3 = _mm256_fmadd_ps(w3, load_x(x + 24), a3);
    }
    return sum4_avx2(a0, a1, a2, a3);
}

/* x = d*q + m, as one FMA (q*d is exact) */
AVX2 static float dot_q4_1_avx2(const void *restrict w_row, const float *restrict x, int64_t n) {
    const block_q4_1 *blocks = (const block_q4_1 *)w_row;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        prefetch_ahead(&blocks[b]);
        const __m256 d = broadcast_half(blocks[b].d);
        const __m256 m = broadcast_half(blocks[b].m);
        const __m256i bytes0 = load_u8x8(blocks[b].qs), bytes1 = load_u8x8(blocks[b].qs + 8);
        const __m256 w0 = _mm256_fmadd_ps(to_float(low_nibbles(bytes0)), d, m);
        const __m256 w1 = _mm256_fmadd_ps(to_float(low_nibbles(bytes1)), d, m);
        const __m256 w2 = _mm256_fmadd_ps(to_float(high_nibbles(bytes0)), d, m);
        const __m256 w3 = _mm256_fmadd_ps(to_float(high_nibbles(bytes1)), d, m);
        a0 = _mm256_fmadd_ps(w0, load_x(x + 0), a0);
        a1 = _mm256_fmadd_ps(w1, load_x(x + 8), a1);
        a2 = _mm256_fmadd_ps(w2, load_x(x + 16), a2);
        a3 = _mm256_fmadd_ps(w3, load_x(x + 24), a3);
    }
    return sum4_avx2(a0, a1, a2, a3);
}

/* The 5th bits of values 8g .. 8g+7 of a Q5 block, as 0 or 16 per int32 lane:
 * lane k shifts qh right by 8g + k. */
AVX2 static inline __m256i q5_high_bits(__m256i qh_all, int g) {
    const __m256i shift = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(8 * g));
    return _mm256_and_si256(_mm256_slli_epi32(_mm256_srlv_epi32(qh_all, shift), 4), _mm256_set1_epi32(16));
}

/* The 32 five-bit values of a Q5_0/Q5_1 block as float, in 4 groups of 8. */
AVX2 static inline void q5_values(const uint8_t *qs, uint32_t qh, __m256 q[4]) {
    const __m256i qh_all = _mm256_set1_epi32((int)qh);
    const __m256i bytes0 = load_u8x8(qs), bytes1 = load_u8x8(qs + 8);
    q[0] = to_float(_mm256_or_si256(low_nibbles(bytes0), q5_high_bits(qh_all, 0)));
    q[1] = to_float(_mm256_or_si256(low_nibbles(bytes1), q5_high_bits(qh_all, 1)));
    q[2] = to_float(_mm256_or_si256(high_nibbles(bytes0), q5_high_bits(qh_all, 2)));
    q[3] = to_float(_mm256_or_si256(high_nibbles(bytes1), q5_high_bits(qh_all, 3)));
}

/* x = d * (q - 16); q - 16 is exact in f32, so subtracting after the
 * conversion gives quant.c's value */
AVX2 static float dot_q5_0_avx2(const void *restrict w_row, const float *restrict x, int64_t n) {
    const block_q5_0 *blocks = (const block_q5_0 *)w_row;
    const __m256 sixteen = _mm256_set1_ps(16.0f);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        prefetch_ahead(&blocks[b]);
        const __m256 d = broadcast_half(blocks[b].d);
        __m256 q[4];
        q5_values(blocks[b].qs, load_le32(blocks[b].qh), q);
        a0 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(q[0], sixteen), d), load_x(x + 0), a0);
        a1 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(q[1], sixteen), d), load_x(x + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(q[2], sixteen), d), load_x(x + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(q[3], sixteen), d), load_x(x + 24), a3);
    }
    return sum4_avx2(a0, a1, a2, a3);
}

/* x = d*q + m */
AVX2 static float dot_q5_1_avx2(const void *restrict w_row, const float *restrict x, int64_t n) {
    const block_q5_1 *blocks = (const block_q5_1 *)w_row;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        prefetch_ahead(&blocks[b]);
        const __m256 d = broadcast_half(blocks[b].d);
        const __m256 m = broadcast_half(blocks[b].m);
        __m256 q[4];
        q5_values(blocks[b].qs, load_le32(blocks[b].qh), q);
        a0 = _mm256_fmadd_ps(_mm256_fmadd_ps(q[0], d, m), load_x(x + 0), a0);
        a1 = _mm256_fmadd_ps(_mm256_fmadd_ps(q[1], d, m), load_x(x + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_fmadd_ps(q[2], d, m), load_x(x + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_fmadd_ps(q[3], d, m), load_x(x + 24), a3);
    }
    return sum4_avx2(a0, a1, a2, a3);
}

// ---- K-quants

/* acc + (dl*q - ml) * x for 8 values: Q4_K/Q5_K's weight as one FMA (dl*q
 * is exact), then the multiply-add with x. */
AVX2 static inline __m256 k_fma8(__m256 acc, __m256i q, __m256 dl, __m256 neg_ml, const float *x) {
    return _mm256_fmadd_ps(_mm256_fmadd_ps(to_float(q), dl, neg_ml), load_x(x), acc);
}

/* Sub-block j of a Q4_K/Q5_K super-block: dl = d*sc, ml = dmin*m (scalar,
 * exactly as quant.c), broadcast. */
AVX2 static inline void k_scale(const uint8_t scales[12], int j, float d, float dmin, __m256 *dl, __m256 *neg_ml) {
    int sc, m;
    scale_min_k4(j, scales, &sc, &m);
    *dl = _mm256_set1_ps(d * (float)sc);
    *neg_ml = _mm256_set1_ps(-(dmin * (float)m));
}

/* Chunk c of a Q4_K/Q5_K super-block holds values 64c .. 64c+63: qs[32c + l]
 * has value 64c + l in its low nibble (sub-block 2c) and 64c + 32 + l in its
 * high nibble (sub-block 2c+1). Group g = bytes 8g .. 8g+7 feeds accumulator
 * g; the groups go one by one so that few registers are live (all four at
 * once spilled to the stack). */
AVX2 static inline __m256 q4_k_group(__m256 acc, const uint8_t *qs, __m256 dl0, __m256 neg_ml0, __m256 dl1,
                                     __m256 neg_ml1, const float *x) {
    const __m256i bytes = load_u8x8(qs);
    acc = k_fma8(acc, low_nibbles(bytes), dl0, neg_ml0, x);
    return k_fma8(acc, high_nibbles(bytes), dl1, neg_ml1, x + 32);
}

AVX2 static float dot_q4_k_avx2(const void *restrict w_row, const float *restrict x, int64_t n) {
    const block_q4_k *blocks = (const block_q4_k *)w_row;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = load_half_f16c(blocks[b].d);
        const float dmin = load_half_f16c(blocks[b].dmin);
        const uint8_t *qs = blocks[b].qs;
        for (int c = 0; c < 4; c++, qs += 32, x += 64) {
            __m256 dl0, neg_ml0, dl1, neg_ml1;
            k_scale(blocks[b].scales, 2 * c, d, dmin, &dl0, &neg_ml0);
            k_scale(blocks[b].scales, 2 * c + 1, d, dmin, &dl1, &neg_ml1);
            a0 = q4_k_group(a0, qs + 0, dl0, neg_ml0, dl1, neg_ml1, x + 0);
            a1 = q4_k_group(a1, qs + 8, dl0, neg_ml0, dl1, neg_ml1, x + 8);
            a2 = q4_k_group(a2, qs + 16, dl0, neg_ml0, dl1, neg_ml1, x + 16);
            a3 = q4_k_group(a3, qs + 24, dl0, neg_ml0, dl1, neg_ml1, x + 24);
        }
    }
    return sum4_avx2(a0, a1, a2, a3);
}

/* As Q4_K plus the 5th bit: qh[l] bit 2c is that of value 64c + l, bit
 * 2c+1 that of 64c + 32 + l; `shift` = 2c. */
AVX2 static inline __m256 q5_k_group(__m256 acc, const uint8_t *qs, const uint8_t *qh, __m128i shift, __m256 dl0,
                                     __m256 neg_ml0, __m256 dl1, __m256 neg_ml1, const float *x) {
    const __m256i bytes = load_u8x8(qs);
    const __m256i high = _mm256_srl_epi32(load_u8x8(qh), shift); /* bits 0, 1: this chunk's */
    const __m256i bit4 = _mm256_set1_epi32(16);
    const __m256i q_low = _mm256_or_si256(low_nibbles(bytes), _mm256_and_si256(_mm256_slli_epi32(high, 4), bit4));
    const __m256i q_high = _mm256_or_si256(high_nibbles(bytes), _mm256_and_si256(_mm256_slli_epi32(high, 3), bit4));
    acc = k_fma8(acc, q_low, dl0, neg_ml0, x);
    return k_fma8(acc, q_high, dl1, neg_ml1, x + 32);
}

AVX2 static float dot_q5_k_avx2(const void *restrict w_row, const float *restrict x, int64_t n) {
    const block_q5_k *blocks = (const block_q5_k *)w_row;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = load_half_f16c(blocks[b].d);
        const float dmin = load_half_f16c(blocks[b].dmin);
        const uint8_t *qs = blocks[b].qs, *qh = blocks[b].qh;
        for (int c = 0; c < 4; c++, qs += 32, x += 64) {
            __m256 dl0, neg_ml0, dl1, neg_ml1;
            k_scale(blocks[b].scales, 2 * c, d, dmin, &dl0, &neg_ml0);
            k_scale(blocks[b].scales, 2 * c + 1, d, dmin, &dl1, &neg_ml1);
            const __m128i shift = _mm_cvtsi32_si128(2 * c);
            a0 = q5_k_group(a0, qs + 0, qh + 0, shift, dl0, neg_ml0, dl1, neg_ml1, x + 0);
            a1 = q5_k_group(a1, qs + 8, qh + 8, shift, dl0, neg_ml0, dl1, neg_ml1, x + 8);
            a2 = q5_k_group(a2, qs + 16, qh + 16, shift, dl0, neg_ml0, dl1, neg_ml1, x + 16);
            a3 = q5_k_group(a3, qs + 24, qh + 24, shift, dl0, neg_ml0, dl1, neg_ml1, x + 24);
        }
    }
    return sum4_avx2(a0, a1, a2, a3);
}

/* x[i] = (d * scales[i/16]) * (q - 32); both products exact. Per half h and
 * l = 8g .. 8g+7, ql[l], ql[l + 32] and qh[l] give values l, l + 32, l + 64
 * and l + 96 (see block_q6_k), one accumulator each. */
AVX2 static inline __m256 q6_fma8(__m256 acc, __m256i q, float dl, const float *x) {
    const __m256 w = _mm256_mul_ps(_mm256_sub_ps(to_float(q), _mm256_set1_ps(32.0f)), _mm256_set1_ps(dl));
    return _mm256_fmadd_ps(w, load_x(x), acc);
}

AVX2 static float dot_q6_k_avx2(const void *restrict w_row, const float *restrict x, int64_t n) {
    const block_q6_k *blocks = (const block_q6_k *)w_row;
    const __m256i bits45 = _mm256_set1_epi32(0x30);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = load_half_f16c(blocks[b].d);
        float dl[QK_K / 16];
        for (int j = 0; j < QK_K / 16; j++) dl[j] = d * (float)(int8_t)blocks[b].scales[j];
        for (int h = 0; h < 2; h++, x += 128) {
            const uint8_t *ql = blocks[b].ql + 64 * h;
            const uint8_t *qh = blocks[b].qh + 32 * h;
            for (int g = 0; g < 4; g++) {
                const int is = 8 * h + g / 2; /* scale of values 8g.. of this half */
                const __m256i lo = load_u8x8(ql + 8 * g), hi = load_u8x8(ql + 32 + 8 * g), top = load_u8x8(qh + 8 * g);
                const __m256i q1 =
                    _mm256_or_si256(low_nibbles(lo), _mm256_and_si256(_mm256_slli_epi32(top, 4), bits45));
                const __m256i q2 =
                    _mm256_or_si256(low_nibbles(hi), _mm256_and_si256(_mm256_slli_epi32(top, 2), bits45));
                const __m256i q3 = _mm256_or_si256(high_nibbles(lo), _mm256_and_si256(top, bits45));
                const __m256i q4 =
                    _mm256_or_si256(high_nibbles(hi), _mm256_and_si256(_mm256_srli_epi32(top, 2), bits45));
                a0 = q6_fma8(a0, q1, dl[is + 0], x + 8 * g);
                a1 = q6_fma8(a1, q2, dl[is + 2], x + 32 + 8 * g);
                a2 = q6_fma8(a2, q3, dl[is + 4], x + 64 + 8 * g);
                a3 = q6_fma8(a3, q4, dl[is + 6], x + 96 + 8 * g);
            }
        }
    }
    return sum4_avx2(a0, a1, a2, a3);
}

static cr_dot_fn avx2_kernel(uint32_t type) {
    switch (type) {
    case CR_TYPE_F32: return dot_f32_avx2;
    case CR_TYPE_F16: return dot_f16_avx2;
    case CR_TYPE_BF16: return dot_bf16_avx2;
    case CR_TYPE_Q4_0: return dot_q4_0_avx2;
    case CR_TYPE_Q4_1: return dot_q4_1_avx2;
    case CR_TYPE_Q5_0: return dot_q5_0_avx2;
    case CR_TYPE_Q5_1: return dot_q5_1_avx2;
    case CR_TYPE_Q8_0: return dot_q8_0_avx2;
    case CR_TYPE_Q4_K: return dot_q4_k_avx2;
    case CR_TYPE_Q5_K: return dot_q5_k_avx2;
    case CR_TYPE_Q6_K: return dot_q6_k_avx2;
    default: return NULL;
    }
}

#endif /* __x86_64__ */

// ----------------------------------------------------------------------------
// Dispatch: the CPU is probed once; the probe is idempotent, so threads that
// race on the first call all store the same answer.

enum kernel_set { SET_UNPROBED = -1, SET_SCALAR = 0, SET_AVX2 = 1 };

static atomic_int best_set = SET_UNPROBED;
static atomic_int force_scalar = 0;

static int probe_best_set(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    /* __builtin_cpu_supports("avx2") also checks that the OS saves YMM state;
     * F16C has no name there in every compiler, so ask CPUID leaf 1. */
    unsigned eax, ebx, ecx, edx;
    const int has_f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c) return SET_AVX2;
#endif
    return SET_SCALAR;
}

static int active_set(void) {
    int best = atomic_load_explicit(&best_set, memory_order_acquire);
    if (best == SET_UNPROBED) {
        best = probe_best_set();
        atomic_store_explicit(&best_set, best, memory_order_release);
    }
    return atomic_load_explicit(&force_scalar, memory_order_relaxed) ? SET_SCALAR : best;
}

cr_dot_fn cr_dot_for_type(uint32_t ggml_type) {
#if defined(__x86_64__)
    if (active_set() == SET_AVX2) return avx2_kernel(ggml_type);
#else
    (void)active_set();
#endif
    return scalar_kernel(ggml_type);
}

const char *cr_dot_simd_level(void) { return active_set() == SET_AVX2 ? "avx2+fma+f16c" : "scalar"; }

void cr_dot_select(int level) { atomic_store_explicit(&force_scalar, level == CR_SIMD_SCALAR, memory_order_relaxed); }
