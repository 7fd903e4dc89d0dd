/* quant.h - GGML tensor types: sizes, and decoding rows of block formats.
 *
 * A GGUF tensor of type T stores its innermost dimension (ne0, "a row") as a
 * sequence of blocks. Each block holds `block_elems` values in `block_bytes`
 * bytes. Plain types (F32, F16, BF16, I8 ...) are blocks of one element.
 *
 *   type   elems bytes  layout (little-endian; d, m, dmin are IEEE half unless said)
 *   Q4_0    32    18    d; qs[16]: low nibbles = x[0..15], high = x[16..31]; x = d*(q-8)
 *   Q4_1    32    20    d, m; qs[16] as Q4_0;                               x = d*q + m
 *   Q5_0    32    22    d; qh[4] (bit j = 5th bit of x[j]); qs[16];        x = d*(q-16)
 *   Q5_1    32    24    d, m; qh[4]; qs[16];                                x = d*q + m
 *   Q8_0    32    34    d; qs[32] int8;                                     x = d*q
 *   Q4_K   256   144    d, dmin; scales[12] (8 x 6-bit scale + 8 x 6-bit min); qs[128]
 *   Q5_K   256   176    d, dmin; scales[12]; qh[32]; qs[128]
 *   Q6_K   256   210    ql[128]; qh[64]; scales[16] int8; d
 *
 * Only the types with `can_decode` set can be turned into floats here; the
 * others are known (so a file that holds them can still be inspected) but
 * rejected by the decode functions with -1.
 */
#ifndef FB_QUANT_H
#define FB_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Type ids as stored in GGUF tensor infos (ggml's enum ggml_type). */
enum gguf_type {
    GGUF_TYPE_F32 = 0,
    GGUF_TYPE_F16 = 1,
    GGUF_TYPE_Q4_0 = 2,
    GGUF_TYPE_Q4_1 = 3,
    GGUF_TYPE_Q5_0 = 6,
    GGUF_TYPE_Q5_1 = 7,
    GGUF_TYPE_Q8_0 = 8,
    GGUF_TYPE_Q8_1 = 9,
    GGUF_TYPE_Q2_K = 10,
    GGUF_TYPE_Q3_K = 11,
    GGUF_TYPE_Q4_K = 12,
    GGUF_TYPE_Q5_K = 13,
    GGUF_TYPE_Q6_K = 14,
    GGUF_TYPE_Q8_K = 15,
    GGUF_TYPE_IQ2_XXS = 16,
    GGUF_TYPE_IQ2_XS = 17,
    GGUF_TYPE_IQ3_XXS = 18,
    GGUF_TYPE_IQ1_S = 19,
    GGUF_TYPE_IQ4_NL = 20,
    GGUF_TYPE_IQ3_S = 21,
    GGUF_TYPE_IQ2_S = 22,
    GGUF_TYPE_IQ4_XS = 23,
    GGUF_TYPE_I8 = 24,
    GGUF_TYPE_I16 = 25,
    GGUF_TYPE_I32 = 26,
    GGUF_TYPE_I64 = 27,
    GGUF_TYPE_F64 = 28,
    GGUF_TYPE_IQ1_M = 29,
    GGUF_TYPE_BF16 = 30,
    GGUF_TYPE_TQ1_0 = 34,
    GGUF_TYPE_TQ2_0 = 35,
    GGUF_TYPE_MXFP4 = 39,
    GGUF_TYPE_NVFP4 = 40,
    GGUF_TYPE_Q1_0 = 41,
    GGUF_TYPE_COUNT_ = 42 /* one past the largest id this table knows */
};

typedef struct quant_type_info {
    const char *name;    /* "Q4_K" */
    int32_t block_elems; /* values per block */
    int32_t block_bytes; /* bytes per block */
    bool can_decode;     /* quant_row_to_f32/f16 supports it */
    bool can_encode;     /* quant_row_from_f32 supports it */
} quant_type_info;

/* Info for a type id, or NULL when the id is unknown (a gap or out of range). */
const quant_type_info *quant_type_get(uint32_t type);

/* Type id by name ("q4_k", "F16"; case-insensitive); -1 when unknown. */
int quant_type_from_name(const char *name);

/* Bytes of a row of n values: 0 when n is not a multiple of the block size,
 * the type is unknown, or the size would overflow. */
size_t quant_row_bytes(uint32_t type, int64_t n);

/* Decode one row of n values (n a multiple of the block size) to f32 / f16.
 * Returns 0, or -1 when the type cannot be decoded or n is not a multiple.
 * Bit-exact with ggml's reference dequantisation. */
int quant_row_to_f32(uint32_t type, const void *src, float *dst, int64_t n);
int quant_row_to_f16(uint32_t type, const void *src, uint16_t *dst, int64_t n);

/* Encode one row of n f32 values into blocks of `type` (used by `fairbench
 * synth`). Simple round-to-nearest reference quantisers: correct block
 * layouts, not tuned for minimal error. Returns 0, or -1 when unsupported. */
int quant_row_from_f32(uint32_t type, const float *src, void *dst, int64_t n);

/* IEEE half and bfloat16 conversions (round to nearest even; NaN stays NaN). */
float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);
float bf16_to_f32(uint16_t b);
uint16_t f32_to_bf16(float f);

#endif
