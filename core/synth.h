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
    uint64_t seed;
    int n_threads;         /* for generating weights; 0 = all cores */
    uint32_t n_rot;        /* RoPE dimensions per head (even, <= head dim); 0 = the head dimension */
    const float *rope_freqs; /* n_rot / 2 factors written as rope_freqs.weight instead of Llama-3's; NULL: none
                              * (or Llama-3's when llama3_rope). Not owned. */
} fb_synth_spec;

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
