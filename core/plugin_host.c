/* plugin_host.c - host services and model views for plugins. */
#include "plugin_host.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

// ----------------------------------------------------------------------------
// Host services

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t cancel_requested;

static void host_log(const fb_host *host, fb_log_level level, const char *message) {
    (void)host;
    static const char *names[] = {"debug", "info", "warning", "error"};
    if (level == FB_LOG_DEBUG && !getenv("FAIRBENCH_DEBUG")) return;
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "fairbench: plugin %s: %s\n", (unsigned)level < 4 ? names[level] : "log", message ? message : "");
    pthread_mutex_unlock(&log_lock);
}

static int host_dequantize_f32(uint32_t type, const void *src, float *dst, int64_t n) {
    return quant_row_to_f32(type, src, dst, n);
}

static int host_dequantize_f16(uint32_t type, const void *src, uint16_t *dst, int64_t n) {
    return quant_row_to_f16(type, src, dst, n);
}

static uint64_t host_row_bytes(uint32_t type, int64_t n) { return quant_row_bytes(type, n); }

static const char *host_type_name(uint32_t type) {
    const quant_type_info *t = quant_type_get(type);
    return t ? t->name : "unknown";
}

/* Progress is shown by the harness's own reporting; plugins' fine-grained
 * progress is accepted and dropped for now. */
static void host_progress(const fb_host *host, const char *stage, double fraction) {
    (void)host, (void)stage, (void)fraction;
}

static int host_is_cancelled(const fb_host *host) {
    (void)host;
    return cancel_requested != 0;
}

void fb_host_request_cancel(void) { cancel_requested = 1; }

static const fb_host host_table = {
    .struct_size = sizeof(fb_host),
    .abi_major = FB_ABI_MAJOR,
    .abi_minor = FB_ABI_MINOR,
    .log = host_log,
    .dequantize_row_f32 = host_dequantize_f32,
    .dequantize_row_f16 = host_dequantize_f16,
    .row_bytes = host_row_bytes,
    .type_name = host_type_name,
    .progress = host_progress,
    .is_cancelled = host_is_cancelled,
    .host_data = NULL,
};

const fb_host *fb_host_services(void) { return &host_table; }

// ----------------------------------------------------------------------------
// Model view

static fb_tensor_view tensor_view(const gguf_tensor *t) {
    fb_tensor_view v = {.name = t->name, .type = t->type, .n_dims = t->n_dims, .data = t->data, .n_bytes = t->n_bytes};
    for (int d = 0; d < 4; d++) v.ne[d] = t->ne[d];
    return v;
}

int fb_model_view_build(const fb_model *m, fb_model_view_owner *out, fb_error *err) {
    memset(out, 0, sizeof *out);
    const fb_hparams *hp = &m->hp;
    out->layers = calloc(hp->n_layer, sizeof *out->layers);
    if (!out->layers) return fb_error_set(err, "out of memory for the model view");
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const fb_layer *L = &m->layers[l];
        fb_layer_view *V = &out->layers[l];
        V->attn_norm = tensor_view(L->attn_norm);
        V->attn_q = tensor_view(L->attn_q);
        V->attn_k = tensor_view(L->attn_k);
        V->attn_v = tensor_view(L->attn_v);
        V->attn_output = tensor_view(L->attn_output);
        V->ffn_norm = tensor_view(L->ffn_norm);
        V->ffn_gate = tensor_view(L->ffn_gate);
        V->ffn_up = tensor_view(L->ffn_up);
        V->ffn_down = tensor_view(L->ffn_down);
    }
    out->token_embd = tensor_view(m->token_embd);
    out->output_norm = tensor_view(m->output_norm);
    out->output = tensor_view(m->output);
    if (m->rope_freqs) out->rope_freqs = tensor_view(m->rope_freqs);

    fb_model_view *v = &out->view;
    v->struct_size = sizeof *v;
    v->path = gguf_path(m->file);
    v->name = m->name;
    v->arch = m->arch;
    v->n_embd = hp->n_embd;
    v->n_layer = hp->n_layer;
    v->n_head = hp->n_head;
    v->n_head_kv = hp->n_head_kv;
    v->head_dim = hp->head_dim;
    v->n_ff = hp->n_ff;
    v->n_ctx = hp->n_ctx;
    v->n_vocab = hp->n_vocab;
    v->n_rot = hp->n_rot;
    v->rope_freq_base = hp->rope_freq_base;
    v->rms_eps = hp->rms_eps;
    v->rope_freqs = m->rope_freqs ? &out->rope_freqs : NULL;
    v->token_embd = &out->token_embd;
    v->output_norm = &out->output_norm;
    v->output = m->tied_output ? &out->token_embd : &out->output;
    v->tied_output = m->tied_output;
    v->layers = out->layers;
    v->tensor_view_size = sizeof(fb_tensor_view);
    v->layer_view_size = sizeof(fb_layer_view);
    v->decode_bytes_native = fb_model_decode_bytes(m, -1);
    return 0;
}

void fb_model_view_free(fb_model_view_owner *v) {
    free(v->layers);
    memset(v, 0, sizeof *v);
}
