/* model.h - a LLaMA model as the core sees it: hyper-parameters from the
 * `llama.*` metadata and the map of named tensors, every shape validated.
 *
 * Tensor shapes in GGUF order (ne[0] first, the contiguous row):
 *   token_embd            [n_embd, n_vocab]
 *   blk.N.attn_norm       [n_embd]                  blk.N.ffn_norm  [n_embd]
 *   blk.N.attn_q          [n_embd, n_head * head_dim]
 *   blk.N.attn_k/attn_v   [n_embd, n_head_kv * head_dim]
 *   blk.N.attn_output     [n_head * head_dim, n_embd]
 *   blk.N.ffn_gate/ffn_up [n_embd, n_ff]            blk.N.ffn_down  [n_ff, n_embd]
 *   output_norm           [n_embd]
 *   output                [n_embd, n_vocab]  (absent: tied to token_embd)
 *   rope_freqs            [n_rot / 2]        (optional, Llama-3 RoPE scaling)
 */
#ifndef FB_MODEL_H
#define FB_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "fb_error.h"
#include "gguf.h"

typedef struct fb_hparams {
    uint32_t n_embd;      /* llama.embedding_length */
    uint32_t n_layer;     /* llama.block_count */
    uint32_t n_head;      /* llama.attention.head_count */
    uint32_t n_head_kv;   /* llama.attention.head_count_kv (default n_head) */
    uint32_t head_dim;    /* llama.attention.key_length (default n_embd / n_head) */
    uint32_t n_ff;        /* llama.feed_forward_length */
    uint32_t n_ctx;       /* llama.context_length */
    uint32_t n_vocab;     /* llama.vocab_size, else the tokenizer's size, else token_embd */
    uint32_t n_rot;       /* llama.rope.dimension_count (default head_dim) */
    float rope_freq_base; /* llama.rope.freq_base (default 10000) */
    float rms_eps;        /* llama.attention.layer_norm_rms_epsilon */
} fb_hparams;

typedef struct fb_layer {
    const gguf_tensor *attn_norm, *attn_q, *attn_k, *attn_v, *attn_output;
    const gguf_tensor *ffn_norm, *ffn_gate, *ffn_up, *ffn_down;
} fb_layer;

typedef struct fb_model {
    gguf_file *file; /* owned */
    char arch[32];
    char name[128]; /* general.name, or "" */
    fb_hparams hp;
    const gguf_tensor *token_embd, *output_norm;
    const gguf_tensor *output; /* == token_embd when tied */
    bool tied_output;
    const gguf_tensor *rope_freqs; /* NULL when absent */
    fb_layer *layers;              /* n_layer entries, owned */
    /* Tokenizer summary (the tokenizer module reads the details). */
    char tokenizer_model[32]; /* tokenizer.ggml.model, or "" */
    char tokenizer_pre[64];   /* tokenizer.ggml.pre, or "" */
    uint64_t tokenizer_n_tokens;
    uint64_t tokenizer_n_merges;
} fb_model;

/* Open, parse and validate a LLaMA GGUF. Errors name the file and what is
 * wrong: an unsupported architecture, a missing key or tensor, a shape that
 * disagrees with the hyper-parameters. */
int fb_model_open(const char *path, fb_model **out, fb_error *err);
/* Same over an already-parsed file; takes ownership of f on success only. */
int fb_model_from_gguf(gguf_file *f, fb_model **out, fb_error *err);
void fb_model_close(fb_model *m);

/* Bytes of weights that one decode step reads when every matrix is stored in
 * `type` (GGUF_TYPE_F32, GGUF_TYPE_F16 ...), or in the file's own types when
 * type < 0. Norm vectors are counted at f32; the embedding contributes one
 * row (a gather), except when tied, where the LM head reads all of it.
 * Returns 0 when some matrix cannot be stored in `type` (row length). */
uint64_t fb_model_decode_bytes(const fb_model *m, int type);

/* KV-cache bytes per position at the given element size (K and V, all layers). */
uint64_t fb_model_kv_bytes_per_pos(const fb_model *m, uint32_t elem_bytes);

/* Total parameter count. */
uint64_t fb_model_n_params(const fb_model *m);

#endif
