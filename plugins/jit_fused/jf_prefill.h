/* jf_prefill.h - jit_fused's prefill of long prompts on tensor cores (the
 * kernels of plugins/jit_fused/jit_fused_prefill.cuh), host half: when it
 * applies, its source, its buffers and device bytes, and one chunk's launch
 * sequence. Like jf_host.h it needs no GPU: the plugin and the emulated test
 * (tests/test_jit_fused_prefill_emulated.c) both call jf_prefill_forward.
 *
 * Which path a prompt takes: the tensor-core path when every matrix is f16
 * or bf16 (the profile's weight precision; c->pf_chunk > 0) and the prompt
 * has at least JF_PF_MIN_POSITIONS tokens; otherwise the CUDA-core _nb
 * kernels of jf_forward, JF_NB positions per pass (f32 weights would lose
 * bits in an f16/bf16 operand; the native block formats are not exact in one
 * f16 either; and a prompt of a few tokens reads the weights once either
 * way, where the _nb path needs no split). */
#ifndef FB_JF_PREFILL_H
#define FB_JF_PREFILL_H

#include <stddef.h>
#include <stdint.h>

#include "jf_host.h"

/* Positions per tensor-core prefill pass (JF_PF_CHUNK in the kernels): at 1024 the GEMMs of W_o and
 * W_down on the 1B shapes are 16 x 16 blocks of 64 positions x 128 rows, about one wave on an H200's 132
 * SMs at 2 blocks each (at 512 they would fill half of it); a 2048-token prompt is 2 passes, each
 * reading every weight once; the chunk's buffers are 56 MiB at f16 on the 1B shapes. */
#define JF_PF_CHUNK 1024
#define JF_PF_MIN_POSITIONS 16 /* shorter prompts take the _nb path (two of its passes or fewer) */

/* The prefill kernels' template, embedded at build time. */
extern const char jf_prefill_template[];

/* 1 when a prompt of n tokens prefills on tensor cores under c. */
int jf_prefill_use(const jf_config *c, int n);

/* The effective settings' words for the path of long prompts: "prefill:
 * tensor cores (f16 mma, split activations)" (bf16 likewise) or "prefill:
 * CUDA cores". (Prompts under JF_PF_MIN_POSITIONS take the CUDA cores
 * either way.) */
const char *jf_prefill_note(const jf_config *c);

/* The constants and the template, to append after jf_kernel_template's
 * source (jf_generate_source does); "" when c->pf_chunk is 0. malloc'd;
 * NULL when out of memory. */
char *jf_prefill_source(const jf_config *c);

/* Split operands: JF_PF_PARTS planes (2 at f16, 3 at bf16) of pf_chunk rows. */
int jf_prefill_parts(const jf_config *c);

/* Device buffers of the prefill path (device pointers in the plugin, host
 * memory in the emulated test). Weights, the KV cache, the logits and the
 * argmax key are jf_buffers'. */
typedef struct jf_prefill_buffers {
    int32_t *step;         /* (1 + pf_chunk): [0] position of the chunk's first token, then the token ids */
    float *x;              /* (pf_chunk, ld_dim) residual stream */
    float *q;              /* (pf_chunk, q_dim) queries after RoPE */
    uint16_t *act;         /* (parts, pf_chunk, max(ld_dim, ld_q)) split operand: normed x, attention output */
    uint16_t *act_h;       /* (parts, pf_chunk, ld_ff) split silu(gate) * up */
    uint64_t *scratch_key; /* (1) the argmax of LM-head groups before the last (ignored) */
} jf_prefill_buffers;

/* Bytes of each buffer above, in its order (step, x, q, act, act_h,
 * scratch_key); 0 each when c->pf_chunk is 0. Returns their sum. */
uint64_t jf_prefill_bytes(const jf_config *c, uint64_t bytes[6]);

/* Called after each LM-head launch: logits rows 0 .. count - 1 of b->logits
 * are positions first .. first + count - 1 of the chunk. Return 0 to go on. */
typedef int (*jf_logits_fn)(void *ctx, int first, int count);

/* One chunk of n <= c->pf_chunk positions whose inputs are in pb->step:
 * the embedding, every layer (see jit_fused_prefill.cuh), then (with_lm_head)
 * the LM head over positions logits_first .. n - 1, at most c->nb per launch
 * into b->logits, each followed by emit(emit_ctx, ...); b->argmax_key gets
 * the argmax of position n - 1. Returns 0, or the first non-zero result. */
int jf_prefill_forward(const jf_config *c, const jf_buffers *b, const jf_prefill_buffers *pb, int lm_grid, int n,
                       int logits_first, int with_lm_head, jf_logits_fn emit, void *emit_ctx, jf_launch_fn launch,
                       void *ctx);

#endif
