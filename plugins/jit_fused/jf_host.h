/* jf_host.h - the half of the jit_fused backend that needs no GPU: the
 * model's shapes as the kernels see them (row strides padded to 16 bytes),
 * the device-memory plan, weight conversion into padded rows (threaded),
 * kernel source generation, NVRTC compilation and the on-disk kernel cache.
 * Kept apart from the CUDA calls so tests/test_jit_fused_host.c checks all of
 * it, NVRTC included, on a machine without a GPU. */
#ifndef FB_JF_HOST_H
#define FB_JF_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "bf16.h"
#include "fairbench/plugin.h"

/* How weights are stored on the device (the JF_WTYPE of the kernels). */
typedef enum jf_wtype { JF_F32 = 0, JF_F16 = 1, JF_BF16 = 2 } jf_wtype;

#define JF_PREFILL_POSITIONS 8 /* positions per prefill pass (JF_NB) */
#define JF_WARPS 8             /* warps per block of the matvec kernels */
#define JF_ATT_THREADS 128     /* threads per block of jf_attention */

typedef struct jf_config {
    int dim, n_layers, n_heads, n_kv_heads, head_dim, q_dim, kv_dim, n_ff, vocab, n_rot;
    int max_seq;      /* KV-cache positions allocated (not in the kernels' source) */
    int tied;         /* the LM head is token_embd */
    float rms_eps;
    jf_wtype wtype;
    int esize;        /* bytes per stored weight */
    int ld_dim, ld_q, ld_ff; /* padded row strides, in elements, of rows of dim, q_dim, n_ff */
    int nb;           /* JF_PREFILL_POSITIONS */
    int splits;       /* sequence splits of decode attention */
    int pdl;          /* programmatic dependent launch (sm_90+): 0 from jf_config_from_view; the plugin
                         sets it once it knows the device (JF_PDL in the kernels) */
} jf_config;

/* Fill c from the model view for weight type w; max_context 0 means the
 * model's n_ctx (and is capped by it). Returns 0, or -1 with a sentence. */
int jf_config_from_view(const fb_model_view *mv, uint32_t max_context, jf_wtype w, jf_config *c, char *msg,
                        size_t msg_size);

/* Elements in a row of n values once padded to a multiple of 16 bytes. */
int jf_padded(int n, int esize);

/* Device bytes by purpose. */
typedef struct jf_plan {
    uint64_t weights;     /* padded matrices at the storage type; norms, RoPE frequencies at f32 */
    uint64_t kv_cache;    /* K and V, f32, every layer and position */
    uint64_t activations; /* x, q, attention partials and output, h, logits for JF_NB positions; step inputs */
    uint64_t total;
} jf_plan;

void jf_plan_compute(const jf_config *c, jf_plan *plan);

/* Convert `rows` rows of `cols` values of GGUF type src_type into dst (rows
 * of `ld` >= cols elements of type w; the padding is zeroed), with up to
 * n_threads threads. F16 goes through host->dequantize_row_f16, F32 through
 * dequantize_row_f32, BF16 through f32 with round-to-nearest-even, as
 * cpu_ref stores them. Returns 0, -1 when the type cannot be decoded, -2
 * when out of memory. */
int jf_convert_rows(const fb_host *host, uint32_t src_type, const void *src, int64_t rows, int64_t cols, void *dst,
                    int64_t ld, jf_wtype w, int n_threads);

/* inv_freq[i] = base^(-2i / n_rot) / factors[i], in double, then rounded
 * (factors may be NULL): exactly cpu_ref's. */
void jf_rope_inv_freq(float *inv_freq, int n_rot, float base, const float *factors);

/* ------------------------------------------------------------------ code generation */

/* The kernel template (plugins/jit_fused/jit_fused_kernels.cuh), embedded at build time. */
extern const char jf_kernel_template[];

/* The CUDA C source for c: the constants, then the template. malloc'd;
 * NULL when out of memory. */
char *jf_generate_source(const jf_config *c);

/* The kernels' entry points, in the order jf_kernel_id names them. */
typedef enum jf_kernel_id {
    JF_K_EMBED, JF_K_ATTENTION, JF_K_ATTENTION_COMBINE,
    JF_K_QKV_ROPE_1, JF_K_OUT_RESIDUAL_1, JF_K_GATE_UP_1, JF_K_DOWN_RESIDUAL_1, JF_K_LM_HEAD_1,
    JF_K_QKV_ROPE_NB, JF_K_OUT_RESIDUAL_NB, JF_K_GATE_UP_NB, JF_K_DOWN_RESIDUAL_NB, JF_K_LM_HEAD_NB,
    JF_K_COUNT
} jf_kernel_id;
extern const char *const jf_kernel_names[JF_K_COUNT];

/* ------------------------------------------------------------------ one forward pass */

/* What the kernels read and write: device pointers in the plugin, host
 * memory in the emulated test (tests/test_jit_fused_emulated.c). Rows are
 * padded as jf_config says, padding zero. */
typedef struct jf_layer_buffers {
    float *attn_norm;    /* (ld_dim) f32 */
    void *w_qkv;         /* (q_dim + 2 kv_dim rows, ld_dim): W_q, W_k, W_v stacked */
    void *w_o;           /* (dim, ld_q) */
    float *ffn_norm;     /* (ld_dim) */
    void *w_gate, *w_up; /* (n_ff, ld_dim) */
    void *w_down;        /* (dim, ld_ff) */
} jf_layer_buffers;

typedef struct jf_buffers {
    void *token_embd;          /* (vocab, ld_dim) */
    jf_layer_buffers *layers;  /* n_layers (a host array) */
    float *output_norm;        /* (ld_dim) */
    void *output;              /* (vocab, ld_dim); == token_embd when tied */
    float *rope_inv_freq;      /* (n_rot / 2) */
    int32_t *step;             /* (1 + nb): [0] position of the first token, then the token ids */
    uint64_t *argmax_key;      /* (1) the argmax of the last logits row, see jf_token_of_key */
    float *x;                  /* (nb, ld_dim) residual stream */
    float *q;                  /* (nb, q_dim) */
    float *part;               /* (nb, n_heads, splits, head_dim + 2) attention partials */
    float *att;                /* (nb, ld_q) attention output */
    float *hb;                 /* (nb, ld_ff) silu(gate) * up */
    float *logits;             /* (nb, vocab) */
    float *key_cache;          /* (layer, max_seq, kv_dim) */
    float *value_cache;        /* (layer, max_seq, kv_dim) */
} jf_buffers;

/* Launch kernel k on a (gx, gy, gz) grid of `threads`-thread blocks with
 * cuLaunchKernel-style arguments; 0 on success. */
typedef int (*jf_launch_fn)(void *ctx, jf_kernel_id k, unsigned gx, unsigned gy, unsigned gz, unsigned threads,
                            void **args);

/* One forward pass over nb <= c->nb positions whose inputs are in b->step:
 * the embedding, every layer, then (with_lm_head) the LM head over
 * positions logits_first .. nb - 1 (logits rows from 0) with the argmax of
 * the last. lm_grid: blocks of the LM head's grid-stride loop. The kernels
 * and their grids, in one place for the plugin and the emulated test.
 * Returns 0, or the first launch's non-zero result. */
int jf_forward(const jf_config *c, const jf_buffers *b, int lm_grid, int nb, int logits_first, int with_lm_head,
               jf_launch_fn launch, void *ctx);

/* The token id in an argmax key (jf_argmax_key in the kernels). */
int32_t jf_token_of_key(uint64_t key);

/* ------------------------------------------------------------------ NVRTC */

/* A compiled module image: a cubin for the device's own architecture, or
 * PTX for the newest virtual architecture NVRTC knows when it does not know
 * the device's (the driver then finishes the compilation). */
typedef struct jf_image {
    void *data;
    size_t size;
    int is_ptx;
    double compile_ms;   /* 0 when it came from the cache */
    char *log;           /* NVRTC's log (ptxas -v lines included); malloc'd, may be NULL */
} jf_image;

void jf_image_free(jf_image *img);

/* NVRTC's version, "13.0"; "" when NVRTC cannot be asked. */
const char *jf_nvrtc_version(void);

/* The options jf_compile passes for compute capability major.minor, joined
 * by spaces into out; sets *is_ptx when NVRTC cannot target the device's own
 * architecture. Returns 0, or -1 with a sentence. */
int jf_compile_options(int cc_major, int cc_minor, char *out, size_t out_size, int *is_ptx, char *msg,
                       size_t msg_size);

/* Compile source for compute capability major.minor. Returns 0, or -1 with
 * a sentence in msg (the first lines of the compiler's log included). */
int jf_compile(const char *source, int cc_major, int cc_minor, jf_image *out, char *msg, size_t msg_size);

/* Total spill bytes (stores + loads) that ptxas reported in a log, or -1
 * when the log has no ptxas statistics. */
long jf_log_spill_bytes(const char *log);

/* ------------------------------------------------------------------ the on-disk cache */

/* The cache folder: cache_dir when given, else $FAIRBENCH_JIT_CACHE, else
 * $XDG_CACHE_HOME/fairbench/jit, else $HOME/.cache/fairbench/jit. */
int jf_cache_dir(const char *cache_dir, char *out, size_t out_size);

/* The cache key: SHA-256 (hex) of the source, the options, NVRTC's version
 * and the architecture. Returns 0, or -1 when out of memory. */
int jf_cache_key(const char *source, const char *options, const char *nvrtc_version, int cc_major, int cc_minor,
                  char key[65]);

/* Read the image cached under key into *out. Returns 1 on a hit, 0 when
 * there is no usable entry (absent, truncated, corrupt: *why says which). */
int jf_cache_read(const char *dir, const char *key, jf_image *out, char *why, size_t why_size);

/* Store img under key (write to a temporary file, then rename). Returns 0,
 * or -1 with a sentence. */
int jf_cache_write(const char *dir, const char *key, const jf_image *img, char *msg, size_t msg_size);

#endif
