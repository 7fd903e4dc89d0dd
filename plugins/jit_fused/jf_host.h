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

/* The profile's weight precision (the JF_WTYPE of the kernels): every
 * matrix converted to f32, f16 or bf16 at load, or JF_NATIVE: each matrix
 * kept in the file's own type (see jf_row_bytes for the device layouts). */
typedef enum jf_wtype { JF_F32 = 0, JF_F16 = 1, JF_BF16 = 2, JF_NATIVE = 3 } jf_wtype;

/* Device types of a matrix: GGUF type ids (enum ggml_type). */
enum {
    JF_T_F32 = 0,
    JF_T_F16 = 1,
    JF_T_Q4_0 = 2,
    JF_T_Q4_1 = 3,
    JF_T_Q8_0 = 8,
    JF_T_Q4_K = 12,
    JF_T_Q5_K = 13,
    JF_T_Q6_K = 14,
    JF_T_BF16 = 30
};

/* Is GGUF type t one the kernels read in place (the native types above)? */
int jf_type_supported(uint32_t t);

/* Bytes of one device row of n values of device type t (n a multiple of
 * the type's block; 0 otherwise or for an unsupported type). Layouts, each
 * row padded to a multiple of 16 bytes so that every 16-byte load is aligned:
 *   F32 F16 BF16  the values, zero padding
 *   Q8_0   [qs: n int8][d: n/32 halves]          (each part padded to 16 B)
 *   Q4_0   [qs: 16 bytes per block][d: n/32 halves]
 *   Q4_1   [qs: 16 bytes per block][(d, m): n/32 pairs of halves]
 *   Q4_K   the blocks as stored (144 = 9 x 16 bytes: d, dmin, scales[12] | qs)
 *   Q5_K   the blocks as stored (176 = 11 x 16: d, dmin, scales[12] | qh | qs)
 *   Q6_K   [ql, qh, scales: 208 bytes per block][d: n/256 halves]
 * The legacy blocks (34, 18, 20 bytes) and Q6_K's 210 are split into their
 * quants and scales: the quants then start 16-byte aligned, and the scales
 * of 32 lanes sit in one or two 32-byte sectors. */
int64_t jf_row_bytes(uint32_t t, int64_t n);

/* The types of one layer's matrices; layers with the same types share
 * kernels (a "kind": Q4_K_M files have two, most files one). */
typedef struct jf_layer_types {
    uint32_t q, k, v, o, gate, up, down;
} jf_layer_types;

#define JF_MAX_KINDS 8

#define JF_PREFILL_POSITIONS 8 /* positions per prefill pass (JF_NB) */
#define JF_WARPS 8             /* warps per block of every kernel */

typedef struct jf_config {
    int dim, n_layers, n_heads, n_kv_heads, head_dim, q_dim, kv_dim, n_ff, vocab, n_rot;
    int max_seq; /* KV-cache positions allocated (not in the kernels' source) */
    int tied;    /* the LM head is token_embd */
    float rms_eps;
    jf_wtype wtype;
    int esize;                    /* bytes per stored weight at f32/f16/bf16; 2 at native (it sets the padding) */
    int ld_dim, ld_q, ld_ff;      /* padded row strides, in elements, of activation rows of dim, q_dim, n_ff
                                     (and of the weight rows at f32/f16/bf16) */
    uint32_t embd_type, out_type; /* device types of token_embd and of the LM head */
    int n_kinds;                  /* distinct layer types (1 unless native with a mixed file) */
    jf_layer_types kinds[JF_MAX_KINDS];
    int kind_layers[JF_MAX_KINDS]; /* layers of each kind */
    int nb;                        /* JF_PREFILL_POSITIONS */
    int splits;                    /* most sequence splits of decode attention (JF_SPLITS; see jf_attention) */
    int pdl;                       /* programmatic dependent launch (sm_90+): 0 from jf_config_from_view; the plugin
                                      sets it once it knows the device (JF_PDL in the kernels) */
    int pf_chunk;                  /* positions per tensor-core prefill pass (JF_PF_CHUNK, jf_prefill.h) when every
                                      matrix is f16 or bf16; 0: prefill on CUDA cores only */
} jf_config;

/* Fill c from the model view for weight type w; max_context 0 means the
 * model's n_ctx (and is capped by it). At JF_NATIVE every matrix must be of
 * a supported type (a sentence names the first that is not). Returns 0, or
 * -1 with a sentence. */
int jf_config_from_view(const fb_model_view *mv, uint32_t max_context, jf_wtype w, jf_config *c, char *msg,
                        size_t msg_size);

/* The device type of a matrix stored in the file as file_type. */
uint32_t jf_device_type(const jf_config *c, uint32_t file_type);

/* The kind (index into c->kinds) of layer l of mv; -1 when none matches. */
int jf_layer_kind(const jf_config *c, const fb_model_view *mv, int l);

/* Elements in a row of n values once padded to a multiple of 16 bytes. */
int jf_padded(int n, int esize);

/* Device bytes by purpose. */
typedef struct jf_plan {
    uint64_t weights;     /* padded matrices at the storage type; norms, RoPE frequencies at f32 */
    uint64_t kv_cache;    /* K and V, f32, every layer and position */
    uint64_t activations; /* x, q, attention partials and output, h, logits for JF_NB positions; step inputs;
                             the tensor-core prefill's chunk buffers (jf_prefill_bytes) */
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

/* Rows of tensor data (GGUF type src_type) into device rows of type
 * dev_type (jf_row_bytes apart): through jf_convert_rows for F32/F16/BF16,
 * re-laid out byte for byte (no arithmetic) for a block type, which must
 * then be src_type. Returns as jf_convert_rows. */
int jf_layout_rows(const fb_host *host, uint32_t src_type, const void *src, int64_t rows, int64_t cols, void *dst,
                   uint32_t dev_type, int n_threads);

/* inv_freq[i] = base^(-2i / n_rot) / factors[i], in double, then rounded
 * (factors may be NULL): exactly cpu_ref's. */
void jf_rope_inv_freq(float *inv_freq, int n_rot, float base, const float *factors);

/* ------------------------------------------------------------------ code generation */

/* The kernel template (plugins/jit_fused/jit_fused_kernels.cuh), embedded at build time. */
extern const char jf_kernel_template[];

/* The CUDA C source for c: the constants, then the template. malloc'd;
 * NULL when out of memory. */
char *jf_generate_source(const jf_config *c);

/* The kernels' entry points, in the order jf_kernel_id names them. Those
 * of a layer (jf_kernel_per_layer) exist once per kind, named with "_k" and
 * the kind appended: jf_qkv_rope_1_k0. */
typedef enum jf_kernel_id {
    JF_K_EMBED,
    JF_K_ATTENTION,
    JF_K_QKV_ROPE_1,
    JF_K_OUT_RESIDUAL_1,
    JF_K_GATE_UP_1,
    JF_K_DOWN_RESIDUAL_1,
    JF_K_LM_HEAD_1,
    JF_K_QKV_ROPE_NB,
    JF_K_OUT_RESIDUAL_NB,
    JF_K_GATE_UP_NB,
    JF_K_DOWN_RESIDUAL_NB,
    JF_K_LM_HEAD_NB,
    JF_K_DECODE_STEP, /* the persistent decode step (jf_decode_step) */
    /* the tensor-core prefill (jit_fused_prefill.cuh): only where c->pf_chunk > 0 */
    JF_K_PF_NORM,
    JF_K_PF_QKV,
    JF_K_PF_ATTENTION,
    JF_K_PF_OUT,
    JF_K_PF_GATE_UP,
    JF_K_PF_DOWN,
    JF_K_COUNT
} jf_kernel_id;
extern const char *const jf_kernel_names[JF_K_COUNT];

/* 1 for the kernels of a layer (one per kind), 0 for the others. */
int jf_kernel_per_layer(jf_kernel_id k);

/* 1 when the source generated for c has kernel k (the prefill kernels exist
 * only where c->pf_chunk > 0). */
int jf_kernel_present(const jf_config *c, jf_kernel_id k);

/* The entry point's name for kind `kind` (ignored for the global ones). */
void jf_kernel_name(jf_kernel_id k, int kind, char *out, size_t out_size);

/* ------------------------------------------------------------------ one forward pass */

/* What the kernels read and write: device pointers in the plugin, host
 * memory in the emulated test (tests/test_jit_fused_emulated.c). Weight rows
 * are jf_row_bytes of their device type apart (the "ld" below is that
 * stride), activation rows ld_* floats; padding zero. */
typedef struct jf_layer_buffers {
    float *attn_norm;    /* (ld_dim) f32 */
    void *w_qkv;         /* (q_dim + 2 kv_dim rows, ld_dim): W_q, W_k, W_v stacked, each at its own row stride */
    void *w_o;           /* (dim, ld_q) */
    float *ffn_norm;     /* (ld_dim) */
    void *w_gate, *w_up; /* (n_ff, ld_dim) */
    void *w_down;        /* (dim, ld_ff) */
    int kind;            /* which kernels read this layer (jf_layer_kind) */
} jf_layer_buffers;

typedef struct jf_buffers {
    void *token_embd;         /* (vocab, ld_dim) */
    jf_layer_buffers *layers; /* n_layers (a host array) */
    float *output_norm;       /* (ld_dim) */
    void *output;             /* (vocab, ld_dim); == token_embd when tied */
    float *rope_inv_freq;     /* (n_rot / 2) */
    int32_t *step;            /* (1 + nb): [0] position of the first token, then the token ids */
    uint64_t *argmax_key;     /* (1) the argmax of the last logits row, see jf_token_of_key */
    float *x;                 /* (nb, ld_dim) residual stream */
    float *q;                 /* (nb, q_dim) */
    float *part;              /* (nb, n_heads, splits, head_dim + 2) attention partials */
    uint32_t *att_count;      /* (nb, n_kv_heads) arrivals of attention splits; zero between kernels */
    uint32_t *sync;           /* (jf_sync_words) the persistent step's counters; zero between steps */
    void *step_layers;        /* (n_layers) jf_step_layer: the layers' pointers where the step kernel reads them */
    float *att;               /* (nb, ld_q) attention output */
    float *hb;                /* (nb, ld_ff) silu(gate) * up */
    float *logits;            /* (nb, vocab) */
    float *key_cache;         /* (layer, max_seq, kv_dim) */
    float *value_cache;       /* (layer, max_seq, kv_dim) */
} jf_buffers;

/* Launch kernel k (of kind `kind` when it is a layer's) on a (gx, gy, gz)
 * grid of `threads`-thread blocks with cuLaunchKernel-style arguments; 0 on
 * success. */
typedef int (*jf_launch_fn)(void *ctx, jf_kernel_id k, int kind, unsigned gx, unsigned gy, unsigned gz,
                            unsigned threads, void **args);

/* One forward pass over nb <= c->nb positions whose inputs are in b->step:
 * the embedding, every layer, then (with_lm_head) the LM head over
 * positions logits_first .. nb - 1 (logits rows from 0) with the argmax of
 * the last. lm_grid: blocks of the LM head's grid-stride loop. The kernels
 * and their grids, in one place for the plugin and the emulated test.
 * Returns 0, or the first launch's non-zero result. */
int jf_forward(const jf_config *c, const jf_buffers *b, int lm_grid, int nb, int logits_first, int with_lm_head,
               jf_launch_fn launch, void *ctx);

/* The persistent decode step (jf_decode_step in the kernels) reads its
 * buffers from these, passed by value; every field is 8 bytes, so the C
 * and C++ layouts agree (the emulated test would fail otherwise). */
typedef struct jf_step_layer {
    const float *attn_norm;
    const void *w_qkv, *w_o;
    const float *ffn_norm;
    const void *w_gate, *w_up, *w_down;
    int64_t kind;
} jf_step_layer;

typedef struct jf_step_params {
    const int32_t *step;
    const void *token_embd;
    const jf_step_layer *layers; /* b->step_layers */
    const float *output_norm;
    const void *output;
    const float *rope_inv_freq;
    float *x, *q, *part, *att, *hb, *logits, *key_cache, *value_cache;
    uint64_t *argmax_key;
    uint32_t *sync, *att_count;
    int64_t max_seq;
} jf_step_params;

/* The layers' pointers of b in the step kernel's form (n_layers entries). */
void jf_step_layers(const jf_config *c, const jf_buffers *b, jf_step_layer *out);

/* The step kernel's arguments for b (b->step_layers must hold jf_step_layers). */
jf_step_params jf_step_params_of(const jf_config *c, const jf_buffers *b);

/* Counters of the persistent step (JF_SYNC_WORDS in the kernels). */
size_t jf_sync_words(const jf_config *c);

/* One decode step (the position and token in b->step) as one launch of the
 * persistent kernel on `grid` blocks (any number: at least one; as many as
 * the device holds at once for speed). Returns 0 or the launch's result. */
int jf_decode_persistent(const jf_config *c, const jf_buffers *b, unsigned grid, jf_launch_fn launch, void *ctx);

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
    double compile_ms; /* 0 when it came from the cache */
    char *log;         /* NVRTC's log (ptxas -v lines included); malloc'd, may be NULL */
} jf_image;

void jf_image_free(jf_image *img);

/* NVRTC's version, "13.0"; "" when NVRTC cannot be asked. */
const char *jf_nvrtc_version(void);

/* The options jf_compile passes for compute capability major.minor, joined
 * by spaces into out; sets *is_ptx when NVRTC cannot target the device's own
 * architecture. Returns 0, or -1 with a sentence. */
int jf_compile_options(int cc_major, int cc_minor, char *out, size_t out_size, int *is_ptx, char *msg, size_t msg_size);

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
