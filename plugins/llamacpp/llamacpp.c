/* llamacpp.c - llama.cpp as a fairbench backend, through its public C API.
 *
 * llama.cpp reads the GGUF file itself (model->path) and runs the file's own
 * tensor types: it cannot convert weights. So weight_precision = native
 * always works, and f32 / f16 / bf16 only when every matrix of the file is of
 * that type; anything else is refused with a sentence, never substituted.
 *
 * libllama is loaded at run time with dlopen (the library found when the
 * plugin was configured, FB_LLAMACPP_LIB, or FAIRBENCH_LLAMACPP_LIB): the
 * plugin compiles against that build's llama.h, links nothing of it, and
 * reports itself unavailable, with how to get it, when the library is absent.
 * The library is never unloaded (ggml keeps threads and static state).
 *
 * What fairness needs from llama.cpp's own settings, and what it gets here:
 *   threads      n_threads = n_threads_batch = settings->threads (0: all cores)
 *   GPU          every layer offloaded (n_gpu_layers = -1) when the library has
 *                a GPU backend and a device answers; the token embedding stays
 *                in host memory, as llama.cpp always keeps it
 *   CUDA graphs  allow_graphs = 0 sets GGML_CUDA_DISABLE_GRAPHS before the
 *                first session of the process (ggml reads it once per process)
 *   JIT          none: llama.cpp's kernels are compiled ahead of time
 *   KV cache     f32 like the other backends; option kv_type = f16
 *   options      flash_attn (off), n_batch (512), kv_type (f32): each echoed in
 *                the effective settings
 * Logits of every position come from llama_get_logits_ith with the batch's
 * output flags; the host's token ids are used as given (no llama.cpp
 * tokenization); positions are the session's own count.
 */
#include <fairbench/plugin.h>

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <llama.h>

#ifndef FB_LLAMACPP_LIB
#define FB_LLAMACPP_LIB "libllama.so"
#endif
#ifndef FB_LLAMACPP_VERSION
#define FB_LLAMACPP_VERSION "unknown"
#endif

#define DEFAULT_N_BATCH 512
#define MAX_N_BATCH 8192

// ----------------------------------------------------------------------------
// The library, loaded once per process

/* Every llama.cpp / ggml function the plugin calls, typed from llama.h. */
// clang-format off
#define LLAMA_FUNCTIONS(X)                                                                                            \
    X(llama_backend_init) X(llama_log_set) X(llama_version) X(llama_supports_gpu_offload)                             \
    X(llama_model_default_params) X(llama_context_default_params) X(llama_model_load_from_file) X(llama_model_free)  \
    X(llama_init_from_model) X(llama_free) X(llama_model_get_vocab) X(llama_vocab_n_tokens) X(llama_model_size)       \
    X(llama_batch_init) X(llama_batch_free) X(llama_decode) X(llama_get_logits_ith) X(llama_get_memory)               \
    X(llama_memory_clear) X(llama_n_ctx) X(llama_print_system_info)                                                   \
    X(ggml_backend_dev_count) X(ggml_backend_dev_get) X(ggml_backend_dev_type) X(ggml_backend_dev_description)        \
    X(ggml_backend_dev_memory)
// clang-format on

static struct {
#define DECLARE(name) __typeof__(name) *name;
    LLAMA_FUNCTIONS(DECLARE)
#undef DECLARE
} L;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static bool lib_loaded;
static char lib_path[1024];
static char lib_error[256];     /* why it did not load */
static char lib_gpu[128];       /* the first GPU device's description, "" when none */
static const fb_host *log_host; /* where llama.cpp's log lines go */

/* The process-wide choice of CUDA graphs: ggml reads GGML_CUDA_DISABLE_GRAPHS
 * once, at its first graph, so every session of a process shares it. */
static pthread_mutex_t graphs_lock = PTHREAD_MUTEX_INITIALIZER;
static int graphs_fixed = -1; /* -1: no GPU session yet; else 0 / 1 */

/* The last error line llama.cpp logged (it says why a load failed). */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_llama_error[200];

static const char *library_path(void) {
    const char *env = getenv("FAIRBENCH_LLAMACPP_LIB");
    return env && env[0] ? env : FB_LLAMACPP_LIB;
}

static void on_llama_log(enum ggml_log_level level, const char *text, void *user_data) {
    (void)user_data;
    if (!text) return;
    char line[200];
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ')) n--;
    if (n == 0) return;
    snprintf(line, sizeof line, "llama.cpp: %.*s", (int)(n < 180 ? n : 180), text);
    if (level == GGML_LOG_LEVEL_ERROR) { // the first since create names the cause; later ones are generic
        pthread_mutex_lock(&log_lock);
        if (!last_llama_error[0])
            snprintf(last_llama_error, sizeof last_llama_error, "%.*s", (int)(n < 190 ? n : 190), text);
        pthread_mutex_unlock(&log_lock);
    }
    const fb_host *host = log_host;
    if (host && host->log) host->log(host, level == GGML_LOG_LEVEL_ERROR ? FB_LOG_WARN : FB_LOG_DEBUG, line);
}

static void load_library(void) {
    snprintf(lib_path, sizeof lib_path, "%s", library_path());
    if (strchr(lib_path, '/') && access(lib_path, F_OK) != 0) {
        snprintf(lib_error, sizeof lib_error,
                 "llama.cpp is not installed (no %.80s): run `make llamacpp` and rebuild fairbench, or set "
                 "FAIRBENCH_LLAMACPP_LIB to a libllama.so of llama.cpp " FB_LLAMACPP_VERSION,
                 lib_path);
        return;
    }
    void *handle = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        snprintf(lib_error, sizeof lib_error, "llama.cpp's library did not load: %.200s", why ? why : "dlopen failed");
        return;
    }
    // dlsym on the handle also searches libllama's dependencies (libggml*).
#define RESOLVE(name)                                                                                         \
    *(void **)(&L.name) = dlsym(handle, #name);                                                               \
    if (!L.name) {                                                                                            \
        snprintf(lib_error, sizeof lib_error,                                                                 \
                 "%.120s lacks %s: it is not the llama.cpp " FB_LLAMACPP_VERSION " the plugin was built for", \
                 lib_path, #name);                                                                            \
        return;                                                                                               \
    }
    LLAMA_FUNCTIONS(RESOLVE)
#undef RESOLVE
    L.llama_log_set(on_llama_log, NULL);
    L.llama_backend_init();
    for (size_t i = 0; i < L.ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t dev = L.ggml_backend_dev_get(i);
        if (L.ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_GPU) {
            snprintf(lib_gpu, sizeof lib_gpu, "%s", L.ggml_backend_dev_description(dev));
            break;
        }
    }
    lib_loaded = true;
}

static bool ensure_library(const fb_host *host) {
    if (host && !log_host) log_host = host;
    pthread_once(&load_once, load_library);
    return lib_loaded;
}

/* The GPU backend a session offloads to: the library has one and a device
 * answered. */
static bool use_gpu(void) { return lib_loaded && L.llama_supports_gpu_offload() && lib_gpu[0]; }

static fb_plugin plugin;

/* A GPU build (the table says FB_CAP_GPU) that finds no GPU would silently
 * run on the CPU: it is unavailable instead. 0, or -1 with the reason. */
static int gpu_build_without_gpu(char *reason, size_t size) {
    if (!(plugin.capabilities & FB_CAP_GPU) || use_gpu()) return 0;
    snprintf(reason, size, "the llama.cpp build at %.120s has a GPU backend but finds no GPU here", lib_path);
    return -1;
}

// ----------------------------------------------------------------------------
// The CPU, for the device string

/* plugin.h's form for a CPU backend: "CPU: <model name>", or "CPU" when the
 * model is unknown. */
static void cpu_device_name(char *buf, size_t size) {
    snprintf(buf, size, "CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *colon = strchr(line, ':');
        if (!colon) break;
        colon++;
        while (*colon == ' ' || *colon == '\t') colon++;
        size_t n = strcspn(colon, "\n");
        if (n > 0) snprintf(buf, size, "CPU: %.*s", (int)n, colon);
        break;
    }
    fclose(f);
}

static int online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 4096 ? (int)n : 1;
}

// ----------------------------------------------------------------------------
// Per-backend options (ABI 1.1)

typedef struct llamacpp_options {
    bool flash_attn; /* llama.cpp's fused attention; off by default, like the others' plain attention */
    int n_batch;     /* tokens per llama_decode call (logical = physical batch) */
    bool kv_f16;     /* KV cache at f16 instead of f32 */
} llamacpp_options;

static const char KNOWN_OPTIONS[] = "flash_attn, n_batch, kv_type";

/* 0 and the option applied to *o, or -1 with a sentence. */
static int apply_option(llamacpp_options *o, const char *key, const char *value, fb_status *status, char *message,
                        size_t message_size) {
    if (!key || !value) {
        *status = FB_ERR_INVALID_ARGUMENT;
        snprintf(message, message_size, "an option without a key or a value");
        return -1;
    }
    if (strcmp(key, "flash_attn") == 0) {
        if (strcmp(value, "on") == 0 || strcmp(value, "off") == 0) {
            o->flash_attn = strcmp(value, "on") == 0;
            return 0;
        }
        *status = FB_ERR_UNSUPPORTED;
        snprintf(message, message_size,
                 "flash_attn = '%.40s' is not on or off (llama.cpp's auto is not offered: the report could "
                 "not say what it chose)",
                 value);
        return -1;
    }
    if (strcmp(key, "n_batch") == 0) {
        char *end;
        long n = strtol(value, &end, 10);
        if (end != value && *end == '\0' && n >= 1 && n <= MAX_N_BATCH) {
            o->n_batch = (int)n;
            return 0;
        }
        *status = FB_ERR_UNSUPPORTED;
        snprintf(message, message_size, "n_batch = '%.40s' is not a whole number from 1 to %d", value, MAX_N_BATCH);
        return -1;
    }
    if (strcmp(key, "kv_type") == 0) {
        if (strcmp(value, "f32") == 0 || strcmp(value, "f16") == 0) {
            o->kv_f16 = strcmp(value, "f16") == 0;
            return 0;
        }
        *status = FB_ERR_UNSUPPORTED;
        snprintf(message, message_size, "kv_type = '%.40s' is not f32 or f16", value);
        return -1;
    }
    *status = FB_ERR_INVALID_ARGUMENT;
    snprintf(message, message_size, "unknown option '%.60s' (known: %s)", key, KNOWN_OPTIONS);
    return -1;
}

static fb_status llamacpp_check_option(const fb_host *host, const char *key, const char *value, char *message,
                                       size_t message_size) {
    (void)host;
    llamacpp_options scratch = {.n_batch = DEFAULT_N_BATCH};
    fb_status st = FB_OK;
    if (message && message_size) message[0] = '\0';
    char sentence[256];
    if (apply_option(&scratch, key, value, &st, sentence, sizeof sentence) == 0) return FB_OK;
    if (message && message_size) snprintf(message, message_size, "%s", sentence);
    return st;
}

// ----------------------------------------------------------------------------
// Sessions

struct fb_session {
    const fb_host *host;
    struct llama_model *model;
    struct llama_context *ctx;
    struct llama_batch batch; /* n_batch tokens, one sequence */
    uint32_t n_vocab;
    uint32_t n_ctx; /* positions this session accepts */
    uint32_t n_pos; /* the next position */
    llamacpp_options opt;
    fb_precision weight_precision;
    int threads;
    bool gpu, graphs;
    uint64_t kv_bytes, model_bytes;
    size_t device_free_before; /* GPU: the device's free memory before create */
    uint64_t device_bytes, device_peak;
    char device[128];
    char notes[256];
    char error[512];
};

static void set_error(fb_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(fb_session *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
}

static const char *type_name(const fb_host *host, uint32_t type) {
    return host && host->type_name ? host->type_name(type) : "unknown";
}

static const char *precision_name(fb_precision p) {
    switch (p) {
    case FB_PRECISION_F32: return "f32";
    case FB_PRECISION_F16: return "f16";
    case FB_PRECISION_BF16: return "bf16";
    case FB_PRECISION_NATIVE: return "native";
    }
    return "unknown";
}

/* llama.cpp computes with the file's types: a precision other than native
 * is honoured only when every matrix (the layers', the embedding, the
 * output) already is of that type. 0, or -1 with a sentence. */
static int check_weight_types(const fb_host *host, const fb_model_view *m, fb_precision p, char *message,
                              size_t message_size) {
    if (p == FB_PRECISION_NATIVE) return 0;
    uint32_t want;
    switch (p) {
    case FB_PRECISION_F32: want = FB_TYPE_F32; break;
    case FB_PRECISION_F16: want = FB_TYPE_F16; break;
    case FB_PRECISION_BF16: want = FB_TYPE_BF16; break;
    default:
        snprintf(message, message_size, "llamacpp: weight precision %d is not one fairbench defines", (int)p);
        return -1;
    }
    const fb_tensor_view *first_other = NULL;
    for (uint32_t l = 0; l < m->n_layer && !first_other; l++) {
        const fb_layer_view *layer = FB_MODEL_LAYER(m, l);
        const fb_tensor_view *mats[] = {&layer->attn_q,   &layer->attn_k, &layer->attn_v,  &layer->attn_output,
                                        &layer->ffn_gate, &layer->ffn_up, &layer->ffn_down};
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++)
            if (mats[i]->type != want) {
                first_other = mats[i];
                break;
            }
    }
    if (!first_other && m->token_embd->type != want) first_other = m->token_embd;
    if (!first_other && m->output->type != want) first_other = m->output;
    if (!first_other) return 0;
    snprintf(message, message_size,
             "llamacpp: llama.cpp computes with the file's own tensor types and converts no weights, so weight "
             "precision %s needs a file whose matrices are all %s, but %.60s is %s (use weight_precision = native)",
             precision_name(p), type_name(host, want), first_other->name, type_name(host, first_other->type));
    return -1;
}

static bool cancel_requested(void *data) {
    const fb_host *host = data;
    return host && host->is_cancelled && host->is_cancelled(host);
}

static bool load_progress(float progress, void *data) {
    const fb_host *host = data;
    if (host && host->progress) host->progress(host, "llama.cpp loads the model", progress);
    return !cancel_requested(data);
}

static size_t device_free_bytes(void) {
    for (size_t i = 0; i < L.ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t dev = L.ggml_backend_dev_get(i);
        if (L.ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_GPU) {
            size_t free_bytes = 0, total = 0;
            L.ggml_backend_dev_memory(dev, &free_bytes, &total);
            return free_bytes;
        }
    }
    return 0;
}

/* GPU: what the device lost since create began (weights, KV cache, compute
 * buffers, the CUDA context); when another process freed memory meanwhile
 * and that reads 0, the weights and KV cache llama.cpp reports instead. */
static void update_device_memory(fb_session *s) {
    if (!s->gpu) return;
    size_t now_free = device_free_bytes();
    s->device_bytes = s->device_free_before > now_free ? s->device_free_before - now_free : 0;
    if (s->device_bytes == 0) s->device_bytes = s->kv_bytes + s->model_bytes;
    if (s->device_bytes > s->device_peak) s->device_peak = s->device_bytes;
}

static void llamacpp_destroy(fb_session *s) {
    if (!s) return;
    if (s->batch.token) L.llama_batch_free(s->batch);
    if (s->ctx) L.llama_free(s->ctx);
    if (s->model) L.llama_model_free(s->model);
    free(s);
}

/* Decide the process's CUDA graphs; -1 with a sentence when an earlier
 * session of this process fixed the other way. */
static int fix_graphs(bool want, char *message, size_t message_size) {
    int rc = 0;
    pthread_mutex_lock(&graphs_lock);
    if (graphs_fixed < 0) {
        if (want) unsetenv("GGML_CUDA_DISABLE_GRAPHS");
        else
            setenv("GGML_CUDA_DISABLE_GRAPHS", "1", 1);
        graphs_fixed = want;
    } else if (graphs_fixed != (int)want) {
        snprintf(message, message_size,
                 "llamacpp: CUDA graphs were turned %s by an earlier session of this process, and llama.cpp reads "
                 "GGML_CUDA_DISABLE_GRAPHS once per process: run allow_graphs = %d in a process of its own",
                 graphs_fixed ? "on" : "off", (int)want);
        rc = -1;
    }
    pthread_mutex_unlock(&graphs_lock);
    return rc;
}

static fb_status llamacpp_create(const fb_host *host, const fb_model_view *m, const fb_settings *settings,
                                 fb_session **out, char *message, size_t message_size) {
    if (out) *out = NULL;
    if (message && message_size) message[0] = '\0';
    if (!out || !m || !settings || !message || message_size == 0) return FB_ERR_INVALID_ARGUMENT;
    if (!ensure_library(host)) {
        snprintf(message, message_size, "llamacpp: %s", lib_error);
        return FB_ERR_UNAVAILABLE;
    }
    char no_gpu[200];
    if (gpu_build_without_gpu(no_gpu, sizeof no_gpu)) {
        snprintf(message, message_size, "llamacpp: %s", no_gpu);
        return FB_ERR_UNAVAILABLE;
    }
    if (settings->weight_precision > FB_PRECISION_NATIVE || settings->weight_precision < FB_PRECISION_F32) {
        snprintf(message, message_size, "llamacpp: weight precision %d is not one fairbench defines",
                 (int)settings->weight_precision);
        return FB_ERR_UNSUPPORTED;
    }
    if (check_weight_types(host, m, settings->weight_precision, message, message_size)) return FB_ERR_UNSUPPORTED;
    if (m->n_rot != m->head_dim) { // llama.cpp: "invalid n_rot: 8, expected 12"
        snprintf(message, message_size,
                 "llamacpp: llama.cpp's llama architecture rotates whole heads (n_rot = head_dim), but %.120s rotates "
                 "%u of %u dimensions per head",
                 m->path, m->n_rot, m->head_dim);
        return FB_ERR_UNSUPPORTED;
    }
    if (settings->accumulate_precision != FB_PRECISION_F32) {
        snprintf(message, message_size,
                 "llamacpp: llama.cpp accumulates its dot products in f32 and has no setting for %s accumulation",
                 precision_name(settings->accumulate_precision));
        return FB_ERR_UNSUPPORTED;
    }
    llamacpp_options opt = {.flash_attn = false, .n_batch = DEFAULT_N_BATCH, .kv_f16 = false};
    uint32_t n_options =
        settings->struct_size >= offsetof(fb_settings, options) + sizeof settings->options ? settings->n_options : 0;
    for (uint32_t i = 0; i < n_options; i++) {
        fb_status st = FB_OK;
        char why[256];
        if (apply_option(&opt, settings->options[i].key, settings->options[i].value, &st, why, sizeof why)) {
            snprintf(message, message_size, "llamacpp: %s", why);
            return FB_ERR_INVALID_ARGUMENT;
        }
    }

    fb_session *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(message, message_size, "llamacpp: out of memory");
        return FB_ERR_OUT_OF_MEMORY;
    }
    s->host = host;
    s->opt = opt;
    s->weight_precision = settings->weight_precision;
    s->threads = settings->threads > 0 ? settings->threads : online_cores();
    s->n_ctx = settings->max_context ? settings->max_context : m->n_ctx;
    s->gpu = use_gpu();
    s->graphs = s->gpu && settings->allow_graphs;
    if (s->gpu && fix_graphs(s->graphs, message, message_size)) {
        free(s);
        return FB_ERR_UNSUPPORTED;
    }
    if (s->gpu) s->device_free_before = device_free_bytes();

    pthread_mutex_lock(&log_lock);
    last_llama_error[0] = '\0';
    pthread_mutex_unlock(&log_lock);

    struct llama_model_params mp = L.llama_model_default_params();
    mp.n_gpu_layers = s->gpu ? -1 : 0;
    mp.split_mode = LLAMA_SPLIT_MODE_NONE;
    mp.main_gpu = settings->device_index;
    mp.progress_callback = load_progress;
    mp.progress_callback_user_data = (void *)host;
    s->model = L.llama_model_load_from_file(m->path, mp);
    if (!s->model) {
        if (cancel_requested((void *)host)) {
            snprintf(message, message_size, "llamacpp: loading %s was cancelled", m->path);
            free(s);
            return FB_ERR_CANCELLED;
        }
        pthread_mutex_lock(&log_lock);
        snprintf(message, message_size, "llamacpp: llama.cpp could not load %.200s%s%.200s", m->path,
                 last_llama_error[0] ? ": " : "", last_llama_error);
        pthread_mutex_unlock(&log_lock);
        free(s);
        return FB_ERR_INTERNAL;
    }
    int32_t vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(s->model));
    if (vocab != (int32_t)m->n_vocab) {
        snprintf(message, message_size, "llamacpp: llama.cpp reads %d tokens in %s's vocabulary, fairbench %u",
                 (int)vocab, m->path, m->n_vocab);
        llamacpp_destroy(s);
        return FB_ERR_INTERNAL;
    }
    s->n_vocab = m->n_vocab;

    struct llama_context_params cp = L.llama_context_default_params();
    cp.n_ctx = s->n_ctx;
    cp.n_batch = cp.n_ubatch = (uint32_t)opt.n_batch;
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = s->threads;
    cp.flash_attn_type = opt.flash_attn ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k = cp.type_v = opt.kv_f16 ? GGML_TYPE_F16 : GGML_TYPE_F32;
    cp.no_perf = true;
    cp.abort_callback = cancel_requested;
    cp.abort_callback_data = (void *)host;
    s->ctx = L.llama_init_from_model(s->model, cp);
    if (!s->ctx) {
        pthread_mutex_lock(&log_lock);
        snprintf(message, message_size, "llamacpp: llama.cpp could not make a context of %u positions%s%.200s",
                 s->n_ctx, last_llama_error[0] ? ": " : "", last_llama_error);
        pthread_mutex_unlock(&log_lock);
        llamacpp_destroy(s);
        return FB_ERR_INTERNAL;
    }
    s->batch = L.llama_batch_init(opt.n_batch, 0, 1);
    if (!s->batch.token) {
        snprintf(message, message_size, "llamacpp: out of memory for a batch of %d tokens", opt.n_batch);
        llamacpp_destroy(s);
        return FB_ERR_OUT_OF_MEMORY;
    }
    // llama.cpp rounds its cache up to a multiple of 256 positions: count what it allocated.
    s->kv_bytes = (uint64_t)2 * m->n_layer * L.llama_n_ctx(s->ctx) * m->n_head_kv * m->head_dim * (opt.kv_f16 ? 2 : 4);
    s->model_bytes = L.llama_model_size(s->model);
    update_device_memory(s);

    char cpu[96];
    cpu_device_name(cpu, sizeof cpu);
    if (s->gpu) snprintf(s->device, sizeof s->device, "%.90s (llama.cpp %.20s)", lib_gpu, L.llama_version());
    else
        snprintf(s->device, sizeof s->device, "%.80s, %d cores, llama.cpp %.20s", cpu, online_cores(),
                 L.llama_version());
    // What llama.cpp does that the others do not, for the audit and the reader.
    const char *kv = opt.kv_f16 ? "KV f16" : opt.flash_attn ? "KV f32, cast to f16 inside flash attention" : "KV f32";
    if (s->gpu)
        snprintf(s->notes, sizeof s->notes,
                 "file's types as stored; quantized matmuls round activations to 8 bits (q8_1); %s; token embedding "
                 "read on the CPU; logits copied to the host, argmax there",
                 kv);
    else {
        // An OpenMP build's speed on a busy machine hangs on libgomp's wait policy (docs/llamacpp.md).
        const char *info = L.llama_print_system_info(), *policy = getenv("OMP_WAIT_POLICY");
        char omp[64] = "";
        if (info && strstr(info, "OPENMP = 1"))
            snprintf(omp, sizeof omp, "; OpenMP, OMP_WAIT_POLICY %.20s", policy && policy[0] ? policy : "unset");
        snprintf(s->notes, sizeof s->notes,
                 "file's types as stored; quantized matmuls round activations to 8 bits (Q8_0/Q8_1), f16 ones to "
                 "f16; %s; weights may be repacked at load%s",
                 kv, omp);
    }
    *out = s;
    return FB_OK;
}

// ----------------------------------------------------------------------------
// Running tokens

static int argmax_lowest(const float *v, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return (int)best;
}

/* Run n tokens at the next positions, in batches of n_batch. Row i of
 * `logits` gets position i's logits when all_logits; the last position's
 * argmax goes to *next_token (and its logits to `logits` when last_logits). */
static fb_status run_tokens(fb_session *s, const int32_t *tokens, uint32_t n, bool all_logits, float *logits,
                            bool last_logits, int32_t *next_token) {
    if (!tokens || n == 0 || !next_token || ((all_logits || last_logits) && !logits)) {
        set_error(s, "llamacpp: no tokens, or a NULL output buffer");
        return FB_ERR_INVALID_ARGUMENT;
    }
    // The context first: a prompt that cannot fit is refused before its ids are read.
    if ((uint64_t)s->n_pos + n > s->n_ctx) {
        set_error(s, "llamacpp: %u tokens from position %u would pass the context of %u positions", n, s->n_pos,
                  s->n_ctx);
        return FB_ERR_CONTEXT_FULL;
    }
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= s->n_vocab) {
            set_error(s, "llamacpp: token id %d at index %u is outside the vocabulary (0..%u)", (int)tokens[i], i,
                      s->n_vocab - 1);
            return FB_ERR_INVALID_ARGUMENT;
        }
    pthread_mutex_lock(&log_lock);
    last_llama_error[0] = '\0';
    pthread_mutex_unlock(&log_lock);
    const float *last = NULL;
    for (uint32_t done = 0; done < n;) {
        uint32_t chunk = n - done < (uint32_t)s->opt.n_batch ? n - done : (uint32_t)s->opt.n_batch;
        s->batch.n_tokens = (int32_t)chunk;
        for (uint32_t i = 0; i < chunk; i++) {
            s->batch.token[i] = tokens[done + i];
            s->batch.pos[i] = (llama_pos)(s->n_pos + i);
            s->batch.n_seq_id[i] = 1;
            s->batch.seq_id[i][0] = 0;
            s->batch.logits[i] = (int8_t)(all_logits || done + i == n - 1);
        }
        int32_t rc = L.llama_decode(s->ctx, s->batch);
        if (rc == 2) {
            set_error(s, "llamacpp: cancelled at position %u", s->n_pos);
            return FB_ERR_CANCELLED;
        }
        if (rc != 0) {
            pthread_mutex_lock(&log_lock);
            set_error(s, "llamacpp: llama_decode returned %d at position %u%s%.200s", (int)rc, s->n_pos,
                      last_llama_error[0] ? ": " : "", last_llama_error);
            pthread_mutex_unlock(&log_lock);
            return FB_ERR_INTERNAL;
        }
        for (uint32_t i = 0; i < chunk; i++) {
            if (!s->batch.logits[i]) continue;
            const float *row = L.llama_get_logits_ith(s->ctx, (int32_t)i);
            if (!row) {
                set_error(s, "llamacpp: llama.cpp returned no logits for position %u", s->n_pos + i);
                return FB_ERR_INTERNAL;
            }
            if (all_logits) memcpy(logits + (size_t)(done + i) * s->n_vocab, row, s->n_vocab * sizeof(float));
            last = row;
        }
        s->n_pos += chunk;
        done += chunk;
    }
    *next_token = argmax_lowest(last, s->n_vocab);
    if (last_logits && !all_logits) memcpy(logits, last, s->n_vocab * sizeof(float));
    update_device_memory(s);
    return FB_OK;
}

static fb_status llamacpp_prefill(fb_session *s, const int32_t *tokens, uint32_t n_tokens, uint32_t flags,
                                  float *logits, int32_t *next_token) {
    if (!s) return FB_ERR_INVALID_ARGUMENT;
    if (flags > FB_LOGITS_ALL) {
        set_error(s, "llamacpp: unknown prefill flags %u", flags);
        return FB_ERR_INVALID_ARGUMENT;
    }
    return run_tokens(s, tokens, n_tokens, flags == FB_LOGITS_ALL, logits, flags == FB_LOGITS_LAST, next_token);
}

static fb_status llamacpp_decode(fb_session *s, int32_t token, float *logits, int32_t *next_token) {
    if (!s) return FB_ERR_INVALID_ARGUMENT;
    return run_tokens(s, &token, 1, false, logits, logits != NULL, next_token);
}

static fb_status llamacpp_reset(fb_session *s) {
    if (!s) return FB_ERR_INVALID_ARGUMENT;
    // Positions are forgotten; the buffers need no clearing (masked by position).
    L.llama_memory_clear(L.llama_get_memory(s->ctx), false);
    s->n_pos = 0;
    return FB_OK;
}

static fb_status llamacpp_memory(fb_session *s, fb_memory_stats *out) {
    if (!s || !out) return FB_ERR_INVALID_ARGUMENT;
    update_device_memory(s);
    out->device_bytes = s->device_bytes;
    out->device_peak_bytes = s->device_peak;
    // CPU: the KV cache and the weights as llama.cpp holds them (mapped from the file or copied).
    out->host_bytes = s->gpu ? 0 : s->kv_bytes + s->model_bytes;
    return FB_OK;
}

static fb_status llamacpp_effective_settings(fb_session *s, fb_effective_settings *out) {
    if (!s || !out) return FB_ERR_INVALID_ARGUMENT;
    uint32_t size = out->struct_size;
    out->weight_precision = s->weight_precision;
    out->accumulate_precision = FB_PRECISION_F32;
    out->jit = 0;
    out->graphs = s->graphs;
    out->threads = s->threads;
    out->kernel_cache_hit = -1;
    snprintf(out->device, sizeof out->device, "%s", s->device);
    snprintf(out->notes, sizeof out->notes, "%s", s->notes);
    if (size >= offsetof(fb_effective_settings, options) + sizeof out->options)
        snprintf(out->options, sizeof out->options, "flash_attn=%s, n_batch=%d, kv_type=%s",
                 s->opt.flash_attn ? "on" : "off", s->opt.n_batch, s->opt.kv_f16 ? "f16" : "f32");
    return FB_OK;
}

static const char *llamacpp_last_error(fb_session *s) { return s ? s->error : ""; }

static fb_status llamacpp_probe(const fb_host *host, fb_probe_result *out) {
    if (!out) return FB_ERR_INVALID_ARGUMENT;
    out->available = 0;
    out->device[0] = out->reason[0] = '\0';
    if (!ensure_library(host)) {
        snprintf(out->reason, sizeof out->reason, "%s", lib_error);
        return FB_OK;
    }
    if (gpu_build_without_gpu(out->reason, sizeof out->reason)) return FB_OK;
    out->available = 1;
    if (use_gpu()) {
        snprintf(out->device, sizeof out->device, "%.90s (llama.cpp %.20s)", lib_gpu, L.llama_version());
    } else {
        char cpu[96];
        cpu_device_name(cpu, sizeof cpu);
        snprintf(out->device, sizeof out->device, "%.80s, llama.cpp %.20s", cpu, L.llama_version());
    }
    return FB_OK;
}

// ----------------------------------------------------------------------------
// The table

static fb_plugin plugin = {
    .abi_major = FB_ABI_MAJOR,
    .abi_minor = FB_ABI_MINOR,
    .struct_size = sizeof(fb_plugin),
    .capabilities = FB_CAP_CPU | FB_CAP_PRECISION_F32 | FB_CAP_PRECISION_F16 | FB_CAP_PRECISION_BF16 |
                    FB_CAP_PRECISION_NATIVE | FB_CAP_THREADS,
    .name = "llamacpp",
    .version = "0.1.0",
    .description = "llama.cpp " FB_LLAMACPP_VERSION " through its C API: the file's own tensor types, its own kernels",
    .probe = llamacpp_probe,
    .create = llamacpp_create,
    .prefill = llamacpp_prefill,
    .decode = llamacpp_decode,
    .reset = llamacpp_reset,
    .memory = llamacpp_memory,
    .effective_settings = llamacpp_effective_settings,
    .last_error = llamacpp_last_error,
    .destroy = llamacpp_destroy,
    .copy_bandwidth = NULL,
    .check_option = llamacpp_check_option,
    .factory_count = NULL,
    .factory_get = NULL,
};

/* The library beside libllama.so decides CPU or GPU: a build with ggml's CUDA
 * backend (libggml-cuda.so next to it) is a GPU backend. A file check only:
 * nothing is loaded here. */
FB_PLUGIN_EXPORT const fb_plugin *fb_plugin_entry(void) {
    const char *lib = library_path();
    const char *slash = strrchr(lib, '/');
    if (slash) {
        char cuda[1100];
        snprintf(cuda, sizeof cuda, "%.*s/libggml-cuda.so", (int)(slash - lib), lib);
        if (access(cuda, F_OK) == 0)
            plugin.capabilities = (plugin.capabilities & ~FB_CAP_CPU) | FB_CAP_GPU | FB_CAP_GRAPHS;
    }
    return &plugin;
}
