/* dot.h - cpu_ref's row dot products: y = dot(W[r], x) for one weight row
 * stored in a GGUF block type and an f32 vector x.
 *
 * Batch-1 decode is one matrix-vector product per weight matrix, and its speed
 * is the speed of these kernels, bounded by the bandwidth at which weight
 * bytes can be read. The plugin does not link the core, so the kernels decode
 * the blocks themselves; the layouts are those documented in core/quant.h
 * (bit-exact with ggml):
 *
 *   type   elems bytes  layout (little-endian; d, m, dmin are IEEE half)
 *   F32      1     4
 *   F16      1     2    IEEE half
 *   BF16     1     2    top 16 bits of an f32
 *   Q4_0    32    18    d; qs[16]: low nibbles x[0..15], high x[16..31]; x = d*(q-8)
 *   Q4_1    32    20    d, m; qs[16] as Q4_0;                             x = d*q + m
 *   Q5_0    32    22    d; qh[4] (bit j = 5th bit of x[j]); qs[16];      x = d*(q-16)
 *   Q5_1    32    24    d, m; qh[4]; qs[16];                              x = d*q + m
 *   Q8_0    32    34    d; qs[32] int8;                                   x = d*q
 *   Q4_K   256   144    d, dmin; scales[12]; qs[128]     x = (d*sc)*q - dmin*m per 32
 *   Q5_K   256   176    d, dmin; scales[12]; qh[32]; qs[128]
 *   Q6_K   256   210    ql[128]; qh[64]; scales[16] int8; d   x = (d*sc)*(q-32) per 16
 *
 * Numerics: every kernel decodes each weight to exactly the f32 value the
 * core's quant_row_to_f32 gives (the decode is exact in f32: every product
 * that feeds an addition is exact), multiplies it by x in f32 and accumulates
 * in f32. x is never quantised. Kernels differ only in summation order (and
 * the SIMD ones fuse the multiply into the add), so scalar and SIMD results
 * agree to within f32 rounding of the sum, not bit for bit.
 *
 * Threads: every function here may be called from any thread. The kernels
 * are pure functions of their arguments.
 */
#ifndef CR_DOT_H
#define CR_DOT_H

#include <stdint.h>

/* GGUF tensor type ids (ggml's enum ggml_type) that have a kernel. */
enum {
    CR_TYPE_F32 = 0,
    CR_TYPE_F16 = 1,
    CR_TYPE_Q4_0 = 2,
    CR_TYPE_Q4_1 = 3,
    CR_TYPE_Q5_0 = 6,
    CR_TYPE_Q5_1 = 7,
    CR_TYPE_Q8_0 = 8,
    CR_TYPE_Q4_K = 12,
    CR_TYPE_Q5_K = 13,
    CR_TYPE_Q6_K = 14,
    CR_TYPE_BF16 = 30,
};

/* Kernel sets for cr_dot_select. */
enum {
    CR_SIMD_SCALAR = 0, /* the plain C kernels (the compiler may still auto-vectorise them) */
    CR_SIMD_BEST = 1,   /* the best set this CPU runs: the default */
};

/* One row of n weights (n a multiple of the type's block size) in GGUF type
 * `type`, dotted with x (n floats). f32 accumulation. w_row may sit at any
 * byte offset (blocks inside an mmap'd file are not aligned); x needs only
 * float alignment. The two must not overlap. */
typedef float (*cr_dot_fn)(const void *restrict w_row, const float *restrict x, int64_t n);

/* The kernel for a GGUF type id in the kernel set now selected, or NULL when
 * the type has no kernel. The returned function stays valid for the life of
 * the process, whatever is selected later. */
cr_dot_fn cr_dot_for_type(uint32_t ggml_type);

/* What the dispatcher chose, e.g. "avx2+fma+f16c" or "scalar". A static
 * string. The CPU is probed once, on first use of any function here. */
const char *cr_dot_simd_level(void);

/* For tests and benchmarks: force CR_SIMD_SCALAR, or go back to CR_SIMD_BEST
 * (any other value means CR_SIMD_BEST). Affects later cr_dot_for_type calls,
 * process-wide; kernels already handed out keep working. */
void cr_dot_select(int level);

#endif
