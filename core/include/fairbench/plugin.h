/* fairbench/plugin.h - the fairbench backend plugin ABI, version 1.1.
 *
 * This is the only header a backend author needs. A backend is a shared
 * object (.so) that exports exactly one symbol, FB_PLUGIN_ENTRY_SYMBOL, a
 * function returning a pointer to a constant fb_plugin table. fairbench finds
 * backends by scanning plugin folders, dlopen()s each .so, calls the entry,
 * checks the ABI numbers and sizes, and from then on talks to the backend
 * only through the table below. The plugin links against nothing of the
 * core's: what it needs from the host arrives in the fb_host table.
 *
 * Lifecycle (one backend, one model):
 *
 *     entry() -> plugin table          cheap, no allocation, no device init
 *       [factory_count/factory_get]    (1.1) a .so that publishes several backends
 *     check_option(key, value)         (1.1) is this per-backend option good?
 *     probe()                          is the hardware here? (optional to call)
 *     create(model, settings) -> session   convert and upload weights: "load time"
 *       prefill(tokens) / decode(token)    ... repeated
 *       reset()                             clear the KV cache, keep weights
 *       memory(), effective_settings()      any time between calls
 *     destroy(session)
 *
 * Threads. The host calls entry() and probe() from its main thread. All calls
 * on one session come from one thread at a time (not necessarily the same
 * one); sessions are independent of each other. A plugin may start its own
 * threads inside a call and must join or park them before the call returns.
 * Host services may be called from any thread the plugin runs.
 *
 * Errors. Every call returns an fb_status. When a session call fails,
 * last_error(session) returns one sentence saying why; probe() and create()
 * write their sentence into the caller's message buffer. A plugin never
 * exits, aborts, raises signals on purpose, or writes to stdout; it reports
 * through its status and messages, and may log through host->log.
 *
 * Versioning. ABI major changes only when a released struct changes
 * incompatibly; the host refuses a plugin of another major, naming both
 * numbers. Minor versions only append: new fields go at the end of a struct,
 * new calls at the end of fb_plugin, and every struct carries its own size,
 * so each side reads only what the other declared. A host reads a newer
 * minor's plugin (ignoring the unknown tail); an older minor's plugin simply
 * lacks the newer calls, which the host treats as absent. Released fields are
 * never reordered, removed or retyped.
 *
 * ABI 1.1 appends, and changes nothing of 1.0:
 *   - fb_model_view states the size of a tensor view and of a layer view, so
 *     per-layer tensors can be appended later: index layers with
 *     FB_MODEL_LAYER(model, i), never with model->layers[i] directly. (A 1.0
 *     plugin is always handed layers of exactly the 1.0 layout.)
 *   - per-backend options: keys of a profile's [backend.LABEL] section that
 *     the host does not know reach the plugin as key/value strings
 *     (fb_settings.options); the plugin vets each with check_option() and
 *     echoes those it used in fb_effective_settings.options;
 *   - a factory: one .so may publish several backends, each a plugin table
 *     of its own (factory_count / factory_get);
 *   - the entry point is declared below, so a plugin defining it with another
 *     signature does not compile.
 * The host services that hold no state (dequantize_row_*, row_bytes,
 * type_name) are plain functions of their arguments and keep their 1.0
 * signatures; those that act for the host (log, progress, is_cancelled)
 * take the host first.
 *
 * Ownership. Whoever allocates, frees. Pointers the host passes (model view,
 * settings, token arrays, output buffers) are owned by the host and valid for
 * the duration stated at each call. Pointers the plugin returns (strings in
 * the plugin table, last_error text) are owned by the plugin.
 *
 * Every public name carries the prefix fb_ / FB_. C99, <stdint.h> and
 * <stddef.h> only.
 */
#ifndef FAIRBENCH_PLUGIN_H
#define FAIRBENCH_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FB_ABI_MAJOR 1
#define FB_ABI_MINOR 1

/* The one exported symbol: a function of type fb_plugin_entry_fn. */
#define FB_PLUGIN_ENTRY_SYMBOL "fb_plugin_entry"

#if defined(_WIN32)
#define FB_PLUGIN_EXPORT __declspec(dllexport)
#else
#define FB_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* ------------------------------------------------------------------------ */
/* Status codes                                                              */

typedef enum fb_status {
    FB_OK = 0,
    FB_ERR_INVALID_ARGUMENT = 1, /* a NULL that must not be, a token id out of range, ... */
    FB_ERR_UNSUPPORTED = 2,      /* a setting or tensor type this backend cannot honour */
    FB_ERR_UNAVAILABLE = 3,      /* the hardware or driver is absent */
    FB_ERR_OUT_OF_MEMORY = 4,    /* host or device allocation failed */
    FB_ERR_CONTEXT_FULL = 5,     /* the position would pass the session's context length */
    FB_ERR_CANCELLED = 6,        /* host->is_cancelled() said stop */
    FB_ERR_INTERNAL = 7          /* anything else (a CUDA error, a failed compile, ...) */
} fb_status;

/* ------------------------------------------------------------------------ */
/* Host services: what the core offers the plugin.                           */

typedef enum fb_log_level { FB_LOG_DEBUG = 0, FB_LOG_INFO = 1, FB_LOG_WARN = 2, FB_LOG_ERROR = 3 } fb_log_level;

/* GGUF tensor type ids (ggml's), for fb_tensor_view.type. Only the ones the
 * host can dequantise are named here; others may appear in a model view. */
enum fb_tensor_type {
    FB_TYPE_F32 = 0, FB_TYPE_F16 = 1, FB_TYPE_Q4_0 = 2, FB_TYPE_Q4_1 = 3, FB_TYPE_Q5_0 = 6, FB_TYPE_Q5_1 = 7,
    FB_TYPE_Q8_0 = 8, FB_TYPE_Q4_K = 12, FB_TYPE_Q5_K = 13, FB_TYPE_Q6_K = 14, FB_TYPE_BF16 = 30
};

typedef struct fb_host fb_host;
struct fb_host {
    uint32_t struct_size; /* sizeof(fb_host) as the host was built */
    uint32_t abi_major, abi_minor;

    /* Log one line (no trailing newline needed). Thread-safe. `message` is
     * copied before return. */
    void (*log)(const fb_host *host, fb_log_level level, const char *message);

    /* Decode one row of n values of tensor type `type` (n a multiple of the
     * type's block size) from src to f32 / to IEEE half (uint16_t bits).
     * Bit-exact with ggml's reference. Returns 0, or -1 when the type cannot
     * be decoded or n is not a multiple of its block. Thread-safe. */
    int (*dequantize_row_f32)(uint32_t type, const void *src, float *dst, int64_t n);
    int (*dequantize_row_f16)(uint32_t type, const void *src, uint16_t *dst, int64_t n);

    /* Bytes of a row of n values of `type`; 0 when impossible. Thread-safe. */
    uint64_t (*row_bytes)(uint32_t type, int64_t n);

    /* Name of a tensor type ("Q4_1"), or "unknown". Thread-safe. */
    const char *(*type_name)(uint32_t type);

    /* Report progress of a long step (create: converting and uploading
     * weights) as a fraction in [0, 1]. Optional for the plugin to call; the
     * main job shows it on the terminal. Thread-safe. */
    void (*progress)(const fb_host *host, const char *stage, double fraction);

    /* Non-zero when the host wants the current call to stop early (time-out
     * or user interrupt): the main job raises it shortly before a call's
     * time-out, so a create() that checks it ends with FB_ERR_CANCELLED
     * rather than being killed. Long loops in create() should check it.
     * Thread-safe. */
    int (*is_cancelled)(const fb_host *host);

    void *host_data; /* the host's; plugins leave it alone */
    /* ABI 1.1+: new services are appended here. */
};

/* ------------------------------------------------------------------------ */
/* The model: a read-only view of the memory-mapped GGUF.                    */

typedef struct fb_tensor_view {
    const char *name;          /* "blk.0.attn_q.weight" */
    uint32_t type;             /* enum fb_tensor_type (ggml id) */
    uint32_t n_dims;           /* 1 or 2 for LLaMA tensors */
    int64_t ne[4];             /* ne[0] is the row length (contiguous); unused dims are 1 */
    const void *data;          /* into the mapped file; rows of host->row_bytes(type, ne[0]) bytes */
    uint64_t n_bytes;
} fb_tensor_view;

typedef struct fb_layer_view {
    /* Shapes (ne[0], ne[1]); q_dim = n_head * head_dim, kv_dim = n_head_kv * head_dim:
     * attn_norm, ffn_norm (n_embd); attn_q (n_embd, q_dim); attn_k, attn_v (n_embd, kv_dim);
     * attn_output (q_dim, n_embd); ffn_gate, ffn_up (n_embd, n_ff); ffn_down (n_ff, n_embd). */
    fb_tensor_view attn_norm, attn_q, attn_k, attn_v, attn_output;
    fb_tensor_view ffn_norm, ffn_gate, ffn_up, ffn_down;
} fb_layer_view;

/* Valid from create() until destroy() returns; the plugin must not write
 * through any pointer in it. Every shape has been validated by the host.
 *
 * The forward pass it describes (docs/forward-pass.md, step by step with the
 * cpu_ref function of each; g = n_head / n_head_kv), for a token t at
 * position p (0 after create or reset):
 *   x = row t of token_embd
 *   per layer: xb = x / sqrt(mean(x^2) + rms_eps) * attn_norm   (eps inside the root)
 *     q = attn_q xb, k = attn_k xb, v = attn_v xb                (row r of W gives output r)
 *     RoPE on each head of q and k: for i < n_rot / 2, theta = p * base^(-2i / n_rot)
 *       / rope_freqs[i] (1 without rope_freqs); the adjacent pair (a, b) = (2i, 2i+1)
 *       becomes (a cos theta - b sin theta, a sin theta + b cos theta); dimensions
 *       n_rot .. head_dim - 1 are not rotated
 *     query head h reads KV head h / g (not h % n_head_kv); scores q.k / sqrt(head_dim)
 *       over positions 0..p (causal, itself included), softmax, weighted sum of v
 *     x += attn_output (heads concatenated in order)
 *     xb = x / sqrt(mean(x^2) + rms_eps) * ffn_norm
 *     x += ffn_down (silu(ffn_gate xb) * ffn_up xb),  silu(z) = z / (1 + exp(-z))
 *   logits = output (x / sqrt(mean(x^2) + rms_eps) * output_norm); output is
 *   token_embd when tied_output; next token = argmax, the lowest id on ties.
 * Products accumulate in f32. A prefill of n tokens equals n decodes in order. */
typedef struct fb_model_view {
    uint32_t struct_size;
    const char *path;          /* the GGUF file */
    const char *name;          /* general.name, or "" */
    const char *arch;          /* "llama" */
    uint32_t n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx, n_vocab;
    uint32_t n_rot;            /* RoPE dimensions per head (<= head_dim, even) */
    float rope_freq_base;      /* theta_i = pos * base^(-2i / n_rot) */
    float rms_eps;
    /* RoPE layout: GGUF llama ("normal"): rotate adjacent pairs (2i, 2i+1)
     * within each head, for i < n_rot / 2. When rope_freqs is non-NULL
     * (Llama-3 scaling), theta_i is divided by rope_freqs->data[i] (F32). */
    const fb_tensor_view *rope_freqs;
    const fb_tensor_view *token_embd;  /* (n_embd, n_vocab) */
    const fb_tensor_view *output_norm; /* (n_embd) */
    const fb_tensor_view *output;      /* (n_embd, n_vocab); == token_embd when tied */
    int32_t tied_output;               /* 1 when output is token_embd */
    const fb_layer_view *layers;       /* n_layer entries, layer_view_size bytes apart (1.1) */
    uint64_t decode_bytes_native;      /* bytes one decode step reads at the file's types */
    /* ABI 1.1 (present when struct_size covers them): */
    uint32_t tensor_view_size;         /* sizeof(fb_tensor_view) as the host was built */
    uint32_t layer_view_size;          /* bytes from one layer view to the next */
} fb_model_view;

/* Layer i of a model view (1.1 plugins; the host fills layer_view_size). */
#define FB_MODEL_LAYER(model, i) \
    ((const fb_layer_view *)(const void *)((const char *)(model)->layers + (size_t)(i) * (model)->layer_view_size))

/* ------------------------------------------------------------------------ */
/* Settings: what the profile asks of the backend.                          */

typedef enum fb_precision {
    FB_PRECISION_F32 = 0,
    FB_PRECISION_F16 = 1,
    FB_PRECISION_BF16 = 2,
    FB_PRECISION_NATIVE = 3 /* weights kept in the file's own block formats */
} fb_precision;

typedef enum fb_jit_cache { FB_JIT_CACHE_COLD = 0, FB_JIT_CACHE_WARM = 1 } fb_jit_cache;

/* One per-backend option: a key of the profile's [backend.LABEL] section that
 * the host does not know, and its value, both as written (trimmed). */
typedef struct fb_option {
    const char *key;
    const char *value;
} fb_option;

/* Valid only during create(); copy what you keep (options too). */
typedef struct fb_settings {
    uint32_t struct_size;
    fb_precision weight_precision;     /* how weights are stored for compute */
    fb_precision accumulate_precision; /* F32 unless a profile asks otherwise */
    int32_t allow_jit;                 /* 0: no run-time code generation or compilation */
    int32_t allow_graphs;              /* 0: no CUDA graphs (or equivalent replay) */
    fb_jit_cache jit_cache;            /* COLD: ignore and overwrite any on-disk cache */
    int32_t threads;                   /* CPU threads; 0 = all cores */
    uint32_t max_context;              /* KV-cache positions to allocate; 0 = model's n_ctx */
    const char *cache_dir;             /* for JIT caches; NULL = plugin's default */
    int32_t device_index;              /* which GPU; 0 by default */
    /* ABI 1.1 (present when struct_size covers them): per-backend options,
     * in the order the profile gives them. Every one has passed
     * check_option(); create() may still refuse a combination with
     * FB_ERR_INVALID_ARGUMENT and a sentence. */
    uint32_t n_options;
    const fb_option *options;
} fb_settings;


/* What the session really does. The host compares it with the settings and
 * with the other backends; anything that differs makes the comparison
 * "unfair" in the report, so report the truth, not the request. */
typedef struct fb_effective_settings {
    uint32_t struct_size;
    fb_precision weight_precision;
    fb_precision accumulate_precision;
    int32_t jit;                /* run-time compilation used */
    int32_t graphs;             /* graph replay used */
    int32_t threads;            /* CPU threads used (0 for a GPU backend's compute) */
    int32_t kernel_cache_hit;   /* 1 hit, 0 miss, -1 not applicable */
    char device[128];           /* "CPU: <model>, AVX2" / "NVIDIA H100 80GB HBM3 (sm_90)" */
    char notes[256];            /* anything else a reader of the report should know */
    /* ABI 1.1 (present when struct_size covers it): the per-backend options
     * in effect, "key=value" joined by ", ", including the defaults the
     * plugin chose for options it knows and the profile left out when they
     * matter to fairness. The host hands it zeroed, so a backend with no
     * options may leave it alone. */
    char options[256];
} fb_effective_settings;

typedef struct fb_memory_stats {
    uint32_t struct_size;
    uint64_t device_bytes;      /* now, allocated by this session on the device (0 for CPU) */
    uint64_t device_peak_bytes; /* high-water mark since create() */
    uint64_t host_bytes;        /* host memory this session allocated (weights, caches, buffers) */
} fb_memory_stats;

typedef struct fb_probe_result {
    uint32_t struct_size;
    int32_t available;          /* 1: create() can work here */
    char device[128];           /* what would run it */
    char reason[256];           /* when not available: why, in one sentence */
} fb_probe_result;

/* Capability bits (fb_plugin.capabilities). */
#define FB_CAP_CPU            (1u << 0)
#define FB_CAP_GPU            (1u << 1)
#define FB_CAP_PRECISION_F32  (1u << 2)
#define FB_CAP_PRECISION_F16  (1u << 3)
#define FB_CAP_PRECISION_BF16 (1u << 4)
#define FB_CAP_PRECISION_NATIVE (1u << 5)
#define FB_CAP_JIT            (1u << 6)
#define FB_CAP_GRAPHS         (1u << 7)
#define FB_CAP_THREADS        (1u << 8)  /* honours fb_settings.threads */
#define FB_CAP_COPY_PROBE     (1u << 9)  /* copy_bandwidth is provided */

/* Prefill flags: which logits to write. */
#define FB_LOGITS_NONE 0u
#define FB_LOGITS_LAST 1u /* logits has n_vocab floats: the last position's */
#define FB_LOGITS_ALL  2u /* logits has n_tokens * n_vocab floats, position-major */

/* ------------------------------------------------------------------------ */
/* The plugin table                                                          */

typedef struct fb_session fb_session; /* the plugin's own, opaque to the host */

/* (ABI 1.1, profiling) One entry of a kernel-name-to-class table (see
 * fb_plugin.kernel_classes). */
typedef struct fb_kernel_class {
    const char *match; /* a substring of kernel or span names, matched case-insensitively */
    const char *kclass; /* "matvec", "attention", "norm", "rope_kv", "elementwise", "argmax", "copy" or "other" */
    uint64_t bytes;    /* bytes one launch reads and writes at this session's shapes (mean over
                        * the launches it matches); 0: unknown */
} fb_kernel_class;

typedef struct fb_plugin {
    uint32_t abi_major;   /* FB_ABI_MAJOR the plugin was built with */
    uint32_t abi_minor;   /* FB_ABI_MINOR the plugin was built with */
    uint32_t struct_size; /* sizeof(fb_plugin) as the plugin was built */
    uint32_t capabilities;/* FB_CAP_* */
    const char *name;     /* unique backend name, [a-z0-9_]+, e.g. "cpu_ref" */
    const char *version;  /* the plugin's own version, e.g. "1.0.0" */
    const char *description; /* one line */

    /* Is this backend's hardware here? Cheap; no session needed. Fills *out
     * (out->struct_size is set by the host). Returns FB_OK whether or not
     * the hardware is available; an error status only when probing itself
     * failed. [main thread] */
    fb_status (*probe)(const fb_host *host, fb_probe_result *out);

    /* Build a session: convert weights to settings->weight_precision, upload
     * them, allocate the KV cache for settings->max_context positions. On
     * failure returns a status, writes one sentence into message (size
     * message_size, always NUL-terminated) and sets *out = NULL. A setting
     * the backend cannot honour at all is FB_ERR_UNSUPPORTED, never a
     * silent substitute. `model` stays valid until destroy() returns;
     * `settings` only during this call; `host` for the plugin's lifetime. */
    fb_status (*create)(const fb_host *host, const fb_model_view *model, const fb_settings *settings,
                        fb_session **out, char *message, size_t message_size);

    /* Run n_tokens tokens (n_tokens >= 1) at the session's next positions
     * (0 after create or reset), filling the KV cache. Writes the argmax of
     * the last position's logits to *next_token (lowest id on ties) and, per
     * flags (FB_LOGITS_*), logits to the host's buffer (NULL when NONE).
     * Token ids must be < n_vocab. FB_ERR_CONTEXT_FULL leaves the session
     * unchanged. */
    fb_status (*prefill)(fb_session *s, const int32_t *tokens, uint32_t n_tokens, uint32_t flags, float *logits,
                         int32_t *next_token);

    /* Run one token at the next position; *next_token = argmax (computed
     * where the logits live: on the device for a GPU backend). When logits
     * is non-NULL, also copy the n_vocab logits there (for verification;
     * the timed path passes NULL). */
    fb_status (*decode)(fb_session *s, int32_t token, float *logits, int32_t *next_token);

    /* Forget all positions (clear the KV cache); weights stay. */
    fb_status (*reset)(fb_session *s);

    /* Current and peak memory of this session. out->struct_size set by host. */
    fb_status (*memory)(fb_session *s, fb_memory_stats *out);

    /* What this session really does (see fb_effective_settings). */
    fb_status (*effective_settings)(fb_session *s, fb_effective_settings *out);

    /* The sentence explaining the last failed call on s; "" if none. Owned
     * by the session, valid until the next call on s. */
    const char *(*last_error)(fb_session *s);

    /* Free everything of s (NULL is allowed). */
    void (*destroy)(fb_session *s);

    /* (optional, may be NULL) Measure the device's copy bandwidth in bytes
     * per second (bytes read + bytes written per second of a large
     * device-to-device copy): the roofline ceiling for a GPU backend. */
    fb_status (*copy_bandwidth)(fb_session *s, double *bytes_per_second);

    /* ---- ABI 1.1 (read only when struct_size covers them) ---- */

    /* (optional) Vet one per-backend option before any session exists: FB_OK
     * when the backend knows `key` and `value` is acceptable; otherwise
     * FB_ERR_INVALID_ARGUMENT (unknown key) or FB_ERR_UNSUPPORTED (a value it
     * cannot honour) and one sentence in message (size message_size,
     * NUL-terminated), e.g. "unknown option 'flash_atn' (known: flash_attn,
     * n_batch)". NULL: the backend takes no options, and the host refuses
     * every one for it. Cheap, no device work. [main thread] */
    fb_status (*check_option)(const fb_host *host, const char *key, const char *value, char *message,
                              size_t message_size);

    /* (optional) A factory: a .so whose entry table has factory_count
     * non-NULL publishes factory_count() backends, each its own table got
     * with factory_get(i) (0 <= i < count), valid until the .so is unloaded.
     * Each published table is a complete backend (its own name, probe,
     * create, ...; its own factory calls NULL) and is vetted like any
     * plugin. The entry table of a factory is only a container: the host
     * uses none of its other calls (they may be NULL) and lists it under its
     * name only when it publishes nothing. Both calls may look at the file
     * system (to find backend modules) but start no device, interpreter or
     * thread. [main thread] */
    uint32_t (*factory_count)(const fb_host *host);
    const struct fb_plugin *(*factory_get)(const fb_host *host, uint32_t index);

    /* ---- ABI 1.1, profiling (optional, NULL = absent; check with
     * FB_PLUGIN_HAS(api, profile_spans) before reading) ---- */

    /* (optional) Named spans of a step, for the profiling pass only (never
     * during timed repetitions). The host calls it on a session between
     * calls, from the session's thread: with a non-NULL sink to start, NULL
     * to stop. While started, each prefill()/decode() calls
     * sink(sink_data, name, layer, begin_ns, end_ns) once per span, from the
     * thread that made the session call, before that call returns (a plugin
     * with worker threads times a span on the calling thread around the
     * parallel work). name: owned by the plugin, valid until it is unloaded
     * ("attn_q", "rope"; classed by the kernel-name table); layer: the layer
     * index, -1 outside the layers; times: CLOCK_MONOTONIC nanoseconds. Spans
     * do not overlap and should cover the step. FB_ERR_UNSUPPORTED when the
     * session cannot. */
    fb_status (*profile_spans)(fb_session *s,
                               void (*sink)(void *sink_data, const char *name, int32_t layer, uint64_t begin_ns,
                                            uint64_t end_ns),
                               void *sink_data);

    /* (optional) Refine the host's kernel-name-to-class table for this
     * session: *table gets *n entries, owned by the session and valid until
     * destroy(); they are matched before the host's own, first match wins.
     * An entry may also say how many bytes a launch moves, so the host can
     * give that kernel's achieved bandwidth. [session's thread, between
     * calls] */
    fb_status (*kernel_classes)(fb_session *s, const fb_kernel_class **table, uint32_t *n);

    /* ABI 1.2+: new calls are appended here. */
} fb_plugin;

/* The size of the ABI 1.0 table: the host refuses a plugin declaring less. */
#define FB_PLUGIN_V1_0_SIZE (offsetof(fb_plugin, copy_bandwidth) + sizeof(void (*)(void)))
/* True when a plugin table declares call `field` (a newer minor's call). */
#define FB_PLUGIN_HAS(api, field) ((api)->struct_size >= offsetof(fb_plugin, field) + sizeof((api)->field))

/* The entry point. Called once after dlopen, from the host's main thread;
 * cheap (no allocation, no device initialisation). Returns a table that
 * stays valid until the .so is unloaded, or NULL when the plugin cannot
 * serve this host at all. A plugin defines it as:
 *
 *     FB_PLUGIN_EXPORT const fb_plugin *fb_plugin_entry(void) { return &my_plugin; }
 */
typedef const fb_plugin *(*fb_plugin_entry_fn)(void);

/* Declared here so that a plugin defining it with another signature fails to
 * compile. (The host never defines it; it finds it with dlsym.) */
FB_PLUGIN_EXPORT const fb_plugin *fb_plugin_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* FAIRBENCH_PLUGIN_H */
