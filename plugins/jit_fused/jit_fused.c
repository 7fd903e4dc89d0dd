/* jit_fused.c - the CUDA backend in the style of a JIT framework.
 *
 * At create(), the kernels of plugins/jit_fused/jit_fused_kernels.cuh are specialised for this
 * model's shapes and the profile's precision (jf_generate_source), compiled
 * by NVRTC for the device's own architecture, cached on disk, and loaded
 * through the driver API. A decode step is 2 + 6 * n_layer fused launches
 * (the kernel list is at the top of jit_fused_kernels.cuh), captured once as a CUDA
 * graph with its input and output copies, and replayed at every position:
 * the position and token live in device memory, and decode attention sizes
 * its sequence splits from them, so one graph serves the whole context.
 * Prefill of a long prompt at f16 or bf16 runs on tensor cores, 1024 positions
 * per pass (plugins/jit_fused/jit_fused_prefill.cuh, jf_prefill.h); short
 * prompts, and f32 or native weights, run the decode kernels over 8
 * positions per pass.
 *
 * Precision: weights stored at the profile's f32, f16 or bf16 (converted on
 * the host at load, quantised types dequantised), or at `native` in the
 * file's own types, each matrix its own (Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K
 * read in place and decoded in registers; F32, F16, BF16 as they are; see
 * jf_row_bytes for the device layouts and docs/quantized-gpu.md); every
 * product accumulated in f32; norms, activations and the KV cache f32, as
 * cpu_ref's.
 *
 * Loading (jf_upload.h): every weight in one device allocation, the arena
 * (one cudaMalloc, zeroed, each weight 256-byte aligned, W_q, W_k, W_v
 * stacked). A pool of worker threads, one per CPU the process may use,
 * converts chunks of rows (up to 4 MiB of device rows of one tensor) from
 * the mapped file into a ring of page-locked staging buffers, each worker
 * first asking the kernel to map its chunk's pages (MADV_POPULATE_READ);
 * same-type F32/F16/BF16 rows are copied, others go through jf_layout_rows.
 * This thread enqueues each finished buffer's cudaMemcpyAsync and an event
 * on the stream as soon as it is ready, and hands a buffer out again once
 * its event has completed, so conversion and copies overlap. Pageable
 * buffers when page-locked memory is refused (a warning; the notes say so).
 * Progress through host->progress, cancellation between chunks.
 *
 * The driver API (module loading, launches) is reached through the CUDA
 * runtime's cudaGetDriverEntryPointByVersion, so the plugin links no
 * libcuda and loads on a machine without a driver (probe then says why).
 *
 * Errors: every CUDA, driver and NVRTC call is checked; a failure becomes a
 * status and a sentence naming the call, file:line and CUDA's own words.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cuda.h>
#include <cuda_runtime_api.h>

#include "fairbench/plugin.h"
#include "fb_cuda_common.h"
#include "jf_host.h"
#include "jf_upload.h"
#include "jf_prefill.h"

#define JIT_FUSED_VERSION "1.0.0"

// ----------------------------------------------------------------------------
// Per-backend options (ABI 1.1): [backend.LABEL] decode = persistent | kernels

#define KNOWN_OPTIONS "decode (persistent or kernels)"

/* Apply key = value to *persistent; 0, or -1 with a sentence and a status. */
static int apply_option(bool *persistent, const char *key, const char *value, fb_status *status, char *message,
                        size_t message_size) {
    if (strcmp(key, "decode") == 0) {
        if (strcmp(value, "persistent") == 0 || strcmp(value, "kernels") == 0) {
            *persistent = strcmp(value, "persistent") == 0;
            return 0;
        }
        *status = FB_ERR_INVALID_ARGUMENT;
        snprintf(message, message_size,
                 "decode = '%.40s' is not 'persistent' (one kernel runs the whole step) or 'kernels' (one kernel per "
                 "fused op, about 5 per layer)",
                 value);
        return -1;
    }
    *status = FB_ERR_INVALID_ARGUMENT;
    snprintf(message, message_size, "unknown option '%.60s' (known: %s)", key, KNOWN_OPTIONS);
    return -1;
}

static fb_status jit_fused_check_option(const fb_host *host, const char *key, const char *value, char *message,
                                        size_t message_size) {
    (void)host;
    bool scratch = true;
    fb_status st = FB_OK;
    char sentence[256];
    if (message && message_size) message[0] = '\0';
    if (apply_option(&scratch, key, value, &st, sentence, sizeof sentence) == 0) return FB_OK;
    if (message && message_size) snprintf(message, message_size, "%s", sentence);
    return st;
}

// ----------------------------------------------------------------------------
// Driver API entry points (resolved through the runtime; no libcuda link)

typedef CUresult (*pfn_ModuleLoadData)(CUmodule *, const void *);
typedef CUresult (*pfn_ModuleUnload)(CUmodule);
typedef CUresult (*pfn_ModuleGetFunction)(CUfunction *, CUmodule, const char *);
typedef CUresult (*pfn_LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                                     CUstream, void **, void **);
typedef CUresult (*pfn_LaunchKernelEx)(const CUlaunchConfig *, CUfunction, void **, void **);
typedef CUresult (*pfn_GetErrorString)(CUresult, const char **);
typedef CUresult (*pfn_OccupancyMaxActiveBlocksPerMultiprocessor)(int *, CUfunction, int, size_t);

typedef struct Driver {
    pfn_ModuleLoadData module_load_data;
    pfn_ModuleUnload module_unload;
    pfn_ModuleGetFunction module_get_function;
    pfn_LaunchKernel launch_kernel;
    pfn_LaunchKernelEx launch_kernel_ex; // with programmatic dependent launch (sm_90+)
    pfn_GetErrorString get_error_string;
    pfn_OccupancyMaxActiveBlocksPerMultiprocessor occupancy;
} Driver;

struct fb_session {
    const fb_host *host;
    jf_config c;
    fb_precision precision;
    Driver drv;
    jf_buffers b;          // device pointers: weights, activations, KV cache
    jf_prefill_buffers pb; // device pointers: the tensor-core prefill's chunk (when c.pf_chunk > 0)
    int32_t *h_step;       // host, page-locked: (1 + max(nb, pf_chunk)) step inputs
    uint64_t *h_key;       // host, page-locked: the argmax key
    int device, cc_major, cc_minor, sm_count;
    char device_name[128];
    cudaStream_t stream;
    CUmodule module;
    CUfunction fn[JF_K_COUNT][JF_MAX_KINDS]; // [k][kind]; the global kernels at kind 0
    int lm_grid;                             // blocks of the LM-head kernels (a grid-stride loop)
    bool persistent;                         // decode = persistent: one jf_decode_step per step
    int step_grid;                           // its blocks: as many as the GPU holds at once
    int pos;                                 // next position to fill
    // device memory: our own accounting, and cudaMemGetInfo's view
    fbc_memory mem; // device memory: our allocations and cudaMemGetInfo's view
    uint64_t host_bytes;
    // JIT
    int cache_hit; // 1: kernels from the disk cache; 0: compiled here
    double compile_ms, module_ms;
    char jit_note[200];
    // CUDA graph
    bool allow_graphs, graphs_failed;
    cudaGraphExec_t graph;
    uint64_t graph_replays;
    size_t graph_nodes; // nodes of the captured decode graph (0: none)
    char notes[256];
    char load_note[64]; // "" or what the weights' upload could not have (page-locked staging)
    char error[512];
    fb_kernel_class classes[8]; // kernel_classes: the profiling pass's table
};

static fb_status fail(fb_session *s, fb_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static fb_status fail(fb_session *s, fb_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
    return status;
}

static fb_status cuda_fail(fb_session *s, cudaError_t err, const char *call, const char *file, int line) {
    return fbc_cuda_fail(s->error, sizeof s->error, "jit_fused", err, call, file, line);
}

static fb_status cu_fail(fb_session *s, CUresult res, const char *call, const char *file, int line) {
    const char *text = NULL;
    if (!s->drv.get_error_string || s->drv.get_error_string(res, &text) != CUDA_SUCCESS || !text)
        text = "unknown error";
    fb_status st = res == CUDA_ERROR_OUT_OF_MEMORY ? FB_ERR_OUT_OF_MEMORY
                   : res == CUDA_ERROR_NO_BINARY_FOR_GPU || res == CUDA_ERROR_UNSUPPORTED_PTX_VERSION
                       ? FB_ERR_UNAVAILABLE
                       : FB_ERR_INTERNAL;
    return fail(s, st, "jit_fused: %s failed at %s:%d: %s (CUresult %d)", call, fbc_base_name(file), line, text,
                (int)res);
}

#define CUDA_CHECK(s, call)                                                              \
    do {                                                                                 \
        cudaError_t err_ = (call);                                                       \
        if (err_ != cudaSuccess) return cuda_fail((s), err_, #call, __FILE__, __LINE__); \
    } while (0)
#define CU_CHECK(s, call)                                                               \
    do {                                                                                \
        CUresult res_ = (call);                                                         \
        if (res_ != CUDA_SUCCESS) return cu_fail((s), res_, #call, __FILE__, __LINE__); \
    } while (0)
#define TRY(call)                     \
    do {                              \
        fb_status st_ = (call);       \
        if (st_ != FB_OK) return st_; \
    } while (0)

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static fb_status resolve_driver(fb_session *s) {
    static const char *names[] = {"cuModuleLoadData",
                                  "cuModuleUnload",
                                  "cuModuleGetFunction",
                                  "cuLaunchKernel",
                                  "cuLaunchKernelEx",
                                  "cuGetErrorString",
                                  "cuOccupancyMaxActiveBlocksPerMultiprocessor"};
    void **slots[] = {
        (void **)&s->drv.module_load_data, (void **)&s->drv.module_unload,    (void **)&s->drv.module_get_function,
        (void **)&s->drv.launch_kernel,    (void **)&s->drv.launch_kernel_ex, (void **)&s->drv.get_error_string,
        (void **)&s->drv.occupancy};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        enum cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
        cudaError_t err = cudaGetDriverEntryPointByVersion(names[i], slots[i], 12000, cudaEnableDefault, &found);
        if (err != cudaSuccess || found != cudaDriverEntryPointSuccess || !*slots[i]) {
            (void)cudaGetLastError();
            return fail(s, FB_ERR_UNAVAILABLE, "jit_fused: the CUDA driver does not provide %s", names[i]);
        }
    }
    return FB_OK;
}

// ----------------------------------------------------------------------------
// Device memory with accounting

static fb_status dev_alloc(fb_session *s, void **out, size_t bytes, const char *what) {
    cudaError_t err = fbc_memory_alloc(&s->mem, out, bytes, "jit_fused", what, s->error, sizeof s->error);
    return err == cudaSuccess ? FB_OK : fbc_status_of_cuda(err);
}

#define DEV_ALLOC(s, ptr, bytes, what)             \
    do {                                           \
        void *p_;                                  \
        TRY(dev_alloc((s), &p_, (bytes), (what))); \
        (ptr) = p_;                                \
    } while (0)

// ----------------------------------------------------------------------------
// Loading: every weight in one device allocation (the arena), filled by
// jf_upload's pipeline (jf_upload.h): worker threads convert chunks of rows
// from the mapped file into a ring of page-locked buffers while this thread
// enqueues each finished buffer's copy on the stream; an event per buffer
// says when its copy has read it and it may be refilled. Below: the CUDA
// side of that pipeline (jf_upload_device), then load_weights.

typedef struct CudaUpload {
    fb_session *s;
    uint8_t *arena;
    cudaEvent_t copied[JF_UPLOAD_MAX_SLOTS]; // per staging buffer, created at its first copy
} CudaUpload;

static void *cuda_staging_alloc(void *ctx, size_t bytes, int *pinned) {
    (void)ctx;
    void *block = NULL;
    *pinned = cudaMallocHost(&block, bytes) == cudaSuccess;
    if (*pinned) return block;
    cudaGetLastError(); // pageable staging works too: each copy then holds this thread while it reads
    return malloc(bytes);
}

static void cuda_staging_free(void *ctx, void *block, int pinned) {
    (void)ctx;
    if (pinned) cudaFreeHost(block);
    else
        free(block);
}

static int cuda_upload_failed(cudaError_t err, const char *call, int line, char *msg, size_t msg_size) {
    fbc_cuda_fail(msg, msg_size, "jit_fused", err, call, __FILE__, line);
    return -1;
}

static int cuda_copy(void *ctx, int slot, uint64_t dst_offset, const void *src, size_t bytes, char *msg,
                     size_t msg_size) {
    CudaUpload *u = ctx;
    cudaError_t err;
    if (!u->copied[slot] && (err = cudaEventCreateWithFlags(&u->copied[slot], cudaEventDisableTiming)) != cudaSuccess) {
        u->copied[slot] = NULL;
        return cuda_upload_failed(err, "cudaEventCreateWithFlags (an upload buffer's event)", __LINE__, msg, msg_size);
    }
    err = cudaMemcpyAsync(u->arena + dst_offset, src, bytes, cudaMemcpyHostToDevice, u->s->stream);
    if (err != cudaSuccess)
        return cuda_upload_failed(err, "cudaMemcpyAsync (weights to the device)", __LINE__, msg, msg_size);
    err = cudaEventRecord(u->copied[slot], u->s->stream);
    return err == cudaSuccess
               ? 0
               : cuda_upload_failed(err, "cudaEventRecord (an upload buffer's event)", __LINE__, msg, msg_size);
}

static int cuda_wait(void *ctx, int slot, char *msg, size_t msg_size) {
    CudaUpload *u = ctx;
    cudaError_t err = cudaEventSynchronize(u->copied[slot]);
    return err == cudaSuccess
               ? 0
               : cuda_upload_failed(err, "cudaEventSynchronize (an upload buffer's copy)", __LINE__, msg, msg_size);
}

static int cuda_drain(void *ctx, char *msg, size_t msg_size) {
    CudaUpload *u = ctx;
    cudaError_t err = cudaStreamSynchronize(u->s->stream);
    return err == cudaSuccess
               ? 0
               : cuda_upload_failed(err, "cudaStreamSynchronize (end of the weights' upload)", __LINE__, msg, msg_size);
}

/* The arena through the pipeline; the RoPE frequencies, computed here, with them. */
static fb_status upload_weights(fb_session *s, const fb_model_view *mv, const fb_tensor_view *rope) {
    jf_upload_item *items = NULL;
    size_t n_items = 0;
    uint64_t arena_bytes = 0;
    char msg[600];
    int rc = jf_upload_items(&s->c, mv, rope, &items, &n_items, &arena_bytes, msg, sizeof msg);
    if (rc != 0) return fail(s, rc == -2 ? FB_ERR_OUT_OF_MEMORY : FB_ERR_UNSUPPORTED, "%s", msg);
    CudaUpload u = {.s = s};
    fb_status st = dev_alloc(s, (void **)&u.arena, arena_bytes, "the weights");
    if (st == FB_OK) { // row padding, alignment gaps and the norms' tails read as zero
        cudaError_t err = cudaMemsetAsync(u.arena, 0, arena_bytes, s->stream);
        if (err != cudaSuccess) st = cuda_fail(s, err, "cudaMemsetAsync (the weights)", __FILE__, __LINE__);
    }
    jf_upload_stats stats = {0};
    if (st == FB_OK) {
        jf_upload_bind(items, n_items, u.arena, s->c.tied, &s->b);
        jf_upload_device dev = {.ctx = &u,
                                .staging_alloc = cuda_staging_alloc,
                                .staging_free = cuda_staging_free,
                                .copy = cuda_copy,
                                .wait = cuda_wait,
                                .drain = cuda_drain};
        // To measure what they give: FAIRBENCH_JIT_LOAD_THREADS=N workers (default: every CPU this
        // process may use), FAIRBENCH_JIT_PREFAULT=0 (no madvise of the file's pages).
        const char *threads = getenv("FAIRBENCH_JIT_LOAD_THREADS"), *prefault = getenv("FAIRBENCH_JIT_PREFAULT");
        jf_upload_options options = {.threads = threads ? atoi(threads) : 0,
                                     .no_prefault = prefault && strcmp(prefault, "0") == 0};
        st = jf_upload_run(s->host, items, n_items, &options, &dev, &stats, msg, sizeof msg);
        if (st != FB_OK) fail(s, st, "%s", msg);
    }
    for (int k = 0; k < JF_UPLOAD_MAX_SLOTS; k++)
        if (u.copied[k]) cudaEventDestroy(u.copied[k]);
    free(items);
    if (st == FB_OK && !stats.pinned) {
        snprintf(s->load_note, sizeof s->load_note, "; weights staged in pageable memory");
        s->host->log(s->host, FB_LOG_WARN,
                     "jit_fused: page-locked memory refused for the upload buffers: weights staged in pageable "
                     "memory, so each copy holds the loading thread");
    }
    if (st == FB_OK) {
        snprintf(msg, sizeof msg,
                 "jit_fused: %.1f MB of the file into %.1f MB of device rows: %d threads, %d %s buffers of %zu MiB, "
                 "%" PRIu64 " copies",
                 stats.file_bytes / 1e6, stats.device_bytes / 1e6, stats.threads, stats.slots,
                 stats.pinned ? "page-locked" : "pageable", stats.slot_bytes >> 20, stats.chunks);
        s->host->log(s->host, FB_LOG_DEBUG, msg);
    }
    return st;
}

static fb_status load_weights(fb_session *s, const fb_model_view *mv) {
    const jf_config *c = &s->c;
    s->b.layers = calloc((size_t)c->n_layers, sizeof *s->b.layers);
    if (!s->b.layers) return fail(s, FB_ERR_OUT_OF_MEMORY, "jit_fused: out of host memory");
    s->host_bytes += (uint64_t)c->n_layers * sizeof *s->b.layers;
    for (int l = 0; l < c->n_layers; l++) {
        s->b.layers[l].kind = jf_layer_kind(c, mv, l);
        if (s->b.layers[l].kind < 0)
            return fail(s, FB_ERR_INTERNAL, "jit_fused: layer %d has types of no kernel set", l);
    }
    // RoPE frequencies: theta_i = pos * base^(-2i / n_rot) / factor_i
    float *inv = malloc((size_t)(c->n_rot / 2) * sizeof(float));
    if (!inv) return fail(s, FB_ERR_OUT_OF_MEMORY, "jit_fused: out of host memory");
    jf_rope_inv_freq(inv, c->n_rot, mv->rope_freq_base, mv->rope_freqs ? (const float *)mv->rope_freqs->data : NULL);
    const fb_tensor_view rope = {.name = "the RoPE frequencies",
                                 .type = JF_T_F32,
                                 .n_dims = 1,
                                 .ne = {c->n_rot / 2, 1, 1, 1},
                                 .data = inv,
                                 .n_bytes = (uint64_t)(c->n_rot / 2) * sizeof(float)};
    fb_status st = upload_weights(s, mv, &rope); // every copy has finished when it returns: inv may go
    free(inv);
    return st;
}

static fb_status alloc_state(fb_session *s) {
    const jf_config *c = &s->c;
    jf_buffers *r = &s->b;
    size_t B = (size_t)c->nb, f = sizeof(float);
    size_t kv = (size_t)c->n_layers * (size_t)c->max_seq * (size_t)c->kv_dim;
    DEV_ALLOC(s, r->step, (B + 1) * sizeof(int32_t), "step inputs");
    DEV_ALLOC(s, r->argmax_key, sizeof(uint64_t), "the argmax");
    DEV_ALLOC(s, r->x, B * (size_t)c->ld_dim * f, "activations");
    DEV_ALLOC(s, r->q, B * (size_t)c->q_dim * f, "activations");
    DEV_ALLOC(s, r->part, B * (size_t)c->n_heads * (size_t)c->splits * (size_t)(c->head_dim + 2) * f,
              "attention partials");
    DEV_ALLOC(s, r->att, B * (size_t)c->ld_q * f, "activations");
    DEV_ALLOC(s, r->hb, B * (size_t)c->ld_ff * f, "activations");
    DEV_ALLOC(s, r->logits, B * (size_t)c->vocab * f, "logits");
    DEV_ALLOC(s, r->key_cache, kv * f, "the key cache");
    DEV_ALLOC(s, r->value_cache, kv * f, "the value cache");
    // counters the kernels leave at zero after each use: zero to begin with
    DEV_ALLOC(s, r->att_count, B * (size_t)c->n_kv_heads * sizeof(uint32_t), "attention counters");
    DEV_ALLOC(s, r->sync, jf_sync_words(c) * sizeof(uint32_t), "the decode step's counters");
    CUDA_CHECK(s, cudaMemsetAsync(r->att_count, 0, B * (size_t)c->n_kv_heads * sizeof(uint32_t), s->stream));
    CUDA_CHECK(s, cudaMemsetAsync(r->sync, 0, jf_sync_words(c) * sizeof(uint32_t), s->stream));
    // the layers' pointers, where the persistent step reads them
    jf_step_layer *table = malloc((size_t)c->n_layers * sizeof *table);
    if (!table) return fail(s, FB_ERR_OUT_OF_MEMORY, "jit_fused: out of host memory");
    jf_step_layers(c, r, table);
    fb_status st = dev_alloc(s, &r->step_layers, (size_t)c->n_layers * sizeof *table, "the table of layers");
    if (st == FB_OK) {
        cudaError_t err =
            cudaMemcpy(r->step_layers, table, (size_t)c->n_layers * sizeof *table, cudaMemcpyHostToDevice);
        if (err != cudaSuccess) st = cuda_fail(s, err, "uploading the table of layers", __FILE__, __LINE__);
    }
    free(table);
    TRY(st);
    // The row padding of x, att and hb meets the weights' zero padding: it must be 0, not NaN.
    CUDA_CHECK(s, cudaMemsetAsync(r->x, 0, B * (size_t)c->ld_dim * f, s->stream));
    CUDA_CHECK(s, cudaMemsetAsync(r->att, 0, B * (size_t)c->ld_q * f, s->stream));
    CUDA_CHECK(s, cudaMemsetAsync(r->hb, 0, B * (size_t)c->ld_ff * f, s->stream));
    // The tensor-core prefill's chunk (jf_prefill.h): step inputs, x, q, the split operands.
    uint64_t pf[6];
    if (jf_prefill_bytes(c, pf) > 0) {
        DEV_ALLOC(s, s->pb.step, pf[0], "prefill step inputs");
        DEV_ALLOC(s, s->pb.x, pf[1], "prefill activations");
        DEV_ALLOC(s, s->pb.q, pf[2], "prefill activations");
        DEV_ALLOC(s, s->pb.act, pf[3], "prefill split operands");
        DEV_ALLOC(s, s->pb.act_h, pf[4], "prefill split operands");
        DEV_ALLOC(s, s->pb.scratch_key, pf[5], "the argmax");
        // The kernels write every column they read; zeros all the same, so no stale NaN ever meets a weight.
        CUDA_CHECK(s, cudaMemsetAsync(s->pb.x, 0, pf[1], s->stream));
        CUDA_CHECK(s, cudaMemsetAsync(s->pb.act, 0, pf[3], s->stream));
        CUDA_CHECK(s, cudaMemsetAsync(s->pb.act_h, 0, pf[4], s->stream));
        if ((size_t)c->pf_chunk > B) B = (size_t)c->pf_chunk; // the host step buffer serves both paths
    }
    CUDA_CHECK(s, cudaMallocHost((void **)&s->h_step, (B + 1) * sizeof(int32_t)));
    CUDA_CHECK(s, cudaMallocHost((void **)&s->h_key, sizeof(uint64_t)));
    s->host_bytes += (B + 1) * sizeof(int32_t) + sizeof(uint64_t);
    return FB_OK;
}

// ----------------------------------------------------------------------------
// JIT: generate, compile (or take from the cache), load

static fb_status build_kernels(fb_session *s, const fb_settings *settings) {
    char options[256], msg[600], dir[4096], key[65], why[512] = "";
    int is_ptx = 0;
    if (jf_compile_options(s->cc_major, s->cc_minor, options, sizeof options, &is_ptx, msg, sizeof msg) != 0)
        return fail(s, FB_ERR_UNAVAILABLE, "%s", msg);
    const char *cache_dir =
        settings->struct_size >= offsetof(fb_settings, cache_dir) + sizeof(const char *) ? settings->cache_dir : NULL;
    bool have_dir = jf_cache_dir(cache_dir, dir, sizeof dir) == 0;
    bool warm = settings->jit_cache == FB_JIT_CACHE_WARM;
    char *src = jf_generate_source(&s->c);
    if (!src) return fail(s, FB_ERR_OUT_OF_MEMORY, "jit_fused: out of host memory generating the kernels");
    if (jf_cache_key(src, options, jf_nvrtc_version(), s->cc_major, s->cc_minor, key) != 0) {
        free(src);
        return fail(s, FB_ERR_OUT_OF_MEMORY, "jit_fused: out of host memory hashing the kernels");
    }

    jf_image img = {0};
    s->cache_hit = 0;
    if (!have_dir) snprintf(why, sizeof why, "no cache folder (neither HOME nor FAIRBENCH_JIT_CACHE set)");
    else if (!warm)
        snprintf(why, sizeof why, "cold cache asked for: cache ignored");
    else
        s->cache_hit = jf_cache_read(dir, key, &img, why, sizeof why);
    for (;;) {
        if (!s->cache_hit) {
            if (jf_compile(src, s->cc_major, s->cc_minor, &img, msg, sizeof msg) != 0) {
                free(src);
                return fail(s, FB_ERR_INTERNAL, "%s", msg);
            }
            s->compile_ms = img.compile_ms;
            char wmsg[300] = "";
            if (have_dir && jf_cache_write(dir, key, &img, wmsg, sizeof wmsg) != 0)
                s->host->log(s->host, FB_LOG_WARN, wmsg); // the run goes on; the next one compiles again
        }
        double t0 = now_ms();
        CUresult res = s->drv.module_load_data(&s->module, img.data);
        s->module_ms = now_ms() - t0;
        jf_image_free(&img);
        if (res == CUDA_SUCCESS) break;
        s->module = NULL;
        if (!s->cache_hit) {
            free(src);
            return cu_fail(s, res, "cuModuleLoadData (the NVRTC image)", __FILE__, __LINE__);
        }
        // A cached image the driver refuses (written by another driver?): compile afresh, once.
        s->cache_hit = 0;
        snprintf(why, sizeof why, "the cached image did not load (CUresult %d)", (int)res);
    }
    free(src);
    for (int k = 0; k < JF_K_COUNT; k++)
        for (int kind = 0; kind < (jf_kernel_per_layer((jf_kernel_id)k) ? s->c.n_kinds : 1); kind++) {
            if (!jf_kernel_present(&s->c, (jf_kernel_id)k)) continue;
            char name[64];
            jf_kernel_name((jf_kernel_id)k, kind, name, sizeof name);
            CU_CHECK(s, s->drv.module_get_function(&s->fn[k][kind], s->module, name));
        }
    // The LM head loops over the vocabulary: as many blocks as fit the GPU at once.
    int per_sm = 0;
    CU_CHECK(s, s->drv.occupancy(&per_sm, s->fn[JF_K_LM_HEAD_1][0], JF_WARPS * 32, 0));
    if (per_sm < 1) per_sm = 1;
    int rows_grid = (s->c.vocab + JF_WARPS - 1) / JF_WARPS;
    s->lm_grid = per_sm * s->sm_count < rows_grid ? per_sm * s->sm_count : rows_grid;
    // The persistent step: every block resident at once (more would only wait for a free SM).
    per_sm = 0;
    CU_CHECK(s, s->drv.occupancy(&per_sm, s->fn[JF_K_DECODE_STEP][0], JF_WARPS * 32, 0));
    if (per_sm < 1)
        return fail(s, FB_ERR_INTERNAL, "jit_fused: the decode step kernel cannot run a single block on this GPU");
    s->step_grid = per_sm * s->sm_count;
    if (s->cache_hit)
        snprintf(s->jit_note, sizeof s->jit_note, "kernels %s for %s_%d%d from the cache (%.12s..., loaded in %.0f ms)",
                 is_ptx ? "PTX" : "cubin", is_ptx ? "compute" : "sm", s->cc_major, s->cc_minor, key, s->module_ms);
    else
        snprintf(s->jit_note, sizeof s->jit_note, "kernels compiled by NVRTC %s for sm_%d%d in %.0f ms (%.60s)",
                 jf_nvrtc_version(), s->cc_major, s->cc_minor, s->compile_ms, why);
    return FB_OK;
}

// ----------------------------------------------------------------------------
// One forward pass (jf_forward, in jf_host.c) launches through the driver

static CUfunction s_fn_of(void *ctx, jf_kernel_id k, int kind) {
    fb_session *s = ctx;
    return s->fn[k][jf_kernel_per_layer(k) && kind >= 0 && kind < s->c.n_kinds ? kind : 0];
}

static int launch_kernel(void *ctx, jf_kernel_id k, int kind, unsigned gx, unsigned gy, unsigned gz, unsigned threads,
                         void **args) {
    CUfunction fn = s_fn_of(ctx, k, kind);
    fb_session *s = ctx;
    CUresult res;
    if (s->c.pdl &&
        k != JF_K_DECODE_STEP) { // the persistent step has no kernel before it to overlap // programmatic stream
                                 // serialisation: see jf_begin in plugins/jit_fused/jit_fused_kernels.cuh
        CUlaunchAttribute attr;
        memset(&attr, 0, sizeof attr);
        attr.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
        attr.value.programmaticStreamSerializationAllowed = 1;
        CUlaunchConfig cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.gridDimX = gx, cfg.gridDimY = gy, cfg.gridDimZ = gz;
        cfg.blockDimX = threads, cfg.blockDimY = 1, cfg.blockDimZ = 1;
        cfg.hStream = (CUstream)s->stream;
        cfg.attrs = &attr;
        cfg.numAttrs = 1;
        res = s->drv.launch_kernel_ex(&cfg, fn, args, NULL);
    } else {
        res = s->drv.launch_kernel(fn, gx, gy, gz, threads, 1, 1, 0, (CUstream)s->stream, args, NULL);
    }
    if (res != CUDA_SUCCESS) {
        cu_fail(s, res, jf_kernel_names[k], __FILE__, __LINE__);
        return -1;
    }
    return 0;
}

/* nb positions (inputs already in b.step); see jf_forward. */
static fb_status forward(fb_session *s, int nb, int logits_first, bool with_lm_head) {
    if (jf_forward(&s->c, &s->b, s->lm_grid, nb, logits_first, with_lm_head, launch_kernel, s) != 0)
        return s->error[0] ? FB_ERR_INTERNAL : fail(s, FB_ERR_INTERNAL, "jit_fused: a kernel launch failed");
    return FB_OK;
}

// ----------------------------------------------------------------------------
// The ABI calls

static fb_status jit_fused_probe(const fb_host *host, fb_probe_result *out) {
    (void)host;
    int count = 0;
    out->available = 0;
    out->device[0] = '\0';
    out->reason[0] = '\0';
    if (!jf_nvrtc_version()[0]) {
        snprintf(out->reason, sizeof out->reason, "NVRTC does not answer, so kernels cannot be compiled");
        return FB_OK;
    }
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        fbc_no_device_reason(err != cudaSuccess ? err : cudaErrorNoDevice, out->reason, sizeof out->reason);
        cudaGetLastError();
        return FB_OK;
    }
    struct cudaDeviceProp prop;
    err = cudaGetDeviceProperties(&prop, 0);
    if (err != cudaSuccess) {
        snprintf(out->reason, sizeof out->reason, "%s", cudaGetErrorString(err));
        cudaGetLastError();
        return FB_OK;
    }
    char options[256], msg[256];
    int is_ptx = 0;
    if (jf_compile_options(prop.major, prop.minor, options, sizeof options, &is_ptx, msg, sizeof msg) != 0) {
        snprintf(out->reason, sizeof out->reason, "%.64s: %.180s", prop.name, msg);
        return FB_OK;
    }
    char dev[128];
    fbc_format_device(dev, sizeof dev, &prop);
    snprintf(out->device, sizeof out->device, "%.100s%s", dev, count > 1 ? ", device 0 of several" : "");
    out->available = 1;
    return FB_OK;
}

static void jit_fused_destroy(fb_session *s);

static fb_status setup_device(fb_session *s, int device) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        char why[200];
        fbc_no_device_reason(err != cudaSuccess ? err : cudaErrorNoDevice, why, sizeof why);
        cudaGetLastError();
        return fail(s, FB_ERR_UNAVAILABLE, "jit_fused: %s", why);
    }
    if (device < 0 || device >= count)
        return fail(s, FB_ERR_INVALID_ARGUMENT, "jit_fused: device_index %d, but this machine has %d CUDA device%s",
                    device, count, count > 1 ? "s" : "");
    struct cudaDeviceProp prop;
    CUDA_CHECK(s, cudaGetDeviceProperties(&prop, device));
    fbc_format_device(s->device_name, sizeof s->device_name, &prop);
    s->device = device;
    s->cc_major = prop.major;
    s->cc_minor = prop.minor;
    s->sm_count = prop.multiProcessorCount;
    CUDA_CHECK(s, cudaSetDevice(device));
    CUDA_CHECK(s, cudaFree(NULL)); // create the primary context now: the driver API calls use it
    TRY(resolve_driver(s));
    size_t free_bytes = 0, total = 0;
    CUDA_CHECK(s, cudaMemGetInfo(&free_bytes, &total));
    s->mem.free_at_start = free_bytes;
    jf_plan plan;
    jf_plan_compute(&s->c, &plan);
    if (plan.total > free_bytes)
        return fail(s, FB_ERR_OUT_OF_MEMORY,
                    "jit_fused: the session needs %.2f GiB on %s (weights %.2f, KV cache %.2f for %d positions) but "
                    "%.2f GiB are free",
                    (double)plan.total / (1u << 30), prop.name, (double)plan.weights / (1u << 30),
                    (double)plan.kv_cache / (1u << 30), s->c.max_seq, (double)free_bytes / (1u << 30));
    CUDA_CHECK(s, cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    return FB_OK;
}

/* "f16 (from Q8_0)", or at native the types and how many matrices have
 * each: "native: Q4_K x 97, Q6_K x 16" (token_embd and the LM head included). */
static void describe_weights(const fb_session *s, const fb_model_view *mv, char *out, size_t out_size) {
    static const char *names[] = {"f32", "f16", "bf16", "native"};
    if (s->c.wtype != JF_NATIVE) {
        snprintf(out, out_size, "%s (from %s)", names[s->c.wtype],
                 s->host->type_name(FB_MODEL_LAYER(mv, 0)->attn_q.type));
        return;
    }
    uint32_t types[16];
    int counts[16] = {0}, n = 0;
    for (int i = -2; i < (int)mv->n_layer * 7; i++) {
        const fb_tensor_view *t;
        if (i == -2) t = mv->token_embd;
        else if (i == -1)
            t = mv->tied_output ? NULL : mv->output;
        else {
            const fb_layer_view *L = FB_MODEL_LAYER(mv, i / 7);
            const fb_tensor_view *m[] = {&L->attn_q,   &L->attn_k, &L->attn_v,  &L->attn_output,
                                         &L->ffn_gate, &L->ffn_up, &L->ffn_down};
            t = m[i % 7];
        }
        if (!t) continue;
        int k = 0;
        while (k < n && types[k] != t->type) k++;
        if (k == n && n < 16) types[n++] = t->type;
        if (k < n) counts[k]++;
    }
    int len = snprintf(out, out_size, "native:");
    for (int k = 0; k < n && len > 0 && (size_t)len < out_size; k++)
        len += snprintf(out + len, out_size - (size_t)len, "%s %s x %d", k ? "," : "", s->host->type_name(types[k]),
                        counts[k]);
}

static fb_status jit_fused_create(const fb_host *host, const fb_model_view *mv, const fb_settings *settings,
                                  fb_session **out, char *message, size_t message_size) {
    *out = NULL;
    fb_session *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(message, message_size, "jit_fused: out of host memory");
        return FB_ERR_OUT_OF_MEMORY;
    }
    s->host = host;
    s->host_bytes = sizeof *s;
    fb_status st = FB_OK;
    jf_wtype wtype = JF_F32;
    switch (settings->weight_precision) {
    case FB_PRECISION_F32: wtype = JF_F32; break;
    case FB_PRECISION_F16: wtype = JF_F16; break;
    case FB_PRECISION_BF16: wtype = JF_BF16; break;
    case FB_PRECISION_NATIVE: wtype = JF_NATIVE; break;
    default:
        st = fail(s, FB_ERR_UNSUPPORTED, "jit_fused: unknown weight precision %d", (int)settings->weight_precision);
    }
    if (st == FB_OK && settings->accumulate_precision != FB_PRECISION_F32)
        st = fail(s, FB_ERR_UNSUPPORTED, "jit_fused accumulates in f32 only; the profile asks for another precision");
    if (st == FB_OK && !settings->allow_jit)
        st = fail(s, FB_ERR_UNSUPPORTED,
                  "jit_fused generates and compiles its kernels at load, and the profile forbids "
                  "run-time compilation (allow_jit = false)");
    s->persistent = true;
    uint32_t n_options =
        settings->struct_size >= offsetof(fb_settings, options) + sizeof settings->options ? settings->n_options : 0;
    for (uint32_t i = 0; i < n_options && st == FB_OK; i++) {
        char why[256];
        if (apply_option(&s->persistent, settings->options[i].key, settings->options[i].value, &st, why, sizeof why))
            fail(s, st, "jit_fused: %s", why);
    }
    if (st == FB_OK) {
        s->precision = settings->weight_precision;
        s->allow_graphs = settings->allow_graphs != 0;
        char msg[256];
        if (jf_config_from_view(mv, settings->max_context, wtype, &s->c, msg, sizeof msg) != 0)
            st = fail(s, FB_ERR_UNSUPPORTED, "%s", msg);
    }
    if (st == FB_OK)
        st = setup_device(s, settings->struct_size >= offsetof(fb_settings, device_index) + sizeof(int32_t)
                                 ? settings->device_index
                                 : 0);
    if (st == FB_OK) {
        // Programmatic dependent launch on sm_90+; FAIRBENCH_JIT_PDL=0 turns it off (to measure what it gives).
        const char *pdl = getenv("FAIRBENCH_JIT_PDL");
        s->c.pdl = s->cc_major >= 9 && !(pdl && strcmp(pdl, "0") == 0);
    }
    if (st == FB_OK) st = build_kernels(s, settings);
    if (st == FB_OK) st = load_weights(s, mv);
    if (st == FB_OK) st = alloc_state(s);
    if (st == FB_OK) {
        cudaError_t err = cudaStreamSynchronize(s->stream);
        if (err != cudaSuccess) st = cuda_fail(s, err, "cudaStreamSynchronize (end of load)", __FILE__, __LINE__);
    }
    if (st != FB_OK) {
        snprintf(message, message_size, "%s", s->error);
        jit_fused_destroy(s);
        return st;
    }
    fbc_memory_sample(&s->mem);
    char weights[96];
    describe_weights(s, mv, weights, sizeof weights);
    char how[96];
    if (s->persistent)
        snprintf(how, sizeof how, "decode: one persistent kernel per step (%d blocks)%s", s->step_grid,
                 s->allow_graphs ? " in a CUDA graph" : "");
    else
        snprintf(how, sizeof how, "decode: %d kernels per step%s%s", 2 + 5 * s->c.n_layers,
                 s->allow_graphs ? " in a CUDA graph" : "", s->c.pdl ? ", dependent launch" : "");
    // the JIT's note last: where the notes are full, it is what gets cut
    char full[640];
    snprintf(full, sizeof full, "weights %.50s, f32 accumulation, activations and KV cache; %s; %.70s%s; %s", weights,
             jf_prefill_note(&s->c), how, s->load_note, s->jit_note);
    snprintf(s->notes, sizeof s->notes, "%.*s", (int)sizeof s->notes - 1, full);
    s->error[0] = '\0';
    *out = s;
    return FB_OK;
}

static fb_status check_tokens(fb_session *s, const int32_t *tokens, uint32_t n, uint32_t flags, const float *logits,
                              const int32_t *next_token) {
    if (!tokens || n == 0 || !next_token) return fail(s, FB_ERR_INVALID_ARGUMENT, "jit_fused: no tokens or no output");
    if ((flags & (FB_LOGITS_LAST | FB_LOGITS_ALL)) && !logits)
        return fail(s, FB_ERR_INVALID_ARGUMENT, "jit_fused: logits asked for but no buffer given");
    if ((uint64_t)s->pos + n > (uint64_t)s->c.max_seq)
        return fail(s, FB_ERR_CONTEXT_FULL, "jit_fused: %u tokens at position %d would pass the context of %d", n,
                    s->pos, s->c.max_seq);
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= s->c.vocab)
            return fail(s, FB_ERR_INVALID_ARGUMENT, "jit_fused: token id %d at index %u is outside the vocabulary (%d)",
                        tokens[i], i, s->c.vocab);
    return FB_OK;
}

static fb_status use_device(fb_session *s) {
    CUDA_CHECK(s, cudaSetDevice(s->device));
    return FB_OK;
}

/* Where jf_prefill_forward's LM-head groups go: every row (all), or the
 * last row of the last group (logits, when asked), into the caller's buffer. */
typedef struct PrefillLogits {
    fb_session *s;
    float *logits; // the caller's; NULL: none asked for
    bool all;
    uint32_t done; // positions before this chunk
} PrefillLogits;

static int prefill_logits(void *ctx, int first, int count) {
    PrefillLogits *o = ctx;
    fb_session *s = o->s;
    const size_t row = (size_t)s->c.vocab * sizeof(float);
    cudaError_t err = o->all ? cudaMemcpyAsync(o->logits + ((size_t)o->done + (size_t)first) * (size_t)s->c.vocab,
                                               s->b.logits, (size_t)count * row, cudaMemcpyDeviceToHost, s->stream)
                             : cudaMemcpyAsync(o->logits, s->b.logits + (size_t)(count - 1) * (size_t)s->c.vocab, row,
                                               cudaMemcpyDeviceToHost, s->stream);
    if (err != cudaSuccess) {
        cuda_fail(s, err, "cudaMemcpyAsync (prefill logits)", __FILE__, __LINE__);
        return -1;
    }
    return 0;
}

/* A prompt on tensor cores (jit_fused_prefill.cuh), c->pf_chunk positions
 * per pass; the LM head only where logits are asked for, and for the last
 * position. */
static fb_status prefill_tensor_cores(fb_session *s, const int32_t *tokens, uint32_t n, uint32_t flags, float *logits) {
    const jf_config *c = &s->c;
    const bool all = (flags & FB_LOGITS_ALL) != 0, last_row = (flags & FB_LOGITS_LAST) && !all;
    int pos = s->pos;
    for (uint32_t done = 0; done < n;) {
        int batch = (int)(n - done) < c->pf_chunk ? (int)(n - done) : c->pf_chunk;
        bool last = done + (uint32_t)batch == n;
        s->h_step[0] = pos;
        memcpy(s->h_step + 1, tokens + done, (size_t)batch * sizeof(int32_t));
        CUDA_CHECK(s, cudaMemcpyAsync(s->pb.step, s->h_step, (size_t)(batch + 1) * sizeof(int32_t),
                                      cudaMemcpyHostToDevice, s->stream));
        PrefillLogits out = {s, logits, all, done};
        bool emit = all || (last && last_row);
        if (jf_prefill_forward(c, &s->b, &s->pb, s->lm_grid, batch, all ? 0 : batch - 1, all || last,
                               emit ? prefill_logits : NULL, &out, launch_kernel, s) != 0)
            return s->error[0] ? FB_ERR_INTERNAL : fail(s, FB_ERR_INTERNAL, "jit_fused: a prefill launch failed");
        if (last)
            CUDA_CHECK(s,
                       cudaMemcpyAsync(s->h_key, s->b.argmax_key, sizeof(uint64_t), cudaMemcpyDeviceToHost, s->stream));
        CUDA_CHECK(s, cudaStreamSynchronize(s->stream)); // the pinned step buffer is reused by the next pass
        pos += batch;
        done += (uint32_t)batch;
    }
    s->pos = pos;
    return FB_OK;
}

static fb_status jit_fused_prefill(fb_session *s, const int32_t *tokens, uint32_t n, uint32_t flags, float *logits,
                                   int32_t *next_token) {
    const jf_config *c = &s->c;
    jf_buffers *r = &s->b;
    TRY(check_tokens(s, tokens, n, flags, logits, next_token));
    TRY(use_device(s));
    // Long prompts at f16/bf16 on tensor cores; short ones, and f32 or native weights, on the _nb
    // kernels below (JF_NB positions per pass): see jf_prefill_use.
    if (jf_prefill_use(c, (int)n)) {
        TRY(prefill_tensor_cores(s, tokens, n, flags, logits));
        *next_token = jf_token_of_key(*s->h_key);
        return FB_OK;
    }
    bool all = (flags & FB_LOGITS_ALL) != 0;
    size_t row = (size_t)c->vocab * sizeof(float);
    int pos = s->pos;
    for (uint32_t done = 0; done < n;) {
        int batch = (int)(n - done) < c->nb ? (int)(n - done) : c->nb;
        bool last = done + (uint32_t)batch == n;
        s->h_step[0] = pos;
        memcpy(s->h_step + 1, tokens + done, (size_t)batch * sizeof(int32_t));
        CUDA_CHECK(s, cudaMemcpyAsync(r->step, s->h_step, (size_t)(batch + 1) * sizeof(int32_t), cudaMemcpyHostToDevice,
                                      s->stream));
        TRY(forward(s, batch, all ? 0 : batch - 1, all || last));
        if (all)
            CUDA_CHECK(s, cudaMemcpyAsync(logits + (size_t)done * c->vocab, r->logits, (size_t)batch * row,
                                          cudaMemcpyDeviceToHost, s->stream));
        if (last) {
            CUDA_CHECK(s,
                       cudaMemcpyAsync(s->h_key, r->argmax_key, sizeof(uint64_t), cudaMemcpyDeviceToHost, s->stream));
            if ((flags & FB_LOGITS_LAST) && !all)
                CUDA_CHECK(s, cudaMemcpyAsync(logits, r->logits, row, cudaMemcpyDeviceToHost, s->stream));
        }
        CUDA_CHECK(s, cudaStreamSynchronize(s->stream)); // the pinned step buffer is reused by the next pass
        pos += batch;
        done += (uint32_t)batch;
    }
    s->pos = pos;
    *next_token = jf_token_of_key(*s->h_key);
    return FB_OK;
}

/* One decode step's work on the stream: input copy, the persistent step
 * (or the per-op kernels), argmax copy. */
static fb_status enqueue_decode(fb_session *s) {
    jf_buffers *r = &s->b;
    CUDA_CHECK(s, cudaMemcpyAsync(r->step, s->h_step, 2 * sizeof(int32_t), cudaMemcpyHostToDevice, s->stream));
    if (s->persistent) {
        if (jf_decode_persistent(&s->c, &s->b, (unsigned)s->step_grid, launch_kernel, s) != 0)
            return s->error[0] ? FB_ERR_INTERNAL
                               : fail(s, FB_ERR_INTERNAL, "jit_fused: the decode step did not launch");
    } else {
        TRY(forward(s, 1, 0, true));
    }
    CUDA_CHECK(s, cudaMemcpyAsync(s->h_key, r->argmax_key, sizeof(uint64_t), cudaMemcpyDeviceToHost, s->stream));
    return FB_OK;
}

/* Capture enqueue_decode once as a graph. On failure: plain launches from
 * then on, and the effective settings say so. */
static void capture_graph(fb_session *s) {
    cudaGraph_t graph = NULL;
    cudaError_t err = cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal);
    fb_status st =
        err == cudaSuccess ? enqueue_decode(s) : cuda_fail(s, err, "cudaStreamBeginCapture", __FILE__, __LINE__);
    if (err == cudaSuccess) {
        cudaError_t end = cudaStreamEndCapture(s->stream, &graph);
        if (st == FB_OK && end != cudaSuccess) st = cuda_fail(s, end, "cudaStreamEndCapture", __FILE__, __LINE__);
    }
    if (st == FB_OK) {
        size_t nodes = 0; // the step's kernels and copies, as eager_ops reports its own
        if (cudaGraphGetNodes(graph, NULL, &nodes) == cudaSuccess) s->graph_nodes = nodes;
        err = cudaGraphInstantiate(&s->graph, graph, 0);
        if (err != cudaSuccess) {
            s->graph = NULL;
            st = cuda_fail(s, err, "cudaGraphInstantiate", __FILE__, __LINE__);
        }
    }
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    if (st != FB_OK) {
        s->graphs_failed = true;
        snprintf(s->notes, sizeof s->notes, "graph capture failed, so plain launches: %.200s", s->error);
        s->error[0] = '\0';
    }
    fbc_memory_sample(&s->mem);
}

static fb_status jit_fused_decode(fb_session *s, int32_t token, float *logits, int32_t *next_token) {
    jf_buffers *r = &s->b;
    TRY(check_tokens(s, &token, 1, logits ? FB_LOGITS_LAST : FB_LOGITS_NONE, logits, next_token));
    TRY(use_device(s));
    s->h_step[0] = s->pos;
    s->h_step[1] = token;
    if (s->allow_graphs && !s->graph && !s->graphs_failed) capture_graph(s);
    if (s->graph) {
        CUDA_CHECK(s, cudaGraphLaunch(s->graph, s->stream));
        s->graph_replays++;
    } else {
        TRY(enqueue_decode(s));
    }
    if (logits)
        CUDA_CHECK(s, cudaMemcpyAsync(logits, r->logits, (size_t)s->c.vocab * sizeof(float), cudaMemcpyDeviceToHost,
                                      s->stream));
    CUDA_CHECK(s, cudaStreamSynchronize(s->stream));
    s->pos++;
    *next_token = jf_token_of_key(*s->h_key);
    return FB_OK;
}

static fb_status jit_fused_reset(fb_session *s) {
    s->pos = 0; // positions past pos are never read
    return FB_OK;
}

static fb_status jit_fused_memory(fb_session *s, fb_memory_stats *out) {
    if (cudaSetDevice(s->device) == cudaSuccess) fbc_memory_sample(&s->mem);
    out->device_bytes = s->mem.bytes;
    out->device_peak_bytes = fbc_memory_peak(&s->mem); // ours, or what cudaMemGetInfo saw (cuBLAS, graphs)
    out->host_bytes = s->host_bytes;
    return FB_OK;
}

static fb_status jit_fused_effective_settings(fb_session *s, fb_effective_settings *out) {
    out->weight_precision = s->precision;
    out->accumulate_precision = FB_PRECISION_F32;
    out->jit = 1;
    out->graphs = s->graph_replays > 0; // only when a step really was replayed
    out->threads = 0;
    out->kernel_cache_hit = s->cache_hit;
    snprintf(out->device, sizeof out->device, "%s", s->device_name);
    fbc_format_notes(out->notes, sizeof out->notes, s->notes, s->graphs_failed ? 0 : s->graph_nodes);
    if (out->struct_size >= offsetof(fb_effective_settings, options) + sizeof out->options)
        snprintf(out->options, sizeof out->options, "decode=%s", s->persistent ? "persistent" : "kernels");
    return FB_OK;
}

static const char *jit_fused_last_error(fb_session *s) { return s ? s->error : ""; }

/* The roofline's ceiling: fbc_copy_bandwidth (a large device-to-device
 * copy, bytes read plus written per second; its buffers are not counted). */
static fb_status jit_fused_copy_bandwidth(fb_session *s, double *bytes_per_second) {
    *bytes_per_second = 0;
    TRY(use_device(s));
    const char *step = "";
    cudaError_t err = fbc_copy_bandwidth(s->stream, bytes_per_second, &step);
    return err == cudaSuccess ? FB_OK : cuda_fail(s, err, step, __FILE__, __LINE__);
}

/* ABI 1.1 profiling: the decode kernels' classes, with the weight bytes a
 * launch reads (the layers' mean: a native mix's layers differ), so the
 * profiling pass can give each its bandwidth. The persistent step reads
 * every weight once; its KV-cache reads, which grow with the position, are
 * left out (at 2048 positions of the 1B shapes, 5% of its bytes). */
static fb_status jit_fused_kernel_classes(fb_session *s, const fb_kernel_class **table, uint32_t *n) {
    const jf_config *c = &s->c;
    uint64_t qkv = 0, wo = 0, gate_up = 0, down = 0, layers = 0; // over the layers, by kind
    for (int k = 0; k < c->n_kinds; k++) {
        const jf_layer_types *t = &c->kinds[k];
        const uint64_t nl = (uint64_t)c->kind_layers[k];
        qkv += nl * ((uint64_t)c->q_dim * (uint64_t)jf_row_bytes(t->q, c->dim) +
                     (uint64_t)c->kv_dim * (uint64_t)(jf_row_bytes(t->k, c->dim) + jf_row_bytes(t->v, c->dim)));
        wo += nl * (uint64_t)c->dim * (uint64_t)jf_row_bytes(t->o, c->q_dim);
        gate_up += nl * (uint64_t)c->n_ff * (uint64_t)(jf_row_bytes(t->gate, c->dim) + jf_row_bytes(t->up, c->dim));
        down += nl * (uint64_t)c->dim * (uint64_t)jf_row_bytes(t->down, c->n_ff);
        layers += nl;
    }
    if (!layers) layers = 1;
    const uint64_t head = (uint64_t)c->vocab * (uint64_t)jf_row_bytes(c->out_type, c->dim);
    s->classes[0] = (fb_kernel_class){"jf_decode_step", "matvec", qkv + wo + gate_up + down + head};
    s->classes[1] = (fb_kernel_class){"jf_qkv_rope_1", "matvec", qkv / layers};
    s->classes[2] = (fb_kernel_class){"jf_out_residual_1", "matvec", wo / layers};
    s->classes[3] = (fb_kernel_class){"jf_gate_up_1", "matvec", gate_up / layers};
    s->classes[4] = (fb_kernel_class){"jf_down_residual_1", "matvec", down / layers};
    s->classes[5] = (fb_kernel_class){"jf_lm_head_1", "matvec", head};
    s->classes[6] = (fb_kernel_class){"jf_attention_split", "attention", 0};
    s->classes[7] = (fb_kernel_class){"jf_embed", "copy", 0};
    *table = s->classes;
    *n = 8;
    return FB_OK;
}

static void jit_fused_destroy(fb_session *s) {
    if (!s) return;
    if (s->stream) {
        cudaSetDevice(s->device);
        cudaStreamSynchronize(s->stream);
    }
    if (s->graph) cudaGraphExecDestroy(s->graph);
    if (s->module && s->drv.module_unload) s->drv.module_unload(s->module);
    fbc_memory_free_all(&s->mem);
    if (s->h_step) cudaFreeHost(s->h_step);
    if (s->h_key) cudaFreeHost(s->h_key);
    if (s->stream) cudaStreamDestroy(s->stream);
    cudaGetLastError();
    free(s->b.layers);
    free(s);
}

// ----------------------------------------------------------------------------

static const fb_plugin jit_fused_plugin = {
    .abi_major = FB_ABI_MAJOR,
    .abi_minor = FB_ABI_MINOR,
    .struct_size = sizeof(fb_plugin),
    .capabilities = FB_CAP_GPU | FB_CAP_PRECISION_F32 | FB_CAP_PRECISION_F16 | FB_CAP_PRECISION_BF16 |
                    FB_CAP_PRECISION_NATIVE | FB_CAP_JIT | FB_CAP_GRAPHS | FB_CAP_COPY_PROBE,
    .name = "jit_fused",
    .version = JIT_FUSED_VERSION,
    .description =
        "CUDA, JIT: fused kernels generated for the model's shapes, compiled by NVRTC, one CUDA graph per step",
    .probe = jit_fused_probe,
    .create = jit_fused_create,
    .prefill = jit_fused_prefill,
    .decode = jit_fused_decode,
    .reset = jit_fused_reset,
    .memory = jit_fused_memory,
    .effective_settings = jit_fused_effective_settings,
    .last_error = jit_fused_last_error,
    .destroy = jit_fused_destroy,
    .copy_bandwidth = jit_fused_copy_bandwidth,
    .check_option = jit_fused_check_option,
    .kernel_classes = jit_fused_kernel_classes,
};

FB_PLUGIN_EXPORT const fb_plugin *fb_plugin_entry(void) { return &jit_fused_plugin; }
