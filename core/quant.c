/* quant.c - GGML tensor types: the size table, fp16/bf16 conversions, and
 * decoders/encoders for the block formats listed in quant.h.
 *
 * Decoders are bit-exact with ggml's reference dequantisation: every value is
 * computed with the same float operations in the same order (e.g. Q4_K is
 * dl = d*sc, ml = dmin*m, y = dl*q - ml, all in f32). The decoders cannot be
 * changed by a compiler fusing a*b + c into an FMA: every product that feeds
 * an addition is exact in f32 (a half has 11 significant bits, times at most
 * 6 + 5 bits of scale and quant). The encoders' `x*id + 8.5f` can be: a fused
 * result rounds once, not twice, and a rare value would land in a different
 * bucket than in ggml/gguf-py. GCC does not contract in ISO mode (-std=c11,
 * which CMake uses with C_EXTENSIONS OFF); clang does by default, hence the
 * pragma below.
 *
 * Blocks sit at arbitrary byte offsets inside an mmap'd file, so the block
 * structs below hold only uint8_t arrays (alignment 1, no padding) and every
 * multi-byte field is read and written byte by byte as little-endian.
 */
#include "quant.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define QK 32    /* values per block of the legacy formats (Q4_0 ... Q8_1) */
#define QK_K 256 /* values per super-block of the K-quants */

// ----------------------------------------------------------------------------
// The type table: one row per id of enum gguf_type.
// Names and sizes as ggml's type traits / gguf-py's GGML_QUANT_SIZES.

static const quant_type_info type_table[GGUF_TYPE_COUNT_] = {
    [GGUF_TYPE_F32] = {"F32", 1, 4, true, true},
    [GGUF_TYPE_F16] = {"F16", 1, 2, true, true},
    [GGUF_TYPE_Q4_0] = {"Q4_0", 32, 18, true, true},
    [GGUF_TYPE_Q4_1] = {"Q4_1", 32, 20, true, true},
    [GGUF_TYPE_Q5_0] = {"Q5_0", 32, 22, true, true},
    [GGUF_TYPE_Q5_1] = {"Q5_1", 32, 24, true, true},
    [GGUF_TYPE_Q8_0] = {"Q8_0", 32, 34, true, true},
    [GGUF_TYPE_Q8_1] = {"Q8_1", 32, 36, false,
                        false}, /* ggml C block_q8_1 (half d, half s, 32 x int8); gguf-py lists 40 */
    [GGUF_TYPE_Q2_K] = {"Q2_K", 256, 84, false, false},
    [GGUF_TYPE_Q3_K] = {"Q3_K", 256, 110, false, false},
    [GGUF_TYPE_Q4_K] = {"Q4_K", 256, 144, true, true},
    [GGUF_TYPE_Q5_K] = {"Q5_K", 256, 176, true, true},
    [GGUF_TYPE_Q6_K] = {"Q6_K", 256, 210, true, true},
    [GGUF_TYPE_Q8_K] = {"Q8_K", 256, 292, false, false},
    [GGUF_TYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66, false, false},
    [GGUF_TYPE_IQ2_XS] = {"IQ2_XS", 256, 74, false, false},
    [GGUF_TYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98, false, false},
    [GGUF_TYPE_IQ1_S] = {"IQ1_S", 256, 50, false, false},
    [GGUF_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18, false, false},
    [GGUF_TYPE_IQ3_S] = {"IQ3_S", 256, 110, false, false},
    [GGUF_TYPE_IQ2_S] = {"IQ2_S", 256, 82, false, false},
    [GGUF_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136, false, false},
    [GGUF_TYPE_I8] = {"I8", 1, 1, false, false},
    [GGUF_TYPE_I16] = {"I16", 1, 2, false, false},
    [GGUF_TYPE_I32] = {"I32", 1, 4, false, false},
    [GGUF_TYPE_I64] = {"I64", 1, 8, false, false},
    [GGUF_TYPE_F64] = {"F64", 1, 8, false, false},
    [GGUF_TYPE_IQ1_M] = {"IQ1_M", 256, 56, false, false},
    [GGUF_TYPE_BF16] = {"BF16", 1, 2, true, true},
    [GGUF_TYPE_TQ1_0] = {"TQ1_0", 256, 54, false, false},
    [GGUF_TYPE_TQ2_0] = {"TQ2_0", 256, 66, false, false},
    [GGUF_TYPE_MXFP4] = {"MXFP4", 32, 17, false, false},
    [GGUF_TYPE_NVFP4] = {"NVFP4", 64, 36, false, false},
    [GGUF_TYPE_Q1_0] = {"Q1_0", 128, 18, false, false},
    /* ids 4, 5 (Q4_2, Q4_3), 31-33 and 36-38 (repacked variants) were
     * removed from ggml; their rows stay empty and look up as unknown. */
};

const quant_type_info *quant_type_get(uint32_t type) {
    if (type >= GGUF_TYPE_COUNT_ || type_table[type].name == NULL) return NULL;
    return &type_table[type];
}

static int ascii_lower(int c) { return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c; }

int quant_type_from_name(const char *name) {
    if (name == NULL) return -1;
    for (uint32_t t = 0; t < GGUF_TYPE_COUNT_; t++) {
        const char *known = type_table[t].name;
        if (known == NULL) continue;
        size_t i = 0;
        while (known[i] != '\0' && ascii_lower((unsigned char)known[i]) == ascii_lower((unsigned char)name[i])) i++;
        if (known[i] == '\0' && name[i] == '\0') return (int)t;
    }
    return -1;
}

size_t quant_row_bytes(uint32_t type, int64_t n) {
    const quant_type_info *info = quant_type_get(type);
    if (info == NULL || n < 0 || n % info->block_elems != 0) return 0;
    uint64_t n_blocks = (uint64_t)(n / info->block_elems);
    if (n_blocks > SIZE_MAX / (uint64_t)info->block_bytes) return 0;
    return (size_t)n_blocks * (size_t)info->block_bytes;
}

// ----------------------------------------------------------------------------
// Scalar conversions: IEEE half and bfloat16, by bit manipulation.

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* half: 1 sign, 5 exponent (bias 15), 10 mantissa. Exact widening; a NaN keeps
 * its payload and comes out quiet (as x86 F16C and ggml's portable path do). */
float fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t mant = h & 0x3FFu;
    if (exp == 0x1F) /* inf or NaN */
        return f32_from_bits(sign | 0x7F800000u | (mant << 13) | (mant ? 0x00400000u : 0));
    if (exp != 0) /* normal: rebias 15 -> 127 */
        return f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
    if (mant == 0) return f32_from_bits(sign); /* +-0 */
    /* subnormal: mant * 2^-24, shift the leading 1 up into the hidden bit */
    int shift = 0;
    while ((mant & 0x400u) == 0) {
        mant <<= 1;
        shift++;
    }
    return f32_from_bits(sign | ((uint32_t)(113 - shift) << 23) | ((mant & 0x3FFu) << 13));
}

/* Round an f32 to the nearest half, ties to even; overflow goes to inf, tiny
 * values to subnormals or zero; NaN becomes a quiet NaN keeping the top
 * payload bits. */
uint16_t f32_to_fp16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t exp = (u >> 23) & 0xFFu;
    uint32_t mant = u & 0x7FFFFFu;
    if (exp == 0xFF) return (uint16_t)(sign | 0x7C00u | (mant ? 0x200u | (mant >> 13) : 0));
    int32_t half_exp = (int32_t)exp - 127 + 15;
    if (half_exp >= 0x1F) return (uint16_t)(sign | 0x7C00u); /* >= 2^16: inf */
    if (half_exp <= 0) {
        /* subnormal half (or zero): value = mant24 * 2^(exp-150), in units of
         * 2^-24 that is mant24 >> (126 - exp). Below 2^-25 it rounds to 0. */
        if (half_exp < -10) return sign;
        uint32_t mant24 = mant | 0x800000u;
        uint32_t shift = (uint32_t)(14 - half_exp); /* 14..24 */
        uint32_t q = mant24 >> shift;
        uint32_t rem = mant24 & ((1u << shift) - 1u);
        uint32_t halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (q & 1u))) q++; /* may carry into the smallest normal: fine */
        return (uint16_t)(sign | q);
    }
    uint32_t q = ((uint32_t)half_exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++; /* a carry may roll into the exponent, up to inf: correct */
    return (uint16_t)(sign | q);
}

/* bfloat16 is the top half of an f32. */
float bf16_to_f32(uint16_t b) { return f32_from_bits((uint32_t)b << 16); }

/* Same rule as ggml_compute_fp32_to_bf16: NaN -> quiet NaN keeping the top
 * payload bits; otherwise round to nearest even (overflow rounds to inf). */
uint16_t f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// ----------------------------------------------------------------------------
// Little-endian field access at any byte offset.

static uint16_t load_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void store_le16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xFF);
    p[1] = (uint8_t)(v >> 8);
}

static void store_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static float load_half(const uint8_t *p) { return fp16_to_f32(load_le16(p)); }
static void store_half(uint8_t *p, float f) { store_le16(p, f32_to_fp16(f)); }

// ----------------------------------------------------------------------------
// Block layouts. All little-endian; d, m, dmin are IEEE halves.

typedef struct {
    uint8_t d[2];
    uint8_t qs[QK / 2]; /* low nibbles: x[0..15], high nibbles: x[16..31] */
} block_q4_0;

typedef struct {
    uint8_t d[2];
    uint8_t m[2];
    uint8_t qs[QK / 2]; /* as Q4_0 */
} block_q4_1;

typedef struct {
    uint8_t d[2];
    uint8_t qh[4];      /* u32: bit j is the 5th bit of x[j] */
    uint8_t qs[QK / 2]; /* low 4 bits, as Q4_0 */
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

/* K-quants: a super-block of 256 values in 8 sub-blocks of 32 (Q4_K, Q5_K) or
 * 16 sub-blocks of 16 (Q6_K). For Q4_K/Q5_K the 4-bit values come in 4 chunks
 * of 64: qs[32*c + l] holds x[64c + l] in its low nibble and x[64c + 32 + l] in
 * its high nibble; Q5_K takes bit i of qh[l] as the 5th bit of sub-block i. */
typedef struct {
    uint8_t d[2];
    uint8_t dmin[2];
    uint8_t scales[12]; /* 8 x (6-bit scale, 6-bit min), see get_scale_min_k4 */
    uint8_t qs[QK_K / 2];
} block_q4_k;

typedef struct {
    uint8_t d[2];
    uint8_t dmin[2];
    uint8_t scales[12];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_k;

/* Q6_K, per half h (128 values) and l in 0..31, with 6-bit q = L - 32:
 *   x[128h + l]      low 4 bits: ql[64h + l]      & 0xF, high 2: qh[32h + l] >> 0
 *   x[128h + l + 32] low 4 bits: ql[64h + l + 32] & 0xF, high 2: qh[32h + l] >> 2
 *   x[128h + l + 64] low 4 bits: ql[64h + l]      >> 4,  high 2: qh[32h + l] >> 4
 *   x[128h + l + 96] low 4 bits: ql[64h + l + 32] >> 4,  high 2: qh[32h + l] >> 6
 * and x[i] uses scales[i / 16]. */
typedef struct {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    uint8_t scales[QK_K / 16]; /* int8 */
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

/* The 12 scale bytes of Q4_K/Q5_K pack 8 six-bit scales sc[j] and mins m[j]:
 *   bytes 0-3:  sc[0..3] in bits 0-5, top 2 bits of sc[4..7] in bits 6-7
 *   bytes 4-7:  m[0..3]  in bits 0-5, top 2 bits of m[4..7]  in bits 6-7
 *   bytes 8-11: low 4 bits of sc[4..7] in bits 0-3, of m[4..7] in bits 4-7 */
static void get_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static void set_scale_min_k4(uint8_t *q, const uint8_t sc[8], const uint8_t m[8]) {
    for (int j = 0; j < 4; j++) {
        q[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        q[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        q[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
    }
}

// ----------------------------------------------------------------------------
// Decoders: one row of n values (n a multiple of the block size) to f32.

static void decode_f32(const uint8_t *src, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = f32_from_bits(load_le32(src + 4 * i));
}

static void decode_f16(const uint8_t *src, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = fp16_to_f32(load_le16(src + 2 * i));
}

static void decode_bf16(const uint8_t *src, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = bf16_to_f32(load_le16(src + 2 * i));
}

/* x = d * (q - 8) */
static void decode_q4_0(const uint8_t *src, float *restrict y, int64_t n) {
    const block_q4_0 *blocks = (const block_q4_0 *)src;
    for (int64_t b = 0; b < n / QK; b++, y += QK) {
        const float d = load_half(blocks[b].d);
        for (int j = 0; j < QK / 2; j++) {
            y[j] = (float)((blocks[b].qs[j] & 0xF) - 8) * d;
            y[j + QK / 2] = (float)((blocks[b].qs[j] >> 4) - 8) * d;
        }
    }
}

/* x = d*q + m */
static void decode_q4_1(const uint8_t *src, float *restrict y, int64_t n) {
    const block_q4_1 *blocks = (const block_q4_1 *)src;
    for (int64_t b = 0; b < n / QK; b++, y += QK) {
        const float d = load_half(blocks[b].d);
        const float m = load_half(blocks[b].m);
        for (int j = 0; j < QK / 2; j++) {
            y[j] = (float)(blocks[b].qs[j] & 0xF) * d + m;
            y[j + QK / 2] = (float)(blocks[b].qs[j] >> 4) * d + m;
        }
    }
}

/* x = d * (q - 16), q = low nibble | qh bit << 4 */
static void decode_q5_0(const uint8_t *src, float *restrict y, int64_t n) {
    const block_q5_0 *blocks = (const block_q5_0 *)src;
    for (int64_t b = 0; b < n / QK; b++, y += QK) {
        const float d = load_half(blocks[b].d);
        const uint32_t qh = load_le32(blocks[b].qh);
        for (int j = 0; j < QK / 2; j++) {
            const int hi0 = (int)((qh >> j) & 1u) << 4;
            const int hi1 = (int)((qh >> (j + QK / 2)) & 1u) << 4;
            y[j] = (float)(((blocks[b].qs[j] & 0xF) | hi0) - 16) * d;
            y[j + QK / 2] = (float)(((blocks[b].qs[j] >> 4) | hi1) - 16) * d;
        }
    }
}

/* x = d*q + m, q 5 bits as Q5_0 */
static void decode_q5_1(const uint8_t *src, float *restrict y, int64_t n) {
    const block_q5_1 *blocks = (const block_q5_1 *)src;
    for (int64_t b = 0; b < n / QK; b++, y += QK) {
        const float d = load_half(blocks[b].d);
        const float m = load_half(blocks[b].m);
        const uint32_t qh = load_le32(blocks[b].qh);
        for (int j = 0; j < QK / 2; j++) {
            const int hi0 = (int)((qh >> j) & 1u) << 4;
            const int hi1 = (int)((qh >> (j + QK / 2)) & 1u) << 4;
            y[j] = (float)((blocks[b].qs[j] & 0xF) | hi0) * d + m;
            y[j + QK / 2] = (float)((blocks[b].qs[j] >> 4) | hi1) * d + m;
        }
    }
}

/* x = d * q */
static void decode_q8_0(const uint8_t *src, float *restrict y, int64_t n) {
    const block_q8_0 *blocks = (const block_q8_0 *)src;
    for (int64_t b = 0; b < n / QK; b++, y += QK) {
        const float d = load_half(blocks[b].d);
        for (int j = 0; j < QK; j++) y[j] = (float)(int8_t)blocks[b].qs[j] * d;
    }
}

/* sub-block j: x = (d*sc[j]) * q - (dmin*m[j]) */
static void decode_q4_k(const uint8_t *src, float *restrict y, int64_t n) {
    const block_q4_k *blocks = (const block_q4_k *)src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = load_half(blocks[b].d);
        const float dmin = load_half(blocks[b].dmin);
        const uint8_t *q = blocks[b].qs;
        for (int c = 0; c < 4; c++, q += 32, y += 64) {
            uint8_t sc, m;
            get_scale_min_k4(2 * c, blocks[b].scales, &sc, &m);
            const float dl0 = d * sc, ml0 = dmin * m;
            get_scale_min_k4(2 * c + 1, blocks[b].scales, &sc, &m);
            const float dl1 = d * sc, ml1 = dmin * m;
            for (int l = 0; l < 32; l++) {
                y[l] = dl0 * (float)(q[l] & 0xF) - ml0;
                y[l + 32] = dl1 * (float)(q[l] >> 4) - ml1;
            }
        }
    }
}

/* as Q4_K with a 5th bit per value from qh */
static void decode_q5_k(const uint8_t *src, float *restrict y, int64_t n) {
    const block_q5_k *blocks = (const block_q5_k *)src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = load_half(blocks[b].d);
        const float dmin = load_half(blocks[b].dmin);
        const uint8_t *q = blocks[b].qs;
        const uint8_t *qh = blocks[b].qh;
        for (int c = 0; c < 4; c++, q += 32, y += 64) {
            uint8_t sc, m;
            get_scale_min_k4(2 * c, blocks[b].scales, &sc, &m);
            const float dl0 = d * sc, ml0 = dmin * m;
            get_scale_min_k4(2 * c + 1, blocks[b].scales, &sc, &m);
            const float dl1 = d * sc, ml1 = dmin * m;
            for (int l = 0; l < 32; l++) {
                const int hi0 = ((qh[l] >> (2 * c)) & 1) << 4;
                const int hi1 = ((qh[l] >> (2 * c + 1)) & 1) << 4;
                y[l] = dl0 * (float)((q[l] & 0xF) | hi0) - ml0;
                y[l + 32] = dl1 * (float)((q[l] >> 4) | hi1) - ml1;
            }
        }
    }
}

/* x[i] = (d * scales[i/16]) * (q - 32) */
static void decode_q6_k(const uint8_t *src, float *restrict y, int64_t n) {
    const block_q6_k *blocks = (const block_q6_k *)src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = load_half(blocks[b].d);
        const uint8_t *ql = blocks[b].ql;
        const uint8_t *qh = blocks[b].qh;
        const uint8_t *sc = blocks[b].scales;
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, y += 128) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)(int8_t)sc[is + 0] * (float)q1;
                y[l + 32] = d * (float)(int8_t)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)(int8_t)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)(int8_t)sc[is + 6] * (float)q4;
            }
        }
    }
}

typedef void (*decode_fn)(const uint8_t *src, float *restrict y, int64_t n);

static decode_fn decoder_for(uint32_t type) {
    switch (type) {
    case GGUF_TYPE_F32: return decode_f32;
    case GGUF_TYPE_F16: return decode_f16;
    case GGUF_TYPE_BF16: return decode_bf16;
    case GGUF_TYPE_Q4_0: return decode_q4_0;
    case GGUF_TYPE_Q4_1: return decode_q4_1;
    case GGUF_TYPE_Q5_0: return decode_q5_0;
    case GGUF_TYPE_Q5_1: return decode_q5_1;
    case GGUF_TYPE_Q8_0: return decode_q8_0;
    case GGUF_TYPE_Q4_K: return decode_q4_k;
    case GGUF_TYPE_Q5_K: return decode_q5_k;
    case GGUF_TYPE_Q6_K: return decode_q6_k;
    default: return NULL;
    }
}

/* The info of a decodable/encodable type when n fits its blocks, else NULL. */
static const quant_type_info *row_info(uint32_t type, int64_t n) {
    const quant_type_info *info = quant_type_get(type);
    if (info == NULL || n < 0 || n % info->block_elems != 0) return NULL;
    if (n > 0 && quant_row_bytes(type, n) == 0) return NULL;
    return info;
}

int quant_row_to_f32(uint32_t type, const void *src, float *dst, int64_t n) {
    const quant_type_info *info = row_info(type, n);
    decode_fn decode = decoder_for(type);
    if (info == NULL || !info->can_decode || decode == NULL) return -1;
    if (n == 0) return 0;
    if (src == NULL || dst == NULL) return -1;
    decode((const uint8_t *)src, dst, n);
    return 0;
}

/* Decode QK_K values at a time into a stack buffer, then round to half.
 * QK_K is a multiple of every block size, so chunks fall on block bounds. */
int quant_row_to_f16(uint32_t type, const void *src, uint16_t *dst, int64_t n) {
    const quant_type_info *info = row_info(type, n);
    decode_fn decode = decoder_for(type);
    if (info == NULL || !info->can_decode || decode == NULL) return -1;
    if (n == 0) return 0;
    if (src == NULL || dst == NULL) return -1;
    const uint8_t *in = (const uint8_t *)src;
    float chunk[QK_K];
    for (int64_t done = 0; done < n; done += QK_K) {
        const int64_t count = (n - done < QK_K) ? n - done : QK_K;
        decode(in + (size_t)(done / info->block_elems) * (size_t)info->block_bytes, chunk, count);
        for (int64_t i = 0; i < count; i++) dst[done + i] = f32_to_fp16(chunk[i]);
    }
    return 0;
}

// ----------------------------------------------------------------------------
// Encoders for the legacy formats: ggml's reference quantisers
// (quantize_row_*_ref), as gguf-py implements them, so both give the same
// bytes. d is kept in f32 for quantising and rounded to half only for storage.
// Like ggml, a block whose d overflows a half stores inf.

/* ggml's `MIN(hi, (int8_t)v)` for the v in [0, hi + 1) that occur; NaN and
 * out-of-range values (only from non-finite or denormal-scale input, where a
 * plain cast would be undefined) are clamped instead. */
static int trunc_clamped(float v, int hi) {
    if (!(v > 0.0f)) return 0;
    if (v >= (float)hi) return hi;
    return (int)v;
}

static void encode_f32(const float *restrict x, uint8_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) store_le32(dst + 4 * i, f32_bits(x[i]));
}

static void encode_f16(const float *restrict x, uint8_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) store_le16(dst + 2 * i, f32_to_fp16(x[i]));
}

static void encode_bf16(const float *restrict x, uint8_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) store_le16(dst + 2 * i, f32_to_bf16(x[i]));
}

/* d = (value of largest magnitude) / -8, so that value maps to q = 0 */
static void encode_q4_0(const float *restrict x, uint8_t *dst, int64_t n) {
    block_q4_0 *blocks = (block_q4_0 *)dst;
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_half(blocks[b].d, d);
        for (int j = 0; j < QK / 2; j++) {
            const int q0 = trunc_clamped(x[j] * id + 8.5f, 15);
            const int q1 = trunc_clamped(x[j + QK / 2] * id + 8.5f, 15);
            blocks[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* d = (max - min) / 15, m = min */
static void encode_q4_1(const float *restrict x, uint8_t *dst, int64_t n) {
    block_q4_1 *blocks = (block_q4_1 *)dst;
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        float min = x[0], max = x[0];
        for (int j = 1; j < QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_half(blocks[b].d, d);
        store_half(blocks[b].m, min);
        for (int j = 0; j < QK / 2; j++) {
            const int q0 = trunc_clamped((x[j] - min) * id + 0.5f, 15);
            const int q1 = trunc_clamped((x[j + QK / 2] - min) * id + 0.5f, 15);
            blocks[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* d = (value of largest magnitude) / -16 */
static void encode_q5_0(const float *restrict x, uint8_t *dst, int64_t n) {
    block_q5_0 *blocks = (block_q5_0 *)dst;
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_half(blocks[b].d, d);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; j++) {
            const int q0 = trunc_clamped(x[j] * id + 16.5f, 31);
            const int q1 = trunc_clamped(x[j + QK / 2] * id + 16.5f, 31);
            blocks[b].qs[j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + QK / 2);
        }
        store_le32(blocks[b].qh, qh);
    }
}

/* d = (max - min) / 31, m = min */
static void encode_q5_1(const float *restrict x, uint8_t *dst, int64_t n) {
    block_q5_1 *blocks = (block_q5_1 *)dst;
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        float min = x[0], max = x[0];
        for (int j = 1; j < QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_half(blocks[b].d, d);
        store_half(blocks[b].m, min);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; j++) {
            const int q0 = trunc_clamped((x[j] - min) * id + 0.5f, 31);
            const int q1 = trunc_clamped((x[j + QK / 2] - min) * id + 0.5f, 31);
            blocks[b].qs[j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + QK / 2);
        }
        store_le32(blocks[b].qh, qh);
    }
}

/* d = amax / 127, q = roundf(x / d) (half away from zero) */
static void encode_q8_0(const float *restrict x, uint8_t *dst, int64_t n) {
    block_q8_0 *blocks = (block_q8_0 *)dst;
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_half(blocks[b].d, d);
        for (int j = 0; j < QK; j++) {
            const float v = roundf(x[j] * id);
            const int q = v > 127.0f ? 127 : v < -127.0f ? -127 : v == v ? (int)v : 0;
            blocks[b].qs[j] = (uint8_t)(int8_t)q;
        }
    }
}

// ----------------------------------------------------------------------------
// Encoders for the K-quants: plain round-to-nearest, not ggml's search for the
// best scales. Per sub-block a scale (and for Q4_K/Q5_K a min <= 0, as ggml),
// then the scales themselves quantised against one super-block scale: 6 bits
// unsigned for Q4_K/Q5_K, int8 for Q6_K. Values are quantised against the
// decoded (half-rounded, 6/8-bit) scales, so rounding of the scales costs no
// systematic offset. Scale maths runs in double so that extreme finite inputs
// give finite (saturated) blocks: a half scale is capped at HALF_MAX.

#define HALF_MAX 65504.0

/* round(v) clamped to [lo, hi]; NaN -> lo. Clamps before converting, so any
 * float is safe. */
static int nearest_clamped(double v, int lo, int hi) {
    if (!(v >= lo)) return lo;
    if (v >= hi) return hi;
    return (int)lround(v);
}

/* The half that stores a non-negative scale: capped at HALF_MAX so it never
 * becomes inf. Returns the decoded value actually stored. */
static float store_scale_half(uint8_t *p, double scale) {
    if (scale > HALF_MAX) scale = HALF_MAX;
    store_half(p, (float)scale);
    return load_half(p);
}

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): picks d, dmin, the 8 six-bit
 * scales/mins and returns the 256 quantised values in L. */
static void quantize_k_asym(const float *restrict x, int nmax, uint8_t *d_out, uint8_t *dmin_out,
                            uint8_t scales_out[12], uint8_t L[QK_K]) {
    double sub_scale[8], sub_neg_min[8];
    double max_scale = 0.0, max_neg_min = 0.0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float min = 0.0f, max = 0.0f; /* min <= 0 so that its 6-bit code m >= 0 */
        for (int l = 0; l < 32; l++) {
            if (xs[l] < min) min = xs[l];
            if (xs[l] > max) max = xs[l];
        }
        sub_scale[j] = ((double)max - (double)min) / nmax;
        sub_neg_min[j] = -(double)min;
        if (sub_scale[j] > max_scale) max_scale = sub_scale[j];
        if (sub_neg_min[j] > max_neg_min) max_neg_min = sub_neg_min[j];
    }
    const float d = store_scale_half(d_out, max_scale / 63);
    const float dmin = store_scale_half(dmin_out, max_neg_min / 63);
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)(d > 0.0f ? nearest_clamped(sub_scale[j] / d, 0, 63) : 0);
        m[j] = (uint8_t)(dmin > 0.0f ? nearest_clamped(sub_neg_min[j] / dmin, 0, 63) : 0);
    }
    set_scale_min_k4(scales_out, sc, m);
    for (int j = 0; j < 8; j++) {
        const float dl = d * sc[j], ml = dmin * m[j]; /* exactly as the decoder forms them */
        for (int l = 0; l < 32; l++) {
            const float v = x[32 * j + l];
            L[32 * j + l] = (uint8_t)(dl > 0.0f ? nearest_clamped(((double)v + ml) / dl, 0, nmax) : 0);
        }
    }
}

static void encode_q4_k(const float *restrict x, uint8_t *dst, int64_t n) {
    block_q4_k *blocks = (block_q4_k *)dst;
    uint8_t L[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        quantize_k_asym(x, 15, blocks[b].d, blocks[b].dmin, blocks[b].scales, L);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                blocks[b].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

static void encode_q5_k(const float *restrict x, uint8_t *dst, int64_t n) {
    block_q5_k *blocks = (block_q5_k *)dst;
    uint8_t L[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        quantize_k_asym(x, 31, blocks[b].d, blocks[b].dmin, blocks[b].scales, L);
        memset(blocks[b].qh, 0, sizeof blocks[b].qh);
        for (int c = 0; c < 4; c++) {
            for (int l = 0; l < 32; l++) {
                const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
                blocks[b].qs[32 * c + l] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
                blocks[b].qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
            }
        }
    }
}

/* Per 16 values s = v / -32 with v the value of largest magnitude (so v maps
 * to q = -32, the full 6-bit range); super-block d = max|s| / 127 and the
 * int8 scale round(s / d). */
static void encode_q6_k(const float *restrict x, uint8_t *dst, int64_t n) {
    block_q6_k *blocks = (block_q6_k *)dst;
    uint8_t L[QK_K]; /* q + 32, in 0..63 */
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        double sub_scale[16], max_abs_scale = 0.0;
        for (int j = 0; j < 16; j++) {
            float amax = 0.0f, max = 0.0f;
            for (int l = 0; l < 16; l++) {
                const float v = x[16 * j + l];
                if (amax < fabsf(v)) {
                    amax = fabsf(v);
                    max = v;
                }
            }
            sub_scale[j] = (double)max / -32.0;
            if (fabs(sub_scale[j]) > max_abs_scale) max_abs_scale = fabs(sub_scale[j]);
        }
        const float d = store_scale_half(blocks[b].d, max_abs_scale / 127);
        for (int j = 0; j < 16; j++) {
            const int sc = d > 0.0f ? nearest_clamped(sub_scale[j] / d, -127, 127) : 0;
            blocks[b].scales[j] = (uint8_t)(int8_t)sc;
            const float dl = d * (float)sc;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (uint8_t)(32 + (dl != 0.0f ? nearest_clamped((double)x[16 * j + l] / dl, -32, 31) : 0));
        }
        for (int h = 0; h < 2; h++) {
            const uint8_t *Lh = L + 128 * h;
            uint8_t *ql = blocks[b].ql + 64 * h, *qh = blocks[b].qh + 32 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
                ql[l + 32] = (uint8_t)((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
                qh[l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                                  ((Lh[l + 96] >> 4) << 6));
            }
        }
    }
}

typedef void (*encode_fn)(const float *restrict x, uint8_t *dst, int64_t n);

static encode_fn encoder_for(uint32_t type) {
    switch (type) {
    case GGUF_TYPE_F32: return encode_f32;
    case GGUF_TYPE_F16: return encode_f16;
    case GGUF_TYPE_BF16: return encode_bf16;
    case GGUF_TYPE_Q4_0: return encode_q4_0;
    case GGUF_TYPE_Q4_1: return encode_q4_1;
    case GGUF_TYPE_Q5_0: return encode_q5_0;
    case GGUF_TYPE_Q5_1: return encode_q5_1;
    case GGUF_TYPE_Q8_0: return encode_q8_0;
    case GGUF_TYPE_Q4_K: return encode_q4_k;
    case GGUF_TYPE_Q5_K: return encode_q5_k;
    case GGUF_TYPE_Q6_K: return encode_q6_k;
    default: return NULL;
    }
}

int quant_row_from_f32(uint32_t type, const float *src, void *dst, int64_t n) {
    const quant_type_info *info = row_info(type, n);
    encode_fn encode = encoder_for(type);
    if (info == NULL || !info->can_encode || encode == NULL) return -1;
    if (n == 0) return 0;
    if (src == NULL || dst == NULL) return -1;
    encode(src, (uint8_t *)dst, n);
    return 0;
}
