/* synth.h - synthetic LLaMA models: valid GGUF files with seeded random
 * weights of realistic scale, for tests and for GPU benchmarks where no real
 * model of the right size can be copied. */
#ifndef FB_SYNTH_H
#define FB_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "fb_error.h"

typedef struct fb_synth_spec {
    char preset[32];       /* for the file's general.name */
    uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    float rope_freq_base, rms_eps;
    bool tied_output;      /* no output.weight: the LM head is token_embd */
    bool llama3_rope;      /* write rope_freqs.weight (Llama-3 scaling, factor 32) */
    char tokenizer_pre[32];/* tokenizer.ggml.pre */
    uint32_t type;         /* storage type of the weight matrices (enum gguf_type) */
    int mix;               /* FB_SYNTH_MIX_*: types per tensor as a llama.cpp mix lays them out (type ignored) */
    uint64_t seed;
    int n_threads;         /* for generating weights; 0 = all cores */
    uint32_t n_rot;        /* RoPE dimensions per head (even, <= head dim); 0 = the head dimension */
    const float *rope_freqs; /* n_rot / 2 factors written as rope_freqs.weight instead of Llama-3's; NULL: none
                              * (or Llama-3's when llama3_rope). Not owned. */
} fb_synth_spec;

/* Mixes: the types llama.cpp's quantizer (llama_tensor_get_type) gives each
 * tensor for these file types, without an importance matrix:
 *   Q4_K_M  Q4_K everywhere, except Q6_K for output.weight (token_embd.weight
 *           when the output is tied to it), and for attn_v and ffn_down in
 *           the layers i of n where use_more_bits(i, n):
 *           i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2
 *   Q5_K_M  the same with Q5_K in place of Q4_K
 * A matrix whose rows are not whole 256-value blocks is stored as F16
 * (llama.cpp would fall back to Q5_0/Q5_1/Q8_0 instead). */
enum { FB_SYNTH_MIX_NONE = 0, FB_SYNTH_MIX_Q4_K_M = 1, FB_SYNTH_MIX_Q5_K_M = 2 };

/* Mix by name ("q4_k_m", case-insensitive); -1 when unknown. */
int fb_synth_mix_from_name(const char *name);

/* The type spec gives the 2-D tensor `name` (GGUF name; layer from it). */
uint32_t fb_synth_tensor_type(const fb_synth_spec *spec, const char *name);

/* Fill spec from a named preset (tiny, smollm2-135m, llama3.2-1b, llama3-8b);
 * -1 when the name is unknown. Type defaults to F32 for tiny, F16 otherwise. */
int fb_synth_preset(const char *name, fb_synth_spec *spec);

/* Comma-separated preset names, for help texts. */
const char *fb_synth_preset_names(void);

/* Write the model to path. Matrices whose row length is not a multiple of
 * the type's block size are stored as F16 instead, and counted in
 * *n_fallback (may be NULL). */
int fb_synth_write(const fb_synth_spec *spec, const char *path, int *n_fallback, fb_error *err);

#endif
