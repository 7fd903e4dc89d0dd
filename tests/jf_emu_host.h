/* jf_emu_host.h - the host side of running jit_fused's generated kernels on
 * the CPU, for tests/test_jit_fused_emulated.c and
 * tests/test_jit_fused_prefill_emulated.c: build the source the plugin would
 * hand NVRTC as a shared object with the host C++ compiler (against
 * tests/jf_emulate.h), launch its kernels by id as the plugin does, and lay
 * a model's weights and buffers out in host memory exactly as the plugin
 * lays them out on the device. */
#ifndef FB_TEST_JF_EMU_HOST_H
#define FB_TEST_JF_EMU_HOST_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "jf_host.h"
#include "plugin_host.h"

typedef int (*jf_emu_launch_fn)(const char *, unsigned, unsigned, unsigned, unsigned, void **, char *, size_t);
typedef long (*jf_emu_spins_fn)(void);

/* A built emulator: its launcher, and the spin-wait pauses of the
 * persistent step's blocks so far. */
typedef struct jf_emu {
    jf_emu_launch_fn launch;
    jf_emu_spins_fn spins;
    char error[512];
    int launches;
} jf_emu;

/* jf_launch_fn for jf_forward and friends: kernel k of kind `kind` by name. */
static int jf_emu_launch_kernel(void *ctx, jf_kernel_id k, int kind, unsigned gx, unsigned gy, unsigned gz,
                                unsigned threads, void **args) {
    jf_emu *e = ctx;
    char name[64];
    jf_kernel_name(k, kind, name, sizeof name);
    e->launches++;
    return e->launch(name, gx, gy, gz, threads, args, e->error, sizeof e->error);
}

/* Build the generated source for c as tmp_dir/<prefix>_<tag>.so (with
 * `defines` before it: a mutation, or ""), load it into *e and return 0; -1
 * after a failed CHECK. Give each build its own tag: a second dlopen of a
 * path returns the first build. */
static int jf_emu_build(const jf_config *c, const char *tmp_dir, const char *cxx, const char *inc, const char *prefix,
                        const char *tag, const char *defines, jf_emu *e, void **handle) {
    char cpp[512], so[512], cmd[2048];
    memset(e, 0, sizeof *e);
    *handle = NULL;
    snprintf(cpp, sizeof cpp, "%s/%s_%s.cpp", tmp_dir, prefix, tag);
    snprintf(so, sizeof so, "%s/%s_%s.so", tmp_dir, prefix, tag);
    char *src = jf_generate_source(c);
    FILE *f = fopen(cpp, "w");
    if (!src || !f) {
        CHECK(0, "write %s", cpp);
        free(src);
        if (f) fclose(f);
        return -1;
    }
    fprintf(f, "#define JF_EMULATE 1\n%s#include \"jf_emulate.h\"\n%s\n", defines, src);
    fprintf(f, "static const jf_emu_entry jf_emu_table[] = {\n");
    for (int k = 0; k < JF_K_COUNT; k++)
        for (int kind = 0; kind < (jf_kernel_per_layer((jf_kernel_id)k) ? c->n_kinds : 1); kind++) {
            if (!jf_kernel_present(c, (jf_kernel_id)k)) continue;
            char name[64];
            jf_kernel_name((jf_kernel_id)k, kind, name, sizeof name);
            fprintf(f, "    JF_EMU_ENTRY(%s),\n", name);
        }
    fprintf(f, "};\nJF_EMU_LAUNCH_DEFINITION\n");
    fclose(f);
    free(src);
    const char *extra = getenv("JF_EMU_CXXFLAGS"); /* e.g. "-g" when debugging a kernel */
#if defined(__SANITIZE_ADDRESS__)
    /* a sanitizer build of the test checks the kernels' memory accesses too
     * (tests/cuda_emulate.h announces its stack switches to ASan) */
    const char *sanitize = "-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined";
#else
    const char *sanitize = "";
#endif
    /* GCC makes the static locals of inline functions (the kernels' __shared__ arrays) "unique" symbols,
     * which the dynamic linker shares between the builds a test loads one after another (one build's
     * arrays would serve the next): -fno-gnu-unique keeps each build's own */
    char probe[600];
    snprintf(probe, sizeof probe, "%s -fno-gnu-unique -x c++ -E /dev/null >/dev/null 2>&1", cxx);
    const char *unique = system(probe) == 0 ? "-fno-gnu-unique" : "";
    snprintf(cmd, sizeof cmd, "%s -std=c++17 -O1 -shared -fPIC -w %s %s %s -I%s -o %s %s 2>&1", cxx, unique, sanitize,
             extra ? extra : "", inc, so, cpp);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = system(cmd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(rc == 0, "%s: the host compiler builds the generated kernels (%s)", tag, cmd);
    if (rc != 0) return -1;
    printf("  %s: kernels built for the CPU in %.1f s\n", tag,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    *handle = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    e->launch = *handle ? (jf_emu_launch_fn)dlsym(*handle, "jf_emu_launch") : NULL;
    e->spins = *handle ? (jf_emu_spins_fn)dlsym(*handle, "jf_emu_spins") : NULL;
    CHECK(e->launch && e->spins, "%s: load %s: %s", tag, so, *handle ? "no jf_emu_launch or jf_emu_spins" : dlerror());
    if (e->launch && e->spins) return 0;
    e->launch = NULL; /* callers test it: no launcher, nothing loaded */
    return -1;
}

/* Top-1 agreement and relative error of n logits rows against cpu_ref's; 1
 * when within the bounds. Checked (must pass) unless `report_only`. */
static int jf_emu_agreement(const char *label, const float *got, const float *want, int n, int n_vocab,
                            double min_agree, double max_rel, int report_only) {
    int agree = 0;
    for (int i = 0; i < n; i++)
        agree += argmax_f(got + (size_t)i * n_vocab, (size_t)n_vocab) ==
                 argmax_f(want + (size_t)i * n_vocab, (size_t)n_vocab);
    double rel = rel_error(got, want, (size_t)n * n_vocab);
    printf("  %-44s top-1 %d/%d, logits relative error %.3g\n", label, agree, n, rel);
    int ok = (double)agree / n >= min_agree && rel <= max_rel;
    if (!report_only)
        CHECK(ok, "%s: top-1 %d/%d (need %.2f), relative error %.3g (at most %.3g)", label, agree, n, min_agree, rel,
              max_rel);
    return ok;
}

/* Host copies of everything the kernels touch, laid out as the plugin lays
 * them out on the device (calloc: padding and unwritten rows are zero). */
typedef struct jf_emu_model {
    jf_buffers b;
    void *blocks[128];
    int n_blocks;
} jf_emu_model;

/* A zeroed block that jf_emu_model_free frees. */
static void *jf_emu_take(jf_emu_model *h, size_t bytes) {
    void *p = calloc(1, bytes ? bytes : 1);
    if (p && h->n_blocks < 128) h->blocks[h->n_blocks++] = p;
    return p;
}

static void jf_emu_model_free(jf_emu_model *h) {
    for (int i = 0; i < h->n_blocks; i++) free(h->blocks[i]);
    free(h->b.layers);
}

static size_t jf_emu_matrix_bytes(const jf_config *c, const fb_tensor_view *t) {
    return (size_t)t->ne[1] * (size_t)jf_row_bytes(jf_device_type(c, t->type), t->ne[0]);
}

/* Matrix t into the device layout of its device type (the plugin's own
 * jf_layout_rows): into `into`, or a new block stored in *out. */
static int jf_emu_convert(jf_emu_model *h, const jf_config *c, const fb_tensor_view *t, void **out, void *into) {
    void *dst = into ? into : (*out = jf_emu_take(h, jf_emu_matrix_bytes(c, t)));
    return dst ? jf_layout_rows(fb_host_services(), t->type, t->data, t->ne[1], t->ne[0], dst,
                                jf_device_type(c, t->type), 2)
               : -2;
}

/* A norm vector into f32 rows of ld_dim (zero padding). */
static int jf_emu_convert_vector(jf_emu_model *h, const jf_config *c, const fb_tensor_view *t, float **out) {
    *out = jf_emu_take(h, (size_t)c->ld_dim * sizeof(float));
    return *out ? jf_layout_rows(fb_host_services(), t->type, t->data, 1, t->ne[0], *out, JF_T_F32, 1) : -2;
}

/* The weights of mv and every buffer of jf_buffers (the persistent step's
 * counters and table of layers included) for config c; 0, or -1. */
static int jf_emu_model_load(jf_emu_model *h, const jf_config *c, const fb_model_view *mv) {
    memset(h, 0, sizeof *h);
    jf_buffers *b = &h->b;
    size_t f = sizeof(float), B = (size_t)c->nb;
    int rc = 0;
    b->layers = calloc((size_t)c->n_layers, sizeof *b->layers);
    if (!b->layers) return -1;
    rc |= jf_emu_convert(h, c, mv->token_embd, &b->token_embd, NULL);
    for (int l = 0; l < c->n_layers; l++) {
        const fb_layer_view *L = FB_MODEL_LAYER(mv, l);
        jf_layer_buffers *lw = &b->layers[l];
        lw->kind = jf_layer_kind(c, mv, l);
        rc |= lw->kind < 0;
        rc |= jf_emu_convert_vector(h, c, &L->attn_norm, &lw->attn_norm);
        size_t q_bytes = jf_emu_matrix_bytes(c, &L->attn_q), k_bytes = jf_emu_matrix_bytes(c, &L->attn_k);
        lw->w_qkv = jf_emu_take(h, q_bytes + k_bytes + jf_emu_matrix_bytes(c, &L->attn_v));
        uint8_t *qkv = lw->w_qkv;
        rc |= !qkv || jf_emu_convert(h, c, &L->attn_q, NULL, qkv);
        rc |= !qkv || jf_emu_convert(h, c, &L->attn_k, NULL, qkv + q_bytes);
        rc |= !qkv || jf_emu_convert(h, c, &L->attn_v, NULL, qkv + q_bytes + k_bytes);
        rc |= jf_emu_convert(h, c, &L->attn_output, &lw->w_o, NULL);
        rc |= jf_emu_convert_vector(h, c, &L->ffn_norm, &lw->ffn_norm);
        rc |= jf_emu_convert(h, c, &L->ffn_gate, &lw->w_gate, NULL);
        rc |= jf_emu_convert(h, c, &L->ffn_up, &lw->w_up, NULL);
        rc |= jf_emu_convert(h, c, &L->ffn_down, &lw->w_down, NULL);
    }
    rc |= jf_emu_convert_vector(h, c, mv->output_norm, &b->output_norm);
    if (mv->tied_output) b->output = b->token_embd;
    else
        rc |= jf_emu_convert(h, c, mv->output, &b->output, NULL);
    b->rope_inv_freq = jf_emu_take(h, (size_t)(c->n_rot / 2) * f);
    if (b->rope_inv_freq)
        jf_rope_inv_freq(b->rope_inv_freq, c->n_rot, mv->rope_freq_base,
                         mv->rope_freqs ? (const float *)mv->rope_freqs->data : NULL);
    size_t kv = (size_t)c->n_layers * (size_t)c->max_seq * (size_t)c->kv_dim;
    b->step = jf_emu_take(h, (B + 1) * sizeof(int32_t));
    b->argmax_key = jf_emu_take(h, sizeof(uint64_t));
    b->x = jf_emu_take(h, B * (size_t)c->ld_dim * f);
    b->q = jf_emu_take(h, B * (size_t)c->q_dim * f);
    b->part = jf_emu_take(h, B * (size_t)c->n_heads * (size_t)c->splits * (size_t)(c->head_dim + 2) * f);
    b->att = jf_emu_take(h, B * (size_t)c->ld_q * f);
    b->hb = jf_emu_take(h, B * (size_t)c->ld_ff * f);
    b->logits = jf_emu_take(h, B * (size_t)c->vocab * f);
    b->key_cache = jf_emu_take(h, kv * f);
    b->value_cache = jf_emu_take(h, kv * f);
    b->att_count = jf_emu_take(h, B * (size_t)c->n_kv_heads * sizeof(uint32_t)); /* zero, as the plugin clears it */
    b->sync = jf_emu_take(h, jf_sync_words(c) * sizeof(uint32_t));
    b->step_layers = jf_emu_take(h, (size_t)c->n_layers * sizeof(jf_step_layer));
    if (b->step_layers && !rc) jf_step_layers(c, b, b->step_layers);
    return rc || h->n_blocks >= 128 || !b->step_layers ? -1 : 0;
}

#endif
