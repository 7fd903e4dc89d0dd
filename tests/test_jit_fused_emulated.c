/* test_jit_fused_emulated.c - jit_fused's generated kernels, run on the CPU,
 * against cpu_ref, with no GPU.
 *
 *   test_jit_fused_emulated TMP_DIR CXX INCLUDE_DIR [--seed N]
 *
 * For two synthetic models, at f32, f16 and bf16: one of odd shape (width
 * 90, 5 heads / 1 KV head of 18, ff 250, vocab 1001, 2 layers, Llama-3
 * RoPE, untied, F16: nothing a multiple of the 16-byte vectors, so every
 * padding path runs) and one with many small heads (width 128, 32 heads / 8
 * KV heads of 4, ff 256, vocab 512, Q8_0, tied: 8 attention splits, so each
 * warp's online softmax runs over several positions):
 * the kernel source the plugin would hand NVRTC is built instead by the host
 * C++ compiler CXX with tests/jf_emulate.h (every block as fibers, warp
 * shuffles and barriers emulated), the weights are converted by the plugin's
 * own jf_convert_rows into its padded layout, and jf_forward (the plugin's
 * own launch sequence) runs: a chunked prefill with logits for every
 * position, then teacher-forced decode steps, then a prefill that asks for
 * the last logits only. Logits must agree with cpu_ref's at the same
 * precision (top-1 and relative error, the bounds the GPU test uses), and
 * every argmax the kernels return must be the argmax of their logits.
 *
 * What this does not check: speed, the CUDA graph, device memory, the
 * driver and NVRTC calls; those need a GPU (scripts/gpu-check.sh). */
#include <dlfcn.h>
#include <inttypes.h>
#include <time.h>

#include "check.h"
#include "cpu_ref_session.h"
#include "jf_host.h"
#include "quant.h"
#include "synth.h"

#define N_TOKENS 40   /* teacher-forced positions: attention splits reach 2 positions each */
#define N_PREFILL 11  /* the first ones by prefill: a pass of 8, then one of 3 */
#define LM_GRID 4     /* the LM head's grid-stride loop runs 32 times over 1001 rows */

typedef int (*emu_launch_fn)(const char *, unsigned, unsigned, unsigned, unsigned, void **, char *, size_t);

typedef struct Emu {
    emu_launch_fn launch;
    char error[512];
    int launches;
} Emu;

static int emu_launch(void *ctx, jf_kernel_id k, unsigned gx, unsigned gy, unsigned gz, unsigned threads, void **args) {
    Emu *e = ctx;
    e->launches++;
    return e->launch(jf_kernel_names[k], gx, gy, gz, threads, args, e->error, sizeof e->error);
}

/* Build the generated source for c as a shared object; its launcher, or NULL. */
static emu_launch_fn build_emulator(const jf_config *c, const char *tmp_dir, const char *cxx, const char *inc,
                                    const char *tag, void **handle) {
    char cpp[512], so[512], cmd[2048];
    snprintf(cpp, sizeof cpp, "%s/jit_fused_emulated_%s.cpp", tmp_dir, tag);
    snprintf(so, sizeof so, "%s/jit_fused_emulated_%s.so", tmp_dir, tag);
    char *src = jf_generate_source(c);
    FILE *f = fopen(cpp, "w");
    if (!src || !f) {
        CHECK(0, "write %s", cpp);
        free(src);
        if (f) fclose(f);
        return NULL;
    }
    fprintf(f, "#define JF_EMULATE 1\n#include \"jf_emulate.h\"\n%s\n", src);
    fprintf(f, "static const jf_emu_entry jf_emu_table[] = {\n");
    for (int k = 0; k < JF_K_COUNT; k++) fprintf(f, "    JF_EMU_ENTRY(%s),\n", jf_kernel_names[k]);
    fprintf(f, "};\nJF_EMU_LAUNCH_DEFINITION\n");
    fclose(f);
    free(src);
    const char *extra = getenv("JF_EMU_CXXFLAGS"); /* e.g. "-g" when debugging a kernel */
#if defined(__SANITIZE_ADDRESS__)
    /* a sanitizer build of this test checks the kernels' memory accesses too
     * (tests/cuda_emulate.h announces its stack switches to ASan) */
    const char *sanitize = "-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined";
#else
    const char *sanitize = "";
#endif
    snprintf(cmd, sizeof cmd, "%s -std=c++17 -O1 -shared -fPIC -w %s %s -I%s -o %s %s 2>&1", cxx, sanitize,
             extra ? extra : "", inc, so, cpp);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = system(cmd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(rc == 0, "%s: the host compiler builds the generated kernels (%s)", tag, cmd);
    if (rc != 0) return NULL;
    printf("  %s: kernels built for the CPU in %.1f s\n", tag,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    *handle = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    emu_launch_fn fn = *handle ? (emu_launch_fn)dlsym(*handle, "jf_emu_launch") : NULL;
    CHECK(fn != NULL, "%s: load %s: %s", tag, so, *handle ? "no jf_emu_launch" : dlerror());
    return fn;
}

/* Host copies of everything the kernels touch, laid out as the plugin lays
 * them out on the device. */
typedef struct HostModel {
    jf_buffers b;
    void *blocks[64];
    int n_blocks;
} HostModel;

static void *take(HostModel *h, size_t bytes) {
    void *p = calloc(1, bytes ? bytes : 1);
    if (p && h->n_blocks < 64) h->blocks[h->n_blocks++] = p;
    return p;
}

static void host_free(HostModel *h) {
    for (int i = 0; i < h->n_blocks; i++) free(h->blocks[i]);
    free(h->b.layers);
}

/* Tensor t into padded rows of ld elements of w: into `into`, or a new block stored in *out. */
static int convert(HostModel *h, const fb_tensor_view *t, void **out, int64_t ld, jf_wtype w, void *into) {
    size_t esize = w == JF_F32 ? 4 : 2;
    void *dst = into ? into : (*out = take(h, (size_t)t->ne[1] * (size_t)ld * esize));
    return dst ? jf_convert_rows(fb_host_services(), t->type, t->data, t->ne[1], t->ne[0], dst, ld, w, 2) : -2;
}

static int host_load(HostModel *h, const jf_config *c, const fb_model_view *mv) {
    memset(h, 0, sizeof *h);
    jf_buffers *b = &h->b;
    size_t e = (size_t)c->esize, f = sizeof(float), B = (size_t)c->nb;
    int rc = 0;
    b->layers = calloc((size_t)c->n_layers, sizeof *b->layers);
    rc |= convert(h, mv->token_embd, &b->token_embd, c->ld_dim, c->wtype, NULL);
    for (int l = 0; l < c->n_layers; l++) {
        const fb_layer_view *L = FB_MODEL_LAYER(mv, l);
        jf_layer_buffers *lw = &b->layers[l];
        rc |= convert(h, &L->attn_norm, (void **)&lw->attn_norm, c->ld_dim, JF_F32, NULL);
        lw->w_qkv = take(h, ((size_t)c->q_dim + 2 * (size_t)c->kv_dim) * (size_t)c->ld_dim * e);
        uint8_t *qkv = lw->w_qkv;
        rc |= convert(h, &L->attn_q, NULL, c->ld_dim, c->wtype, qkv);
        rc |= convert(h, &L->attn_k, NULL, c->ld_dim, c->wtype, qkv + (size_t)c->q_dim * c->ld_dim * e);
        rc |= convert(h, &L->attn_v, NULL, c->ld_dim, c->wtype,
                      qkv + ((size_t)c->q_dim + (size_t)c->kv_dim) * c->ld_dim * e);
        rc |= convert(h, &L->attn_output, &lw->w_o, c->ld_q, c->wtype, NULL);
        rc |= convert(h, &L->ffn_norm, (void **)&lw->ffn_norm, c->ld_dim, JF_F32, NULL);
        rc |= convert(h, &L->ffn_gate, &lw->w_gate, c->ld_dim, c->wtype, NULL);
        rc |= convert(h, &L->ffn_up, &lw->w_up, c->ld_dim, c->wtype, NULL);
        rc |= convert(h, &L->ffn_down, &lw->w_down, c->ld_ff, c->wtype, NULL);
    }
    rc |= convert(h, mv->output_norm, (void **)&b->output_norm, c->ld_dim, JF_F32, NULL);
    if (mv->tied_output) b->output = b->token_embd;
    else rc |= convert(h, mv->output, &b->output, c->ld_dim, c->wtype, NULL);
    b->rope_inv_freq = take(h, (size_t)(c->n_rot / 2) * f);
    if (b->rope_inv_freq)
        jf_rope_inv_freq(b->rope_inv_freq, c->n_rot, mv->rope_freq_base,
                         mv->rope_freqs ? (const float *)mv->rope_freqs->data : NULL);
    size_t kv = (size_t)c->n_layers * (size_t)c->max_seq * (size_t)c->kv_dim;
    b->step = take(h, (B + 1) * sizeof(int32_t));
    b->argmax_key = take(h, sizeof(uint64_t));
    b->x = take(h, B * (size_t)c->ld_dim * f); /* calloc: the padding is zero */
    b->q = take(h, B * (size_t)c->q_dim * f);
    b->part = take(h, B * (size_t)c->n_heads * (size_t)c->splits * (size_t)(c->head_dim + 2) * f);
    b->att = take(h, B * (size_t)c->ld_q * f);
    b->hb = take(h, B * (size_t)c->ld_ff * f);
    b->logits = take(h, B * (size_t)c->vocab * f);
    b->key_cache = take(h, kv * f);
    b->value_cache = take(h, kv * f);
    return rc || h->n_blocks >= 64 || !b->value_cache ? -1 : 0;
}

/* As jit_fused_prefill: chunks of c->nb; logits of every position (all) or
 * of the last. Returns the argmax token, or -1. */
static int32_t emu_prefill(Emu *e, const jf_config *c, HostModel *h, int pos, const int32_t *tokens, int n, int all,
                           float *logits) {
    for (int done = 0; done < n;) {
        int batch = n - done < c->nb ? n - done : c->nb;
        int last = done + batch == n;
        h->b.step[0] = pos + done;
        memcpy(h->b.step + 1, tokens + done, (size_t)batch * sizeof(int32_t));
        if (jf_forward(c, &h->b, LM_GRID, batch, all ? 0 : batch - 1, all || last, emu_launch, e) != 0) return -1;
        if (all) memcpy(logits + (size_t)done * c->vocab, h->b.logits, (size_t)batch * c->vocab * sizeof(float));
        else if (last) memcpy(logits, h->b.logits, (size_t)c->vocab * sizeof(float));
        done += batch;
    }
    return jf_token_of_key(*h->b.argmax_key);
}

static void agreement(const char *label, const float *got, const float *want, int n, int n_vocab, double min_agree,
                      double max_rel) {
    int agree = 0;
    for (int i = 0; i < n; i++)
        agree += argmax_f(got + (size_t)i * n_vocab, (size_t)n_vocab) == argmax_f(want + (size_t)i * n_vocab, (size_t)n_vocab);
    double rel = rel_error(got, want, (size_t)n * n_vocab);
    printf("  %-34s top-1 %d/%d, logits relative error %.3g\n", label, agree, n, rel);
    CHECK((double)agree / n >= min_agree && rel <= max_rel, "%s: top-1 %d/%d (need %.2f), relative error %.3g (at most %.3g)",
          label, agree, n, min_agree, rel, max_rel);
}

static void run_precision(const test_model *tm, int model, const fb_plugin *ref, fb_precision p, const int32_t *tokens,
                          const char *tmp_dir, const char *cxx, const char *inc) {
    static const char *names[] = {"f32", "f16", "bf16"};
    static const double min_agree[] = {1.0, 0.95, 0.90}, max_rel[] = {1e-4, 3e-2, 1e-1};
    const jf_wtype w = p == FB_PRECISION_F32 ? JF_F32 : p == FB_PRECISION_F16 ? JF_F16 : JF_BF16;
    const fb_model_view *mv = &tm->view.view;
    const int n_vocab = (int)mv->n_vocab;
    jf_config c;
    char msg[256];
    CHECK(jf_config_from_view(mv, N_TOKENS + 1, w, &c, msg, sizeof msg) == 0, "config: %s", msg);
    c.pdl = 1; /* the sm_90 source: its launch-dependency instructions are no-ops on the CPU */
    if (w == JF_F32) printf("  attention splits %d: up to %d positions per split\n", c.splits, (N_TOKENS + c.splits - 1) / c.splits);

    /* cpu_ref's logits at this precision, teacher-forced */
    float *want = malloc((size_t)N_TOKENS * n_vocab * sizeof(float));
    fb_session *r = test_create(ref, tm, p, 1, N_TOKENS + 1);
    int32_t next;
    CHECK(r && ref->prefill(r, tokens, N_TOKENS, FB_LOGITS_ALL, want, &next) == FB_OK, "cpu_ref %s", names[w]);
    if (r) ref->destroy(r);

    void *handle = NULL;
    char tag[32];
    /* one file name per build: C++ statics in inline functions are unique symbols, which make dlclose
     * keep the library, and a second dlopen of the same path would return the first build */
    snprintf(tag, sizeof tag, "%d_%s", model, names[w]);
    emu_launch_fn launch = build_emulator(&c, tmp_dir, cxx, inc, tag, &handle);
    HostModel h;
    if (!launch || host_load(&h, &c, mv) != 0) {
        CHECK(launch != NULL, "%s: emulator", names[w]);
        free(want);
        if (handle) dlclose(handle);
        return;
    }
    Emu e = {.launch = launch};
    float *got = malloc((size_t)N_TOKENS * n_vocab * sizeof(float));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* prefill with every position's logits, then teacher-forced decode */
    int32_t tok = emu_prefill(&e, &c, &h, 0, tokens, N_PREFILL, 1, got);
    CHECK(tok >= 0, "%s: prefill: %s", names[w], e.error);
    int bad_argmax = tok != argmax_f(got + (size_t)(N_PREFILL - 1) * n_vocab, (size_t)n_vocab);
    for (int i = N_PREFILL; i < N_TOKENS && tok >= 0; i++) {
        h.b.step[0] = i;
        h.b.step[1] = tokens[i];
        if (jf_forward(&c, &h.b, LM_GRID, 1, 0, 1, emu_launch, &e) != 0) {
            CHECK(0, "%s: decode at %d: %s", names[w], i, e.error);
            tok = -1;
            break;
        }
        memcpy(got + (size_t)i * n_vocab, h.b.logits, (size_t)n_vocab * sizeof(float));
        bad_argmax += jf_token_of_key(*h.b.argmax_key) != argmax_f(h.b.logits, (size_t)n_vocab);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("  %s: %d launches emulated in %.1f s\n", names[w], e.launches,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    if (tok >= 0) {
        char label[96];
        snprintf(label, sizeof label, "%s prefill %d + decode %d vs cpu_ref", names[w], N_PREFILL, N_TOKENS - N_PREFILL);
        agreement(label, got, want, N_TOKENS, n_vocab, min_agree[w], max_rel[w]);
        CHECK(bad_argmax == 0, "%s: the kernels' argmax is the argmax of their logits (%d mismatches)", names[w],
              bad_argmax);
        /* a fresh prefill of every token, the last logits only (the KV cache is simply overwritten) */
        float *last = malloc((size_t)n_vocab * sizeof(float));
        int32_t t2 = emu_prefill(&e, &c, &h, 0, tokens, N_TOKENS, 0, last);
        CHECK(t2 == argmax_f(last, (size_t)n_vocab), "%s: last-only prefill's argmax", names[w]);
        snprintf(label, sizeof label, "%s prefill %d, last logits only", names[w], N_TOKENS);
        agreement(label, last, want + (size_t)(N_TOKENS - 1) * n_vocab, 1, n_vocab, min_agree[w], max_rel[w]);
        free(last);
    }
    host_free(&h);
    free(got);
    free(want);
    dlclose(handle);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: test_jit_fused_emulated TMP_DIR CXX INCLUDE_DIR [--seed N]\n");
        return 2;
    }
    const char *tmp_dir = argv[1], *cxx = argv[2], *inc = argv[3];
    uint64_t seed = argc > 5 && strcmp(argv[4], "--seed") == 0 ? strtoull(argv[5], NULL, 10) : (uint64_t)time(NULL);
    printf("test_jit_fused_emulated: seed %" PRIu64 "\n", seed);
    char check_cxx[600];
    snprintf(check_cxx, sizeof check_cxx, "%s --version >/dev/null 2>&1", cxx);
    if (system(check_cxx) != 0) {
        printf("test_jit_fused_emulated: skipped, no C++ compiler '%s'\n", cxx);
        return 77;
    }
    fb_backend_list list;
    const fb_plugin *ref = test_find_backend(&list, "cpu_ref");
    CHECK(ref != NULL, "cpu_ref found");
    for (int m = 0; m < 2 && ref; m++) {
        fb_synth_spec spec;
        fb_synth_preset("tiny", &spec);
        if (m == 0) {
            spec.n_embd = 90, spec.n_head = 5, spec.n_head_kv = 1, spec.n_ff = 250, spec.n_vocab = 1001;
            spec.tied_output = false, spec.llama3_rope = true, spec.type = GGUF_TYPE_F16;
        } else {
            spec.n_embd = 128, spec.n_head = 32, spec.n_head_kv = 8, spec.n_ff = 256, spec.n_vocab = 512;
            spec.tied_output = true, spec.llama3_rope = false, spec.type = GGUF_TYPE_Q8_0;
        }
        spec.n_layer = 2, spec.n_ctx = 64, spec.seed = seed + (uint64_t)m;
        char path[512];
        snprintf(path, sizeof path, "%s/jit_fused_emulated_%d.gguf", tmp_dir, m);
        fb_error err;
        CHECK(fb_synth_write(&spec, path, NULL, &err) == 0, "synth: %s", err.msg);
        test_model tm;
        if (test_model_open(path, &tm) != 0) break;
        printf("model %d: width %u, heads %u/%u, ff %u, vocab %u, %s, %s\n", m, spec.n_embd, spec.n_head, spec.n_head_kv,
               spec.n_ff, spec.n_vocab, spec.type == GGUF_TYPE_F16 ? "F16" : "Q8_0", spec.tied_output ? "tied" : "untied");
        int32_t tokens[N_TOKENS];
        uint64_t s = seed + (uint64_t)m;
        for (int i = 0; i < N_TOKENS; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            tokens[i] = (int32_t)((s >> 33) % spec.n_vocab);
        }
#if defined(__SANITIZE_ADDRESS__)
        /* under ASan (kernels instrumented too), f16 alone: the three take about 8 minutes */
        run_precision(&tm, m, ref, FB_PRECISION_F16, tokens, tmp_dir, cxx, inc);
#else
        run_precision(&tm, m, ref, FB_PRECISION_F32, tokens, tmp_dir, cxx, inc);
        run_precision(&tm, m, ref, FB_PRECISION_F16, tokens, tmp_dir, cxx, inc);
        run_precision(&tm, m, ref, FB_PRECISION_BF16, tokens, tmp_dir, cxx, inc);
#endif
        test_model_close(&tm);
    }
    fb_backends_free(&list);
    return check_summary();
}
